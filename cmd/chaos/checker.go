package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// category is one kind of checker violation. Any count above zero fails the
// run; latency figures never do.
type category string

// The checker's categories, after Jepsen's, plus the tail's own.
const (
	// catLost: an acknowledged event is missing from the final read.
	catLost category = "lost"
	// catDuplicated: one event (one ID of one append) is stored twice.
	catDuplicated category = "duplicated"
	// catUnexpected: a stored record no writer attempted: an unknown
	// payload token, an ID other than the one the append used, or another
	// thread's event.
	catUnexpected category = "unexpected"
	// catOutOfOrder: a read's ordinals do not increase, a batch is not in
	// slice order, or an append that started after another one's
	// acknowledgement on the same thread got lower ordinals.
	catOutOfOrder category = "out_of_order"
	// catWrongAck: the ordinal Append returned is not the stored ordinal of
	// the append's last event.
	catWrongAck category = "wrong_ack"
	// catPartialBatch: some but not all events of one append are stored.
	catPartialBatch category = "partial_batch"
	// catNoncontiguous: the events of one batch are not adjacent in their
	// thread (another append interleaved).
	catNoncontiguous category = "noncontiguous_batch"
	// catReadYourWrites: a read right after an acknowledgement, through
	// another node, did not return the acknowledged event.
	catReadYourWrites category = "read_your_writes"
	// catTailGap: a tail passed over a stored event below its position.
	catTailGap category = "tail_gap"
	// catTailDuplicate: a tail yielded the same ordinal twice.
	catTailDuplicate category = "tail_duplicate"
	// catTailOutOfOrder: a tail yielded an ordinal below one it had
	// already yielded.
	catTailOutOfOrder category = "tail_out_of_order"
	// catTailUnexpected: a tail yielded a record that is not the stored
	// record at that ordinal (or one never stored).
	catTailUnexpected category = "tail_unexpected"
	// catTailIncomplete: when the run ended, a tail had not yielded stored
	// events of its scope (counted per event), after a generous wait.
	catTailIncomplete category = "tail_incomplete"
	// catTailError: a tail yielded an error; the contract hides transient
	// failures (reconnects, restarts, leader changes).
	catTailError category = "tail_error"
	// catUnreadable: a thread could not be read at the end of the run.
	catUnreadable category = "unreadable"
)

// categories lists every category in report order.
var categories = []category{
	catLost, catDuplicated, catUnexpected, catOutOfOrder, catWrongAck, catPartialBatch, catNoncontiguous,
	catReadYourWrites, catTailGap, catTailDuplicate, catTailOutOfOrder, catTailUnexpected, catTailIncomplete,
	catTailError, catUnreadable,
}

// maxExamples bounds the examples kept per category.
const maxExamples = 5

// checkResult counts the violations of each category, with a few examples.
type checkResult struct {
	Counts   map[category]int      `json:"counts"`
	Examples map[category][]string `json:"examples,omitempty"`
}

func (r *checkResult) add(c category, n int, format string, args ...any) {
	if n <= 0 {
		return
	}
	r.Counts[c] += n
	if len(r.Examples[c]) < maxExamples {
		r.Examples[c] = append(r.Examples[c], fmt.Sprintf(format, args...))
	}
}

// violations is the total count over every category.
func (r *checkResult) violations() int {
	n := 0
	for _, v := range r.Counts {
		n += v
	}
	return n
}

// check analyses a history.
func check(h *history) *checkResult {
	r := &checkResult{Counts: map[category]int{}, Examples: map[category][]string{}}
	for _, c := range categories {
		r.Counts[c] = 0
	}
	for _, k := range h.Unreadable {
		r.add(catUnreadable, 1, "%s could not be read", k)
	}
	checkStore(h, r)
	checkProbes(h, r)
	for _, t := range h.Tails {
		checkTail(h, t, r)
	}
	return r
}

// placed is where one event of an op was found in its thread.
type placed struct {
	ordinal uint64
	pos     int // index in the thread's final read
}

// opRef is one event of one op.
type opRef struct {
	op  *op
	idx int
}

