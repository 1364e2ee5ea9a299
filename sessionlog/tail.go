package sessionlog

import (
	"context"
	"iter"
	"sort"
)

// TenantRecord is a record of a tenant-wide tail, naming its thread.
type TenantRecord struct {
	Thread string
	Record
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
	TailTenant(ctx context.Context, tenant string, cursor uint64) iter.Seq2[TenantRecord, error]
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
			if rec.Thread == key.Thread && !yield(rec.Record, err) {
				return
			}
		}
	}
}

// TailTenant implements Tailer.
func (m *Memory) TailTenant(ctx context.Context, tenant string, cursor uint64) iter.Seq2[TenantRecord, error] {
	return func(yield func(TenantRecord, error) bool) {
		if err := ValidateTenant(tenant); err != nil {
			yield(TenantRecord{}, err)
			return
		}
		for {
			recs, changed := m.tenantSince(tenant, cursor)
			for _, e := range recs {
				rec, err := e.rec.read(ThreadKey{Tenant: tenant, Thread: e.thread})
				if !yield(TenantRecord{Thread: e.thread, Record: rec}, err) {
					return
				}
				cursor = e.rec.Ordinal
			}
			if len(recs) > 0 {
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

// tenantSince returns the tenant's live records after cursor in ordinal
// order, and a channel closed at the next append anywhere in the log.
func (m *Memory) tenantSince(tenant string, cursor uint64) ([]tenantEntry, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := m.changed
	t := m.tenants[tenant]
	if t == nil {
		return nil, changed
	}
	var out []tenantEntry
	for name, th := range t.threads {
		for i := th.after(cursor); i < len(th.live); i++ {
			out = append(out, tenantEntry{thread: name, rec: th.live[i]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rec.Ordinal < out[j].rec.Ordinal })
	return out, changed
}

type tenantEntry struct {
	thread string
	rec    memRecord
}
