package sessionlog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxSnapshotBytes is the largest state a snapshot may hold. It is one
// limit for every backend, so that a state saved on one is accepted by
// every other; on JetStream it fits under the server's default maximum
// payload (1 MB) with room for the headers.
const MaxSnapshotBytes = 512 << 10

// Snapshot is the saved state of a thread: what a runtime built from the
// thread's events up to and including Ordinal. A runtime hydrates from it
// plus the events after it:
//
//	snap, err := log.LoadSnapshot(ctx, key)
//	if errors.Is(err, sessionlog.ErrNoSnapshot) {
//		snap = sessionlog.Snapshot{} // start from the initial state
//	} else if err != nil {
//		return err
//	}
//	recs, err := log.LoadSince(ctx, key, snap.Ordinal)
type Snapshot struct {
	// Ordinal is the ordinal of the last event the state includes.
	Ordinal uint64
	// State is the opaque saved state.
	State []byte
	// Time is when the snapshot was saved, by the log's clock (the
	// server's on JetStream).
	Time time.Time
}

// Snapshotter saves and loads one snapshot per thread. Snapshots are kept
// beside the thread's events, never among them: they are not events, so
// reads, heads, tails, listings, tenant reads and the bridge never see
// them, and ArchiveBefore leaves them alone. DeleteThread and DeleteTenant
// delete them with the thread or the tenant.
//
// A thread holds at most one snapshot, the latest saved. Snapshots only
// move forward: saving one whose ordinal is below the stored snapshot's
// fails with ErrConflict and stores nothing, so a slow runtime cannot
// replace a newer snapshot (whose events may have been archived since)
// with an older one. Saving at the stored ordinal replaces it, so
// retrying a save of unknown outcome is safe.
type Snapshotter interface {
	// SaveSnapshot stores state as the thread's snapshot at ordinal, the
	// ordinal of the last event the state includes, replacing the
	// thread's earlier snapshot. Once it returned, every later
	// LoadSnapshot from any client sees it (on a replicated stream too).
	//
	// ordinal must be positive and no greater than the last ordinal the
	// tenant has given out (so no event appended later can have an
	// ordinal at or below it, and hydrating with LoadSince(ordinal)
	// misses none): otherwise ErrInvalidSnapshot. A state larger than
	// MaxSnapshotBytes returns ErrSnapshotTooLarge; an ordinal below the
	// stored snapshot's returns ErrConflict. In every error case nothing
	// is stored. An invalid key returns ErrInvalidKey.
	SaveSnapshot(ctx context.Context, key ThreadKey, ordinal uint64, state []byte) error

	// LoadSnapshot returns the thread's latest snapshot. A thread without
	// one (never saved, deleted, an unknown tenant) returns ErrNoSnapshot
	// and creates nothing. A stored snapshot that does not follow the
	// protocol (written by a foreign client) returns an error matching
	// ErrCorruptSnapshot: the caller can hydrate from the thread's start.
	LoadSnapshot(ctx context.Context, key ThreadKey) (Snapshot, error)
}

// Snapshot errors. Backends wrap them with context; test with errors.Is.
var (
	// ErrNoSnapshot is returned by LoadSnapshot when the thread has no
	// snapshot. It is an error rather than a zero Snapshot so that a
	// caller cannot mistake "nothing saved" for a saved empty state:
	// it must choose its initial state and load from ordinal 0.
	ErrNoSnapshot = errors.New("sessionlog: no snapshot")

	// ErrInvalidSnapshot is returned by SaveSnapshot when the ordinal is
	// 0 or greater than the tenant's last ordinal. Nothing is stored.
	ErrInvalidSnapshot = errors.New("sessionlog: invalid snapshot")

	// ErrSnapshotTooLarge is returned by SaveSnapshot when the state is
	// larger than MaxSnapshotBytes (or what the server takes). Nothing is
	// stored.
	ErrSnapshotTooLarge = errors.New("sessionlog: snapshot too large")

	// ErrCorruptSnapshot is returned by LoadSnapshot when the stored
	// snapshot does not follow the protocol: its ordinal is missing or
	// malformed, it is too large, or it is not on the thread's subject.
	ErrCorruptSnapshot = errors.New("sessionlog: corrupt snapshot")
)

// ValidateSnapshot checks what SaveSnapshot can check without the log:
// the key, a positive ordinal and the state's size.
func ValidateSnapshot(key ThreadKey, ordinal uint64, state []byte) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if ordinal == 0 {
		return fmt.Errorf("%w: ordinal 0: a snapshot includes at least one event", ErrInvalidSnapshot)
	}
	if len(state) > MaxSnapshotBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrSnapshotTooLarge, len(state), MaxSnapshotBytes)
	}
	return nil
}
