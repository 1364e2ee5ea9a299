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
	// Slowest are the library appends that took longest, with their
	// errors: where the time in unknown outcome went.
	Slowest []slowOp `json:"slowest"`
	// SlowestTail are the tail deliveries that came longest after their
	// append's acknowledgement.
	SlowestTail []slowDelivery `json:"slowest_tail"`
	// Advisories counts the servers' JetStream advisories by type.
	Advisories map[string]int `json:"advisories"`
}

// slowOp is one long append.
type slowOp struct {
	Writer     string    `json:"writer"`
	Tenant     string    `json:"tenant"`
	Thread     string    `json:"thread"`
	Start      time.Time `json:"start"`
	Ms         float64   `json:"ms"`
	Acked      bool      `json:"acked"`
	Attempts   int       `json:"attempts"`
	AfterFault int       `json:"after_fault,omitempty"` // the last fault before it started or ended
	Errors     []string  `json:"errors,omitempty"`
}

// slowDelivery is one late tail delivery.
type slowDelivery struct {
	Tail    string    `json:"tail"`
	Ordinal uint64    `json:"ordinal"`
	AckedAt time.Time `json:"acked_at"`
	Ms      float64   `json:"ms"`
	// AfterFault is the last fault before the acknowledgement; IdleMs how
	// long the tail had yielded nothing before this delivery.
	AfterFault int     `json:"after_fault,omitempty"`
	IdleMs     float64 `json:"idle_ms"`
}

// slowestTail returns the n latest tail deliveries, one per tail and fault.
func slowestTail(h *history, n int) []slowDelivery {
	ackedAt := map[string]time.Time{}
	for _, o := range h.Ops {
		if o.Outcome == outcomeAcked {
			for _, e := range o.Events {
				ackedAt[e.Token] = o.End
			}
		}
	}
	var out []slowDelivery
	for _, t := range h.Tails {
		for i, d := range t.Deliveries {
			a, ok := ackedAt[d.Token]
			if !ok {
				continue
			}
			sd := slowDelivery{Tail: t.Name, Ordinal: d.Ordinal, AckedAt: a, Ms: ms(d.At.Sub(a))}
			if i > 0 {
				sd.IdleMs = ms(d.At.Sub(t.Deliveries[i-1].At))
			}
			for _, f := range h.Faults {
				if f.At.Before(a) {
					sd.AfterFault = f.N
				}
			}
			out = append(out, sd)
		}
	}
	slices.SortFunc(out, func(a, b slowDelivery) int { return cmp.Compare(b.Ms, a.Ms) })
	// The worst delivery of each tail after each fault: one stall is one
	// entry, not n.
	type key struct {
		tail  string
		fault int
	}
	seen := map[key]bool{}
	var worst []slowDelivery
	for _, d := range out {
		if k := (key{d.Tail, d.AfterFault}); !seen[k] && len(worst) < n {
			seen[k] = true
			worst = append(worst, d)
		}
	}
	return worst
}

