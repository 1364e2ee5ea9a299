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
// gives its threads' ordinals (never reused, not even after a deletion),
// IDs are deduplicated per thread within the duplicate window, the same
// limits apply, and events expire by their TTL or the maximum age the same
// way. Nothing survives the process.
type Memory struct {
	limits Limits
	window time.Duration
	maxAge time.Duration
	now    func() time.Time
	store  ColdStore
	cold   *ColdTier // nil without a cold store

	mu      sync.Mutex
	tenants map[string]*memTenant
	// gone holds each deleted tenant's last ordinal and when it was
	// deleted: a tenant created again numbers on after it.
	gone map[string]goneTenant
	// expiring is set once some event can expire: reads then remove what
	// has expired first.
	expiring bool
	// changed is closed and replaced on every change, waking tailers.
	changed chan struct{}
}

var (
	_ Log          = (*Memory)(nil)
	_ ThreadLister = (*Memory)(nil)
	_ Deleter      = (*Memory)(nil)
	_ Snapshotter  = (*Memory)(nil)
)

type memTenant struct {
	seq       uint64
	created   time.Time
	threads   map[string]*memThread
	deletions []memDeletion          // by ordinal
	snapshots map[string]memSnapshot // by thread; see memory_snapshot.go
}

type memDeletion struct {
	thread  string
	ordinal uint64
	at      time.Time
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
	stored  time.Time
	expires time.Time // zero: never
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

// WithMemoryMaxAge makes every tenant's events expire d after they were
// stored (default: never), like a JetStream tenant stream's maximum age.
func WithMemoryMaxAge(d time.Duration) MemoryOption { return func(m *Memory) { m.maxAge = d } }

// WithMemoryClock replaces time.Now, for tests of time-dependent rules
// (duplicate window, expiry).
func WithMemoryClock(now func() time.Time) MemoryOption { return func(m *Memory) { m.now = now } }

// WithMemoryColdStore gives the log a cold tier in store (default none):
// ArchiveBefore moves archived events there instead of dropping them, reads
// with IncludeArchived go through it, Head reports it, and deletion and
// expiry remove its segments too (see ColdTier).
func WithMemoryColdStore(store ColdStore) MemoryOption { return func(m *Memory) { m.store = store } }

// NewMemory returns an empty in-memory log. It panics on invalid limits, as
// those are programming errors.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{
		limits:  DefaultLimits(),
		window:  DefaultDuplicateWindow,
		now:     time.Now,
		tenants: make(map[string]*memTenant),
		gone:    make(map[string]goneTenant),
		changed: make(chan struct{}),
	}
	for _, opt := range opts {
		opt(m)
	}
	if err := m.limits.Validate(); err != nil {
		panic(err)
	}
	if m.maxAge < 0 {
		panic(fmt.Sprintf("sessionlog: negative maximum age %v", m.maxAge))
	}
	m.expiring = m.maxAge > 0
	if m.store != nil {
		m.cold = NewColdTier(m.store, ColdTierOptions{MaxAge: m.maxAge, Now: m.now})
	}
	return m
}

// begin locks the log and removes what has expired; the caller unlocks.
func (m *Memory) begin() time.Time {
	m.mu.Lock()
	now := m.now()
	if m.expiring {
		m.expireLocked(now)
	}
	return now
}

func (m *Memory) expireLocked(now time.Time) {
	var oldest time.Time
	if m.maxAge > 0 {
		oldest = now.Add(-m.maxAge)
	}
	gone := func(stored, expires time.Time) bool {
		return m.maxAge > 0 && stored.Before(oldest) || !expires.IsZero() && !expires.After(now)
	}
	for _, t := range m.tenants {
		for _, th := range t.threads {
			th.live = slices.DeleteFunc(th.live, func(r memRecord) bool { return gone(r.stored, r.expires) })
		}
		t.deletions = slices.DeleteFunc(t.deletions, func(d memDeletion) bool { return gone(d.at, time.Time{}) })
	}
}

// notify wakes tailers; m.mu must be held.
func (m *Memory) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// tenantLocked returns the tenant, creating it when create is set (its
// sequence going on after a deleted tenant's of the same name).
func (m *Memory) tenantLocked(name string, create bool, now time.Time) *memTenant {
	t := m.tenants[name]
	if t == nil && create {
		t = &memTenant{threads: make(map[string]*memThread), created: now, seq: m.gone[name].last}
		m.tenants[name] = t
	}
	return t
}

func (t *memTenant) threadLocked(name string, create bool) *memThread {
	th := t.threads[name]
	if th == nil && create {
		th = &memThread{dedup: make(map[string]dedupEntry)}
		t.threads[name] = th
	}
	return th
}

