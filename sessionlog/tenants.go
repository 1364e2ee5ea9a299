package sessionlog

import (
	"context"
	"iter"
	"sort"
	"time"
)

// TenantInfo describes one tenant of a log.
type TenantInfo struct {
	Tenant string
	// Events is how many live events the tenant holds over all threads,
	// counting messages that are not valid events; Threads how many threads
	// hold at least one; Bytes about how much they weigh.
	Events, Threads, Bytes uint64
	// FirstOrdinal is the tenant's lowest live ordinal (0: none live);
	// LastOrdinal the highest it ever assigned, archived or not.
	FirstOrdinal, LastOrdinal uint64
	// Created is when the tenant's storage was created.
	Created time.Time
	// Replicas is how many copies of the tenant the backend keeps.
	Replicas int
}

// TenantReader reads whole tenants: what a bridge feeding analytics needs
// beside Tailer.TailTenant.
type TenantReader interface {
	// Tenants lists every tenant that has storage, in no particular order.
	Tenants(ctx context.Context) ([]TenantInfo, error)
	// ScanTenant yields every live event of every thread of the tenant
	// after cursor, in ordinal order, then ends, holding a bounded number
	// of events at once. A stored message that is not a valid event is
	// yielded in its place as a *CorruptEventError and the scan goes on;
	// any other error is the last element. An unknown tenant yields
	// nothing.
	ScanTenant(ctx context.Context, tenant string, cursor uint64, opts ...ReadOption) iter.Seq2[TenantRecord, error]
}

var _ TenantReader = (*Memory)(nil)

// Tenants implements TenantReader.
func (m *Memory) Tenants(ctx context.Context) ([]TenantInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.begin()
	defer m.mu.Unlock()
	out := make([]TenantInfo, 0, len(m.tenants))
	for name, t := range m.tenants {
		info := TenantInfo{Tenant: name, LastOrdinal: t.seq, Created: t.created, Replicas: 1}
		for _, th := range t.threads {
			if len(th.live) == 0 {
				continue
			}
			info.Threads++
			info.Events += uint64(len(th.live))
			if first := th.live[0].Ordinal; info.FirstOrdinal == 0 || first < info.FirstOrdinal {
				info.FirstOrdinal = first
			}
			for i := range th.live {
				info.Bytes += uint64(EventSize(&th.live[i].Event))
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out, nil
}

// ScanTenant implements TenantReader, reading in chunks so that appends
// are not blocked while a large tenant is consumed.
func (m *Memory) ScanTenant(ctx context.Context, tenant string, cursor uint64, opts ...ReadOption) iter.Seq2[TenantRecord, error] {
	const chunk = 256
	o := ResolveReadOptions(opts)
	return func(yield func(TenantRecord, error) bool) {
		if err := ValidateTenant(tenant); err != nil {
			yield(TenantRecord{}, err)
			return
		}
		for {
			if err := ctx.Err(); err != nil {
				yield(TenantRecord{}, err)
				return
			}
			entries, _, _ := m.tenantSince(tenant, cursor, chunk, o.Deletions)
			for _, e := range entries {
				if !yield(e.read(tenant)) {
					return
				}
				cursor = e.ordinal()
			}
			if len(entries) < chunk {
				return
			}
		}
	}
}

// Pending returns how many live messages the tenant holds after the
// ordinal after.
func (m *Memory) Pending(ctx context.Context, tenant string, after uint64) (uint64, error) {
	if err := ValidateTenant(tenant); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	entries, _, _ := m.tenantSince(tenant, after, 0, true)
	return uint64(len(entries)), nil
}
