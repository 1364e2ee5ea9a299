package sessionlog

import (
	"context"
	"fmt"
	"iter"
	"sort"
)

// TenantRecord is a record of a tenant-wide read, naming its thread. When
// the read was asked to include deletions (IncludeDeletions), Deletion is
// set on the records that stand for a thread deletion instead of an
// event; they hold only their ordinal.
type TenantRecord struct {
	Thread string
	Record
	Deletion *Deletion
}

// Tailer follows threads live.
//
// A tail first yields every live event after the cursor (catch-up), then
// each new event as it is appended, in ordinal order, with no gap and no
// duplicate, until ctx ends: then the sequence ends without an error. A
// stored message that is not a valid event is yielded in its place as a
// *CorruptEventError (matching ErrCorruptEvent) and the tail goes on after
// it. Any other error is unrecoverable (an invalid key, a permission
// error): it is yielded once, and the sequence ends. Backends hide
// transient failures (reconnects, server restarts, leader changes) by
// resuming after the last yielded ordinal. Breaking out of the loop stops
// the tail and releases what it holds on the server.
//
// Tailing a tenant or thread that does not exist yet is allowed: the tail
// waits for its first events and creates nothing.
type Tailer interface {
	// Tail follows one thread from cursor: pass 0 for everything, or the
	// last ordinal seen to resume exactly after it.
	Tail(ctx context.Context, key ThreadKey, cursor uint64) iter.Seq2[Record, error]

	// TailTenant follows every thread of a tenant, including threads
	// created while it runs, in ordinal order. Ordinals are the tenant's
	// sequence, so one cursor (the last ordinal seen, whatever its thread)
	// resumes the whole tenant.
	TailTenant(ctx context.Context, tenant string, cursor uint64, opts ...ReadOption) iter.Seq2[TenantRecord, error]
}

var _ Tailer = (*Memory)(nil)

// Tail implements Tailer.
func (m *Memory) Tail(ctx context.Context, key ThreadKey, cursor uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := ValidateKey(key); err != nil {
			yield(Record{}, err)
			return
		}
		for rec, err := range m.TailTenant(ctx, key.Tenant, cursor) {
			if (rec.Thread == key.Thread || err != nil && rec.Thread == "") && !yield(rec.Record, err) {
				return
			}
		}
	}
}

// TailTenant implements Tailer.
func (m *Memory) TailTenant(ctx context.Context, tenant string, cursor uint64, opts ...ReadOption) iter.Seq2[TenantRecord, error] {
	o := ResolveReadOptions(opts)
	return func(yield func(TenantRecord, error) bool) {
		if err := ValidateTenant(tenant); err != nil {
			yield(TenantRecord{}, err)
			return
		}
		existed := false
		for {
			entries, exists, changed := m.tenantSince(tenant, cursor, 0, o.Deletions)
			if exists {
				existed = true
			} else if existed {
				yield(TenantRecord{}, fmt.Errorf("%w: tenant %q", ErrTenantDeleted, tenant))
				return
			}
			for _, e := range entries {
				if !yield(e.read(tenant)) {
					return
				}
				cursor = e.ordinal()
			}
			if len(entries) > 0 {
				continue // more may have arrived while yielding
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}
}

// tenantEntry is a stored record of a thread, or a thread deletion.
type tenantEntry struct {
	thread   string
	rec      memRecord
	deletion *memDeletion
}

func (e *tenantEntry) ordinal() uint64 {
	if e.deletion != nil {
		return e.deletion.ordinal
	}
	return e.rec.Ordinal
}

func (e *tenantEntry) read(tenant string) (TenantRecord, error) {
	if d := e.deletion; d != nil {
		return TenantRecord{Thread: d.thread, Record: Record{Ordinal: d.ordinal},
			Deletion: &Deletion{Tenant: tenant, Thread: d.thread, Before: d.ordinal, Time: d.at}}, nil
	}
	rec, err := e.rec.read(ThreadKey{Tenant: tenant, Thread: e.thread})
	return TenantRecord{Thread: e.thread, Record: rec}, err
}

// tenantSince returns the tenant's stored records (and deletions, when
// asked) after cursor in ordinal order, at most n of them when n > 0,
// whether the tenant exists, and a channel closed at the next change
// anywhere in the log. At most n are taken from each thread before they
// are merged, so a chunk never copies a whole large tenant.
func (m *Memory) tenantSince(tenant string, cursor uint64, n int, deletions bool) ([]tenantEntry, bool, <-chan struct{}) {
	m.begin()
	defer m.mu.Unlock()
	changed := m.changed
	t := m.tenants[tenant]
	if t == nil {
		return nil, false, changed
	}
	var out []tenantEntry
	for name, th := range t.threads {
		i := th.after(cursor)
		end := len(th.live)
		if n > 0 {
			end = min(end, i+n)
		}
		for j := i; j < end; j++ {
			out = append(out, tenantEntry{thread: name, rec: th.live[j]})
		}
	}
	if deletions {
		for i := range t.deletions {
			if d := t.deletions[i]; d.ordinal > cursor {
				out = append(out, tenantEntry{thread: d.thread, deletion: &d})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ordinal() < out[j].ordinal() })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, true, changed
}
