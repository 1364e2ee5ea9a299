// Package bridge follows every tenant stream of a jetsession deployment and
// delivers each event at least once to analytics sinks. Its position per
// tenant (the last ordinal delivered) is kept by the sink, committed with
// the data, so a restart resumes where the sink's durable data ends, and a
// crash replays at most what was not yet committed. Rows carry a stable key
// (tenant, thread, ordinal, event ID) so a sink can make redelivery a no-op.
package bridge

import (
	"context"
	"time"
)

// Row is one event as delivered to a sink.
type Row struct {
	Tenant  string            `json:"tenant"`
	Thread  string            `json:"thread"`
	Ordinal uint64            `json:"ordinal"`
	ID      string            `json:"id"`
	Type    string            `json:"type"`
	Time    time.Time         `json:"time"`
	Data    []byte            `json:"data,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// Positions maps a tenant to the last ordinal delivered for it.
type Positions map[string]uint64

// Sink is an analytics destination. The bridge calls Write from one
// goroutine at a time, with rows of each tenant in ordinal order.
type Sink interface {
	// Name identifies the sink in logs and metrics, e.g. "postgres".
	Name() string

	// Positions returns the positions the sink has durably committed: for
	// each tenant, every row up to that ordinal is stored. The bridge
	// resumes each tenant after its position.
	Positions(ctx context.Context) (Positions, error)

	// Write hands rows to the sink together with the positions they reach.
	// A sink may store them at once or buffer them, but it must never
	// commit a position before the rows up to it are durable, and it should
	// commit the rows and positions together (one transaction, or data
	// first then positions), so that a crash at any point loses nothing:
	// rows delivered again after a restart are no-ops where the sink
	// deduplicates on the row key, or duplicates where it cannot.
	Write(ctx context.Context, rows []Row, pos Positions) error

	// Flush makes everything written so far durable and commits its
	// positions. The bridge calls it on shutdown; sinks that buffer also
	// flush on their own size and age limits.
	Flush(ctx context.Context) error

	// Close flushes and releases the sink.
	Close(ctx context.Context) error
}
