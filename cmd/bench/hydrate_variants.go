package main

import "context"

// variantRows are the hydrate scenario's further library rows: other ways
// the library hydrates the same thread, each timed interleaved with every
// other row and compared with every raw and PostgreSQL peer. A row is a
// name, rowLibrary, and a read returning how many events it decoded (set
// want when that is not h.perThread). Set up what a row needs here, once,
// on the data set h: the thread h.key of h.perThread events, its ordinals
// h.ordinals, on h.t (h.t.log is the Log under test).
//
// The cold tier and snapshots add theirs here, for example:
//
//	// LoadSince through the cold tier after archiving the first half
//	// (on a copy of the thread, so the hot rows keep reading all of it):
//	rows = append(rows, hydrateRow{name: "LoadSince(0, IncludeArchived)", kind: rowLibrary,
//		read: func(ctx context.Context) (int, error) {
//			recs, err := cold.LoadSince(ctx, copyKey, 0, sessionlog.IncludeArchived())
//			return len(recs), err
//		}})
//	// A 64 KiB snapshot at the thread's 990th event, then the 10 after it,
//	// beside the PostgreSQL snapshot row:
//	rows = append(rows, hydrateRow{name: "LoadSnapshot + LoadSince", kind: rowLibrary, want: hydrateSnapshotTail, read: ...})
func (h *hydrateSet) variantRows(ctx context.Context) ([]hydrateRow, error) {
	var rows []hydrateRow
	return rows, nil
}
