package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

const (
	twinBare    = "raw sync publish"
	twinHeaders = "raw sync publish, same ID/type/time headers"
)

func runAppend1(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "append1"
	k := sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}
	if _, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}}); err != nil {
		return nil, err
	}
	// The raw twins publish to other threads of the same stream: on a
	// cluster both sides then meet the same stream leader.
	bare, withHeaders, token := t.scheme.Subject(tenant, "raw-bare"), t.scheme.Subject(tenant, "raw"), "raw"
	n := r.pairs()
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		ds, err := interleave(ctx, n,
			func() error {
				_, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "model_reply", Data: t.payload}})
				return err
			},
			func() error {
				_, err := t.js.Publish(ctx, bare, t.payload)
				return err
			},
			func() error {
				_, err := t.js.PublishMsg(ctx, sameHeaders(withHeaders, token, t.payload))
				return err
			})
		if err != nil {
			return nil, err
		}
		return append(latencyMetrics("append", twinBare, 1, ds[0], ds[1]), latencyMetrics("append", twinHeaders, 1, ds[0], ds[2])...), nil
	})
	out.note("%d interleaved triples (library, bare, with headers) per repetition, one client, %d-byte payloads", n, r.cfg.payload)
	return out, err
}

// sameHeaders is the message the library sends for one event, built per
// call as the library builds it: a deduplication ID, the type and the time.
func sameHeaders(subject, threadToken string, data []byte) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		jetstream.HeaderMsgID: []string{threadToken + ":" + nuid.Next()},
		jetstream.HeaderType:  []string{"model_reply"},
		jetstream.HeaderTime:  []string{time.Now().UTC().Format(time.RFC3339Nano)},
	}}
}

func runAppend10(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "append10"
	k := sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}
	if _, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}}); err != nil {
		return nil, err
	}
	subject := t.scheme.Subject(tenant, "raw")
	n := r.pairs()
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		ds, err := interleave(ctx, n,
			func() error {
				batch := make([]sessionlog.Event, 10)
				for i := range batch {
					batch[i] = sessionlog.Event{Type: "tool_call", Data: t.payload}
				}
				_, err := t.log.Append(ctx, k, batch)
				return err
			},
			func() error {
				msgs := make([]*nats.Msg, 10)
				for i := range msgs {
					msgs[i] = &nats.Msg{Subject: subject, Data: t.payload, Header: nats.Header{}}
				}
				_, err := jetstreamext.PublishMsgBatch(ctx, t.js, msgs)
				return err
			},
			func() error {
				msgs := make([]*nats.Msg, 10)
				for i := range msgs {
					msgs[i] = sameHeaders(subject, "raw", t.payload)
				}
				_, err := jetstreamext.PublishMsgBatch(ctx, t.js, msgs)
				return err
			})
		if err != nil {
			return nil, err
		}
		return append(latencyMetrics("append 10", "raw atomic batch of 10", 10, ds[0], ds[1]),
			latencyMetrics("append 10", "raw atomic batch of 10, same headers", 10, ds[0], ds[2])...), nil
	})
	out.note("%d interleaved rounds (library, bare, with headers) per repetition; throughput counts events (10 per call)", n)
	if t.replicas == 1 {
		out.note("an R1 file stream stages each atomic batch in a temporary on-disk store (nats-server %s): both sides pay it", "v2.15.2")
	}
	return out, err
}

