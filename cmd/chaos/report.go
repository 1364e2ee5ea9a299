package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// goalSlack is what issue 15's goals allow on top of the cluster's own
// election time.
const goalSlack = 2 * time.Second

// summary is the machine-readable result of a run (--json).
type summary struct {
	Seed          int64     `json:"seed"`
	Replay        string    `json:"replay"`
	Config        config    `json:"config"`
	ServerVersion string    `json:"server_version"`
	Started       time.Time `json:"started"`
	ElapsedSec    float64   `json:"elapsed_s"`

	FaultsPlanned map[faultKind]int `json:"faults_planned"`
	FaultsDone    map[faultKind]int `json:"faults_done"`
	Faults        []*fault          `json:"faults"`

	Workload workloadSummary `json:"workload"`
	Checker  *checkResult    `json:"checker"`
	// Violations is the total over every checker category; OK is true when
	// it is 0. Latency figures never fail a run.
	Violations int  `json:"violations"`
	OK         bool `json:"ok"`

	Latency []figure     `json:"latency"`
	Goals   []goalResult `json:"goals"`
}

type workloadSummary struct {
	Ops            int         `json:"ops"`
	Events         int         `json:"events"`
	Acked          int         `json:"acked"`
	Unknown        int         `json:"unknown"`
	FailedAttempts int         `json:"failed_attempts"`
	RawProbes      int         `json:"raw_probes"`
	Probes         int         `json:"probes"`
	ProbesUnread   int         `json:"probes_unread"`
	TailDeliveries int         `json:"tail_deliveries"`
	StoredEvents   int         `json:"stored_events"`
	Errors         []kindCount `json:"errors,omitempty"`
}

type kindCount struct {
	Count int    `json:"count"`
	Kind  string `json:"kind"`
}

// figure is one latency distribution and what it measures.
type figure struct {
	Name string `json:"name"`
	What string `json:"what"`
	dist
}

// goalResult compares one figure with its goal. Goals are reported, never
// enforced.
type goalResult struct {
	Goal   string  `json:"goal"`
	Figure float64 `json:"figure_ms"`
	Limit  float64 `json:"limit_ms"`
	Met    bool    `json:"met"`
	Note   string  `json:"note,omitempty"`
}

