package sinktest

import (
	"maps"
	"slices"

	"github.com/jetsession/jetsession/bridge"
)

// must panics when a fixture does not hold what a rule relies on: the rule
// would then prove nothing.
func must(ok bool, what string) {
	if !ok {
		panic("sinktest: " + what)
	}
}

// covering reports whether d covers one of rows.
func covering(d bridge.Deletion, rows []bridge.Row) bool {
	return slices.ContainsFunc(rows, func(r bridge.Row) bool { return d.Covers(&r) })
}

// ofThread reports whether rows hold a row of tenant's thread.
func ofThread(rows []bridge.Row, tenant, thread string) bool {
	return slices.ContainsFunc(rows, func(r bridge.Row) bool { return r.Tenant == tenant && r.Thread == thread })
}

// reach returns the positions deletions reach: a thread deletion's own
// ordinal.
func reach(ds []bridge.Deletion) bridge.Positions {
	pos := bridge.Positions{}
	for _, d := range ds {
		if d.Thread != "" {
			pos[d.Tenant] = max(pos[d.Tenant], d.Before)
		}
	}
	return pos
}

func threadDeletion(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 9), g.rows("globex", 6))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	// Rows written since the last Flush, which the sink may still buffer.
	b2 := interleave(g.rows("acme", 6), g.rows("globex", 3))
	e.write(s, b2, positionsOf(b2))
	d := g.deleteThread("acme", "support/1")
	must(covering(d, b1) && covering(d, b2), "the deleted thread has rows flushed and rows written since")
	e.delete(s, []bridge.Deletion{d}, bridge.Positions{"acme": d.Before})
	// The thread lives again, and the other threads go on.
	b3 := append(interleave(g.rows("acme", 6), g.rows("globex", 3)), g.threadRows("acme", "support/1", "support/2", "support/1")...)
	must(ofThread(b3, "acme", "support/1"), "the deleted thread has later rows")
	e.write(s, b3, positionsOf(b3))
	e.flush(s)
	e.requireVisible("after a thread deletion")
	e.requirePositions(e.positions(s), "after a thread deletion")
	e.close(s)

	s = e.open()
	e.requireVisible("after a thread deletion and a restart")
	e.requirePositions(e.positions(s), "after a thread deletion and a restart")
	e.close(s)
}

func tenantDeletion(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 6), g.rows("globex", 4), g.rows("initech", 3))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	b2 := interleave(g.rows("acme", 4), g.rows("globex", 2))
	e.write(s, b2, positionsOf(b2))
	d := g.deleteTenant("acme")
	e.delete(s, []bridge.Deletion{d}, nil)
	e.flush(s)
	pos := e.positions(s)
	if o, ok := pos["acme"]; ok {
		e.t.Errorf("after tenant acme was deleted, it still has the position %d", o)
	}
	e.requirePositions(pos, "after a tenant deletion")
	e.requireVisible("after a tenant deletion")
	e.close(s)

	s = e.open()
	e.requirePositions(e.positions(s), "after a tenant deletion and a restart")
	e.requireVisible("after a tenant deletion and a restart")
	// Created again, the tenant goes on from the deletion's ordinal: every
	// new row is stored, the first one, at Before, included.
	b3 := interleave(g.rows("acme", 4), g.rows("globex", 2))
	must(b3[0].Tenant == "acme" && b3[0].Ordinal == d.Before, "the tenant's new life starts at the deletion's Before")
	e.write(s, b3, positionsOf(b3))
	e.flush(s)
	e.requireVisible("after the deleted tenant was created again")
	e.requirePositions(e.positions(s), "after the deleted tenant was created again")
	e.close(s)

	s = e.open()
	e.requirePositions(e.positions(s), "after the deleted tenant was created again and a restart")
	e.close(s)
}