// Append implements Log.
func (m *Memory) Append(ctx context.Context, key ThreadKey, events []Event, opts ...AppendOption) (uint64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := PrepareAppend(key, events, m.limits, m.now()); err != nil {
		return 0, err
	}
	o := ResolveAppendOptions(opts)
	now := m.begin()
	defer m.mu.Unlock()
	var th *memThread
	if t := m.tenants[key.Tenant]; t != nil {
		th = t.threads[key.Thread]
	}
	if len(events) == 0 {
		return th.last(), nil
	}
	if th != nil {
		th.forget(now.Add(-m.window))
		if last, dup, err := th.duplicates(events); dup {
			return last, err
		}
	}
	if o.HasExpectLast && o.ExpectLast != th.last() {
		return 0, fmt.Errorf("%w: expected last ordinal %d, thread has %d", ErrConflict, o.ExpectLast, th.last())
	}
	t := m.tenantLocked(key.Tenant, true, now)
	th = t.threadLocked(key.Thread, true)
	for i := range events {
		t.seq++
		r := memRecord{Record: Record{Ordinal: t.seq, Event: storedCopy(&events[i])}, stored: now}
		if events[i].TTL > 0 {
			r.expires = now.Add(events[i].TTL)
			m.expiring = true
		}
		th.live = append(th.live, r)
		th.dedup[events[i].ID] = dedupEntry{ordinal: t.seq, at: now}
	}
	m.notify()
	return t.seq, nil
}

// last is the thread's last live ordinal; a nil thread has none.
func (th *memThread) last() uint64 {
	if th == nil || len(th.live) == 0 {
		return 0
	}
	return th.live[len(th.live)-1].Ordinal
}

