package jetstream_test

// Benchmarks run each library operation beside its raw JetStream twin,
// interleaved (A B A B) on the same server in the same run, and report the
// median time of each and their ratio:
//
//	go test ./jetstream -run '^$' -bench . -benchtime 2000x
//
// lib-us and raw-us are medians in microseconds; ratio is lib/raw (time: 1.0
// is parity, below 1.1 meets the goal).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

var payload512 = func() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// benchTarget is one server (or cluster) with a library log and a raw
// stream configured like the log's.
type benchTarget struct {
	nc       *nats.Conn
	js       natsjs.JetStream
	log      *jetstream.Log
	scheme   subjects.Scheme
	replicas int
}

func forEachTarget(b *testing.B, run func(b *testing.B, tg *benchTarget)) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", replicas), func(b *testing.B) {
			var nc *nats.Conn
			if replicas == 1 {
				nc = testserver.Start(b).Connect(b)
			} else {
				c := testserver.StartCluster(b, 3)
				nc = c.Nodes[0].Connect(b)
			}
			js, err := natsjs.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			scheme := freshScheme()
			log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithReplicas(replicas))
			if err != nil {
				b.Fatal(err)
			}
			run(b, &benchTarget{nc: nc, js: js, log: log, scheme: scheme, replicas: replicas})
		})
	}
}

// rawStream returns the library's stream for tenant (created, with its
// leader elected) and subjects in it for raw twins: "raw-<thread>" threads
// of the same tenant. Sharing the stream keeps both sides on the same
// stream leader, which on a cluster would otherwise decide the ratio.
func (tg *benchTarget) rawStream(b *testing.B, tenant string) (string, func(thread string) string) {
	ctx := context.Background()
	if err := tg.log.EnsureTenant(ctx, tenant); err != nil {
		b.Fatal(err)
	}
	subject := func(thread string) string { return tg.scheme.Subject(tenant, "raw-"+thread) }
	testserver.Eventually(b, 30*time.Second, func() error {
		_, err := tg.js.Publish(ctx, subject("warmup"), nil)
		return err
	})
	return tg.scheme.Stream(tenant), subject
}

// pair runs lib and raw alternately b.N times each and reports medians.
func pair(b *testing.B, lib, raw func() error) {
	b.Helper()
	libT := make([]time.Duration, 0, b.N)
	rawT := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := lib(); err != nil {
			b.Fatal(err)
		}
		libT = append(libT, time.Since(start))
		start = time.Now()
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		rawT = append(rawT, time.Since(start))
	}
	b.StopTimer()
	report(b, libT, rawT)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*99/100]
}

func report(b *testing.B, libT, rawT []time.Duration) {
	lib, raw := median(libT), median(rawT)
	b.ReportMetric(float64(lib.Nanoseconds())/1e3, "lib-us")
	b.ReportMetric(float64(raw.Nanoseconds())/1e3, "raw-us")
	b.ReportMetric(float64(p99(libT).Nanoseconds())/1e3, "lib-p99-us")
	b.ReportMetric(float64(p99(rawT).Nanoseconds())/1e3, "raw-p99-us")
	b.ReportMetric(float64(lib)/float64(raw), "ratio")
	b.ReportMetric(0, "ns/op") // the pair's medians are the result
}

func BenchmarkAppendOneEvent(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		k := sessionlog.ThreadKey{Tenant: "bench", Thread: "t"}
		_, subject := tg.rawStream(b, "bench")
		if _, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}}); err != nil {
			b.Fatal(err)
		}
		pair(b, func() error {
			_, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "model_reply", Data: payload512}})
			return err
		}, func() error {
			_, err := tg.js.Publish(ctx, subject("t"), payload512)
			return err
		})
	})
}

