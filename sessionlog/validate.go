package sessionlog

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"time"
	"unicode"
	"unicode/utf8"
)

// Key and event limits shared by every backend.
const (
	MaxTenantBytes = 64  // longest valid tenant, in bytes
	MaxThreadBytes = 256 // longest valid thread, in bytes
	MaxIDBytes     = 128 // longest event ID, in bytes
	MaxTypeBytes   = 128 // longest event type, in bytes
	MaxMetaEntries = 64  // most metadata entries per event
	MaxMetaBytes   = 4096

	// DefaultMaxEventBytes is the default largest event, measured by
	// EventSize. It leaves room for headers under NATS's default 1 MiB
	// maximum message size.
	DefaultMaxEventBytes = 1_000_000
	// DefaultMaxBatchEvents is the default largest append, in events. It is
	// the NATS server's default limit for one atomic batch.
	DefaultMaxBatchEvents = 1000
	// DefaultMaxBatchBytes is the default largest append, the sum of its
	// events' sizes.
	DefaultMaxBatchBytes = 8 << 20
	// DefaultDuplicateWindow is how long event IDs are remembered for
	// idempotent retries by default.
	DefaultDuplicateWindow = 2 * time.Minute
)

// MinEventTime and MaxEventTime bound Event.Time (in UTC): the years RFC
// 3339 can write, so that every backend, wire format and sink stores and
// reads back every time Append accepts.
var (
	MinEventTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxEventTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// Limits bound the size of events and appends.
type Limits struct {
	MaxEventBytes  int // largest event, measured by EventSize
	MaxBatchEvents int // most events in one append
	MaxBatchBytes  int // largest sum of EventSize in one append
}

// DefaultLimits returns the limits every backend uses unless configured.
func DefaultLimits() Limits {
	return Limits{
		MaxEventBytes:  DefaultMaxEventBytes,
		MaxBatchEvents: DefaultMaxBatchEvents,
		MaxBatchBytes:  DefaultMaxBatchBytes,
	}
}

// Validate reports limits that cannot work.
func (l Limits) Validate() error {
	switch {
	case l.MaxEventBytes <= 0:
		return fmt.Errorf("sessionlog: max event size must be positive, got %d", l.MaxEventBytes)
	case l.MaxBatchEvents <= 0:
		return fmt.Errorf("sessionlog: max batch events must be positive, got %d", l.MaxBatchEvents)
	case l.MaxBatchBytes < l.MaxEventBytes:
		return fmt.Errorf("sessionlog: max batch bytes (%d) must be at least the max event size (%d)", l.MaxBatchBytes, l.MaxEventBytes)
	}
	return nil
}

// EventSize is the size an event counts against the limits: its ID, type,
// payload and metadata keys and values, in bytes.
func EventSize(e *Event) int {
	n := len(e.ID) + len(e.Type) + len(e.Data)
	for k, v := range e.Meta {
		n += len(k) + len(v)
	}
	return n
}

// ValidateKey returns an error wrapping ErrInvalidKey unless key is valid.
func ValidateKey(key ThreadKey) error {
	if err := validateKeyPart(key.Tenant, MaxTenantBytes); err != nil {
		return fmt.Errorf("%w: tenant %q %s", ErrInvalidKey, key.Tenant, err)
	}
	if err := validateKeyPart(key.Thread, MaxThreadBytes); err != nil {
		return fmt.Errorf("%w: thread %q %s", ErrInvalidKey, key.Thread, err)
	}
	return nil
}

// ValidateTenant returns an error wrapping ErrInvalidKey unless tenant is a
// valid tenant name.
func ValidateTenant(tenant string) error {
	if err := validateKeyPart(tenant, MaxTenantBytes); err != nil {
		return fmt.Errorf("%w: tenant %q %s", ErrInvalidKey, tenant, err)
	}
	return nil
}

func validateKeyPart(s string, maxBytes int) error {
	switch {
	case s == "":
		return errorString("is empty")
	case len(s) > maxBytes:
		return errorString(fmt.Sprintf("is %d bytes, longer than %d", len(s), maxBytes))
	case !utf8.ValidString(s):
		return errorString("is not valid UTF-8")
	case hasControl(s):
		return errorString("contains a control character")
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// PrepareAppend validates an append and completes its events in place:
// an empty ID gets a unique one and a zero Time gets now. It returns the
// first problem found, wrapping ErrInvalidKey, ErrInvalidEvent,
// ErrEventTooLarge or ErrBatchTooLarge; on error no event is modified.
// Backends call it first in Append so that every backend accepts and rejects
// exactly the same input.
func PrepareAppend(key ThreadKey, events []Event, limits Limits, now time.Time) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(events) > limits.MaxBatchEvents {
		return fmt.Errorf("%w: %d events, at most %d per append", ErrBatchTooLarge, len(events), limits.MaxBatchEvents)
	}
	total := 0
	var ids map[string]int
	if len(events) > 1 {
		ids = make(map[string]int, len(events))
	}
	for i := range events {
		e := &events[i]
		if err := validateEvent(e); err != nil {
			return fmt.Errorf("%w: event %d: %s", ErrInvalidEvent, i, err)
		}
		size := EventSize(e)
		if size > limits.MaxEventBytes {
			return fmt.Errorf("%w: event %d is %d bytes, at most %d", ErrEventTooLarge, i, size, limits.MaxEventBytes)
		}
		total += size
		if e.ID != "" && ids != nil {
			if j, dup := ids[e.ID]; dup {
				return fmt.Errorf("%w: events %d and %d share the ID %q", ErrInvalidEvent, j, i, e.ID)
			}
			ids[e.ID] = i
		}
	}
	if total > limits.MaxBatchBytes {
		return fmt.Errorf("%w: %d bytes, at most %d per append", ErrBatchTooLarge, total, limits.MaxBatchBytes)
	}
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = NewID(now)
		}
		if events[i].Time.IsZero() {
			events[i].Time = now
		}
	}
	return nil
}

