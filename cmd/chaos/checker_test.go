package main

import (
	"fmt"
	"testing"
	"time"
)

// The checker is tested on hand-built histories: a clean one passes, and
// each test breaks it in exactly one way and requires the category that
// names the broken promise (and only it) to count it.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// histBuilder builds a consistent history: every op acknowledged and
// stored, tails that saw everything, probes that found their events.
type histBuilder struct {
	h    *history
	next uint64 // next ordinal of tenant "acme"
	ms   int
}

func newHist() *histBuilder {
	return &histBuilder{h: &history{Final: map[string]map[string][]stored{"acme": {}}}, next: 1}
}

// appendOp adds an acknowledged append of n events to thread, stored at
// the next ordinals, and returns it.
func (b *histBuilder) appendOp(thread string, n int) *op {
	o := &op{Writer: "w1", Tenant: "acme", Thread: thread, Start: at(b.ms), End: at(b.ms + 5), Outcome: outcomeAcked, Attempts: 1}
	b.ms += 10
	for i := range n {
		tok := fmt.Sprintf("w1/%d/%d", len(b.h.Ops), i)
		id := "id-" + tok
		o.Events = append(o.Events, eventRef{ID: id, Token: tok})
		b.h.Final["acme"][thread] = append(b.h.Final["acme"][thread], stored{Ordinal: b.next, ID: id, Token: tok})
		o.AckOrdinal = b.next
		b.next++
	}
	b.h.Ops = append(b.h.Ops, o)
	return o
}

// tail adds a tail of thread ("" for the tenant) that yielded everything
// stored so far.
func (b *histBuilder) tail(thread string) *tailLog {
	t := &tailLog{Name: "tail-" + thread, Tenant: "acme", Thread: thread}
	for ord := uint64(1); ord < b.next; ord++ {
		for th, recs := range b.h.Final["acme"] {
			if thread != "" && th != thread {
				continue
			}
			for _, s := range recs {
				if s.Ordinal == ord {
					t.Deliveries = append(t.Deliveries, delivery{Ordinal: ord, Thread: th, ID: s.ID, Token: s.Token, At: at(b.ms)})
				}
			}
		}
	}
	b.h.Tails = append(b.h.Tails, t)
	return t
}

// clean is a history touching every check: singles and batches on two
// threads, a tenant tail, a thread tail and a probe.
func clean() *histBuilder {
	b := newHist()
	b.appendOp("a", 1)
	b.appendOp("b", 3)
	b.appendOp("a", 2)
	b.appendOp("b", 1)
	b.appendOp("a", 1)
	last := b.h.Ops[len(b.h.Ops)-1]
	b.h.Probes = append(b.h.Probes, probe{Tenant: "acme", Thread: "a", Ordinal: last.AckOrdinal, ID: last.Events[0].ID, AckAt: last.End, Found: true})
	b.tail("")
	b.tail("a")
	return b
}

// expect runs the checker and requires want[c] violations of each
// category c, zero elsewhere.
func expect(t *testing.T, h *history, want map[category]int) {
	t.Helper()
	r := check(h)
	for _, c := range categories {
		if got := r.Counts[c]; got != want[c] {
			t.Errorf("%s: got %d violations, want %d (examples: %q)", c, got, want[c], r.Examples[c])
		}
	}
	if _, ok := r.Counts[category("nonsense")]; ok {
		t.Errorf("unknown category counted")
	}
}

func TestCheckerCleanHistoryHasNoViolations(t *testing.T) {
	expect(t, clean().h, nil)
}

func TestCheckerUnknownOutcomeMayBeAbsentOrPresent(t *testing.T) {
	b := newHist()
	b.appendOp("a", 1)
	present := b.appendOp("a", 2)
	present.Outcome, present.AckOrdinal, present.Attempts = outcomeUnknown, 0, 3
	absent := b.appendOp("b", 2)
	absent.Outcome, absent.AckOrdinal = outcomeUnknown, 0
	b.h.Final["acme"]["b"] = nil
	b.tail("")
	b.tail("a")
	expect(t, b.h, nil)
}

func TestCheckerAcknowledgedEventMissingIsLost(t *testing.T) {
	b := clean()
	recs := b.h.Final["acme"]["b"]
	b.h.Final["acme"]["b"] = recs[:len(recs)-1] // the single event appended to b, ordinal 7
	// The tenant tail never saw it either: only "lost" counts.
	b.h.Tails[0].Deliveries = dropOrdinal(b.h.Tails[0].Deliveries, 7)
	expect(t, b.h, map[category]int{catLost: 1})
}

