package sessionlog

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Log for tests and single-process tools. It follows
// the same rules as the durable backends: each tenant has one sequence that
// gives its threads' ordinals, IDs are deduplicated per thread within the
// duplicate window, and the same limits apply. Nothing survives the process.
type Memory struct {
	limits Limits
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	tenants map[string]*memTenant
	// changed is closed and replaced on every append, waking tailers.
	changed chan struct{}
}

var _ Log = (*Memory)(nil)

type memTenant struct {
	seq     uint64
	created time.Time
	threads map[string]*memThread
}

type memThread struct {
	live  []memRecord // ordered by ordinal
	dedup map[string]dedupEntry
}

// memRecord is a stored record; corrupt is set for a message injected with
// InjectCorrupt, which reads report instead of decoding it.
type memRecord struct {
	Record
	corrupt string
}

type dedupEntry struct {
	ordinal uint64
	at      time.Time
}

// MemoryOption configures a Memory log.
type MemoryOption func(*Memory)

// WithMemoryLimits sets the event and batch size limits (default
// DefaultLimits).
func WithMemoryLimits(l Limits) MemoryOption { return func(m *Memory) { m.limits = l } }

// WithMemoryDuplicateWindow sets how long event IDs are remembered for
// idempotent retries (default DefaultDuplicateWindow).
func WithMemoryDuplicateWindow(d time.Duration) MemoryOption {
	return func(m *Memory) { m.window = d }
}

// WithMemoryClock replaces time.Now, for tests of time-dependent rules.
func WithMemoryClock(now func() time.Time) MemoryOption { return func(m *Memory) { m.now = now } }

// NewMemory returns an empty in-memory log. It panics on invalid limits, as
// those are programming errors.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{
		limits:  DefaultLimits(),
		window:  DefaultDuplicateWindow,
		now:     time.Now,
		tenants: make(map[string]*memTenant),
		changed: make(chan struct{}),
	}
	for _, opt := range opts {
		opt(m)
	}
	if err := m.limits.Validate(); err != nil {
		panic(err)
	}
	return m
}

// Append implements Log.
func (m *Memory) Append(ctx context.Context, key ThreadKey, events []Event, opts ...AppendOption) (uint64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := m.now()
	if err := PrepareAppend(key, events, m.limits, now); err != nil {
		return 0, err
	}
	o := ResolveAppendOptions(opts)

	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenants[key.Tenant]
	var th *memThread
	if t != nil {
		th = t.threads[key.Thread]
	}
	if len(events) == 0 {
		return th.last(), nil
	}
	if th != nil {
		th.expire(now.Add(-m.window))
		if last, dup, err := th.duplicates(events); dup {
			return last, err
		}
	}
	if o.HasExpectLast && o.ExpectLast != th.last() {
		return 0, fmt.Errorf("%w: expected last ordinal %d, thread has %d", ErrConflict, o.ExpectLast, th.last())
	}
	if t == nil {
		t = &memTenant{threads: make(map[string]*memThread), created: now}
		m.tenants[key.Tenant] = t
	}
	if th == nil {
		th = &memThread{dedup: make(map[string]dedupEntry)}
		t.threads[key.Thread] = th
	}
	for i := range events {
		t.seq++
		th.live = append(th.live, memRecord{Record: Record{Ordinal: t.seq, Event: storedCopy(&events[i])}})
		th.dedup[events[i].ID] = dedupEntry{ordinal: t.seq, at: now}
	}
	m.notify()
	return t.seq, nil
}

// notify wakes tailers; m.mu must be held.
func (m *Memory) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// InjectCorrupt stores, at the thread's next ordinal, a message that is not
// a valid event, as a foreign writer can on a durable backend, and returns
// its ordinal. Reads report it as a *CorruptEventError with reason and
// data, like every backend reports a message that does not follow the
// protocol; it counts in Head and can be archived. It exists so that code
// written against the memory log can test how it steps over such messages.
func (m *Memory) InjectCorrupt(key ThreadKey, reason string, data []byte) (uint64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenants[key.Tenant]
	if t == nil {
		t = &memTenant{threads: make(map[string]*memThread), created: m.now()}
		m.tenants[key.Tenant] = t
	}
	th := t.threads[key.Thread]
	if th == nil {
		th = &memThread{dedup: make(map[string]dedupEntry)}
		t.threads[key.Thread] = th
	}
	t.seq++
	if reason == "" {
		reason = "injected corrupt message"
	}
	th.live = append(th.live, memRecord{
		Record:  Record{Ordinal: t.seq, Event: Event{Time: StoredTime(m.now()), Data: slices.Clone(data)}},
		corrupt: reason,
	})
	m.notify()
	return t.seq, nil
}