func deletionIsIdempotent(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 6), g.rows("globex", 6))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	dThread := g.deleteThread("acme", "support/1")
	dTenant := g.deleteTenant("globex")
	must(covering(dThread, b1) && covering(dTenant, b1), "both deletions delete rows")
	ds := []bridge.Deletion{dThread, dTenant}
	pos := reach(ds)
	e.delete(s, ds, pos)
	// At once again, as the retry after a lost reply sends it, and twice
	// in one call, as a batch holding a deletion read twice would.
	e.delete(s, ds, pos)
	e.delete(s, append(slices.Clone(ds), ds...), pos)
	e.flush(s)
	e.requireVisible("after deletions applied again at once")
	e.requirePositions(e.positions(s), "after deletions applied again at once")
	e.requireRecordedOnce("after deletions applied again at once")

	// The thread and the tenant live again.
	b2 := interleave(g.rows("acme", 6), g.rows("globex", 4))
	must(ofThread(b2, "acme", dThread.Thread), "the deleted thread lives again")
	e.write(s, b2, positionsOf(b2))
	e.flush(s)
	// Applied again now, as a Multi replays them to a sink that is ahead,
	// the deletions leave the new rows and the new position alone.
	e.delete(s, ds, pos)
	e.flush(s)
	e.requireVisible("after deletions applied again once the thread and tenant lived again")
	e.requirePositions(e.positions(s), "after deletions applied again once the thread and tenant lived again")
	e.requireRecordedOnce("after deletions applied again once the thread and tenant lived again")
	e.close(s)

	// After a restart, the sink still knows what it applied.
	s = e.open()
	e.delete(s, ds, pos)
	e.flush(s)
	e.requireVisible("after deletions applied again after a restart")
	e.requirePositions(e.positions(s), "after deletions applied again after a restart")
	e.requireRecordedOnce("after deletions applied again after a restart")
	e.close(s)
}

func deletionCommitsWithPositions(e *env) {
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 6), g.rows("globex", 6))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	flushed := maps.Clone(e.handed)
	b2 := interleave(g.rows("acme", 3), g.rows("globex", 3))
	e.write(s, b2, positionsOf(b2))
	dThread := g.deleteThread("acme", "support/0")
	dTenant := g.deleteTenant("globex")
	must(covering(dThread, b1) && covering(dTenant, b1), "both deletions delete flushed rows")
	e.delete(s, []bridge.Deletion{dThread, dTenant}, reach([]bridge.Deletion{dThread}))
	b3 := g.rows("acme", 3)
	e.write(s, b3, positionsOf(b3))
	e.crash(s)

	s = e.open()
	pos := e.positions(s)
	vis := e.visible()
	e.requireCovered(vis, pos)
	if pos["acme"] < flushed["acme"] {
		e.t.Errorf("the position of tenant acme is %d, behind %d flushed before the crash", pos["acme"], flushed["acme"])
	}
	// What the committed positions pass is deleted for good.
	if pos["acme"] >= dThread.Before {
		e.requireGone(vis, []bridge.Deletion{dThread},
			"after a crash, with the position of the thread deletion committed, what a reader sees")
	}
	globex, kept := pos["globex"]
	switch {
	case !kept || globex >= dTenant.Before:
		e.requireGone(vis, []bridge.Deletion{dTenant},
			"after a crash, with the position of the deleted tenant removed, what a reader sees")
	case globex < flushed["globex"]:
		e.t.Errorf("the position of tenant globex is %d, behind %d flushed before the crash", globex, flushed["globex"])
	}

	// The bridge resumes after the positions, in order: the rows the log
	// still has, and the deletions whose positions were not committed.
	var redo []bridge.Deletion
	if pos["acme"] < dThread.Before {
		redo = append(redo, dThread)
	}
	if kept && globex < dTenant.Before {
		redo = append(redo, dTenant)
	}
	var earlier, later []bridge.Row
	for _, r := range after(slices.Concat(b1, b2, b3), pos) {
		if _, gone := e.deletedBy(keyOf(&r)); gone {
			continue
		}
		if r.Tenant == "acme" && r.Ordinal < dThread.Before {
			earlier = append(earlier, r)
		} else {
			later = append(later, r)
		}
	}
	e.write(s, earlier, positionsOf(earlier))
	if len(redo) > 0 {
		e.delete(s, redo, reach(redo))
	}
	e.write(s, later, positionsOf(later))
	e.flush(s)
	if e.h.Removes {
		e.requireGone(e.stored(), nil, "the storage after resuming from the positions of a crash (the sink removes deleted rows)")
	}
	vis = e.visible()
	e.requireGone(vis, nil, "what a reader sees after resuming from the positions of a crash")
	e.requireAll(vis)
	e.requireDuplicatesAfter(vis, pos, false)
	e.requirePositions(e.positions(s), "after resuming from the positions of a crash")
	e.close(s)
}