func dropOrdinal(ds []delivery, ord uint64) []delivery {
	var out []delivery
	for _, d := range ds {
		if d.Ordinal != ord {
			out = append(out, d)
		}
	}
	return out
}

func TestCheckerEventStoredTwiceIsDuplicated(t *testing.T) {
	b := newHist()
	b.appendOp("a", 1)
	o := b.appendOp("a", 1)
	// The retry of o was stored again at ordinal 3.
	b.h.Final["acme"]["a"] = append(b.h.Final["acme"]["a"], stored{Ordinal: 3, ID: o.Events[0].ID, Token: o.Events[0].Token})
	b.next++
	b.tail("a")
	// The tail saw ordinal 3 like the store: no tail violation.
	expect(t, b.h, map[category]int{catDuplicated: 1})
}

func TestCheckerRecordNobodyAppendedIsUnexpected(t *testing.T) {
	b := clean()
	b.h.Final["acme"]["a"] = append(b.h.Final["acme"]["a"], stored{Ordinal: 99, ID: "x", Token: "never"})
	// The single event of b stored with another ID than its append's (of
	// unknown outcome, so its absence is no loss).
	b.h.Ops[3].Outcome = outcomeUnknown
	b.h.Final["acme"]["b"][3].ID = "other-id"
	b.h.Final["acme"]["zz"] = []stored{{Ordinal: 98, ID: b.h.Ops[0].Events[0].ID, Token: b.h.Ops[0].Events[0].Token}}
	// Tails would have seen them: keep tails out of this test.
	b.h.Tails = nil
	expect(t, b.h, map[category]int{catUnexpected: 3})
}

func TestCheckerReadNotInOrdinalOrderIsOutOfOrder(t *testing.T) {
	b := clean()
	recs := b.h.Final["acme"]["b"]
	recs[0], recs[len(recs)-1] = recs[len(recs)-1], recs[0] // a read returned the last first
	// [7 3 4 2]: two steps back; the batch's first event moved away, so it
	// is no longer adjacent either.
	expect(t, b.h, map[category]int{catOutOfOrder: 2, catNoncontiguous: 1})
}

func TestCheckerBatchNotInSliceOrderIsOutOfOrder(t *testing.T) {
	b := newHist()
	o := b.appendOp("a", 2)
	// Stored reversed: ordinal 1 holds event 1, ordinal 2 event 0.
	recs := b.h.Final["acme"]["a"]
	recs[0].ID, recs[1].ID = recs[1].ID, recs[0].ID
	recs[0].Token, recs[1].Token = recs[1].Token, recs[0].Token
	o.AckOrdinal = 2
	expect(t, b.h, map[category]int{catOutOfOrder: 1, catWrongAck: 1, catNoncontiguous: 1})
}

func TestCheckerAppendAfterAnAcknowledgedOneMustFollowIt(t *testing.T) {
	b := newHist()
	first := b.appendOp("a", 1)
	second := b.appendOp("a", 1)
	// second started after first was acknowledged, but got the lower
	// ordinal: swap what the two appends stored and acknowledged.
	recs := b.h.Final["acme"]["a"]
	recs[0].ID, recs[1].ID = recs[1].ID, recs[0].ID
	recs[0].Token, recs[1].Token = recs[1].Token, recs[0].Token
	first.AckOrdinal, second.AckOrdinal = 2, 1
	expect(t, b.h, map[category]int{catOutOfOrder: 1})
	// Concurrent appends (the second started before the first's
	// acknowledgement) may take either order.
	second.Start = first.End.Add(-time.Millisecond)
	expect(t, b.h, nil)
}

func TestCheckerAcknowledgedOrdinalMustBeTheLastEvents(t *testing.T) {
	b := clean()
	b.h.Ops[1].AckOrdinal++ // the batch of 3 on b
	expect(t, b.h, map[category]int{catWrongAck: 1})
}

func TestCheckerSomeEventsOfAnAppendArePartial(t *testing.T) {
	b := newHist()
	o := b.appendOp("a", 3)
	o.Outcome, o.AckOrdinal = outcomeUnknown, 0
	b.h.Final["acme"]["a"] = b.h.Final["acme"]["a"][:2]
	expect(t, b.h, map[category]int{catPartialBatch: 1})
	// Acknowledged, the missing event is lost too.
	o.Outcome, o.AckOrdinal = outcomeAcked, 3
	expect(t, b.h, map[category]int{catPartialBatch: 1, catLost: 1})
}

