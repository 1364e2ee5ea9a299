package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Units of metric values.
const (
	unitMicros = "us"
	unitRate   = "events/s"
	unitBytes  = "bytes"
	unitCount  = "requests"
)

// goal is a bound on a ratio: "<=" 1.1 for times, ">=" 0.9 for rates.
type goal struct {
	Op    string  `json:"op"`
	Value float64 `json:"value"`
}

var (
	goalTime  = &goal{"<=", 1.1}
	goalRate  = &goal{">=", 0.9}
	goalScale = &goal{"<=", 1.5}
)

// metric is one measured quantity of the library (Lib) beside its twin
// (Raw: raw JetStream, or the baseline Twin names), and Ratio = Lib/Raw.
type metric struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Lib   float64 `json:"lib"`
	Twin  string  `json:"twin,omitempty"`
	Raw   float64 `json:"raw,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	Goal  *goal   `json:"goal,omitempty"`
	Met   bool    `json:"met,omitempty"`
	// Signed marks a difference of two readings, which may be zero or
	// negative (a memory delta within noise).
	Signed bool `json:"signed,omitempty"`
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// percentile is the nearest-rank percentile (0 < p <= 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// latencyMetrics reports p50 and p99 of lib against raw, and the
// sequential throughput of each (operations of events events each, one
// after the other).
func latencyMetrics(what, twin string, events int, lib, raw []time.Duration) []metric {
	rate := func(ds []time.Duration) float64 {
		return float64(events*len(ds)) / sum(ds).Seconds()
	}
	return []metric{
		{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(lib, 0.5)), Twin: twin, Raw: micros(percentile(raw, 0.5)), Goal: goalTime},
		{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(lib, 0.99)), Twin: twin, Raw: micros(percentile(raw, 0.99))},
		{Name: what + " throughput, one client", Unit: unitRate, Lib: rate(lib), Twin: twin, Raw: rate(raw), Goal: goalRate},
	}
}

// aggregate takes, for each metric, the median over repetitions of the
// library's and the twin's values, then their ratio and whether it meets
// its goal.
func aggregate(reps [][]metric) []metric {
	var out []metric
	index := map[string]int{}
	libs := map[string][]float64{}
	raws := map[string][]float64{}
	for _, rep := range reps {
		for _, m := range rep {
			key := m.Name + "\x00" + m.Twin
			if _, ok := index[key]; !ok {
				index[key] = len(out)
				out = append(out, m)
			}
			libs[key] = append(libs[key], m.Lib)
			raws[key] = append(raws[key], m.Raw)
		}
	}
	for key, i := range index {
		m := &out[i]
		m.Lib, m.Raw = median(libs[key]), median(raws[key])
		m.Ratio, m.Met = 0, false
		if m.Twin != "" && m.Raw != 0 {
			m.Ratio = m.Lib / m.Raw
			if m.Goal != nil {
				switch m.Goal.Op {
				case "<=":
					m.Met = m.Ratio <= m.Goal.Value
				case ">=":
					m.Met = m.Ratio >= m.Goal.Value
				}
			}
		}
	}
	return out
}

// interleave runs the operations in turn n times and returns each one's
// durations. Each round starts with the next operation (A B, B A, A B...):
// whatever follows a set-up, or precedes a pause, falls on each in turn.
// With more than two operations, each round also runs them in a fresh
// (seeded) order, so that no operation always follows the same other one:
// one that leaves work behind it (a server's, another process's, a
// collector's) would otherwise always charge it to the same neighbour. It
// stops at the first error or when ctx ends.
func interleave(ctx context.Context, n int, ops ...func() error) ([][]time.Duration, error) {
	return interleaveFrom(ctx, 0, n, ops...)
}

// interleaveFrom is interleave starting at round first, for callers that
// set up each round themselves.
func interleaveFrom(ctx context.Context, first, n int, ops ...func() error) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(ops))
	for i := range out {
		out[i] = make([]time.Duration, 0, n)
	}
	order := make([]int, len(ops))
	rng := rand.New(rand.NewPCG(uint64(first), uint64(len(ops))))
	for round := first; round < first+n; round++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j := range order {
			order[j] = (round + j) % len(ops)
		}
		if len(order) > 2 {
			// Keep the rotation's first operation, shuffle the rest.
			rng.Shuffle(len(order)-1, func(a, b int) { order[a+1], order[b+1] = order[b+1], order[a+1] })
		}
		for _, i := range order {
			start := time.Now()
			if err := ops[i](); err != nil {
				return nil, err
			}
			out[i] = append(out[i], time.Since(start))
		}
	}
	return out, nil
}

// repeat runs one repetition r times and collects its metrics.
func repeat(ctx context.Context, r int, rep func() ([]metric, error)) ([][]metric, error) {
	var out [][]metric
	for range r {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ms, err := rep()
		if err != nil {
			return nil, err
		}
		out = append(out, ms)
	}
	return out, nil
}

// countErr is the error of a read that returned the wrong number of events.
func countErr(what string, got, want int) error {
	if got == want {
		return nil
	}
	return fmt.Errorf("%s returned %d events, want %d", what, got, want)
}
