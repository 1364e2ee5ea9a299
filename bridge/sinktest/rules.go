package sinktest

import (
	"maps"
	"slices"

	"github.com/jetsession/jetsession/bridge"
)

func newStorageIsEmpty(e *env) {
	s := e.open()
	if pos := e.positions(s); len(pos) > 0 {
		e.t.Errorf("a sink on new storage has positions %v", pos)
	}
	if rows := e.stored(); len(rows) > 0 {
		e.t.Errorf("new storage holds %d rows", len(rows))
	}
	e.close(s)
}

func flushMakesDurable(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 5), g.rows("globex", 3))
	e.write(s, b1, positionsOf(b1))
	b2 := g.rows("acme", 4)
	e.write(s, b2, positionsOf(b2))
	e.flush(s)
	e.requireOnce(e.stored())
	e.requirePositions(e.positions(s), "after Flush")
	e.close(s)
}

func closeFlushes(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 5), g.rows("globex", 3))
	e.write(s, b1, positionsOf(b1))
	b2 := g.rows("acme", 4)
	e.write(s, b2, positionsOf(b2))
	e.close(s)
	e.requireOnce(e.stored())
	s = e.open()
	e.requirePositions(e.positions(s), "after Close and a restart")
	e.close(s)
}

func positionsSurviveRestarts(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 3), g.rows("globex", 3), g.rows("initech", 2))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	b2 := g.rows("acme", 3)
	e.write(s, b2, positionsOf(b2))
	e.flush(s)
	committed := e.positions(s)
	e.requirePositions(committed, "after Flush")
	e.close(s)

	s = e.open()
	if pos := e.positions(s); !maps.Equal(pos, committed) {
		e.t.Fatalf("positions after a restart are %v, want the committed %v", pos, committed)
	}
	// Only one tenant moves on: the others keep their positions.
	b3 := g.rows("globex", 2)
	e.write(s, b3, positionsOf(b3))
	e.close(s)

	s = e.open()
	e.requirePositions(e.positions(s), "after a second restart")
	e.requireOnce(e.stored())
	e.close(s)
}

func positionsNeverMoveBack(e *env) {
	g := newGen()
	s := e.open()
	acme := g.rows("acme", 6)
	b1 := interleave(acme, g.rows("globex", 2))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	want := e.positions(s)

	// Lower positions, with and without rows: both are ignored.
	e.write(s, acme[:2], bridge.Positions{"acme": acme[1].Ordinal})
	e.write(s, nil, bridge.Positions{"acme": 1, "globex": 1})
	e.flush(s)
	if pos := e.positions(s); !maps.Equal(pos, want) {
		e.t.Errorf("positions after lower ones were written are %v, want %v", pos, want)
	}
	e.close(s)
	s = e.open()
	if pos := e.positions(s); !maps.Equal(pos, want) {
		e.t.Errorf("positions after lower ones were written and a restart are %v, want %v", pos, want)
	}
	e.close(s)
}

func positionWithoutRows(e *env) {
	g := newGen()
	s := e.open()
	b1 := g.rows("acme", 3)
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	// The bridge passed over acme's events up to 100, and all of
	// globex's up to 7: the sink sees no rows for them.
	g.skip("acme", 100)
	g.skip("globex", 7)
	e.write(s, nil, bridge.Positions{"acme": 100, "globex": 7})
	e.flush(s)
	e.requirePositions(e.positions(s), "after a write of positions only")
	e.close(s)

	s = e.open()
	e.requirePositions(e.positions(s), "after a write of positions only and a restart")
	b2 := interleave(g.rows("acme", 3), g.rows("globex", 2))
	e.write(s, b2, positionsOf(b2))
	e.flush(s)
	e.requireOnce(e.stored())
	e.requirePositions(e.positions(s), "after rows that follow positions only")
	e.close(s)
}

func crashKeepsPositionsBehindRows(e *env) {
	g := newGen()
	var all []bridge.Row
	s := e.open()
	b1 := interleave(g.rows("acme", 4), g.rows("globex", 4))
	all = append(all, b1...)
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	flushed := maps.Clone(e.handed)

	b2 := interleave(g.rows("acme", 4), g.rows("initech", 3))
	all = append(all, b2...)
	e.write(s, b2, positionsOf(b2))
	e.crash(s)

	s = e.open()
	pos := e.positions(s)
	e.requireAtLeast(pos, flushed, "flushed before the crash")
	e.requireCovered(e.stored(), pos)

	// A second crash, right after the restart wrote more.
	b3 := interleave(g.rows("globex", 3), g.rows("initech", 2))
	all = append(all, b3...)
	e.write(s, b3, positionsOf(b3))
	e.crash(s)

	s = e.open()
	pos = e.positions(s)
	e.requireAtLeast(pos, flushed, "flushed before the crashes")
	e.requireCovered(e.stored(), pos)

	// The bridge resumes after the positions: that completes the data.
	rest := after(all, pos)
	e.write(s, rest, positionsOf(rest))
	e.flush(s)
	stored := e.stored()
	e.requireAll(stored)
	e.requireDuplicatesAfter(stored, pos, false)
	e.requirePositions(e.positions(s), "after resuming from the positions of a crash")
	e.close(s)
}

