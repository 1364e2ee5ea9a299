package sessionlogtest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

func snapshotter(t *testing.T, log sessionlog.Log) sessionlog.Snapshotter {
	t.Helper()
	s, ok := log.(sessionlog.Snapshotter)
	if !ok {
		// A log wrapping another (a cold tier, say) may not keep
		// snapshots: the rules do not apply to it.
		t.Skipf("%T does not implement sessionlog.Snapshotter: snapshot rules skipped", log)
	}
	return s
}

func mustSaveSnapshot(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, ordinal uint64, state string) {
	t.Helper()
	require.NoError(t, snapshotter(t, log).SaveSnapshot(ctxFor(t), key, ordinal, []byte(state)))
}

func mustLoadSnapshot(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey) sessionlog.Snapshot {
	t.Helper()
	s, err := snapshotter(t, log).LoadSnapshot(ctxFor(t), key)
	require.NoError(t, err)
	return s
}

func requireNoSnapshot(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey) {
	t.Helper()
	_, err := snapshotter(t, log).LoadSnapshot(ctxFor(t), key)
	require.ErrorIs(t, err, sessionlog.ErrNoSnapshot, "thread %v", key)
}

var snapshotRules = []rule{
	{"a thread without a snapshot reports ErrNoSnapshot and creates nothing", func(t *testing.T, log sessionlog.Log) {
		requireNoSnapshot(t, log, noKey)
		mustAppend(t, log, keyA, evs(0, 1))
		requireNoSnapshot(t, log, keyA)
		requireNoSnapshot(t, log, keyB)
		require.Zero(t, mustHead(t, log, noKey))
		tenants, err := tenantReader(t, log).Tenants(ctxFor(t))
		require.NoError(t, err)
		for _, info := range tenants {
			require.NotEqual(t, noKey.Tenant, info.Tenant, "loading a snapshot created a tenant")
		}
	}},
	{"a saved snapshot is read back at once with its ordinal, state and time", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 3))
		before := time.Now().Add(-time.Minute)
		mustSaveSnapshot(t, log, keyA, last, `{"turns":3}`)
		s := mustLoadSnapshot(t, log, keyA)
		require.Equal(t, last, s.Ordinal)
		require.Equal(t, `{"turns":3}`, string(s.State))
		require.True(t, s.Time.After(before), "snapshot time %v is not when it was saved", s.Time)
	}},
	{"hydrating from a snapshot and the events after it gives the whole thread", func(t *testing.T, log sessionlog.Log) {
		mid := mustAppend(t, log, keyA, evs(0, 5))
		mustSaveSnapshot(t, log, keyA, mid, "state after 5")
		mustAppend(t, log, keyB, evs(100, 2)) // interleaved in the tenant
		mustAppend(t, log, keyA, evs(5, 3))
		s := mustLoadSnapshot(t, log, keyA)
		rest := mustLoad(t, log, keyA, s.Ordinal)
		require.Equal(t, "state after 5", string(s.State))
		require.Equal(t, eventPayloads(evs(5, 3)), payloads(rest))
	}},
	{"a newer snapshot replaces the older one", func(t *testing.T, log sessionlog.Log) {
		first := mustAppend(t, log, keyA, evs(0, 2))
		mustSaveSnapshot(t, log, keyA, first, "old")
		second := mustAppend(t, log, keyA, evs(2, 2))
		mustSaveSnapshot(t, log, keyA, second, "new")
		s := mustLoadSnapshot(t, log, keyA)
		require.Equal(t, second, s.Ordinal)
		require.Equal(t, "new", string(s.State))
	}},
	{"a snapshot older than the stored one is refused with ErrConflict", func(t *testing.T, log sessionlog.Log) {
		first := mustAppend(t, log, keyA, evs(0, 2))
		second := mustAppend(t, log, keyA, evs(2, 2))
		mustSaveSnapshot(t, log, keyA, second, "new")
		err := snapshotter(t, log).SaveSnapshot(ctxFor(t), keyA, first, []byte("stale"))
		require.ErrorIs(t, err, sessionlog.ErrConflict)
		s := mustLoadSnapshot(t, log, keyA)
		require.Equal(t, second, s.Ordinal)
		require.Equal(t, "new", string(s.State))
	}},
	{"saving again at the stored ordinal replaces the snapshot, so retries are safe", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		mustSaveSnapshot(t, log, keyA, last, "one")
		mustSaveSnapshot(t, log, keyA, last, "two")
		s := mustLoadSnapshot(t, log, keyA)
		require.Equal(t, last, s.Ordinal)
		require.Equal(t, "two", string(s.State))
	}},
	{"an empty state and the largest state are stored as they are", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 1))
		mustSaveSnapshot(t, log, keyA, last, "")
		s := mustLoadSnapshot(t, log, keyA)
		require.Equal(t, last, s.Ordinal)
		require.Empty(t, s.State)
		big := bytes.Repeat([]byte{0, 1, 0xff, '\r', '\n'}, sessionlog.MaxSnapshotBytes/5)
		big = append(big, make([]byte, sessionlog.MaxSnapshotBytes-len(big))...)
		require.NoError(t, snapshotter(t, log).SaveSnapshot(ctxFor(t), keyA, last, big))
		s = mustLoadSnapshot(t, log, keyA)
		require.True(t, bytes.Equal(big, s.State), "the largest state came back changed (%d bytes)", len(s.State))
	}},
	{"a snapshot may be saved at any ordinal the tenant gave out, even another thread's", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		other := mustAppend(t, log, keyB, evs(1, 1))
		mustSaveSnapshot(t, log, keyA, other, "caught up to the tenant")
		require.Equal(t, other, mustLoadSnapshot(t, log, keyA).Ordinal)
		require.Empty(t, mustLoad(t, log, keyA, other))
		// A thread with no event of its own, once its tenant has some.
		mustSaveSnapshot(t, log, key("no-events"), other, "initial")
		require.Equal(t, other, mustLoadSnapshot(t, log, key("no-events")).Ordinal)
	}},
	{"an ordinal of 0 or beyond the tenant's last ordinal is refused and stores nothing", func(t *testing.T, log sessionlog.Log) {
		s := snapshotter(t, log)
		err := s.SaveSnapshot(ctxFor(t), keyA, 1, []byte("x"))
		require.ErrorIs(t, err, sessionlog.ErrInvalidSnapshot, "a tenant without events has no ordinal to snapshot at")
		last := mustAppend(t, log, keyA, evs(0, 2))
		require.ErrorIs(t, s.SaveSnapshot(ctxFor(t), keyA, 0, []byte("x")), sessionlog.ErrInvalidSnapshot)
		require.ErrorIs(t, s.SaveSnapshot(ctxFor(t), keyA, last+1, []byte("x")), sessionlog.ErrInvalidSnapshot,
			"an ordinal beyond the tenant's last would hide the next events from hydration")
		requireNoSnapshot(t, log, keyA)
		next := mustAppend(t, log, keyA, evs(2, 1))
		require.Equal(t, eventPayloads(evs(2, 1)), payloads(mustLoad(t, log, keyA, next-1)))
	}},
	{"an oversize state is refused with ErrSnapshotTooLarge and stores nothing", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 1))
		err := snapshotter(t, log).SaveSnapshot(ctxFor(t), keyA, last, make([]byte, sessionlog.MaxSnapshotBytes+1))
		require.ErrorIs(t, err, sessionlog.ErrSnapshotTooLarge)
		requireNoSnapshot(t, log, keyA)
	}},
	{"invalid keys and cancelled contexts are refused", func(t *testing.T, log sessionlog.Log) {
		s := snapshotter(t, log)
		for _, bad := range []sessionlog.ThreadKey{{Tenant: "", Thread: "t"}, {Tenant: "acme", Thread: ""}, {Tenant: "acme", Thread: "a\x00b"}} {
			require.ErrorIs(t, s.SaveSnapshot(ctxFor(t), bad, 1, nil), sessionlog.ErrInvalidKey)
			_, err := s.LoadSnapshot(ctxFor(t), bad)
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey)
		}
		last := mustAppend(t, log, keyA, evs(0, 1))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, s.SaveSnapshot(ctx, keyA, last, []byte("x")), context.Canceled)
		_, err := s.LoadSnapshot(ctx, keyA)
		require.ErrorIs(t, err, context.Canceled)
		requireNoSnapshot(t, log, keyA)
	}},
	{"snapshots are isolated by thread and tenant", func(t *testing.T, log sessionlog.Log) {
		a := mustAppend(t, log, keyA, evs(0, 1))
		x := mustAppend(t, log, keyX, evs(0, 1))
		mustSaveSnapshot(t, log, keyA, a, "acme a")
		requireNoSnapshot(t, log, keyB)
		requireNoSnapshot(t, log, keyX)
		mustSaveSnapshot(t, log, keyX, x, "globex a")
		require.Equal(t, "acme a", string(mustLoadSnapshot(t, log, keyA).State))
		require.Equal(t, "globex a", string(mustLoadSnapshot(t, log, keyX).State))
		odd := sessionlog.ThreadKey{Tenant: "a.b*>c", Thread: "$snapshot"}
		o := mustAppend(t, log, odd, evs(0, 1))
		mustSaveSnapshot(t, log, odd, o, "odd")
		require.Equal(t, "odd", string(mustLoadSnapshot(t, log, odd).State))
		requireNoSnapshot(t, log, sessionlog.ThreadKey{Tenant: odd.Tenant, Thread: "other"})
	}},
	{"snapshots are not events: reads, heads, listings and tenant reads do not see them", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		head := mustHead(t, log, keyA)
		mustSaveSnapshot(t, log, keyA, last, "state")
		mustSaveSnapshot(t, log, keyB, last, "state of b")
		requireThread(t, log, keyA, eventPayloads(evs(0, 2)))
		require.Equal(t, head, mustHead(t, log, keyA))
		require.Zero(t, mustHead(t, log, keyB))
		require.Equal(t, []string{keyA.Thread}, threadNames(listThreads(t, log, keyA.Tenant)))
		recs, err := log.LoadLast(ctxFor(t), keyA, 5)
		require.NoError(t, err)
		require.Equal(t, eventPayloads(evs(0, 2)), payloads(recs))
		var scanned []uint64
		for rec, err := range tenantReader(t, log).ScanTenant(ctxFor(t), keyA.Tenant, 0, sessionlog.IncludeDeletions()) {
			require.NoError(t, err)
			scanned = append(scanned, rec.Ordinal)
		}
		require.Equal(t, ordinals(mustLoad(t, log, keyA, 0)), scanned)
		// An empty append still reports the thread's last event.
		again, err := log.Append(ctxFor(t), keyA, nil)
		require.NoError(t, err)
		require.Equal(t, last, again)
	}},
	{"a tail does not see snapshots", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 1))
		ctx := tailCtx(t)
		got := make(chan sessionlog.TenantRecord, 4)
		errc := make(chan error, 1)
		go func() {
			for rec, err := range tailer(t, log).TailTenant(ctx, keyA.Tenant, last, sessionlog.IncludeDeletions()) {
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						errc <- err
					}
					return
				}
				got <- rec
			}
		}()
		mustSaveSnapshot(t, log, keyA, last, "state")
		next := mustAppend(t, log, keyA, evs(1, 1))
		select {
		case rec := <-got:
			require.Nil(t, rec.Deletion)
			require.Equal(t, next, rec.Ordinal, "the tail's first item after the snapshot is the next event")
		case err := <-errc:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("the tail delivered nothing")
		}
	}},
	{"archiving leaves the snapshot", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 3))
		mustSaveSnapshot(t, log, keyA, last, "state")
		n, err := log.ArchiveBefore(ctxFor(t), keyA, last)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		s := mustLoadSnapshot(t, log, keyA)
		require.Equal(t, last, s.Ordinal)
		require.Equal(t, "state", string(s.State))
		// And a snapshot may follow an archive of every event.
		mustSaveSnapshot(t, log, keyA, last, "saved after the archive")
		require.Equal(t, "saved after the archive", string(mustLoadSnapshot(t, log, keyA).State))
	}},
	{"deleting a thread deletes its snapshot and no other", func(t *testing.T, log sessionlog.Log) {
		a := mustAppend(t, log, keyA, evs(0, 1))
		b := mustAppend(t, log, keyB, evs(1, 1))
		x := mustAppend(t, log, keyX, evs(0, 1))
		mustSaveSnapshot(t, log, keyA, a, "a")
		mustSaveSnapshot(t, log, keyB, b, "b")
		mustSaveSnapshot(t, log, keyX, x, "x")
		_, err := deleter(t, log).DeleteThread(ctxFor(t), keyA)
		require.NoError(t, err)
		requireNoSnapshot(t, log, keyA)
		require.Equal(t, "b", string(mustLoadSnapshot(t, log, keyB).State))
		require.Equal(t, "x", string(mustLoadSnapshot(t, log, keyX).State))
		// The thread's next life starts without one, and may save its own.
		next := mustAppend(t, log, keyA, evs(2, 1))
		requireNoSnapshot(t, log, keyA)
		mustSaveSnapshot(t, log, keyA, next, "a again")
		require.Equal(t, next, mustLoadSnapshot(t, log, keyA).Ordinal)
	}},
	{"a snapshot from before a thread's deletion cannot bring its state back", func(t *testing.T, log sessionlog.Log) {
		old := mustAppend(t, log, keyA, evs(0, 2))
		mustSaveSnapshot(t, log, keyA, old, "old life")
		_, err := deleter(t, log).DeleteThread(ctxFor(t), keyA)
		require.NoError(t, err)
		err = snapshotter(t, log).SaveSnapshot(ctxFor(t), keyA, old, []byte("old life, saved late"))
		require.ErrorIs(t, err, sessionlog.ErrConflict)
		requireNoSnapshot(t, log, keyA)
	}},
	{"deleting a tenant deletes its snapshots and no other tenant's", func(t *testing.T, log sessionlog.Log) {
		a := mustAppend(t, log, keyA, evs(0, 1))
		x := mustAppend(t, log, keyX, evs(0, 1))
		mustSaveSnapshot(t, log, keyA, a, "a")
		mustSaveSnapshot(t, log, keyB, a, "b")
		mustSaveSnapshot(t, log, keyX, x, "x")
		require.NoError(t, deleter(t, log).DeleteTenant(ctxFor(t), keyA.Tenant))
		requireNoSnapshot(t, log, keyA)
		requireNoSnapshot(t, log, keyB)
		require.Equal(t, "x", string(mustLoadSnapshot(t, log, keyX).State))
		// The tenant created again has none, and numbers on.
		next := mustAppend(t, log, keyA, evs(1, 1))
		require.Greater(t, next, a)
		requireNoSnapshot(t, log, keyA)
		mustSaveSnapshot(t, log, keyA, next, "a again")
		require.Equal(t, "a again", string(mustLoadSnapshot(t, log, keyA).State))
	}},
}
