// Package sinktest is a conformance suite for bridge.Sink implementations.
// Run checks every rule of the Sink contract as a subtest named by the rule
// it checks, so that a failure reads as the broken promise:
//
//	--- FAIL: TestConformance/positions_never_move_back
//
// A sink package runs it in one test, with a harness that opens the sink on
// fresh storage, reopens it on the same storage, and reads back what it
// stored and the deletions it recorded:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) sinktest.Harness {
//			dir := t.TempDir()
//			return sinktest.Harness{
//				Open: func(t *testing.T) bridge.Sink {
//					s, err := mysink.New(dir)
//					if err != nil {
//						t.Fatal(err)
//					}
//					return s
//				},
//				Stored: func(t *testing.T) []bridge.Row {
//					rows, err := mysink.ReadDir(dir)
//					if err != nil {
//						t.Fatal(err)
//					}
//					return rows
//				},
//				Deletions: func(t *testing.T) []bridge.Deletion {
//					ds, err := mysink.ReadDeletions(dir)
//					if err != nil {
//						t.Fatal(err)
//					}
//					return ds
//				},
//			}
//		})
//	}
//
// The rules, in the order they run:
//
//   - a sink on new storage has no positions and stores no rows;
//   - Flush makes the written rows and their positions durable;
//   - Close flushes: a reopened sink has every row and position written before;
//   - positions after a restart equal the committed positions;
//   - positions never move back;
//   - a position without rows is committed, and later rows are stored;
//   - after a crash (a sink abandoned without Flush or Close), the committed
//     positions cover only stored rows, keep what was flushed, and resuming
//     after them completes the data;
//   - a failed commit leaves positions behind their rows and is reported, and
//     retrying the batch completes it (when the harness can break commits);
//   - a batch delivered again after its commit is not stored twice;
//   - rows delivered again after a crash are stored twice only after the
//     position committed when they were delivered again (never, for sinks
//     that deduplicate);
//   - rows handed to Write may be reused by the caller once it returns;
//   - JSON payloads round-trip as the same JSON value;
//   - other payloads round-trip byte for byte;
//   - tenants, threads, IDs and types at the engine's limits round-trip;
//   - tenants that differ only in case keep their own rows and positions;
//   - metadata at the engine's limits round-trips;
//   - times from year 1 to 9999 round-trip at the sink's precision;
//   - ordinals up to 2^63-1 round-trip in rows and positions;
//   - a thread deletion removes or records the thread's rows below its
//     ordinal, and later rows of the thread stay;
//   - a tenant deletion removes or records every row of the tenant and its
//     position, and the tenant created again starts afresh;
//   - a deletion applied again (at once, twice in one call, after the
//     thread and tenant lived again, after a restart) changes nothing and
//     is not recorded twice;
//   - a deletion's positions are committed with it, never before it is
//     durable: after a crash, what the committed positions cover is
//     deleted for good, and resuming after them completes the deletions;
//   - rows of other threads and tenants are untouched by a deletion (names
//     that differ in case, by a prefix, or by LIKE wildcards, keys at the
//     limits);
//   - a failed deletion commit is reported, and the retried deletion
//     completes it, recorded once (when the harness can break commits).
//
// For the deletion rules, what a reader sees is what Stored returns
// without the rows that a deletion returned by Harness.Deletions covers
// (bridge.Deletion's Covers), the anti-join that the readers of a file sink
// run; a sink that takes rows out of its storage says so with
// Harness.Removes, and is then checked to hold none of them.
//
// "Round-trip" compares every row read back with the row written with the
// same key (tenant, thread, ordinal): tenant, thread, ordinal, ID and type
// exactly; the time truncated to Harness.TimePrecision; metadata exactly,
// an empty map being the same as none; a payload that bridge.IsJSON as the
// same JSON value (white space, key order, the spelling of numbers and of
// string escapes may differ; a duplicate key counts by its last value);
// any other payload byte for byte, an empty payload being the same as none.
package sinktest

import (
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
)

