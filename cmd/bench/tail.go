package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// runTail measures, per event, the time from calling Append to the event
// reaching a live Log.Tail, beside a raw synchronous publish and its
// arrival at a raw ordered consumer, interleaved. Most events reach the
// tail before the publish acknowledgement returns, so this is the latency
// a watcher of a thread sees.
func runTail(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "tail"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k := sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}
	last, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}})
	if err != nil {
		return nil, err
	}
	// The raw side follows another thread of the same stream.
	subject := t.scheme.Subject(tenant, "raw")

	libArrived := make(chan time.Time, 1)
	libDone := make(chan error, 1)
	go func() {
		for _, err := range t.log.Tail(ctx, k, last) {
			if err != nil {
				libDone <- err
				return
			}
			select {
			case libArrived <- time.Now():
			case <-ctx.Done():
				return
			}
		}
		libDone <- nil
	}()
	cons, err := t.js.OrderedConsumer(ctx, t.scheme.Stream(tenant), natsjs.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: natsjs.DeliverNewPolicy})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	rawArrived := make(chan time.Time, 1)
	go func() {
		for {
			if _, err := it.Next(); err != nil {
				return
			}
			select {
			case rawArrived <- time.Now():
			case <-ctx.Done():
				return
			}
		}
	}()

	arrival := func(ch <-chan time.Time, start time.Time) (time.Duration, error) {
		select {
		case at := <-ch:
			return at.Sub(start), nil
		case err := <-libDone:
			return 0, fmt.Errorf("the tail ended: %v", err)
		case <-time.After(10 * time.Second):
			return 0, errors.New("event not delivered within 10s")
		}
	}
	// Both followers are ready once a first event made it through each.
	if _, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "ready"}}); err != nil {
		return nil, err
	}
	if _, err := arrival(libArrived, time.Now()); err != nil {
		return nil, err
	}
	if _, err := t.js.Publish(ctx, subject, t.payload); err != nil {
		return nil, err
	}
	if _, err := arrival(rawArrived, time.Now()); err != nil {
		return nil, err
	}

	// Each operation runs from the call to the event's arrival.
	follow := func(arrived <-chan time.Time, send func() error) func() error {
		return func() error {
			if err := send(); err != nil {
				return err
			}
			_, err := arrival(arrived, time.Now())
			return err
		}
	}
	n := r.pairs()
	out := &outcome{}
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		ds, err := interleave(ctx, n,
			follow(libArrived, func() error {
				_, err := t.log.Append(ctx, k, []sessionlog.Event{{Type: "model_reply", Data: t.payload}})
				return err
			}),
			follow(rawArrived, func() error {
				_, err := t.js.Publish(ctx, subject, t.payload)
				return err
			}),
			follow(rawArrived, func() error {
				_, err := t.js.PublishMsg(ctx, sameHeaders(subject, "raw", t.payload))
				return err
			}))
		if err != nil {
			return nil, err
		}
		var ms []metric
		for i, twin := range []string{"raw publish -> ordered consumer", "raw publish, same headers -> ordered consumer"} {
			ms = append(ms,
				metric{Name: "append -> live tail p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: twin, Raw: micros(percentile(ds[i+1], 0.5)), Goal: goalTime},
				metric{Name: "append -> live tail p99", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.99)), Twin: twin, Raw: micros(percentile(ds[i+1], 0.99))})
		}
		return ms, nil
	})
	out.note("%d interleaved rounds (library, bare, with headers) per repetition, one event at a time, timed from the call to the arrival", n)
	return out, err
}

// runCatchup tails a tenant of stored events from the start with
// TailTenant, beside a raw ordered consumer on the tenant's subjects; the
// ratio is of the times to receive them all.
func runCatchup(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "catchup"
	total := r.cfg.catchup
	threads := min(10, total)
	perThread := total / threads
	total = perThread * threads
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	if _, err := t.fill(ctx, tenant, threadNames("t", threads), perThread, false); err != nil {
		return nil, err
	}
	stream := t.scheme.Stream(tenant)
	n := r.pairs()
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		ds, err := interleave(ctx, n,
			func() error {
				tctx, cancel := context.WithCancel(ctx)
				defer cancel()
				got := 0
				for _, err := range t.log.TailTenant(tctx, tenant, 0) {
					if err != nil {
						return err
					}
					if got++; got == total {
						break
					}
				}
				return countErr("TailTenant", got, total)
			},
			func() error {
				cons, err := t.js.OrderedConsumer(ctx, stream, natsjs.OrderedConsumerConfig{FilterSubjects: []string{t.scheme.TenantFilter(tenant)}})
				if err != nil {
					return err
				}
				it, err := cons.Messages()
				if err != nil {
					return err
				}
				defer it.Stop()
				for range total {
					if _, err := it.Next(); err != nil {
						return err
					}
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
		lib, raw := percentile(ds[0], 0.5), percentile(ds[1], 0.5)
		twin := "raw ordered consumer"
		return []metric{
			{Name: fmt.Sprintf("catch up %d events", total), Unit: unitMicros, Lib: micros(lib), Twin: twin, Raw: micros(raw), Goal: goalTime},
			{Name: "catch-up throughput", Unit: unitRate, Lib: float64(total) / lib.Seconds(), Twin: twin, Raw: float64(total) / raw.Seconds(), Goal: goalRate},
		}, nil
	})
	out.note("%d events over %d threads, read from ordinal 0; %d interleaved pairs per repetition", total, threads, n)
	return out, err
}