func failedCommit(e *env) {
	if e.h.BreakCommits == nil {
		e.t.Skip("the harness cannot break commits (Harness.BreakCommits is nil)")
	}
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 4), g.rows("globex", 2))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	before := e.positions(s)

	repair := e.h.BreakCommits(e.t)
	b2 := interleave(g.rows("acme", 3), g.rows("initech", 3))
	werr := e.tryWrite(s, b2, positionsOf(b2))
	ferr := s.Flush(e.ctx)
	repair()
	if werr == nil && ferr == nil {
		e.t.Errorf("Write and Flush both succeeded while commits were refused: the failed commit went unreported")
	}
	e.t.Logf("while commits were refused: Write: %v; Flush: %v", werr, ferr)
	pos := e.positions(s)
	e.requireAtLeast(pos, before, "committed before the failure")
	e.requireCovered(e.stored(), pos)

	// The bridge retries the batch until the sink takes it.
	e.write(s, b2, positionsOf(b2))
	e.flush(s)
	stored := e.stored()
	e.requireAll(stored)
	e.requireDuplicatesAfter(stored, before, false)
	e.requirePositions(e.positions(s), "after the retried batch")
	e.close(s)
	s = e.open()
	e.requirePositions(e.positions(s), "after the retried batch and a restart")
	e.close(s)
}

func redeliveryAfterCommit(e *env) {
	g := newGen()
	s := e.open()
	acme := g.rows("acme", 6)
	b1 := interleave(acme, g.rows("globex", 3))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)

	// The same batch again, as a retry after a lost reply would send it.
	committed := e.positions(s)
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	e.requireDuplicatesAfter(e.stored(), committed, true)

	// A batch overlapping the committed rows, as a Multi sends a sink
	// ahead of the others.
	more := g.rows("acme", 3)
	b2 := append(slices.Clone(acme[3:]), more...)
	e.write(s, b2, positionsOf(b2))
	e.flush(s)
	stored := e.stored()
	e.requireOnce(stored)
	e.requirePositions(e.positions(s), "after batches delivered again")

	// The same batch twice before a Flush: duplicates are allowed only
	// after the committed positions.
	committed = e.positions(s)
	b3 := g.rows("globex", 3)
	e.write(s, b3, positionsOf(b3))
	e.write(s, b3, positionsOf(b3))
	e.flush(s)
	stored = e.stored()
	e.requireAll(stored)
	e.requireDuplicatesAfter(stored, committed, false)
	e.close(s)
}

func redeliveryAfterCrash(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 4), g.rows("globex", 3))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	b2 := interleave(g.rows("acme", 3), g.rows("initech", 3))
	e.write(s, b2, positionsOf(b2))
	e.crash(s)

	// Everything again, from the first row: more than the bridge resends
	// after the positions, as much as a Multi may.
	s = e.open()
	committed := e.positions(s)
	all := append(slices.Clone(b1), b2...)
	e.write(s, all, positionsOf(all))
	e.flush(s)
	stored := e.stored()
	e.requireAll(stored)
	e.requireDuplicatesAfter(stored, committed, false)
	e.requirePositions(e.positions(s), "after rows delivered again")
	e.close(s)
}

func callerReusesRows(e *env) {
	g := newGen()
	s := e.open()
	rows := interleave(g.rows("acme", 4), g.rows("globex", 4))
	e.write(s, rows, positionsOf(rows)) // records copies
	// The bridge may reuse a batch's memory for the next one.
	for i := range rows {
		for j := range rows[i].Data {
			rows[i].Data[j] = 'X'
		}
		for k := range rows[i].Meta {
			rows[i].Meta[k] = "changed after Write"
		}
		rows[i].Meta = nil
	}
	e.flush(s)
	e.requireOnce(e.stored())
	e.close(s)
}

func jsonPayloads(e *env) {
	payloads := jsonPayloadList()
	for _, p := range payloads {
		if !bridge.IsJSON(p) {
			panic("sinktest: a JSON payload is not JSON: " + show(p))
		}
	}
	e.roundTrip(payloadRows("json", payloads))
}

func otherPayloads(e *env) {
	payloads := otherPayloadList()
	for _, p := range payloads {
		if bridge.IsJSON(p) {
			panic("sinktest: a payload that is not JSON is: " + show(p))
		}
	}
	e.roundTrip(payloadRows("bytes", payloads))
}

func keysAtTheLimits(e *env) { e.roundTrip(edgeKeyRows()) }

func tenantsDifferingInCase(e *env) {
	rows := caseRows()
	e.roundTrip(rows)
	if len(e.handed) != 3 {
		panic("sinktest: three tenants expected")
	}
}

func metadataAtTheLimits(e *env) { e.roundTrip(metaRows()) }

func timesRoundTrip(e *env) { e.roundTrip(timeRows()) }

func ordinalsRoundTrip(e *env) { e.roundTrip(ordinalRows()) }
