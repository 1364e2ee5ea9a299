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
// sessionlog.Deleter), in order with the rows.
type Deletion struct {
	Tenant string
	Thread string // empty: the whole tenant, and its position
	Before uint64
	Time   time.Time // when the log deleted it
}

// Sink is an analytics destination. The bridge calls Write from one
// goroutine at a time, with rows of each tenant in ordinal order.
//
// Package bridge/sinktest holds a conformance suite for implementations.
type Sink interface {
	// Name identifies the sink in logs and metrics, e.g. "postgres".
	Name() string

	// Positions returns the positions the sink has durably committed: for
	// each tenant, every row up to that ordinal is stored. The bridge
	// resumes each tenant after its position. A tenant without a position
	// starts from the beginning.
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

	// Flush makes everything written so far durable and commits its
	// positions. The bridge calls it on shutdown; sinks that buffer also
	// flush on their own size and age limits.
	Flush(ctx context.Context) error

	// Close flushes and releases the sink.
	Close(ctx context.Context) error
}
