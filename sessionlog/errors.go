package sessionlog

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Backends wrap them with context; test with errors.Is.
var (
	// ErrInvalidKey is returned by every operation when the tenant or thread
	// is empty, longer than allowed, not UTF-8 or contains control characters.
	// Nothing is read, created or changed.
	ErrInvalidKey = errors.New("sessionlog: invalid thread key")

	// ErrInvalidEvent is returned by Append when an event has an invalid ID,
	// Type, Time or Meta, or when two events of one append share an ID.
	// Nothing is stored.
	ErrInvalidEvent = errors.New("sessionlog: invalid event")

	// ErrEventTooLarge is returned by Append when one event exceeds the
	// log's maximum event size (or the server's maximum message size).
	// Nothing is stored.
	ErrEventTooLarge = errors.New("sessionlog: event too large")

	// ErrBatchTooLarge is returned by Append when one call holds more events
	// or bytes than the log accepts atomically. Nothing is stored.
	ErrBatchTooLarge = errors.New("sessionlog: batch too large")

	// ErrConflict is returned by Append when the ExpectLast condition does
	// not hold. Nothing is stored.
	ErrConflict = errors.New("sessionlog: conflict: thread's last ordinal differs from the expected one")

	// ErrPartialRetry is returned by Append when some, but not all, of its
	// events were already appended to the thread: an idempotent retry must
	// repeat exactly the events of the original append. Nothing is stored.
	ErrPartialRetry = errors.New("sessionlog: some events of this append were already appended")

	// ErrQuotaExceeded is returned by Append when there is no room for the
	// events: the tenant's storage quota is full, or (ErrStorageFull, which
	// also matches ErrQuotaExceeded) the server's. Existing events are never
	// dropped to make room. Nothing is stored.
	ErrQuotaExceeded = errors.New("sessionlog: tenant quota exceeded")

	// ErrStorageFull is returned by Append when the server, or the account
	// the tenant lives in, has no storage left, whatever the tenant's own
	// quota: an operator must add room. It matches ErrQuotaExceeded too, so
	// callers that treat every lack of room alike need one check. Nothing
	// is stored.
	ErrStorageFull error = storageFull{}

	// ErrTenantDeleted ends a tail of a tenant that was deleted while it
	// ran.
	ErrTenantDeleted = errors.New("sessionlog: tenant deleted")

	// ErrCorruptEvent is matched by the *CorruptEventError that reads
	// report for a stored message that does not follow the protocol (for
	// example one published to a thread's subject by a foreign client). It
	// never ends a read: see CorruptEventError.
	ErrCorruptEvent = errors.New("sessionlog: corrupt event")
)

type storageFull struct{}

func (storageFull) Error() string { return "sessionlog: storage full" }

// Is makes errors.Is(ErrStorageFull, ErrQuotaExceeded) true.
func (storageFull) Is(target error) bool { return target == ErrQuotaExceeded }

// CorruptEventError reports a stored message that is not a valid event: a
// header the protocol requires is missing or malformed, a field is beyond
// the limits Append enforces, or its subject names no valid thread. It
// matches ErrCorruptEvent with errors.Is.
//
// Reads hand it back in the message's place and go on: iterators (Scan,
// Tail, TailTenant) yield it as the error of one element and continue with
// the next message, so a caller steps over it with continue; LoadSince
// returns it, joined with any others, beside every valid record. Nothing a
// stored message holds can end a read, rewind it or change an ordinal.
type CorruptEventError struct {
	// Key names the thread; Thread is empty when the message's subject
	// names no valid thread (Subject then says what it was).
	Key ThreadKey
	// Ordinal is the message's ordinal, as the server numbered it.
	Ordinal uint64
	// Subject is the subject the message was stored on, when the backend
	// has subjects.
	Subject string
	// Reason says what is wrong with the message.
	Reason string
	// Time is when the log stored the message (the server's clock), zero
	// if unknown.
	Time time.Time
	// Header and Data are what the writer stored, as it stored them, for
	// inspection and quarantine. They are untrusted input.
	Header map[string][]string
	Data   []byte
}

func (e *CorruptEventError) Error() string {
	return fmt.Sprintf("sessionlog: corrupt event at ordinal %d of tenant %q thread %q: %s",
		e.Ordinal, e.Key.Tenant, e.Key.Thread, e.Reason)
}

// Is makes errors.Is(err, ErrCorruptEvent) true.
func (e *CorruptEventError) Is(target error) bool { return target == ErrCorruptEvent }

// CorruptEvents returns every *CorruptEventError err holds, in order: the
// one err is, or those it joins (as LoadSince returns them). It returns nil
// when err reports no corrupt event.
func CorruptEvents(err error) []*CorruptEventError {
	var out []*CorruptEventError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *CorruptEventError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
