package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
)

// heapUse is what one listing cost this process: the growth of the Go
// heap in use at its peak, sampled while the listing ran, and the bytes it
// allocated.
type heapUse struct {
	peak  int64
	alloc uint64
}

// sampleHeap runs op after a full collection, sampling HeapInuse every
// millisecond, and returns its peak above the level before op began.
// runtime.ReadMemStats stops the world briefly at every sample, so op's
// duration is not measured here.
func sampleHeap(op func() error) (heapUse, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, baseAlloc := ms.HeapInuse, ms.TotalAlloc
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		top := base
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var s runtime.MemStats
		for {
			select {
			case <-tick.C:
			case <-stop:
				runtime.ReadMemStats(&s)
				peak <- max(top, s.HeapInuse)
				return
			}
			runtime.ReadMemStats(&s)
			top = max(top, s.HeapInuse)
		}
	}()
	err := op()
	close(stop)
	top := <-peak
	runtime.ReadMemStats(&ms)
	return heapUse{peak: int64(top) - int64(base), alloc: ms.TotalAlloc - baseAlloc}, err
}

// runListMemory lists a tenant of 100,000 threads on a fresh server and
// measures the client's memory while it iterates and the listing's time,
// with Log.Threads and with its raw requests. Two smaller tenants with the
// same threads, one with 1 event each and one with 10, show that the
// memory follows the thread names, not the events.
func runListMemory(ctx context.Context, r *runner, _ *target) (*outcome, error) {
	t, err := r.isolatedTarget(ctx, "l")
	if err != nil {
		return nil, err
	}
	defer t.close()
	big, small, deep := 100_000, 10_000, 10
	if r.cfg.smoke {
		big, small, deep = 2000, 300, 5
	}
	type tenantSpec struct {
		name            string
		threads, events int // events per thread
	}
	specs := []tenantSpec{
		{name: "threads" + strconv.Itoa(big), threads: big, events: 1},
		{name: "threads" + strconv.Itoa(small), threads: small, events: 1},
		{name: "deep" + strconv.Itoa(small), threads: small, events: deep},
	}
	for _, s := range specs {
		if err := t.log.EnsureTenant(ctx, s.name); err != nil {
			return nil, err
		}
		if _, err := t.fill(ctx, s.name, threadNames("t", s.threads), s.events, false); err != nil {
			return nil, err
		}
	}
	check := func(what string, want int) func(int, error) error {
		return func(got int, err error) error {
			if err != nil {
				return err
			}
			return countErr(what, got, want)
		}
	}
	lib := func(s tenantSpec, opts ...sessionlog.ThreadsOption) func() error {
		return func() error { return check("Threads", s.threads)(libThreads(ctx, t, s.name, opts...)) }
	}
	raw := func(s tenantSpec, recent bool) func() error {
		return func() error {
			return check("raw listing", s.threads)(t.rawThreads(ctx, s.name, recent, true, func(rawListing) {}))
		}
	}
	recent := sessionlog.ByRecentActivity()
	n := r.pairs()
	out := &outcome{}
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		b := specs[0]
		ds, err := interleave(ctx, n, lib(b), raw(b, false), lib(b, recent), raw(b, true))
		if err != nil {
			return nil, err
		}
		byName := fmt.Sprintf("list %d threads by name", b.threads)
		byRecent := fmt.Sprintf("list %d threads by recent activity", b.threads)
		const twin = twinListAhead
		ms := []metric{
			{Name: byName + ", time p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: twin, Raw: micros(percentile(ds[1], 0.5))},
			{Name: byRecent + ", time p50", Unit: unitMicros, Lib: micros(percentile(ds[2], 0.5)), Twin: twin, Raw: micros(percentile(ds[3], 0.5))},
		}
		// Memory, one listing at a time, library and raw in turn.
		heap := sampleHeap
		type pair struct {
			what     string
			lib, raw func() error
		}
		pairs := []pair{
			{byName, lib(b), raw(b, false)},
			{byRecent, lib(b, recent), raw(b, true)},
		}
		for i, p := range pairs {
			var l, w heapUse
			if i%2 == 0 {
				l, err = heap(p.lib)
				if err == nil {
					w, err = heap(p.raw)
				}
			} else {
				w, err = heap(p.raw)
				if err == nil {
					l, err = heap(p.lib)
				}
			}
			if err != nil {
				return nil, err
			}
			ms = append(ms,
				metric{Name: p.what + ", client heap peak growth", Unit: unitBytes, Lib: float64(l.peak), Twin: twinListAhead, Raw: float64(w.peak), Signed: true},
				metric{Name: p.what + ", client heap peak per 1,000 threads", Unit: unitBytes, Lib: float64(l.peak) * 1000 / float64(b.threads), Twin: twinListAhead, Raw: float64(w.peak) * 1000 / float64(b.threads), Signed: true},
				metric{Name: p.what + ", bytes allocated", Unit: unitBytes, Lib: float64(l.alloc), Twin: twinListAhead, Raw: float64(w.alloc)})
		}
		// Events do not count: the same threads with 1 and with 10 events
		// each.
		one, many := specs[1], specs[2]
		lOne, err := heap(lib(one))
		if err != nil {
			return nil, err
		}
		lMany, err := heap(lib(many))
		if err != nil {
			return nil, err
		}
		ms = append(ms, metric{Name: fmt.Sprintf("list %d threads of %d events each, client heap peak growth", many.threads, many.events), Unit: unitBytes,
			Lib: float64(lMany.peak), Twin: fmt.Sprintf("%d threads of 1 event each", one.threads), Raw: float64(lOne.peak), Signed: true})
		return ms, nil
	})
	if err != nil {
		return nil, err
	}
	out.note("fresh server(s)%s, R%d; tenants of %d and %d threads of 1 event each and %d threads of %d events each, written in turn", serversWhere(r), r.cfg.replicas, big, small, small, deep)
	out.note("time: %d interleaved rounds of 4 (library by name, raw by name, library recent, raw recent) per repetition", n)
	out.note("memory: this process's Go heap in use (runtime.ReadMemStats HeapInuse) sampled every millisecond during one listing, peak minus the level after a collection just before it; no server runs in this process; garbage not yet collected counts, as it does in a process's footprint")
	out.note("bounded memory means here: the listing holds every thread's name and count (the server sends them in one STREAM.INFO reply, paged above 100,000 subjects) and one page of 1,024 last messages at a time, so its memory grows with the number of threads and not with their events; by recent activity it also holds every thread's description to sort them")
	return out, nil
}