func BenchmarkAppendTenEventsAtomically(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		k := sessionlog.ThreadKey{Tenant: "bench", Thread: "t"}
		_, subject := tg.rawStream(b, "bench")
		if _, err := tg.log.Append(ctx, k, []sessionlog.Event{{Type: "warmup"}}); err != nil {
			b.Fatal(err)
		}
		pair(b, func() error {
			batch := make([]sessionlog.Event, 10)
			for i := range batch {
				batch[i] = sessionlog.Event{Type: "tool_call", Data: payload512}
			}
			_, err := tg.log.Append(ctx, k, batch)
			return err
		}, func() error {
			msgs := make([]*nats.Msg, 10)
			for i := range msgs {
				msgs[i] = &nats.Msg{Subject: subject("t"), Data: payload512, Header: nats.Header{}}
			}
			_, err := jetstreamext.PublishMsgBatch(ctx, tg.js, msgs)
			return err
		})
	})
}

// BenchmarkAppendConcurrent64 measures rounds of 64 appenders, each on its
// own thread, appending one event at once; the ratio is of round times.
func BenchmarkAppendConcurrent64(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		const n = 64
		_, subject := tg.rawStream(b, "bench")
		if _, err := tg.log.Append(ctx, sessionlog.ThreadKey{Tenant: "bench", Thread: "warmup"}, []sessionlog.Event{{Type: "warmup"}}); err != nil {
			b.Fatal(err)
		}
		round := func(op func(i int) error) func() error {
			return func() error {
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := op(i); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				return <-errs
			}
		}
		pair(b, round(func(i int) error {
			_, err := tg.log.Append(ctx, sessionlog.ThreadKey{Tenant: "bench", Thread: "t" + strconv.Itoa(i)},
				[]sessionlog.Event{{Type: "model_reply", Data: payload512}})
			return err
		}), round(func(i int) error {
			_, err := tg.js.Publish(ctx, subject("t"+strconv.Itoa(i)), payload512)
			return err
		}))
	})
}

// BenchmarkLoadThread reads one 1,000-event thread of a tenant stream of
// 100 interleaved threads (100,000 events) with LoadSince, beside a raw
// batched direct get of the same subject of the same stream: the same
// stored bytes, so the ratio is the library's own cost.
func BenchmarkLoadThread(b *testing.B) {
	forEachTarget(b, func(b *testing.B, tg *benchTarget) {
		ctx := context.Background()
		const threads, perThread = 100, 1000
		if err := tg.log.EnsureTenant(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		fill(b, tg, threads, perThread)
		k := sessionlog.ThreadKey{Tenant: "bench", Thread: "t50"}
		pair(b, func() error {
			recs, err := tg.log.LoadSince(ctx, k, 0)
			if err == nil && len(recs) != perThread {
				err = fmt.Errorf("read %d events", len(recs))
			}
			return err
		}, func() error {
			msgs, err := jetstreamext.GetBatch(ctx, tg.js, tg.scheme.Stream("bench"), perThread,
				jetstreamext.GetBatchSeq(1), jetstreamext.GetBatchSubject(tg.scheme.Subject("bench", "t50")))
			if err != nil {
				return err
			}
			n := 0
			for _, err := range msgs {
				if err != nil {
					return err
				}
				n++
			}
			if n != perThread {
				return fmt.Errorf("read %d events", n)
			}
			return nil
		})
	})
}

// fill writes perThread events to each of threads interleaved threads of
// tenant "bench", in the library's wire format, with async publishes.
func fill(b *testing.B, tg *benchTarget, threads, perThread int) {
	b.Helper()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range perThread {
		for t := range threads {
			thread := "t" + strconv.Itoa(t)
			h := nats.Header{}
			h.Set(jetstream.HeaderMsgID, jetstream.MsgID(thread, fmt.Sprintf("e%d", i)))
			h.Set(jetstream.HeaderType, "tool_result")
			h.Set(jetstream.HeaderTime, now)
			for {
				_, err := tg.js.PublishMsgAsync(&nats.Msg{Subject: tg.scheme.Subject("bench", thread), Header: h, Data: payload512})
				if err == nil {
					break
				}
				if !errors.Is(err, natsjs.ErrTooManyStalledMsgs) {
					b.Fatal(err)
				}
				<-tg.js.PublishAsyncComplete() // the client's window is full
			}
		}
	}
	select {
	case <-tg.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("filling the streams took too long")
	}
}