// checkStore compares the final read with what the writers did.
func checkStore(h *history, r *checkResult) {
	byToken := map[string]opRef{}
	for _, o := range h.Ops {
		for i, e := range o.Events {
			byToken[e.Token] = opRef{o, i}
		}
	}
	found := map[*op][][]placed{} // per op, per event index, every place it was found
	for _, tenant := range slices.Sorted(maps.Keys(h.Final)) {
		for _, thread := range slices.Sorted(maps.Keys(h.Final[tenant])) {
			recs := h.Final[tenant][thread]
			for i, rec := range recs {
				if i > 0 && rec.Ordinal <= recs[i-1].Ordinal {
					r.add(catOutOfOrder, 1, "%s/%s: the read returned ordinal %d after %d", tenant, thread, rec.Ordinal, recs[i-1].Ordinal)
				}
				ref, ok := byToken[rec.Token]
				switch {
				case !ok:
					r.add(catUnexpected, 1, "%s/%s: ordinal %d (id %q, token %q) was never appended", tenant, thread, rec.Ordinal, rec.ID, rec.Token)
					continue
				case ref.op.Tenant != tenant || ref.op.Thread != thread:
					r.add(catUnexpected, 1, "%s/%s: ordinal %d holds token %q, appended to %s/%s", tenant, thread, rec.Ordinal, rec.Token, ref.op.Tenant, ref.op.Thread)
					continue
				case ref.op.Events[ref.idx].ID != rec.ID:
					r.add(catUnexpected, 1, "%s/%s: ordinal %d holds token %q with id %q, appended with id %q", tenant, thread, rec.Ordinal, rec.Token, rec.ID, ref.op.Events[ref.idx].ID)
					continue
				}
				if found[ref.op] == nil {
					found[ref.op] = make([][]placed, len(ref.op.Events))
				}
				if prev := found[ref.op][ref.idx]; len(prev) > 0 {
					r.add(catDuplicated, 1, "%s/%s: event %q (token %q) stored at ordinals %d and %d", tenant, thread, rec.ID, rec.Token, prev[0].ordinal, rec.Ordinal)
				}
				found[ref.op][ref.idx] = append(found[ref.op][ref.idx], placed{rec.Ordinal, i})
			}
		}
	}

	// Each op: all or nothing, in order, contiguous, acknowledged right.
	type span struct {
		o        *op
		min, max uint64
	}
	spans := map[string][]span{} // by tenant/thread
	for _, o := range h.Ops {
		places := found[o]
		present := 0
		for _, p := range places {
			if len(p) > 0 {
				present++
			}
		}
		where := o.Tenant + "/" + o.Thread
		switch {
		case present == 0 && o.Outcome == outcomeAcked:
			r.add(catLost, len(o.Events), "%s: acknowledged append of %d event(s) (first token %q, ordinal %d) is missing", where, len(o.Events), o.Events[0].Token, o.AckOrdinal)
			continue
		case present == 0:
			continue // an unknown outcome that did not happen
		case present < len(o.Events):
			r.add(catPartialBatch, 1, "%s: %d of %d events of the append with first token %q are stored", where, present, len(o.Events), o.Events[0].Token)
			if o.Outcome == outcomeAcked {
				r.add(catLost, len(o.Events)-present, "%s: %d acknowledged event(s) of the append with first token %q are missing", where, len(o.Events)-present, o.Events[0].Token)
			}
		}
		sp := span{o: o}
		var prev *placed
		inOrder, contiguous := true, true
		for _, p := range places {
			if len(p) == 0 {
				continue
			}
			first := p[0]
			if sp.min == 0 || first.ordinal < sp.min {
				sp.min = first.ordinal
			}
			sp.max = max(sp.max, first.ordinal)
			if prev != nil {
				if first.ordinal <= prev.ordinal {
					inOrder = false
				}
				if first.pos != prev.pos+1 {
					contiguous = false
				}
			}
			prev = &first
		}
		if !inOrder {
			r.add(catOutOfOrder, 1, "%s: the events of the append with first token %q are not in slice order", where, o.Events[0].Token)
		}
		if !contiguous && present == len(o.Events) {
			r.add(catNoncontiguous, 1, "%s: the %d events of the append with first token %q are not adjacent in the thread", where, len(o.Events), o.Events[0].Token)
		}
		if o.Outcome == outcomeAcked && present == len(o.Events) {
			if last := places[len(places)-1][0].ordinal; o.AckOrdinal != last {
				r.add(catWrongAck, 1, "%s: Append returned %d, its last event is stored at %d", where, o.AckOrdinal, last)
			}
		}
		spans[where] = append(spans[where], sp)
	}

	// Real-time order: an append that started after another one's
	// acknowledgement on the same thread must come after it.
	for _, where := range slices.Sorted(maps.Keys(spans)) {
		ss := spans[where]
		var acked []span
		for _, s := range ss {
			if s.o.Outcome == outcomeAcked {
				acked = append(acked, s)
			}
		}
		slices.SortFunc(acked, func(a, b span) int { return a.o.End.Compare(b.o.End) })
		slices.SortFunc(ss, func(a, b span) int { return a.o.Start.Compare(b.o.Start) })
		i := 0
		var before span // the acked span with the highest ordinal acked so far
		for _, s := range ss {
			for ; i < len(acked) && acked[i].o.End.Before(s.o.Start); i++ {
				if acked[i].max > before.max {
					before = acked[i]
				}
			}
			if before.o != nil && s.min <= before.max {
				r.add(catOutOfOrder, 1, "%s: the append with first token %q started after the one with first token %q was acknowledged at ordinal %d, yet got ordinal %d",
					where, s.o.Events[0].Token, before.o.Events[0].Token, before.max, s.min)
			}
		}
	}
}

