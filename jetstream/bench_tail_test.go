package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// BenchmarkTailLatency measures, per event, the time from calling Append to
// the event reaching a live tail, beside a raw synchronous publish and its
// delivery to a raw ordered consumer, interleaved. Most events reach the
// tail before the append's acknowledgement returns, so the wait counted
// from the return (the *-after-return metrics) is mostly zero:
//
//	go test ./jetstream -run '^$' -bench TailLatency -benchtime 10000x
func BenchmarkTailLatency(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		k := sessionlog.ThreadKey{Tenant: "bench", Thread: "t"}
		rawName, subject := tg.rawStream(b, "bench")
		if _, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}}); err != nil {
			b.Fatal(err)
		}
		libArrived := make(chan time.Time, 1)
		go func() {
			for _, err := range tg.log.Tail(ctx, k, 0) {
				if err != nil {
					return
				}
				libArrived <- time.Now()
			}
		}()
		<-libArrived // the warm-up event

		cons, err := tg.js.OrderedConsumer(ctx, rawName, natsjs.OrderedConsumerConfig{FilterSubjects: []string{subject("t")}})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages()
		if err != nil {
			b.Fatal(err)
		}
		defer it.Stop()
		rawArrived := make(chan time.Time, 1)
		go func() {
			for {
				if _, err := it.Next(); err != nil {
					return
				}
				rawArrived <- time.Now()
			}
		}()

		// measure returns the time from start to arrival and from the
		// publish returning to arrival (0 when it arrived first).
		measure := func(arrived <-chan time.Time, start, returned time.Time) (time.Duration, time.Duration, error) {
			select {
			case at := <-arrived:
				return at.Sub(start), max(at.Sub(returned), 0), nil
			case <-time.After(10 * time.Second):
				return 0, 0, fmt.Errorf("event not delivered within 10s")
			}
		}
		var libT, rawT, libAfter, rawAfter []time.Duration
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if _, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "model_reply", Data: payload512}}); err != nil {
				b.Fatal(err)
			}
			d, after, err := measure(libArrived, start, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			libT, libAfter = append(libT, d), append(libAfter, after)
			start = time.Now()
			if _, err := tg.js.Publish(ctx, subject("t"), payload512); err != nil {
				b.Fatal(err)
			}
			if d, after, err = measure(rawArrived, start, time.Now()); err != nil {
				b.Fatal(err)
			}
			rawT, rawAfter = append(rawT, d), append(rawAfter, after)
		}
		b.StopTimer()
		report(b, libT, rawT)
		b.ReportMetric(float64(p99(libT))/float64(p99(rawT)), "p99-ratio")
		b.ReportMetric(float64(p99(libAfter).Nanoseconds())/1e3, "lib-after-return-p99-us")
		b.ReportMetric(float64(p99(rawAfter).Nanoseconds())/1e3, "raw-after-return-p99-us")
	})
}

// BenchmarkTailCatchUp tails 100,000 stored events from the start, beside a
// raw ordered consumer reading the same stream; the ratio is of the times
// to receive them all.
//
//	go test ./jetstream -run '^$' -bench TailCatchUp -benchtime 3x
func BenchmarkTailCatchUp(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		const total = 100_000
		if err := tg.log.EnsureTenant(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		fill(b, tg, 10, total/10)
		stream := tg.scheme.Stream("bench")
		pair(b, func() error {
			tctx, cancel := context.WithCancel(ctx)
			defer cancel()
			n := 0
			for _, err := range tg.log.TailTenant(tctx, "bench", 0) {
				if err != nil {
					return err
				}
				if n++; n == total {
					break
				}
			}
			return nil
		}, func() error {
			cons, err := tg.js.OrderedConsumer(ctx, stream, natsjs.OrderedConsumerConfig{FilterSubjects: []string{tg.scheme.TenantFilter("bench")}})
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
		b.ReportMetric(0, "ns/op")
	})
}
