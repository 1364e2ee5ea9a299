// Package bridge follows every tenant stream of a jetsession deployment and
// delivers each event at least once to analytics sinks. Its position per
// tenant (the last ordinal delivered) is kept by the sink, committed with
// the data, so a restart resumes where the sink's durable data ends, and a
// crash replays at most what was not yet committed. Rows carry a stable key
// (tenant, thread, ordinal, event ID) so a sink can make redelivery a no-op.
//
// Every sink names the fields of a row the same way: tenant, thread,
// ordinal, event_id, type, time, data (the payload when it is JSON),
// data_raw (the payload's bytes when it is not) and meta. Row's JSON record
// encoding (MarshalJSON, JSONEncoder) is the one the JSON-lines sink writes
// and the jetsession command prints. Package bridge/sinktest checks an
// implementation against the Sink contract.
package bridge

import (
	"context"
	"time"
)

// Row is one event as delivered to a sink. The bridge hands sinks rows
// within the limits of package sessionlog: tenant, thread, ID and type are
// UTF-8 without control characters (at most 64, 256, 128 and 128 bytes),
// metadata has at most 64 entries and 4096 bytes (keys without control
// characters, values any UTF-8, NUL included), times are between the years
// 1 and 9999, ordinals between 1 and 2^63-1, and payloads any bytes up to
// about 1 MB. A sink must store every such row.
type Row struct {
	Tenant  string
	Thread  string
	Ordinal uint64
	ID      string // the event ID, stored as event_id
	Type    string
	Time    time.Time
	Data    []byte // the payload; empty when the event has none
	Meta    map[string]string
}

// Positions maps a tenant to the last ordinal delivered for it.
type Positions map[string]uint64

// Deletion is the end of what a sink holds of one thread or, with Thread
// empty, of a whole tenant: every row of it with an ordinal below Before
// must go. The bridge hands a sink the deletions the log recorded (see
// sessionlog.Deleter), in order with the rows, through Sink.Delete. Since
// ordinals are never reused, rows of the thread's (or the tenant's) next
// life have ordinals at or above Before and are untouched.
//
// Its JSON record, the line of every deletions file and the "deletion"
// object of the JSON-lines sink, is
//
//	{"tenant":"acme","thread":"support/4711","before":1234,"time":"2026-12-01T21:35:54.524506186Z"}
//
// with thread "" for a whole tenant, and time (when the log deleted it) in
// RFC 3339 in UTC with nanoseconds.
type Deletion struct {
	Tenant string
	Thread string // empty: the whole tenant, and its position
	Before uint64
	Time   time.Time // when the log deleted it
}

// Covers reports whether d deletes r: r is of d's tenant, of d's thread
// (or d deletes the whole tenant), and its ordinal is below d.Before.
// Readers of sinks that record deletions leave out the rows that some
// recorded deletion covers.
func (d *Deletion) Covers(r *Row) bool {
	return r.Tenant == d.Tenant && (d.Thread == "" || r.Thread == d.Thread) && r.Ordinal < d.Before
}

// Sink is an analytics destination. The bridge calls Write and Delete from
// one goroutine at a time, with rows and deletions of each tenant in
// ordinal order.
//
// Package bridge/sinktest holds a conformance suite for implementations.
type Sink interface {
	// Name identifies the sink in logs and metrics, e.g. "postgres".
	Name() string

	// Positions returns the positions the sink has durably committed: for
	// each tenant, every row up to that ordinal is stored. The bridge
	// resumes each tenant after its position. A tenant without a position
	// starts from the beginning. Positions never move back, but a tenant
	// deletion removes its tenant's (see Delete).
	Positions(ctx context.Context) (Positions, error)

	// Write hands rows to the sink together with the positions they reach.
	// A position may also advance without rows (events the bridge passed
	// over). A sink may store rows at once or buffer them, but it must
	// never commit a position before the rows up to it are durable, and it
	// should commit the rows and positions together (one transaction, or
	// data first then positions), so that a crash at any point loses
	// nothing. Positions never move back: a lower position than one
	// already held is ignored.
	//
	// Rows may be delivered again: after a restart, rows after the
	// committed positions are; a failed Write is retried with the same
	// rows; and a Multi hands every sink the rows after the lowest of their
	// positions. A row at or below the position a sink has committed for
	// its tenant is stored already and must not be stored again; a row
	// after it may be stored twice, unless the sink deduplicates on the
	// key (tenant, thread, ordinal).
	//
	// Write must not modify the rows, nor keep their slices or maps after
	// it returns: the caller may reuse them.
	Write(ctx context.Context, rows []Row, pos Positions) error

	// Delete carries out deletions in order with the rows: after every row
	// written before it, and before any written after it. For each
	// Deletion, every row of its thread (or, Thread empty, of its whole
	// tenant) with an ordinal below Before goes: the sink removes the rows
	// it can, and durably records what it cannot remove from data it
	// already wrote, so that its readers leave those rows out. pos holds
	// the positions the deletions reach (for a thread deletion, the
	// deletion's own ordinal, its Before). As with Write, a sink may commit
	// pos at once or at its next flush, but never before the deletions are
	// durable, and positions never move back.
	//
	// A tenant deletion also removes the tenant's position when it is below
	// Before, as every position of the tenant's earlier life is; a position
	// at or above Before belongs to the tenant's next life and stays. pos
	// is committed after the deletions are carried out, so it may name a
	// tenant that d deletes.
	//
	// Delete is idempotent: a deletion applied again (a failed Delete is
	// retried with the same deletions and positions, a restart replays
	// what came after the committed positions, and a Multi hands every
	// sink what any of them lacks) changes nothing, and once the Delete
	// that applied it has returned it is never recorded twice. Rows
	// delivered later with an ordinal below a deletion's Before are not
	// the sink's concern: the bridge drops them.
	//
	// Delete must not modify d, nor keep it after it returns.
	Delete(ctx context.Context, d []Deletion, pos Positions) error

	// Flush makes everything written so far durable and commits its
	// positions. The bridge calls it on shutdown; sinks that buffer also
	// flush on their own size and age limits.
	Flush(ctx context.Context) error

	// Close flushes and releases the sink.
	Close(ctx context.Context) error
}
