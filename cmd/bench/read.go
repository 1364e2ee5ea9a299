package main

import (
	"context"
	"fmt"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// loadScenario reads one thread of perThread events from a tenant stream of
// threads threads written in turn (so the thread's events are spread over
// the whole stream), with LoadSince and with a raw batched direct get of
// the same subject of the same stream: the same stored bytes, so the ratio
// is the library's own cost. --smoke uses the smaller sizes.
func loadScenario(name string, defaultPerThread, defaultThreads, smokePerThread, smokeThreads int) func(context.Context, *runner, *target) (*outcome, error) {
	return func(ctx context.Context, r *runner, t *target) (*outcome, error) {
		perThread, threads := defaultPerThread, defaultThreads
		if r.cfg.smoke {
			perThread, threads = smokePerThread, smokeThreads
		}
		tenant := name
		if err := t.log.EnsureTenant(ctx, tenant); err != nil {
			return nil, err
		}
		names := threadNames("t", threads)
		if _, err := t.fill(ctx, tenant, names, perThread, false); err != nil {
			return nil, err
		}
		stream := t.scheme.Stream(tenant)
		thread := names[threads/2]
		k := sessionlog.ThreadKey{Tenant: tenant, Thread: thread}
		subject := t.scheme.Subject(tenant, thread)
		n := r.pairs()
		out := &outcome{}
		var err error
		out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
			ds, err := interleave(ctx, n,
				func() error {
					recs, err := t.log.LoadSince(ctx, k, 0)
					if err != nil {
						return err
					}
					return countErr("LoadSince", len(recs), perThread)
				},
				func() error {
					msgs, err := jetstreamext.GetBatch(ctx, t.js, stream, perThread,
						jetstreamext.GetBatchSeq(1), jetstreamext.GetBatchSubject(subject))
					if err != nil {
						return err
					}
					got := 0
					for _, err := range msgs {
						if err != nil {
							return err
						}
						got++
					}
					return countErr("GetBatch", got, perThread)
				})
			if err != nil {
				return nil, err
			}
			what := fmt.Sprintf("load %d events", perThread)
			ms := latencyMetrics(what, "raw batched direct get", perThread, ds[0], ds[1])
			// A few long reads per repetition: a mean would follow one
			// outlier (a collection), so the rate comes from the median.
			ms[2].Name = what + ", events/s at p50"
			ms[2].Lib = float64(perThread) / percentile(ds[0], 0.5).Seconds()
			ms[2].Raw = float64(perThread) / percentile(ds[1], 0.5).Seconds()
			return ms, nil
		})
		out.note("thread of %d events among %d threads written in turn (%d events in the stream); %d interleaved pairs per repetition",
			perThread, threads, perThread*threads, n)
		return out, err
	}
}