// figures computes the latency figures of a history.
func figures(h *history) ([]figure, []goalResult) {
	acked := map[string]*op{} // token -> acknowledged op
	var appendLat, unknown, creation, raw []time.Duration
	for _, o := range h.Ops {
		if o.Outcome == outcomeAcked {
			for _, e := range o.Events {
				acked[e.Token] = o
			}
		}
		switch {
		case o.Raw:
			if o.Outcome == outcomeAcked {
				if f := faultN(h, o.Fault); f != nil {
					raw = append(raw, o.End.Sub(f.At))
				}
			}
		case o.Writer == "create":
			if f := faultN(h, o.Fault); f != nil && o.Outcome == outcomeAcked {
				creation = append(creation, o.End.Sub(f.At))
			}
		default:
			if o.Outcome == outcomeAcked {
				appendLat = append(appendLat, o.End.Sub(o.Start))
			}
			if o.failed() {
				unknown = append(unknown, o.End.Sub(o.Start))
			}
		}
	}
	var tailDelay []time.Duration
	for _, t := range h.Tails {
		for _, d := range t.Deliveries {
			if o := acked[d.Token]; o != nil {
				tailDelay = append(tailDelay, max(d.At.Sub(o.End), 0))
			}
		}
	}

	// Per fault and tenant whose stream the faulted node led: the
	// cluster's election, and how soon the library appended and a tail
	// delivered again (before the next fault).
	elections := map[faultKind][]time.Duration{}
	var meta, appendRec, tailRec, healthy []time.Duration
	var appendLate, tailLate, creationLate, recSamples, creationSamples int
	for i, f := range h.Faults {
		next := time.Time{}
		if i+1 < len(h.Faults) {
			next = h.Faults[i+1].At
		}
		worstElection := time.Duration(0)
		for _, t := range f.Led {
			e, ok := f.Elections[t]
			if !ok {
				continue
			}
			elections[f.Kind] = append(elections[f.Kind], e)
			worstElection = max(worstElection, e)
			if a, ok := firstAck(h, t, f.At, next); ok {
				appendRec = append(appendRec, a)
				recSamples++
				if a > e+goalSlack {
					appendLate++
				}
			}
			for _, tl := range h.Tails {
				if tl.Tenant != t {
					continue
				}
				if d, ok := firstDelivery(tl, f.At, next); ok {
					tailRec = append(tailRec, d)
					if d > e+goalSlack {
						tailLate++
					}
				}
			}
		}
		if f.MetaLeader && f.MetaElection > 0 {
			meta = append(meta, f.MetaElection)
			worstElection = max(worstElection, f.MetaElection)
		}
		if !f.Healthy.IsZero() {
			healthy = append(healthy, f.Healthy.Sub(f.At))
		}
		for _, o := range h.Ops {
			if o.Writer == "create" && o.Fault == f.N && o.Outcome == outcomeAcked {
				creationSamples++
				if o.End.Sub(f.At) > worstElection+goalSlack {
					creationLate++
				}
			}
		}
	}

	figs := []figure{
		{"append", "start of an append's first attempt -> its acknowledgement, over every retry", summarize(appendLat)},
		{"unknown_outcome", "appends with a failed attempt: start -> acknowledgement (or giving up)", summarize(unknown)},
		{"tail_delay", "append acknowledged -> the event yielded by a live tail", summarize(tailDelay)},
		{"append_recovery", "fault -> first acknowledged library append to a tenant whose stream leader was hit", summarize(appendRec)},
		{"tail_recovery", "fault -> first event a tail of such a tenant yielded", summarize(tailRec)},
		{"raw_publish_recovery", "fault -> first acknowledged raw publish (plain NATS request every 10 ms, same message ID)", summarize(raw)},
		{"stream_creation", "fault -> a new tenant's stream created by its first Append", summarize(creation)},
		{"election_leader_kill", "SIGKILL of the stream leader -> another node claims the stream (cluster's own)", summarize(elections[faultLeaderKill])},
		{"election_pause", "SIGSTOP of the stream leader -> another node claims the stream", summarize(elections[faultPause])},
		{"election_cluster_kill", "SIGKILL of every node -> a stream leader again (includes --down and the restart)", summarize(elections[faultClusterKill])},
		{"meta_election", "fault of the meta leader -> a new meta leader", summarize(meta)},
		{"healed", "fault -> every node answers /healthz again", summarize(healthy)},
	}

	kill := summarize(elections[faultLeaderKill])
	all := summarize(slices.Concat(elections[faultLeaderKill], elections[faultPause], elections[faultClusterKill], meta))
	td, uo, cr := summarize(tailDelay), summarize(unknown), summarize(creation)
	goals := []goalResult{
		{Goal: "tail delay p99 <= leader-kill election p99 + 2 s", Figure: td.P99, Limit: kill.P99 + ms(goalSlack)},
		{Goal: "longest append in unknown outcome <= longest election + 2 s", Figure: max(uo.Max, summarize(appendLat).Max), Limit: all.Max + ms(goalSlack)},
		{Goal: "longest stream creation during a fault <= longest election + 2 s", Figure: cr.Max, Limit: all.Max + ms(goalSlack)},
	}
	for i := range goals {
		goals[i].Met = goals[i].Figure <= goals[i].Limit
	}
	goals[0].Note = fmt.Sprintf("%d of %d tail recoveries took longer than their fault's election + 2 s", tailLate, len(tailRec))
	goals[1].Note = fmt.Sprintf("%d of %d append recoveries took longer than their fault's election + 2 s", appendLate, recSamples)
	goals[2].Note = fmt.Sprintf("%d of %d creations took longer than their fault's longest election + 2 s", creationLate, creationSamples)
	if td.N == 0 || kill.N == 0 {
		goals[0].Met, goals[0].Note = false, "not measured (no tail delivery or no leader-kill election)"
	}
	if cr.N == 0 {
		goals[2].Met, goals[2].Note = false, "not measured (no stream created during a fault)"
	}
	return figs, goals
}

func faultN(h *history, n int) *fault {
	for _, f := range h.Faults {
		if f.N == n {
			return f
		}
	}
	return nil
}

// firstAck is how long after at the first library append to tenant was
// acknowledged, if that was before next (zero: no bound).
func firstAck(h *history, tenant string, at, next time.Time) (time.Duration, bool) {
	var first time.Time
	for _, o := range h.Ops {
		if o.Tenant != tenant || o.Raw || o.Writer == "create" || o.Outcome != outcomeAcked || !o.End.After(at) {
			continue
		}
		if first.IsZero() || o.End.Before(first) {
			first = o.End
		}
	}
	if first.IsZero() || (!next.IsZero() && first.After(next)) {
		return 0, false
	}
	return first.Sub(at), true
}

// firstDelivery is how long after at the tail first yielded an event, if
// that was before next.
func firstDelivery(t *tailLog, at, next time.Time) (time.Duration, bool) {
	i, _ := slices.BinarySearchFunc(t.Deliveries, at, func(d delivery, at time.Time) int { return d.At.Compare(at) })
	for ; i < len(t.Deliveries); i++ {
		d := t.Deliveries[i]
		if !d.At.After(at) {
			continue
		}
		if !next.IsZero() && d.At.After(next) {
			return 0, false
		}
		return d.At.Sub(at), true
	}
	return 0, false
}