// Harness describes a sink under test: how to open it on its storage, and
// how to read back what it stored. Run gets a new one, on fresh and empty
// storage, for every rule.
type Harness struct {
	// Open returns a sink on the harness's storage, failing t if it cannot.
	// Run calls it several times on the same storage to test restarts:
	// after Close (a clean stop), and with the sink opened before abandoned
	// without Flush or Close (a crash). An abandoned sink must not write
	// anything on its own afterwards, as a crashed process would not: give
	// sinks that flush on a timer a limit longer than a test. Run closes
	// abandoned sinks when the rule's subtest ends, after its checks.
	Open func(t *testing.T) bridge.Sink

	// Stored returns every row durably stored, in any order, each as many
	// times as it is stored. It reads the storage itself (files, tables),
	// not through a sink, and Run calls it while a sink is open too.
	Stored func(t *testing.T) []bridge.Row

	// Deletions returns every deletion the storage durably records, in any
	// order, each as many times as it is recorded, reading the storage
	// itself as Stored does (a deletions file, a table, the deletion lines
	// of a stream). A reader of the storage leaves out the rows they
	// cover. Nil means the sink records no deletion, so that it passes the
	// deletion rules only if it removes the rows (Removes).
	Deletions func(t *testing.T) []bridge.Deletion

	// Removes reports that the sink takes the rows a deletion covers out
	// of its storage, as a database can: once the deletion's positions are
	// committed, Stored returns none of them. Otherwise a sink may keep
	// rows it already wrote and record the deletion instead, as files do.
	Removes bool

	// BreakCommits, if not nil, makes the storage refuse to commit
	// positions from now until repair is called, as a full disk or a
	// failing database would: a directory where the positions file goes, a
	// trigger on the positions table. Rows may or may not be stored
	// meanwhile. Without it, the rule on failed commits is skipped.
	BreakCommits func(t *testing.T) (repair func())

	// Unique reports that the sink stores every key (tenant, thread,
	// ordinal) at most once however often it is delivered, as a table with
	// that primary key does. Otherwise rows delivered again may be stored
	// twice, but only rows after the position committed for their tenant
	// when they were delivered again.
	Unique bool

	// TimePrecision is the precision the sink keeps times at: a time reads
	// back as the written one truncated to a multiple of it (see
	// time.Time.Truncate). Zero means nanoseconds.
	TimePrecision time.Duration
}

// Run checks every rule as a subtest of t. newHarness is called once per
// rule, with the rule's subtest, and must return a harness on fresh and
// empty storage (t.TempDir, a new database).
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Open == nil || h.Stored == nil {
				t.Fatal("sinktest: the harness needs Open and Stored")
			}
			if h.TimePrecision <= 0 {
				h.TimePrecision = time.Nanosecond
			}
			r.check(newEnv(t, h))
		})
	}
}

type rule struct {
	name  string
	check func(e *env)
}

// rules are in the order of the package documentation.
var rules = []rule{
	{"a sink on new storage has no positions and stores no rows", newStorageIsEmpty},
	{"Flush makes the written rows and their positions durable", flushMakesDurable},
	{"Close flushes: a reopened sink has every row and position written before", closeFlushes},
	{"positions after a restart equal the committed positions", positionsSurviveRestarts},
	{"positions never move back", positionsNeverMoveBack},
	{"a position without rows is committed, and later rows are stored", positionWithoutRows},
	{"after a crash, committed positions cover only stored rows and keep what was flushed", crashKeepsPositionsBehindRows},
	{"a failed commit leaves positions behind their rows, is reported, and a retried batch completes it", failedCommit},
	{"a batch delivered again after its commit is not stored twice", redeliveryAfterCommit},
	{"rows delivered again after a crash are stored twice only after the committed position", redeliveryAfterCrash},
	{"rows handed to Write may be reused by the caller once it returns", callerReusesRows},
	{"JSON payloads round-trip as the same JSON value", jsonPayloads},
	{"other payloads round-trip byte for byte: binary, invalid UTF-8, text, empty, 1 MiB", otherPayloads},
	{"tenants, threads, IDs and types at the engine's limits round-trip exactly", keysAtTheLimits},
	{"tenants that differ only in case keep their own rows and positions", tenantsDifferingInCase},
	{"metadata at the engine's limits round-trips exactly", metadataAtTheLimits},
	{"times from year 1 to 9999 round-trip at the sink's precision", timesRoundTrip},
	{"ordinals up to 2^63-1 round-trip in rows and positions", ordinalsRoundTrip},
	{"a thread deletion removes or records the thread's rows below its ordinal, and later rows of the thread stay", threadDeletion},
	{"a tenant deletion removes or records every row of the tenant and its position", tenantDeletion},
	{"a deletion applied again changes nothing and is not recorded twice", deletionIsIdempotent},
	{"a deletion's positions are committed with it, never before it is durable", deletionCommitsWithPositions},
	{"rows of other threads and tenants are untouched by a deletion", deletionTouchesNothingElse},
	{"a failed deletion commit is reported, and the retried deletion completes it, recorded once", failedDeletionCommit},
}