// ValidateEvent reports, wrapping ErrInvalidEvent, whether e is not an
// event Append could have stored: its ID and Type must be set, and they, its
// metadata and its time must be within the limits Append enforces (the
// payload may be any bytes). Readers use it on what they read back, which
// any writer allowed on a thread's subject may have stored.
func ValidateEvent(e *Event) error {
	if e.ID == "" {
		return fmt.Errorf("%w: ID is empty", ErrInvalidEvent)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: time is zero", ErrInvalidEvent)
	}
	if err := validateEvent(e); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return nil
}

func validateEvent(e *Event) error {
	if e.ID != "" {
		if err := validateLabel(e.ID, MaxIDBytes); err != nil {
			return fmt.Errorf("ID %q %w", e.ID, err)
		}
	}
	if !e.Time.IsZero() {
		if u := e.Time.UTC(); u.Before(MinEventTime) || u.After(MaxEventTime) {
			return fmt.Errorf("time %s is outside years 1 to 9999 UTC", u.Format(time.RFC3339Nano))
		}
	}
	if e.TTL != 0 && (e.TTL < time.Second || e.TTL%time.Second != 0) {
		return fmt.Errorf("TTL %v is not a whole number of seconds, at least 1s", e.TTL)
	}
	if e.Type == "" {
		return errorString("type is empty")
	}
	if err := validateLabel(e.Type, MaxTypeBytes); err != nil {
		return fmt.Errorf("type %q %w", e.Type, err)
	}
	if len(e.Meta) > MaxMetaEntries {
		return fmt.Errorf("has %d metadata entries, at most %d", len(e.Meta), MaxMetaEntries)
	}
	metaBytes := 0
	for k, v := range e.Meta {
		metaBytes += len(k) + len(v)
		switch {
		case k == "":
			return errorString("has an empty metadata key")
		case !utf8.ValidString(k) || hasControl(k):
			return fmt.Errorf("metadata key %q is not UTF-8 text without control characters", k)
		case !utf8.ValidString(v):
			return fmt.Errorf("metadata value of %q is not valid UTF-8", k)
		}
	}
	if metaBytes > MaxMetaBytes {
		return fmt.Errorf("metadata is %d bytes, at most %d", metaBytes, MaxMetaBytes)
	}
	return nil
}

// validateLabel checks IDs and types: text that travels in a header line, so
// no control characters and no surrounding white space, which header parsers
// would strip.
func validateLabel(s string, maxBytes int) error {
	switch {
	case len(s) > maxBytes:
		return fmt.Errorf("is %d bytes, longer than %d", len(s), maxBytes)
	case !utf8.ValidString(s):
		return errorString("is not valid UTF-8")
	case hasControl(s):
		return errorString("contains a control character")
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return errorString("starts or ends with white space")
	}
	return nil
}

// NewID returns a unique, time-ordered event ID in UUID version 7 form: a
// millisecond timestamp and 74 random bits (from the runtime's ChaCha8
// generator, fast and unpredictable, so collisions are negligible).
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], rand.Uint64())
	binary.BigEndian.PutUint16(b[6:], uint16(rand.Uint32()))
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(b[:6], ms[2:])
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// StoredTime normalizes an event time the way every backend stores it: UTC,
// without a monotonic clock reading.
func StoredTime(t time.Time) time.Time { return t.UTC().Round(0) }