func deletionTouchesNothingElse(e *env) {
	g := newGen()
	s := e.open()
	longTenant, longThread := fit(keyPattern, 64), fit(keyPattern, 256)
	const injection = `'; DELETE FROM jetsession_events; --`
	var rows []bridge.Row
	// Threads of acme whose names are close to the deleted "t" and "t_":
	// in case, by a prefix, by white space, by SQL LIKE wildcards.
	rows = append(rows, g.threadRows("acme", "t", "t_", "tt", "t1", "T", "t ", " t", "t/x", "t%", "t_x", `t\_`, injection, "'")...)
	// The same threads in tenants close to acme.
	for _, tenant := range []string{"ACME", "Acme", "acme ", "acm", "acme2", "globex2"} {
		rows = append(rows, g.threadRows(tenant, "t", "t_")...)
	}
	// The deleted tenant globex, and tenants close to it.
	rows = append(rows, g.threadRows("globex", "t", "x", "acme")...)
	for _, tenant := range []string{"GLOBEX", "Globex", "globe", "globex ", "glob%", "glob_x"} {
		rows = append(rows, g.threadRows(tenant, "t", "globex")...)
	}
	// Keys at the limits, and keys that differ from them in the last byte.
	rows = append(rows, g.threadRows(longTenant, longThread, fit(keyPattern, 255)+"y")...)
	rows = append(rows, g.threadRows(fit(keyPattern, 63)+"y", longThread)...)
	e.write(s, rows, positionsOf(rows))
	e.flush(s)

	ds := []bridge.Deletion{
		g.deleteThread("acme", "t"),
		g.deleteThread("acme", "t_"),
		g.deleteThread("acme", injection),
		g.deleteThread(longTenant, longThread),
		g.deleteTenant("globex"),
	}
	for _, d := range ds {
		must(covering(d, rows), "every deletion deletes a row")
	}
	e.delete(s, ds, reach(ds))
	e.flush(s)
	e.requireVisible("after deletions of threads and a tenant with close names")
	e.requirePositions(e.positions(s), "after deletions of threads and a tenant with close names")
	e.close(s)
}

func failedDeletionCommit(e *env) {
	if e.h.BreakCommits == nil {
		e.t.Skip("the harness cannot break commits (Harness.BreakCommits is nil)")
	}
	g := newGen()
	s := e.open()
	b1 := interleave(g.rows("acme", 6), g.rows("globex", 4), g.rows("initech", 2))
	e.write(s, b1, positionsOf(b1))
	e.flush(s)
	before := e.positions(s)
	dThread := g.deleteThread("acme", "support/1")
	dTenant := g.deleteTenant("globex")
	must(covering(dThread, b1) && covering(dTenant, b1), "both deletions delete rows")
	ds := []bridge.Deletion{dThread, dTenant}

	repair := e.h.BreakCommits(e.t)
	derr := e.tryDelete(s, ds, reach(ds))
	ferr := s.Flush(e.ctx)
	repair()
	if derr == nil && ferr == nil {
		e.t.Errorf("Delete and Flush both succeeded while commits were refused: the failed commit went unreported")
	}
	e.t.Logf("while commits were refused: Delete: %v; Flush: %v", derr, ferr)
	pos := e.positions(s)
	vis := e.visible()
	e.requireCovered(vis, pos)
	if pos["acme"] < before["acme"] || pos["initech"] < before["initech"] {
		e.t.Errorf("positions after a failed commit are %v, behind %v committed before", pos, before)
	}
	if pos["acme"] >= dThread.Before {
		e.requireGone(vis, []bridge.Deletion{dThread}, "with the thread deletion's position committed, what a reader sees")
	}

	// The bridge retries the deletions until the sink takes them.
	e.delete(s, ds, reach(ds))
	e.flush(s)
	e.requireVisible("after the retried deletions")
	e.requireRecordedOnce("after the retried deletions")
	e.requirePositions(e.positions(s), "after the retried deletions")
	e.close(s)
	s = e.open()
	e.requirePositions(e.positions(s), "after the retried deletions and a restart")
	e.requireVisible("after the retried deletions and a restart")
	e.close(s)
}