// read returns the stored record as a reader gets it: a copy, or the
// corrupt-event error of an injected message.
func (r *memRecord) read(key ThreadKey) (Record, error) {
	if r.corrupt != "" {
		return Record{Ordinal: r.Ordinal}, &CorruptEventError{Key: key, Ordinal: r.Ordinal, Reason: r.corrupt,
			Time: r.Time, Data: slices.Clone(r.Data)}
	}
	return recordCopy(&r.Record), nil
}

// last is the thread's last live ordinal; a nil thread has none.
func (th *memThread) last() uint64 {
	if th == nil || len(th.live) == 0 {
		return 0
	}
	return th.live[len(th.live)-1].Ordinal
}

func (th *memThread) expire(before time.Time) {
	for id, e := range th.dedup {
		if e.at.Before(before) {
			delete(th.dedup, id)
		}
	}
}

// duplicates reports whether events repeat earlier ones: all of them (the
// original last ordinal, no error) or only some (ErrPartialRetry).
func (th *memThread) duplicates(events []Event) (last uint64, dup bool, err error) {
	seen := 0
	for i := range events {
		if _, ok := th.dedup[events[i].ID]; ok {
			seen++
		}
	}
	switch seen {
	case 0:
		return 0, false, nil
	case len(events):
		for i := range events {
			last = max(last, th.dedup[events[i].ID].ordinal)
		}
		return last, true, nil
	default:
		return 0, true, fmt.Errorf("%w: %d of %d events", ErrPartialRetry, seen, len(events))
	}
}

func storedCopy(e *Event) Event {
	c := Event{ID: e.ID, Type: e.Type, Time: StoredTime(e.Time)}
	if len(e.Data) > 0 {
		c.Data = slices.Clone(e.Data)
	}
	if len(e.Meta) > 0 {
		c.Meta = maps.Clone(e.Meta)
	}
	return c
}

func recordCopy(r *Record) Record {
	return Record{Ordinal: r.Ordinal, Event: storedCopy(&r.Event)}
}

// LoadSince implements Log.
func (m *Memory) LoadSince(ctx context.Context, key ThreadKey, cursor uint64) ([]Record, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil {
		return nil, nil
	}
	i := th.after(cursor)
	if i == len(th.live) {
		return nil, nil
	}
	out := make([]Record, 0, len(th.live)-i)
	var corrupt []error
	for j := i; j < len(th.live); j++ {
		rec, err := th.live[j].read(key)
		if err != nil {
			corrupt = append(corrupt, err)
			continue
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, errors.Join(corrupt...)
}

// Scan implements Log. It reads in chunks so that appends are not blocked
// while a long thread is consumed.
func (m *Memory) Scan(ctx context.Context, key ThreadKey, cursor uint64) iter.Seq2[Record, error] {
	const chunk = 256
	return func(yield func(Record, error) bool) {
		if err := ValidateKey(key); err != nil {
			yield(Record{}, err)
			return
		}
		for {
			if err := ctx.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			recs := m.loadChunk(key, cursor, chunk)
			for _, r := range recs {
				if !yield(r.read(key)) {
					return
				}
				cursor = r.Ordinal
			}
			if len(recs) < chunk {
				return
			}
		}
	}
}

// loadChunk copies up to n stored records after cursor, so that they can
// be yielded without holding the lock.
func (m *Memory) loadChunk(key ThreadKey, cursor uint64, n int) []memRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil {
		return nil
	}
	i := th.after(cursor)
	end := min(i+n, len(th.live))
	return slices.Clone(th.live[i:end])
}

// thread returns the thread or nil; m.mu must be held.
func (m *Memory) thread(key ThreadKey) *memThread {
	t := m.tenants[key.Tenant]
	if t == nil {
		return nil
	}
	return t.threads[key.Thread]
}

// after returns the index of the first live record with ordinal > cursor.
func (th *memThread) after(cursor uint64) int {
	return sort.Search(len(th.live), func(i int) bool { return th.live[i].Ordinal > cursor })
}

// ArchiveBefore implements Log.
func (m *Memory) ArchiveBefore(ctx context.Context, key ThreadKey, watermark uint64) (int, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil || watermark == 0 {
		return 0, nil
	}
	n := th.after(watermark)
	th.live = slices.Delete(th.live, 0, n)
	return n, nil
}

// Head implements Log.
func (m *Memory) Head(ctx context.Context, key ThreadKey) (Head, error) {
	if err := ValidateKey(key); err != nil {
		return Head{}, err
	}
	if err := ctx.Err(); err != nil {
		return Head{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil || len(th.live) == 0 {
		return Head{}, nil
	}
	return Head{First: th.live[0].Ordinal, Last: th.last(), Count: uint64(len(th.live))}, nil
}
