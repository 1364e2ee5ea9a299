package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
)

// runScale spreads the library over many tenants on fresh servers: how long
// a tenant's stream takes to create, what each tenant and thread costs the
// server in memory and disk, and whether appends spread over every tenant
// stay as fast as appends to a single tenant.
func runScale(ctx context.Context, r *runner, _ *target) (*outcome, error) {
	t, err := r.isolatedTarget(ctx, "x")
	if err != nil {
		return nil, err
	}
	defer t.close()
	nT, nH := r.cfg.tenants, r.cfg.threads
	threads := nT * nH
	out := &outcome{}
	var ms []metric

	// The single-tenant baseline exists before the first reading, so that
	// the readings count only the spread tenants.
	const solo = "solo"
	if err := t.log.EnsureTenant(ctx, solo); err != nil {
		return nil, err
	}
	rss0, rssOK := t.servers.rss()
	disk0, diskOK := t.servers.disk(ctx)

	// 1. Create every tenant's stream, one after the other.
	tenants := make([]string, nT)
	var create []time.Duration
	for i := range tenants {
		tenants[i] = "tenant-" + strconv.Itoa(i)
		start := time.Now()
		if err := t.log.EnsureTenant(ctx, tenants[i]); err != nil {
			return nil, err
		}
		create = append(create, time.Since(start))
	}
	ms = append(ms,
		metric{Name: "EnsureTenant, mean per tenant", Unit: unitMicros, Lib: micros(sum(create) / time.Duration(nT))},
		metric{Name: "EnsureTenant p99", Unit: unitMicros, Lib: micros(percentile(create, 0.99))})
	rss1, _ := t.servers.rss()
	disk1, _ := t.servers.disk(ctx)
	if rssOK {
		ms = append(ms, metric{Name: "server RSS per empty tenant stream", Unit: unitBytes, Lib: float64(rss1-rss0) / float64(nT), Signed: true})
	}
	if diskOK {
		ms = append(ms, metric{Name: "disk per empty tenant stream", Unit: unitBytes, Lib: float64(disk1-disk0) / float64(nT), Signed: true})
	}

	// 2. One event to every thread of every tenant, tenants in turn: this
	// creates each thread's subject state on the server.
	key := func(i int) sessionlog.ThreadKey {
		return sessionlog.ThreadKey{Tenant: tenants[i%nT], Thread: "t" + strconv.Itoa((i/nT)%nH)}
	}
	first := make([]time.Duration, 0, threads)
	for i := range threads {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := t.log.Append(ctx, key(i), []sessionlog.Event{{Type: "user_message", Data: t.payload}}); err != nil {
			return nil, err
		}
		first = append(first, time.Since(start))
	}
	ms = append(ms, metric{Name: "first append to a thread p99", Unit: unitMicros, Lib: micros(percentile(first, 0.99))})
	rss2, _ := t.servers.rss()
	if rssOK {
		ms = append(ms, metric{Name: "server RSS per thread (1 event each, in the duplicate window)", Unit: unitBytes, Lib: float64(rss2-rss1) / float64(threads), Signed: true})
	}

	// 3. The goal: appends spread over every tenant (random tenant and
	// thread) against appends to one tenant, interleaved; and the same with
	// raw publishes of the library's wire format to the same streams, which
	// shows what the spread costs the server whoever publishes.
	pairs := min(threads, 20000)
	rnd := rand.New(rand.NewPCG(1, 2))
	soloKey := func(i int) sessionlog.ThreadKey {
		return sessionlog.ThreadKey{Tenant: solo, Thread: "t" + strconv.Itoa(i%nH)}
	}
	appendTo := func(k sessionlog.ThreadKey) error {
		_, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "model_reply", Data: t.payload}})
		return err
	}
	publishTo := func(k sessionlog.ThreadKey) error {
		_, err := t.js.PublishMsg(ctx, sameHeaders(t.scheme.Subject(k.Tenant, k.Thread), subjects.EncodeThread(k.Thread), t.payload))
		return err
	}
	var jLib, jRaw int
	ds, err := interleave(ctx, pairs,
		func() error { return appendTo(key(rnd.IntN(threads))) },
		func() error { jLib++; return appendTo(soloKey(jLib)) },
		func() error { return publishTo(key(rnd.IntN(threads))) },
		func() error { jRaw++; return publishTo(soloKey(jRaw)) })
	if err != nil {
		return nil, err
	}
	one := fmt.Sprintf("1 tenant, %d threads", nH)
	spread := fmt.Sprintf("over %d tenants", nT)
	rawSpread := "raw publish, same headers, " + spread
	ms = append(ms,
		metric{Name: "append " + spread + " p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: one, Raw: micros(percentile(ds[1], 0.5))},
		metric{Name: "append " + spread + " p99", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.99)), Twin: one, Raw: micros(percentile(ds[1], 0.99)), Goal: goalScale},
		metric{Name: rawSpread + " p50", Unit: unitMicros, Lib: micros(percentile(ds[2], 0.5)), Twin: "raw, " + one, Raw: micros(percentile(ds[3], 0.5))},
		metric{Name: rawSpread + " p99", Unit: unitMicros, Lib: micros(percentile(ds[2], 0.99)), Twin: "raw, " + one, Raw: micros(percentile(ds[3], 0.99))},
		metric{Name: "append " + spread + " p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: rawSpread, Raw: micros(percentile(ds[2], 0.5)), Goal: goalTime},
		metric{Name: "append " + spread + " p99", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.99)), Twin: rawSpread, Raw: micros(percentile(ds[2], 0.99))})
	events := threads + 4*pairs
	if diskOK {
		disk3, _ := t.servers.disk(ctx)
		ms = append(ms, metric{Name: "disk per event (store files)", Unit: unitBytes, Lib: float64(disk3-disk1) / float64(events)})
	}
	if infos, err := t.log.Tenants(ctx); err == nil {
		var bytes, msgs uint64
		for _, in := range infos {
			bytes += in.Bytes
			msgs += in.Events
		}
		if msgs > 0 {
			ms = append(ms, metric{Name: "stored bytes per event (server accounting)", Unit: unitBytes, Lib: float64(bytes) / float64(msgs)})
		}
	}
	if rss, ok := t.servers.rss(); ok {
		ms = append(ms, metric{Name: "server RSS at the end", Unit: unitBytes, Lib: float64(rss)})
	}

	// 4. Stream creation beside its raw twin, on the server now holding
	// every tenant; after the readings, so the extra streams are not in them.
	n := min(nT, 100)
	var kLib, kRaw int
	cds, err := interleave(ctx, n,
		func() error {
			kLib++
			return t.log.EnsureTenant(ctx, "extra-"+strconv.Itoa(kLib))
		},
		func() error {
			kRaw++
			_, err := t.rawStream(ctx, "extra-"+strconv.Itoa(kRaw))
			return err
		})
	if err != nil {
		return nil, err
	}
	ms = append(ms, metric{Name: "create a tenant stream p50", Unit: unitMicros, Lib: micros(percentile(cds[0], 0.5)),
		Twin: "raw CreateStream, same config", Raw: micros(percentile(cds[1], 0.5)), Goal: goalTime})

	out.reps = [][]metric{ms}
	out.note("%d tenants x %d threads on fresh server(s)%s, R%d; one client appending one event at a time", nT, nH, serversWhere(r), r.cfg.replicas)
	out.note("spread vs single tenant: %d interleaved rounds of 4 (library spread, library one tenant, raw spread, raw one tenant), spread ones to a random existing thread of a random tenant", pairs)
	out.note("memory: %s", rssMethod(r, rssOK))
	if !diskOK {
		out.note("disk: not measured (the store of a --nats server is not visible here)")
	}
	out.note("stream creation vs raw CreateStream: %d interleaved pairs after the readings", n)
	return out, nil
}

func serversWhere(r *runner) string {
	switch {
	case r.cfg.natsURL != "":
		return " (the --nats server, not fresh)"
	case r.cfg.cluster:
		return " (3 nodes, each its own process)"
	default:
		return " (one node in its own process)"
	}
}

func rssMethod(r *runner, ok bool) string {
	switch {
	case !ok && r.cfg.natsURL != "":
		return "server RSS not measured: give --server-pid to read it from /proc"
	case !ok:
		return "server RSS not measured: /proc is not readable here"
	case r.cfg.natsURL != "":
		return "server VmRSS from /proc/<--server-pid>/status, as it is (no forced collection)"
	default:
		return "server VmRSS from /proc/<pid>/status of the server process(es), read after the server collected garbage and returned free memory to the OS (debug.FreeOSMemory), so it shows what the server keeps"
	}
}

// appendAll appends one event for each i < n to key(i) from workers
// goroutines sharing the Log, as a busy agent fleet would.
func appendAll(ctx context.Context, log *jetstream.Log, n, workers int, key func(i int) sessionlog.ThreadKey, data []byte) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if _, err := log.Append(ctx, key(i), []sessionlog.Event{{Type: "tool_result", Data: data}}); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