// workloadStats counts what the workload did.
func workloadStats(h *history, errKinds map[string]int) workloadSummary {
	var w workloadSummary
	for _, o := range h.Ops {
		if o.Raw {
			w.RawProbes++
			continue
		}
		w.Ops++
		w.Events += len(o.Events)
		if o.Outcome == outcomeAcked {
			w.Acked++
			w.FailedAttempts += o.Attempts - 1
		} else {
			w.Unknown++
			w.FailedAttempts += o.Attempts
		}
	}
	for _, p := range h.Probes {
		w.Probes++
		if p.Unread {
			w.ProbesUnread++
		}
	}
	for _, t := range h.Tails {
		w.TailDeliveries += len(t.Deliveries)
	}
	for _, threads := range h.Final {
		for _, recs := range threads {
			w.StoredEvents += len(recs)
		}
	}
	for k, n := range errKinds {
		w.Errors = append(w.Errors, kindCount{n, k})
	}
	slices.SortFunc(w.Errors, func(a, b kindCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Kind, b.Kind))
	})
	return w
}

func writeJSON(w io.Writer, s *summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// writeHuman prints the summary for people.
func writeHuman(out io.Writer, s *summary) {
	fmt.Fprintf(out, "jetsession chaos run, seed %d (replay: %s)\n", s.Seed, s.Replay)
	sync := "default (fsync every 2 min)"
	if s.Config.SyncAlways {
		sync = "always"
	}
	fmt.Fprintf(out, "nats-server %s, 3 nodes, R3 tenants, sync_interval %s, %v\n\n", s.ServerVersion, sync, time.Duration(s.ElapsedSec*float64(time.Second)).Round(time.Second))

	fmt.Fprintf(out, "faults: ")
	var parts []string
	for _, k := range []faultKind{faultLeaderKill, faultPause, faultClusterKill} {
		parts = append(parts, fmt.Sprintf("%s %d of %d", k, s.FaultsDone[k], s.FaultsPlanned[k]))
	}
	fmt.Fprintln(out, strings.Join(parts, ", "))
	w := s.Workload
	fmt.Fprintf(out, "workload: %d writers on %d tenants x %d threads; %d appends (%d events): %d acknowledged, %d of unknown outcome; %d failed attempts\n",
		s.Config.Writers, s.Config.Tenants, s.Config.Threads, w.Ops, w.Events, w.Acked, w.Unknown, w.FailedAttempts)
	fmt.Fprintf(out, "          %d read-your-writes probes (%d never read), %d tail deliveries, %d events stored\n\n", w.Probes, w.ProbesUnread, w.TailDeliveries, w.StoredEvents)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "checker category\tviolations\t")
	for _, c := range categories {
		fmt.Fprintf(tw, "%s\t%d\t\n", c, s.Checker.Counts[c])
	}
	tw.Flush()
	for _, c := range categories {
		for _, e := range s.Checker.Examples[c] {
			fmt.Fprintf(out, "  %s: %s\n", c, e)
		}
	}
	if s.OK {
		fmt.Fprintf(out, "result: OK, no violation\n\n")
	} else {
		fmt.Fprintf(out, "result: FAILED, %d violations\n\n", s.Violations)
	}

	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tn\tp50\tp99\tmax\t")
	for _, f := range s.Latency {
		if f.N == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t\n", f.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t\n", f.Name, f.N, f.P50, f.P99, f.Max)
	}
	tw.Flush()
	for _, f := range s.Latency {
		fmt.Fprintf(out, "  %s: %s\n", f.Name, f.What)
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, "goals (reported, never enforced):")
	for _, g := range s.Goals {
		met := "missed"
		if g.Met {
			met = "met"
		}
		fmt.Fprintf(out, "  %-66s %9.0f ms vs %7.0f ms  %s", g.Goal, g.Figure, g.Limit, met)
		if g.Note != "" {
			fmt.Fprintf(out, " (%s)", g.Note)
		}
		fmt.Fprintln(out)
	}
	if len(w.Errors) > 0 {
		fmt.Fprintln(out, "\nfailed attempts by kind:")
		for i, e := range w.Errors {
			if i == 10 {
				fmt.Fprintf(out, "  ... %d more kinds (see --json)\n", len(w.Errors)-10)
				break
			}
			fmt.Fprintf(out, "  %6d  %s\n", e.Count, e.Kind)
		}
	}
}

// countKinds counts faults by kind.
func countKinds(kinds []faultKind) map[faultKind]int {
	m := map[faultKind]int{faultLeaderKill: 0, faultPause: 0, faultClusterKill: 0}
	for _, k := range kinds {
		m[k]++
	}
	return m
}
