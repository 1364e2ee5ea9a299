package sessionlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context; test with errors.Is.
var (
	// ErrInvalidKey is returned by every operation when the tenant or thread
	// is empty, longer than allowed, not UTF-8 or contains control characters.
	// Nothing is read, created or changed.
	ErrInvalidKey = errors.New("sessionlog: invalid thread key")

	// ErrInvalidEvent is returned by Append when an event has an invalid ID,
	// Type or Meta, or when two events of one append share an ID. Nothing is
	// stored.
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

	// ErrQuotaExceeded is returned by Append when the tenant's storage quota
	// is full. Existing events are never dropped to make room. Nothing is
	// stored.
	ErrQuotaExceeded = errors.New("sessionlog: tenant quota exceeded")

	// ErrCorruptEvent is returned by reads that meet a stored message they
	// cannot decode (for example one published to a thread's subject by a
	// foreign client). The error names the message's ordinal; it is never
	// skipped silently.
	ErrCorruptEvent = errors.New("sessionlog: corrupt event")
)

// CorruptEventError reports a stored message that cannot be decoded.
// It matches ErrCorruptEvent with errors.Is.
type CorruptEventError struct {
	Key     ThreadKey
	Ordinal uint64
	Reason  string
}

func (e *CorruptEventError) Error() string {
	return fmt.Sprintf("sessionlog: corrupt event at ordinal %d of tenant %q thread %q: %s",
		e.Ordinal, e.Key.Tenant, e.Key.Thread, e.Reason)
}

// Is makes errors.Is(err, ErrCorruptEvent) true.
func (e *CorruptEventError) Is(target error) bool { return target == ErrCorruptEvent }
