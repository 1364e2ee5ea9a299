package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// allScenarios in the order they run. The isolated ones come last: they
// start their own servers once the shared one is stopped.
var allScenarios = []*scenario{
	{name: "append1", about: "Append of 1 event vs raw sync publish, bare and with the same ID/type/time headers: p50, p99, events/s",
		iters: 3000, smokeIters: 20, byDefault: true, run: runAppend1},
	{name: "append10", about: "atomic Append of 10 events vs raw jetstreamext.PublishMsgBatch of 10",
		iters: 150, smokeIters: 5, byDefault: true, run: runAppend10},
	{name: "concurrent64", about: "64 goroutines, each on its own thread, appending single events: total events/s vs raw sync publishes",
		iters: 8, smokeIters: 2, byDefault: true, run: runConcurrent64},
	{name: "load10", about: "LoadSince of a 10-event thread among 100 interleaved threads vs raw jetstreamext.GetBatch of its subject",
		iters: 300, smokeIters: 10, byDefault: true, run: loadScenario("load10", 10, 100, 10, 10)},
	{name: "load1000", about: "LoadSince of a 1,000-event thread among 100 interleaved threads (100k events) vs raw GetBatch",
		iters: 20, smokeIters: 3, byDefault: true, run: loadScenario("load1000", 1000, 100, 100, 10)},
	{name: "load10000", about: "LoadSince of a 10,000-event thread among 100 interleaved threads (1M events) vs raw GetBatch",
		iters: 8, smokeIters: 2, byDefault: true, run: loadScenario("load10000", 10000, 100, 200, 10)},
	{name: "hydrate", about: "LoadSince(0) of a --hydrate-events thread among 100 interleaved threads vs every raw read path (direct-get chain, GetBatch, ordered consumer), PostgreSQL, and floors (packed 512 KB messages, PostgreSQL snapshot + 10 rows): p50, p99",
		iters: 20, smokeIters: 1, byDefault: true, run: runHydrate},
	{name: "tail", about: "append start -> arrival at a live Log.Tail vs publish -> raw ordered consumer (Messages): p50, p99",
		iters: 2000, smokeIters: 20, byDefault: true, run: runTail},
	{name: "catchup", about: "TailTenant from 0 over stored events (--catchup-events) vs a raw ordered consumer on the tenant: time, events/s",
		iters: 2, smokeIters: 1, byDefault: true, run: runCatchup},
	{name: "archive", about: "ArchiveBefore of 500 of a 1,000-event thread vs a raw STREAM.PURGE (filter+seq) of an identical thread",
		iters: 20, smokeIters: 2, byDefault: true, run: runArchive},
	{name: "retry", about: "idempotent retry: Append of an already-appended event / 10-event batch vs the first Append",
		iters: 1000, smokeIters: 10, byDefault: true, run: runRetry},
	{name: "list10000", about: "Threads listing every one of 10,000 threads (3 events each), by name and by recent activity, vs its raw STREAM.INFO + multi_last requests",
		iters: 15, smokeIters: 3, byDefault: true, run: runList10000},
	{name: "last10", about: "LoadLast of 10 of a 10,000-event thread among 10 interleaved threads vs raw multi_last walk back, a raw get from the known start, and LoadSince(0)",
		iters: 200, smokeIters: 10, byDefault: true, run: runLast10},
	{name: "delete1000", about: "DeleteThread of a 1,000-event thread vs a raw STREAM.PURGE, and vs the raw deletion record + purge, of identical threads",
		iters: 20, smokeIters: 2, byDefault: true, run: runDelete1000},
	{name: "scale", about: "--tenants x --threads on fresh servers: stream creation per tenant, append p99 spread over every tenant vs one tenant, RSS, disk",
		isolated: true, byDefault: true, run: runScale},
	{name: "memory", about: "server and client RSS per 1,000 threads (--memory-threads) and per 1,000,000 events (--memory-events), on fresh servers",
		isolated: true, byDefault: true, run: runMemory},
	{name: "listmemory", about: "client heap while listing 100,000 threads (1 event each) on fresh servers, and the listing's time, vs its raw requests; 10,000 threads of 1 vs 10 events",
		iters: 3, smokeIters: 1, isolated: true, byDefault: true, run: runListMemory},
}

// filler publishes events in the library's wire format with asynchronous
// publishes, the fastest way to build large streams.
type filler struct {
	js    natsjs.JetStream
	mu    sync.Mutex
	first error
}

func newFiller(t *target) (*filler, error) {
	f := &filler{}
	js, err := natsjs.New(t.nc, natsjs.WithPublishAsyncErrHandler(func(_ natsjs.JetStream, _ *nats.Msg, err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.first == nil {
			f.first = err
		}
	}))
	f.js = js
	return f, err
}

// fill writes perThread events to each of threads of tenant, interleaved
// (one event per thread in turn), and returns the ordinals of each thread's
// events when seqs is set.
func (t *target) fill(ctx context.Context, tenant string, threads []string, perThread int, seqs bool) ([][]uint64, error) {
	f, err := newFiller(t)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	subjects := make([]string, len(threads))
	for i, th := range threads {
		subjects[i] = t.scheme.Subject(tenant, th)
	}
	var futures [][]natsjs.PubAckFuture
	if seqs {
		futures = make([][]natsjs.PubAckFuture, len(threads))
	}
	for e := range perThread {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id := "f" + strconv.Itoa(e)
		for i, th := range threads {
			m := &nats.Msg{Subject: subjects[i], Data: t.payload, Header: nats.Header{
				jetstream.HeaderMsgID: []string{jetstream.MsgID(th, id)},
				jetstream.HeaderType:  []string{"tool_result"},
				jetstream.HeaderTime:  []string{now},
			}}
			for {
				fut, err := f.js.PublishMsgAsync(m)
				if err == nil {
					if seqs {
						futures[i] = append(futures[i], fut)
					}
					break
				}
				if !errors.Is(err, natsjs.ErrTooManyStalledMsgs) {
					return nil, err
				}
				<-f.js.PublishAsyncComplete() // the client's window is full
			}
		}
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Minute):
		return nil, errors.New("filling the stream took over 5 minutes")
	}
	f.mu.Lock()
	err = f.first
	f.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("filling the stream: %w", err)
	}
	if !seqs {
		return nil, nil
	}
	out := make([][]uint64, len(threads))
	for i, fs := range futures {
		for _, fut := range fs {
			select {
			case ack := <-fut.Ok():
				out[i] = append(out[i], ack.Sequence)
			case err := <-fut.Err():
				return nil, err
			}
		}
	}
	return out, nil
}

func threadNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
