package sessionlog

import (
	"context"
	"fmt"
	"slices"
)

// SaveSnapshot implements Snapshotter. The tenant's sequence bounds the
// ordinal, as the tenant stream's last sequence does on JetStream.
func (m *Memory) SaveSnapshot(ctx context.Context, key ThreadKey, ordinal uint64, state []byte) error {
	if err := ValidateSnapshot(key, ordinal, state); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := m.begin()
	defer m.mu.Unlock()
	t := m.tenants[key.Tenant]
	if t == nil || ordinal > t.seq {
		var last uint64
		if t != nil {
			last = t.seq
		}
		return fmt.Errorf("%w: ordinal %d is beyond the tenant's last ordinal %d", ErrInvalidSnapshot, ordinal, last)
	}
	if old, ok := t.snapshots[key.Thread]; ok && old.deleted > 0 && ordinal < old.deleted {
		return fmt.Errorf("%w: snapshot at ordinal %d is from before the thread's deletion at %d", ErrConflict, ordinal, old.deleted)
	} else if ok && ordinal < old.Ordinal {
		return fmt.Errorf("%w: snapshot at ordinal %d is older than the stored one at %d", ErrConflict, ordinal, old.Ordinal)
	}
	if t.snapshots == nil {
		t.snapshots = make(map[string]memSnapshot)
	}
	t.snapshots[key.Thread] = memSnapshot{Snapshot: Snapshot{Ordinal: ordinal, State: slices.Clone(state), Time: StoredTime(now)}}
	return nil
}

// LoadSnapshot implements Snapshotter.
func (m *Memory) LoadSnapshot(ctx context.Context, key ThreadKey) (Snapshot, error) {
	if err := ValidateKey(key); err != nil {
		return Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	m.begin()
	defer m.mu.Unlock()
	t := m.tenants[key.Tenant]
	if t == nil {
		return Snapshot{}, ErrNoSnapshot
	}
	s, ok := t.snapshots[key.Thread]
	if !ok || s.deleted > 0 {
		return Snapshot{}, ErrNoSnapshot
	}
	out := s.Snapshot
	out.State = slices.Clone(s.State)
	return out, nil
}

// memSnapshot is a thread's snapshot, or with deleted set the mark of the
// thread's deletion at that ordinal: no snapshot from before it may be
// saved (like the deletion mark on JetStream).
type memSnapshot struct {
	Snapshot
	deleted uint64
}

// deleteSnapshotLocked replaces the thread's snapshot with the mark of its
// deletion at ordinal; m.mu must be held.
func (t *memTenant) deleteSnapshotLocked(thread string, ordinal uint64) {
	if t.snapshots == nil {
		t.snapshots = make(map[string]memSnapshot)
	}
	t.snapshots[thread] = memSnapshot{deleted: ordinal}
}