func TestCheckerInterleavedBatchIsNoncontiguous(t *testing.T) {
	b := newHist()
	o := b.appendOp("a", 2)
	other := b.appendOp("a", 1)
	// other's event landed between o's two events.
	recs := b.h.Final["acme"]["a"]
	recs[1], recs[2] = recs[2], recs[1]
	recs[1].Ordinal, recs[2].Ordinal = 2, 3
	o.AckOrdinal, other.AckOrdinal = 3, 2
	other.Start = o.Start // concurrent, so the order itself is allowed
	expect(t, b.h, map[category]int{catNoncontiguous: 1})
}

func TestCheckerStaleReadAfterAckViolatesReadYourWrites(t *testing.T) {
	b := clean()
	b.h.Probes = append(b.h.Probes,
		probe{Tenant: "acme", Thread: "a", Ordinal: 4, ID: "id", Found: false, Got: "nothing"},
		probe{Tenant: "acme", Thread: "a", Ordinal: 5, ID: "id", Unread: true}, // never read: not a violation
	)
	expect(t, b.h, map[category]int{catReadYourWrites: 1})
}

func TestCheckerTailSkippingAnEventHasAGap(t *testing.T) {
	b := clean()
	tl := b.h.Tails[0]
	tl.Deliveries = append(tl.Deliveries[:2:2], tl.Deliveries[3:]...)
	expect(t, b.h, map[category]int{catTailGap: 1})
}

func TestCheckerTailYieldingTwiceIsDuplicate(t *testing.T) {
	b := clean()
	tl := b.h.Tails[1]
	tl.Deliveries = append(tl.Deliveries, tl.Deliveries[len(tl.Deliveries)-1])
	expect(t, b.h, map[category]int{catTailDuplicate: 1})
}

func TestCheckerTailGoingBackIsOutOfOrder(t *testing.T) {
	b := clean()
	ds := b.h.Tails[0].Deliveries
	ds[2], ds[3] = ds[3], ds[2]
	expect(t, b.h, map[category]int{catTailOutOfOrder: 1})
	// Yielding the cursor itself goes back too.
	b = clean()
	b.h.Tails[1].Cursor = 1
	expect(t, b.h, map[category]int{catTailOutOfOrder: 1})
}

func TestCheckerTailYieldingSomethingElseIsUnexpected(t *testing.T) {
	b := clean()
	b.h.Tails[0].Deliveries[1].ID = "forged"
	b.h.Tails[0].Deliveries[2].Thread = "elsewhere"
	b.h.Tails[1].Deliveries = append(b.h.Tails[1].Deliveries, delivery{Ordinal: 50, Thread: "a", ID: "phantom", Token: "phantom"})
	expect(t, b.h, map[category]int{catTailUnexpected: 3})
}

func TestCheckerTailStoppingShortIsIncomplete(t *testing.T) {
	b := clean()
	tl := b.h.Tails[0]
	tl.Deliveries = tl.Deliveries[:len(tl.Deliveries)-2]
	expect(t, b.h, map[category]int{catTailIncomplete: 2})
	// Events at or below the cursor are not the tail's to yield.
	tl.Deliveries = nil
	tl.Cursor = b.next - 1
	expect(t, b.h, nil)
}

func TestCheckerTailErrorsAreViolations(t *testing.T) {
	b := clean()
	b.h.Tails[1].Errors = []string{"jetstream: tail: status 400"}
	expect(t, b.h, map[category]int{catTailError: 1})
}

func TestCheckerUnreadableThreadIsReported(t *testing.T) {
	b := clean()
	b.h.Unreadable = []string{"acme/c"}
	expect(t, b.h, map[category]int{catUnreadable: 1})
}

func TestCheckerKeepsFewExamples(t *testing.T) {
	b := clean()
	for i := range 3 * maxExamples {
		b.h.Final["acme"]["a"] = append(b.h.Final["acme"]["a"], stored{Ordinal: uint64(100 + i), ID: "x", Token: fmt.Sprint("t", i)})
	}
	b.h.Tails = nil
	r := check(b.h)
	if r.Counts[catUnexpected] != 3*maxExamples || len(r.Examples[catUnexpected]) != maxExamples {
		t.Fatalf("got %d violations and %d examples, want %d and %d", r.Counts[catUnexpected], len(r.Examples[catUnexpected]), 3*maxExamples, maxExamples)
	}
}