// checkProbes counts read-your-writes violations.
func checkProbes(h *history, r *checkResult) {
	for _, p := range h.Probes {
		if !p.Unread && !p.Found {
			r.add(catReadYourWrites, 1, "%s/%s: ordinal %d (id %q) was acknowledged, the next read returned %s", p.Tenant, p.Thread, p.Ordinal, p.ID, p.Got)
		}
	}
}

// checkTail compares what one tail yielded with the final read of its
// scope (its thread, or every thread of its tenant).
func checkTail(h *history, t *tailLog, r *checkResult) {
	type rec struct {
		stored
		thread string
	}
	var scope []rec
	for thread, recs := range h.Final[t.Tenant] {
		if t.Thread != "" && thread != t.Thread {
			continue
		}
		for _, s := range recs {
			scope = append(scope, rec{s, thread})
		}
	}
	slices.SortFunc(scope, func(a, b rec) int { return cmp.Compare(a.Ordinal, b.Ordinal) })
	byOrdinal := make(map[uint64]rec, len(scope))
	for _, s := range scope {
		byOrdinal[s.Ordinal] = s
	}
	for _, e := range t.Errors {
		r.add(catTailError, 1, "%s: %s", t.Name, e)
	}
	seen := make(map[uint64]bool, len(t.Deliveries))
	var top uint64 // the highest ordinal yielded
	for _, d := range t.Deliveries {
		switch {
		case seen[d.Ordinal]:
			r.add(catTailDuplicate, 1, "%s: ordinal %d yielded again", t.Name, d.Ordinal)
			continue
		case d.Ordinal < top:
			r.add(catTailOutOfOrder, 1, "%s: ordinal %d yielded after %d", t.Name, d.Ordinal, top)
		case d.Ordinal <= t.Cursor:
			r.add(catTailOutOfOrder, 1, "%s: ordinal %d yielded, at or below its cursor %d", t.Name, d.Ordinal, t.Cursor)
		}
		seen[d.Ordinal] = true
		top = max(top, d.Ordinal)
		s, ok := byOrdinal[d.Ordinal]
		if !ok || s.ID != d.ID || s.Token != d.Token || s.thread != d.Thread {
			r.add(catTailUnexpected, 1, "%s: ordinal %d yielded as %s/%q (token %q), stored as %s",
				t.Name, d.Ordinal, d.Thread, d.ID, d.Token, describeStored(s.stored, s.thread, ok))
		}
	}
	gaps, behind := 0, 0
	var firstGap, firstBehind uint64
	for _, s := range scope {
		switch {
		case s.Ordinal <= t.Cursor || seen[s.Ordinal]:
		case s.Ordinal < top:
			if gaps == 0 {
				firstGap = s.Ordinal
			}
			gaps++
		default:
			if behind == 0 {
				firstBehind = s.Ordinal
			}
			behind++
		}
	}
	r.add(catTailGap, gaps, "%s: %d stored event(s) below its position %d were never yielded, the first at ordinal %d", t.Name, gaps, top, firstGap)
	r.add(catTailIncomplete, behind, "%s: stopped at ordinal %d with %d stored event(s) not yielded, the first at ordinal %d", t.Name, top, behind, firstBehind)
}

func describeStored(s stored, thread string, ok bool) string {
	if !ok {
		return "nothing"
	}
	return fmt.Sprintf("%s/%q (token %q)", thread, s.ID, s.Token)
}
