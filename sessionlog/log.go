// Package sessionlog defines the contract of a durable, tenant-scoped,
// append-only session event log for AI agents, its types and errors, and an
// in-memory implementation that follows the same rules as every backend.
//
// A log holds one ordered sequence of events per thread, addressed by a
// ThreadKey. Every event appended to a thread gets an ordinal: ordinals are
// unique and strictly increasing within a thread, never reused, but not dense
// (a thread's ordinals are drawn from a sequence shared by its whole tenant),
// so callers always use the ordinals the log returns.
package sessionlog

import (
	"context"
	"iter"
	"time"
)

// ThreadKey names one thread of one tenant. Both parts are required: a valid
// tenant or thread is non-empty UTF-8 without control characters, at most
// MaxTenantBytes and MaxThreadBytes long. Any such strings are allowed,
// including '.', '*', '>', spaces and unicode: backends map keys onto storage
// injectively, so distinct keys never share data.
type ThreadKey struct {
	Tenant string
	Thread string
}

// Event is one thing that happened in a thread: a user message, a model
// reply, a tool call or result, a hand-off, an interrupt...
type Event struct {
	// ID identifies the event within its thread and makes appends
	// idempotent: appending an event whose ID was already appended to the
	// same thread (within the duplicate window) stores nothing new. Append
	// fills an empty ID with a unique one.
	ID string
	// Type classifies the event, for example "user_message" or "tool_call".
	// It is required.
	Type string
	// Time is when the event happened. Append sets a zero Time to the
	// current time. It is stored with nanosecond precision in UTC.
	Time time.Time
	// Data is the opaque payload, JSON by convention.
	Data []byte
	// Meta is optional small string metadata.
	Meta map[string]string
	// TTL, when positive, makes the event expire on its own TTL after it
	// was stored: it must be a whole number of seconds, at least one.
	// Expiry is an explicit policy, like a tenant's maximum age: they are
	// the only ways the log removes events by itself (a full quota refuses
	// appends and never drops events). Reads, heads, tails and listings
	// agree on what has expired.
	TTL time.Duration
}

// Record is an event as read back from a log, with its ordinal.
type Record struct {
	Ordinal uint64
	Event
}

// Head describes the live part of a thread: its hot part (First, Last,
// Count) and, on a log with a cold tier, its archived part (the Archived
// fields, all 0 without a cold tier or archived events).
type Head struct {
	// First is the ordinal of the oldest live event, 0 if there is none.
	First uint64
	// Last is the ordinal of the newest live event, 0 if there is none.
	Last uint64
	// Count is the number of live events.
	Count uint64
	// ArchivedFirst and ArchivedLast are the ordinals of the oldest and
	// newest archived events kept in the cold tier, 0 if there is none;
	// ArchivedCount is how many there are. Archived events that expired
	// (by TTL or the maximum age) are not counted.
	ArchivedFirst uint64
	ArchivedLast  uint64
	ArchivedCount uint64
}

// Log is a durable, append-only event log partitioned by tenant and thread.
// Implementations are safe for concurrent use by many goroutines, and the
// durable ones by many processes. Every method validates its key first and
// returns ErrInvalidKey, changing nothing, when it is invalid; a cancelled
// context returns the context's error.
type Log interface {
	// Append appends events to the thread atomically and in slice order:
	// either all are stored, contiguous in the thread, or none is. It returns
	// the ordinal of the last event. Append fills an empty Event.ID with a
	// unique ID and a zero Event.Time with the current time in the caller's
	// slice, so retrying the same slice after an error of unknown outcome is
	// safe: events whose IDs were already appended are not stored again, and
	// the original ordinal is returned.
	//
	// An empty events slice stores nothing and returns the thread's last
	// live ordinal (0 if none). Invalid events return ErrInvalidEvent,
	// ErrEventTooLarge or ErrBatchTooLarge; a failed ExpectLast returns
	// ErrConflict; a full tenant returns ErrQuotaExceeded; a retry that
	// repeats only some of an earlier append's events returns
	// ErrPartialRetry. In every error case nothing is stored.
	Append(ctx context.Context, key ThreadKey, events []Event, opts ...AppendOption) (last uint64, err error)

	// LoadSince returns every live event of the thread with an ordinal
	// greater than cursor, in ordinal order. Once an Append has returned,
	// its events are visible to every later LoadSince from any client. A
	// cursor past the head, or an unknown tenant or thread, returns no
	// records and no error, and creates nothing.
	//
	// A stored message that is not a valid event does not stop the read:
	// LoadSince returns every valid record and, beside them, an error
	// joining one *CorruptEventError per such message (errors.Is(err,
	// ErrCorruptEvent); CorruptEvents(err) lists them with their ordinals).
	// Any other error returns no records.
	//
	// With IncludeArchived it returns the thread's archived events kept in
	// the cold tier first, then the hot ones, with the same guarantees.
	// Other ReadOptions are ignored.
	LoadSince(ctx context.Context, key ThreadKey, cursor uint64, opts ...ReadOption) ([]Record, error)

	// Scan is the streaming form of LoadSince for long threads: it yields
	// the same records in the same order without holding them all in
	// memory. A stored message that is not a valid event is yielded in its
	// place as a *CorruptEventError, and the sequence goes on after it; any
	// other error is the last element. It takes IncludeArchived like
	// LoadSince.
	Scan(ctx context.Context, key ThreadKey, cursor uint64, opts ...ReadOption) iter.Seq2[Record, error]

	// LoadLast returns the thread's last n live events (fewer if it holds
	// fewer), in ordinal order, without reading the thread from its start.
	// It reports messages that are not valid events like LoadSince, and
	// counts them among the n.
	LoadLast(ctx context.Context, key ThreadKey, n int) ([]Record, error)

	// ArchiveBefore removes the thread's events with ordinal <= watermark
	// from the hot log, and returns how many this call removed. On a log
	// with a cold tier it moves them there first (crash-safe: a rerun
	// after a failure finishes the job without a gap or a duplicate);
	// without one they are dropped. Archiving
	// never moves back: a watermark at or below an earlier one removes
	// nothing and returns 0, and a watermark past the head removes what
	// exists without hiding events appended later. Other threads and tenants
	// are untouched.
	ArchiveBefore(ctx context.Context, key ThreadKey, watermark uint64) (archived int, err error)

	// Head reports the live part of the thread: its first and last ordinals
	// and how many events it holds in the hot log, and on a log with a
	// cold tier the same of its archived events. An unknown thread has a
	// zero Head.
	Head(ctx context.Context, key ThreadKey) (Head, error)
}

// AppendOption changes how one Append behaves.
type AppendOption func(*AppendOptions)

// AppendOptions is the resolved form of a list of AppendOption. Backends
// call ResolveAppendOptions; callers use the option functions.
type AppendOptions struct {
	// ExpectLast, when set, is the ordinal the thread's last live event must
	// have for the append to proceed.
	ExpectLast    uint64
	HasExpectLast bool
}

// ExpectLast makes an append conditional (optimistic concurrency): it
// proceeds only if the thread's last live ordinal is ordinal, where 0 means
// the thread has no live events. On mismatch Append returns ErrConflict and
// stores nothing. A retry of an append that already succeeded with the same
// ExpectLast still reports the original ordinal.
func ExpectLast(ordinal uint64) AppendOption {
	return func(o *AppendOptions) {
		o.ExpectLast = ordinal
		o.HasExpectLast = true
	}
}

// ResolveAppendOptions applies opts in order.
func ResolveAppendOptions(opts []AppendOption) AppendOptions {
	var o AppendOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}