// forget drops the IDs older than the duplicate window.
func (th *memThread) forget(before time.Time) {
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
	c := Event{ID: e.ID, Type: e.Type, Time: StoredTime(e.Time), TTL: e.TTL}
	if len(e.Data) > 0 {
		c.Data = slices.Clone(e.Data)
	}
	if len(e.Meta) > 0 {
		c.Meta = maps.Clone(e.Meta)
	}
	return c
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
	now := m.begin()
	defer m.mu.Unlock()
	t := m.tenantLocked(key.Tenant, true, now)
	th := t.threadLocked(key.Thread, true)
	t.seq++
	if reason == "" {
		reason = "injected corrupt message"
	}
	th.live = append(th.live, memRecord{
		Record:  Record{Ordinal: t.seq, Event: Event{Time: StoredTime(now), Data: slices.Clone(data)}},
		corrupt: reason,
		stored:  now,
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
	return Record{Ordinal: r.Ordinal, Event: storedCopy(&r.Event)}, nil
}

// collect reads stored records into valid records and joined errors.
func collect(key ThreadKey, stored []memRecord) ([]Record, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	out := make([]Record, 0, len(stored))
	var corrupt []error
	for i := range stored {
		rec, err := stored[i].read(key)
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

// LoadSince implements Log.
func (m *Memory) LoadSince(ctx context.Context, key ThreadKey, cursor uint64, opts ...ReadOption) ([]Record, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.cold != nil && ResolveReadOptions(opts).Archived {
		return CollectRecords(m.Scan(ctx, key, cursor, opts...))
	}
	m.begin()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil {
		return nil, nil
	}
	return collect(key, th.live[th.after(cursor):])
}

// LoadLast implements Log.
func (m *Memory) LoadLast(ctx context.Context, key ThreadKey, n int) ([]Record, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	m.begin()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil {
		return nil, nil
	}
	return collect(key, th.live[max(0, len(th.live)-n):])
}

// Scan implements Log. It reads in chunks so that appends are not blocked
// while a long thread is consumed.
func (m *Memory) Scan(ctx context.Context, key ThreadKey, cursor uint64, opts ...ReadOption) iter.Seq2[Record, error] {
	if m.cold != nil && ResolveReadOptions(opts).Archived {
		return func(yield func(Record, error) bool) {
			if err := ValidateKey(key); err != nil {
				yield(Record{}, err)
				return
			}
			for rec, err := range m.cold.Read(ctx, key, cursor, func(ctx context.Context, cursor uint64) iter.Seq2[Record, error] {
				return m.Scan(ctx, key, cursor)
			}) {
				if !yield(rec, err) {
					return
				}
			}
		}
	}
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
	m.begin()
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
	if m.cold != nil {
		return m.cold.Archive(ctx, key, watermark, memHot{m})
	}
	return memHot{m}.Purge(ctx, key, watermark)
}

// memHot lends the memory log's hot part to its cold tier.
type memHot struct{ m *Memory }

// ScanStored implements HotThread.
func (h memHot) ScanStored(ctx context.Context, key ThreadKey, after uint64) iter.Seq2[ColdRecord, error] {
	const chunk = 256
	return func(yield func(ColdRecord, error) bool) {
		for {
			if err := ctx.Err(); err != nil {
				yield(ColdRecord{}, err)
				return
			}
			recs := h.m.loadChunk(key, after, chunk)
			for i := range recs {
				r := &recs[i]
				rec, err := r.read(key)
				cr := ColdRecord{Record: rec, Stored: r.stored}
				if err != nil {
					cr.Corrupt = err.(*CorruptEventError)
				}
				if !yield(cr, nil) {
					return
				}
				after = r.Ordinal
			}
			if len(recs) < chunk {
				return
			}
		}
	}
}

// Purge implements HotThread.
func (h memHot) Purge(ctx context.Context, key ThreadKey, through uint64) (int, error) {
	h.m.begin()
	defer h.m.mu.Unlock()
	th := h.m.thread(key)
	if th == nil || through == 0 {
		return 0, nil
	}
	n := th.after(through)
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
	var h Head
	if m.cold != nil {
		ch, err := m.cold.Head(ctx, key)
		if err != nil {
			return Head{}, err
		}
		h.ArchivedFirst, h.ArchivedLast, h.ArchivedCount = ch.First, ch.Last, ch.Count
	}
	m.begin()
	defer m.mu.Unlock()
	th := m.thread(key)
	if th == nil || len(th.live) == 0 {
		return h, nil
	}
	h.First, h.Last, h.Count = th.live[0].Ordinal, th.last(), uint64(len(th.live))
	return h, nil
}

// DeleteThread implements Deleter: a deletion record takes the tenant's
// next ordinal and everything of the thread before it goes.
func (m *Memory) DeleteThread(ctx context.Context, key ThreadKey) (int, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := m.deleteThread(key)
	if err == nil && m.cold != nil {
		err = m.cold.DeleteThread(ctx, key)
	}
	return n, err
}

func (m *Memory) deleteThread(key ThreadKey) (int, error) {
	now := m.begin()
	defer m.mu.Unlock()
	t := m.tenants[key.Tenant]
	if t == nil {
		return 0, nil
	}
	t.seq++
	t.deletions = append(t.deletions, memDeletion{thread: key.Thread, ordinal: t.seq, at: now})
	n := 0
	if th := t.threads[key.Thread]; th != nil {
		n = len(th.live)
		th.live = nil
	}
	t.deleteSnapshotLocked(key.Thread, t.seq)
	m.notify()
	return n, nil
}

// DeleteTenant implements Deleter.
func (m *Memory) DeleteTenant(ctx context.Context, tenant string) error {
	if err := ValidateTenant(tenant); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.deleteTenant(tenant)
	if m.cold != nil {
		return m.cold.DeleteTenant(ctx, tenant)
	}
	return nil
}

func (m *Memory) deleteTenant(tenant string) {
	now := m.begin()
	defer m.mu.Unlock()
	t := m.tenants[tenant]
	if t == nil {
		return
	}
	m.gone[tenant] = goneTenant{last: t.seq, at: now}
	delete(m.tenants, tenant)
	m.notify()
}

type goneTenant struct {
	last uint64
	at   time.Time
}

// TenantDeletions yields the deletion of every tenant deleted so far (the
// last one of each), for consumers that keep copies, like the bridge.
func (m *Memory) TenantDeletions(ctx context.Context) iter.Seq2[Deletion, error] {
	return func(yield func(Deletion, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(Deletion{}, err)
			return
		}
		m.mu.Lock()
		out := make([]Deletion, 0, len(m.gone))
		for t, g := range m.gone {
			out = append(out, Deletion{Tenant: t, Before: g.last + 1, Time: g.at})
		}
		m.mu.Unlock()
		sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
		for _, d := range out {
			if !yield(d, nil) {
				return
			}
		}
	}
}

// Threads implements ThreadLister.
func (m *Memory) Threads(ctx context.Context, tenant string, opts ...ThreadsOption) iter.Seq2[ThreadInfo, error] {
	o := ResolveThreadsOptions(opts)
	return func(yield func(ThreadInfo, error) bool) {
		if err := ValidateTenant(tenant); err != nil {
			yield(ThreadInfo{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(ThreadInfo{}, err)
			return
		}
		list := m.threadInfos(tenant, o)
		sortThreadInfos(list, o)
		n := 0
		for _, info := range list {
			if o.Recent && o.Before > 0 && info.LastOrdinal >= o.Before || !o.Recent && o.After != "" && info.Thread <= o.After {
				continue
			}
			if o.Limit > 0 && n == o.Limit {
				return
			}
			if !yield(info, nil) {
				return
			}
			n++
		}
	}
}

func (m *Memory) threadInfos(tenant string, o ThreadsOptions) []ThreadInfo {
	m.begin()
	defer m.mu.Unlock()
	t := m.tenants[tenant]
	if t == nil {
		return nil
	}
	out := make([]ThreadInfo, 0, len(t.threads))
	for name, th := range t.threads {
		if len(th.live) == 0 {
			continue
		}
		last := &th.live[len(th.live)-1]
		info := ThreadInfo{Thread: name, Events: uint64(len(th.live)), LastOrdinal: last.Ordinal, LastTime: last.Time}
		if last.corrupt == "" {
			info.LastType = last.Type
		}
		if o.First {
			info.FirstOrdinal = th.live[0].Ordinal
		}
		out = append(out, info)
	}
	return out
}

// sortThreadInfos orders a listing: by name, or by last ordinal, newest
// first.
func sortThreadInfos(list []ThreadInfo, o ThreadsOptions) {
	if o.Recent {
		sort.Slice(list, func(i, j int) bool { return list[i].LastOrdinal > list[j].LastOrdinal })
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Thread < list[j].Thread })
}