// slowest returns the n longest library appends.
func slowest(h *history, n int) []slowOp {
	var ops []*op
	for _, o := range h.Ops {
		if !o.Raw {
			ops = append(ops, o)
		}
	}
	slices.SortFunc(ops, func(a, b *op) int { return cmp.Compare(b.End.Sub(b.Start), a.End.Sub(a.Start)) })
	var out []slowOp
	for _, o := range ops[:min(n, len(ops))] {
		s := slowOp{Writer: o.Writer, Tenant: o.Tenant, Thread: o.Thread, Start: o.Start, Ms: ms(o.End.Sub(o.Start)),
			Acked: o.Outcome == outcomeAcked, Attempts: o.Attempts, Errors: o.Errors}
		for _, f := range h.Faults {
			if f.At.Before(o.End) {
				s.AfterFault = f.N
			}
		}
		out = append(out, s)
	}
	return out
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
	var meta, appendRec, tailRec, healthy, appendLag []time.Duration
	var clientBack, clientAppend, clientTail []time.Duration
	var appendLate, tailLate, creationLate, recSamples, creationSamples int
	for i, f := range h.Faults {
		next := time.Time{}
		if i+1 < len(h.Faults) {
			next = h.Faults[i+1].At
		}
		worstElection := time.Duration(0)
		f.Recovery = nil
		for _, t := range f.Led {
			rec := recovery{Tenant: t, ElectionMs: -1, RawMs: -1, AppendMs: -1}
			for _, o := range h.Ops {
				if o.Raw && o.Fault == f.N && o.Tenant == t && o.Outcome == outcomeAcked {
					rec.RawMs = ms(o.End.Sub(f.At))
				}
			}
			e, ok := f.Elections[t]
			a, aok := firstAck(h, t, f.At, next)
			if aok {
				rec.AppendMs = ms(a)
			}
			for _, o := range h.Ops {
				if o.Raw && o.Fault == f.N && o.Tenant == t && o.Outcome == outcomeAcked && aok {
					appendLag = append(appendLag, a-o.End.Sub(f.At))
				}
			}
			for _, tl := range h.Tails {
				if tl.Tenant != t {
					continue
				}
				c := -1.0
				if f.API != nil {
					if v, ok := f.API.TailConsumerMs[tl.Conn]; ok {
						c = v
					}
				}
				rec.ConsumersMs = append(rec.ConsumersMs, c)
				d, dok := firstDelivery(tl, f.At, next)
				if !dok {
					rec.TailsMs = append(rec.TailsMs, -1)
					continue
				}
				rec.TailsMs = append(rec.TailsMs, ms(d))
				if f.Kind == faultClientReconnect {
					clientTail = append(clientTail, d)
				}
				if ok {
					tailRec = append(tailRec, d)
					if d > e+goalSlack {
						tailLate++
					}
				}
			}
			if aok && f.Kind == faultClientReconnect {
				clientAppend = append(clientAppend, a)
			}
			if ok {
				rec.ElectionMs = ms(e)
				elections[f.Kind] = append(elections[f.Kind], e)
				worstElection = max(worstElection, e)
				if aok {
					appendRec = append(appendRec, a)
					recSamples++
					if a > e+goalSlack {
						appendLate++
					}
				}
			}
			f.Recovery = append(f.Recovery, rec)
		}
		if f.MetaLeader && f.MetaElection > 0 {
			meta = append(meta, f.MetaElection)
			worstElection = max(worstElection, f.MetaElection)
		}
		switch {
		case f.Kind == faultClientReconnect && !f.Healthy.IsZero():
			clientBack = append(clientBack, f.Healthy.Sub(f.At))
		case !f.Healthy.IsZero():
			healthy = append(healthy, f.Healthy.Sub(f.At))
		}
		for _, o := range h.Ops {
			if o.Writer != "create" || o.Fault != f.N {
				continue
			}
			f.CreationMs = -1
			if o.Outcome == outcomeAcked {
				f.CreationMs = ms(o.End.Sub(f.At))
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
		{"append_lag_vs_raw", "append_recovery minus raw_publish_recovery of the same fault and tenant: the library's own delay (negative: the library was first)", summarize(appendLag)},
		{"stream_creation", "fault -> a new tenant's stream created by its first Append", summarize(creation)},
		{"election_leader_kill", "SIGKILL of the stream leader -> another node claims the stream (cluster's own)", summarize(elections[faultLeaderKill])},
		{"election_pause", "SIGSTOP of the stream leader -> another node claims the stream", summarize(elections[faultPause])},
		{"election_cluster_kill", "SIGKILL of every node -> a stream leader again (includes --down and the restart)", summarize(elections[faultClusterKill])},
		{"meta_election", "fault of the meta leader -> a new meta leader", summarize(meta)},
		{"healed", "fault -> every node answers /healthz again", summarize(healthy)},
		{"client_reconnected", "client fault (every connection dropped) -> every connection reconnected", summarize(clientBack)},
		{"client_append_recovery", "client fault -> first acknowledged library append, per tenant", summarize(clientAppend)},
		{"client_tail_recovery", "client fault -> first event each tail yielded", summarize(clientTail)},
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
	for _, k := range []faultKind{faultLeaderKill, faultPause, faultClusterKill, faultClientReconnect} {
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

	writeFaults(out, s.Faults)
	if len(s.Slowest) > 0 {
		fmt.Fprintln(out, "slowest appends:")
		for _, o := range s.Slowest[:min(5, len(s.Slowest))] {
			errs := ""
			if len(o.Errors) > 0 {
				errs = ": " + o.Errors[len(o.Errors)-1]
			}
			fmt.Fprintf(out, "  %8.0f ms  %s %s/%s, %d attempt(s), after fault %d%s\n", o.Ms, o.Writer, o.Tenant, o.Thread, o.Attempts, o.AfterFault, errs)
		}
		fmt.Fprintln(out)
	}

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

// writeFaults prints each fault and how soon each side recovered from it,
// in seconds ("-": not before the next fault).
func writeFaults(out io.Writer, faults []*fault) {
	if len(faults) == 0 {
		return
	}
	sec := func(v float64) string {
		if v < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v/1000)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tkind\tnode\tmeta\ttenant\telection\traw publish\tappend\ttails\ttail consumers\tcreation\tcreates\thealed (s)")
	for _, f := range faults {
		meta := "no"
		if f.MetaLeader {
			meta = "yes " + sec(ms(f.MetaElection))
		}
		healed := "never"
		if !f.Healthy.IsZero() {
			healed = sec(ms(f.Healthy.Sub(f.At)))
		}
		creation := ""
		if f.Created != "" {
			creation = sec(f.CreationMs)
		}
		creates := "-"
		if f.API != nil {
			n := 0
			for _, c := range f.API.StreamCreates {
				n += c
			}
			creates = fmt.Sprint(n)
		}
		node := f.Node
		if f.Kind == faultClientReconnect {
			node = fmt.Sprintf("%d conns, %d moved", f.Dropped, f.OtherNode)
		}
		if len(f.Recovery) == 0 {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t-\t\t\t\t\t\t%s\t%s\t%s\n", f.N, f.Kind, node, meta, creation, creates, healed)
		}
		for i, r := range f.Recovery {
			var tails, consumers []string
			for _, t := range r.TailsMs {
				tails = append(tails, sec(t))
			}
			for _, c := range r.ConsumersMs {
				consumers = append(consumers, sec(c))
			}
			if i == 0 {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t", f.N, f.Kind, node, meta)
			} else {
				fmt.Fprint(tw, "\t\t\t\t")
				creation, creates, healed = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Tenant, sec(r.ElectionMs), sec(r.RawMs), sec(r.AppendMs),
				strings.Join(tails, "/"), strings.Join(consumers, "/"), creation, creates, healed)
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
}

// countKinds counts faults by kind.
func countKinds(kinds []faultKind) map[faultKind]int {
	m := map[faultKind]int{faultLeaderKill: 0, faultPause: 0, faultClusterKill: 0, faultClientReconnect: 0}
	for _, k := range kinds {
		m[k]++
	}
	return m
}