// runConcurrent64 alternates phases of 64 library appenders and 64 raw
// publishers, each goroutine on its own thread appending perWorker single
// events one after the other; the metric is the phase's events per second.
func runConcurrent64(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant, workers = "concurrent64", 64
	perWorker := 20
	if r.cfg.smoke {
		perWorker = 2
	}
	if _, err := t.log.Append(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: "warmup"}, []sessionlog.Event{{Type: "warmup"}}); err != nil {
		return nil, err
	}
	phase := func(op func(i int) error) func() error {
		return func() error {
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range perWorker {
						if err := op(w); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		}
	}
	keys := make([]sessionlog.ThreadKey, workers)
	subjects := make([]string, workers)
	tokens := make([]string, workers)
	for i := range workers {
		keys[i] = sessionlog.ThreadKey{Tenant: tenant, Thread: "t" + strconv.Itoa(i)}
		tokens[i] = "raw" + strconv.Itoa(i)
		subjects[i] = t.scheme.Subject(tenant, tokens[i])
	}
	n := r.pairs()
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		ds, err := interleave(ctx, n,
			phase(func(i int) error {
				_, err := t.log.Append(ctx, keys[i], []sessionlog.Event{{Type: "model_reply", Data: t.payload}})
				return err
			}),
			phase(func(i int) error {
				_, err := t.js.Publish(ctx, subjects[i], t.payload)
				return err
			}),
			phase(func(i int) error {
				_, err := t.js.PublishMsg(ctx, sameHeaders(subjects[i], tokens[i], t.payload))
				return err
			}))
		if err != nil {
			return nil, err
		}
		events := float64(workers * perWorker)
		rate := func(ds []time.Duration) float64 { return events / percentile(ds, 0.5).Seconds() }
		return []metric{
			{Name: "64 appenders, total", Unit: unitRate, Lib: rate(ds[0]), Twin: "64 raw sync publishers", Raw: rate(ds[1]), Goal: goalRate},
			{Name: "64 appenders, total", Unit: unitRate, Lib: rate(ds[0]), Twin: "64 raw publishers, same headers", Raw: rate(ds[2]), Goal: goalRate},
		}, nil
	})
	out.note("%d interleaved rounds (library, bare, with headers) per repetition, each phase %d goroutines x %d sequential single-event appends; rate from the median phase", n, workers, perWorker)
	return out, err
}

// runRetry measures what an idempotent retry costs against the first
// append of the same events: a single event comes back as a duplicate
// acknowledgement; a batch is refused whole by the server and resolved by
// the library with one probe per event.
func runRetry(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "retry"
	k := sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}
	if _, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}}); err != nil {
		return nil, err
	}
	n := r.pairs()
	nBatch := max(n/20, 2)
	// Each retry must return the ordinal of the first append.
	pair := func(size int) (func() error, func() error) {
		var events []sessionlog.Event
		var first uint64
		return func() error {
				events = make([]sessionlog.Event, size)
				for i := range events {
					events[i] = sessionlog.Event{Type: "tool_call", Data: t.payload}
				}
				var err error
				first, err = t.log.Append(ctx, k, events)
				return err
			}, func() error {
				again, err := t.log.Append(ctx, k, events)
				if err == nil && again != first {
					err = fmt.Errorf("retry returned ordinal %d, the first append %d", again, first)
				}
				return err
			}
	}
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		first1, retry1 := pair(1)
		ds1, err := interleave(ctx, n, first1, retry1)
		if err != nil {
			return nil, err
		}
		first10, retry10 := pair(10)
		ds10, err := interleave(ctx, nBatch, first10, retry10)
		if err != nil {
			return nil, err
		}
		return []metric{
			{Name: "retry of 1 event p50", Unit: unitMicros, Lib: micros(percentile(ds1[1], 0.5)), Twin: "its first append", Raw: micros(percentile(ds1[0], 0.5))},
			{Name: "retry of 1 event p99", Unit: unitMicros, Lib: micros(percentile(ds1[1], 0.99)), Twin: "its first append", Raw: micros(percentile(ds1[0], 0.99))},
			{Name: "retry of 10-event batch p50", Unit: unitMicros, Lib: micros(percentile(ds10[1], 0.5)), Twin: "its first append", Raw: micros(percentile(ds10[0], 0.5))},
			{Name: "retry of 10-event batch p99", Unit: unitMicros, Lib: micros(percentile(ds10[1], 0.99)), Twin: "its first append", Raw: micros(percentile(ds10[0], 0.99))},
		}, nil
	})
	out.note("%d single-event and %d batch (first, retry) pairs per repetition; the ratio is retry/first, no goal", n, nBatch)
	return out, err
}
