package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
)

// runMemory measures how server and client memory grow with threads (one
// event on each of N new threads) and with events (many events on a few
// threads), on fresh servers in their own processes. The client is this
// process: the shared server of the other scenarios is stopped by now, so
// its readings are the client's own.
func runMemory(ctx context.Context, r *runner, _ *target) (*outcome, error) {
	t, err := r.isolatedTarget(ctx, "m")
	if err != nil {
		return nil, err
	}
	defer t.close()
	const workers = 64
	out := &outcome{}
	var ms []metric

	type reading struct{ server, client, heap int64 }
	read := func() (reading, bool) {
		s, ok := t.servers.rss()
		c, h, _ := clientMemory()
		return reading{s, c, h}, ok
	}
	grow := func(what string, per, n int, before, after reading, serverOK bool) {
		scale := float64(per) / float64(n)
		if serverOK {
			ms = append(ms, metric{Name: "server RSS " + what, Unit: unitBytes, Lib: float64(after.server-before.server) * scale, Signed: true})
		}
		ms = append(ms,
			metric{Name: "client RSS " + what, Unit: unitBytes, Lib: float64(after.client-before.client) * scale, Signed: true},
			metric{Name: "client Go heap " + what, Unit: unitBytes, Lib: float64(after.heap-before.heap) * scale, Signed: true})
	}

	start, serverOK := read()
	// Each step is a new tenant: a stream's fixed cost once written to
	// (about 2 MiB here) lands in every step, so the difference of the two
	// largest steps shows the cost of a thread alone.
	var steps []struct {
		n     int
		delta int64
	}
	for _, n := range r.cfg.memThreads {
		tenant := "threads" + strconv.Itoa(n)
		if err := t.log.EnsureTenant(ctx, tenant); err != nil {
			return nil, err
		}
		before, _ := read()
		err := appendAll(ctx, t.log, n, workers, func(i int) sessionlog.ThreadKey {
			return sessionlog.ThreadKey{Tenant: tenant, Thread: "t" + strconv.Itoa(i)}
		}, t.payload)
		if err != nil {
			return nil, err
		}
		after, _ := read()
		grow(fmt.Sprintf("per 1,000 threads (%d threads)", n), 1000, n, before, after, serverOK)
		steps = append(steps, struct {
			n     int
			delta int64
		}{n, after.server - before.server})
	}
	if serverOK && len(steps) >= 2 {
		a, b := steps[len(steps)-2], steps[len(steps)-1]
		if b.n != a.n {
			ms = append(ms, metric{Name: fmt.Sprintf("server RSS per 1,000 threads, marginal (%d vs %d threads)", b.n, a.n), Unit: unitBytes,
				Lib: float64(b.delta-a.delta) * 1000 / float64(b.n-a.n), Signed: true})
		}
	}

	const threads = 10
	const tenant = "events"
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	before, _ := read()
	n := r.cfg.memEvents
	err = appendAll(ctx, t.log, n, workers, func(i int) sessionlog.ThreadKey {
		return sessionlog.ThreadKey{Tenant: tenant, Thread: "t" + strconv.Itoa(i%threads)}
	}, t.payload)
	if err != nil {
		return nil, err
	}
	after, _ := read()
	grow(fmt.Sprintf("per 1,000,000 events (%d events, %d threads)", n, threads), 1_000_000, n, before, after, serverOK)

	// The server remembers every event ID for the duplicate window. Shrink
	// the window of this stream to one second, which makes the server
	// forget them at once, to show how much of the above that is.
	if serverOK {
		st, err := t.js.Stream(ctx, t.scheme.Stream(tenant))
		if err != nil {
			return nil, err
		}
		cfg := st.CachedInfo().Config
		cfg.Duplicates = time.Second
		if _, err := t.js.UpdateStream(ctx, cfg); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(3 * time.Second):
		}
		forgot, _ := read()
		ms = append(ms, metric{Name: "server RSS per 1,000,000 events, IDs out of the duplicate window", Unit: unitBytes,
			Lib: float64(forgot.server-before.server) * 1_000_000 / float64(n), Signed: true})
	}
	if serverOK {
		ms = append(ms, metric{Name: "server RSS at the end", Unit: unitBytes, Lib: float64(after.server)},
			metric{Name: "server RSS at the start", Unit: unitBytes, Lib: float64(start.server)})
	}
	ms = append(ms, metric{Name: "client RSS at the end", Unit: unitBytes, Lib: float64(after.client)},
		metric{Name: "client Go heap at the end", Unit: unitBytes, Lib: float64(after.heap)})

	out.reps = [][]metric{ms}
	out.note("server(s)%s, R%d; %d goroutines sharing one Log append single %d-byte events", serversWhere(r), r.cfg.replicas, workers, r.cfg.payload)
	out.note("server: %s", rssMethod(r, serverOK))
	out.note("client: VmRSS of this process from /proc/self/status and the Go heap in use, both after runtime.GC and debug.FreeOSMemory; no server runs in this process during this scenario")
	out.note("every event is appended within the duplicate window (2 minutes), so the server still holds its ID for deduplication when measured; the out-of-window reading comes after the events stream's window was cut to 1s and 3s passed")
	return out, nil
}
