package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

var errKilled = errors.New("killed after the segment write")

// killingStore stores every object, then fails the put numbered killAt
// (1-based) as if the process died right after that write, before the
// purge could run. It overrides one method of a real store.
type killingStore struct {
	sessionlog.ColdStore
	puts   atomic.Int64
	killAt int64
}

func (s *killingStore) Put(ctx context.Context, tenant, name string, data []byte) error {
	if err := s.ColdStore.Put(ctx, tenant, name, data); err != nil {
		return err
	}
	if s.puts.Add(1) == s.killAt {
		return errKilled
	}
	return nil
}

func readThrough(t *testing.T, log *jetstream.Log, key sessionlog.ThreadKey) []uint64 {
	t.Helper()
	recs, err := log.LoadSince(context.Background(), key, 0, sessionlog.IncludeArchived())
	require.NoError(t, err)
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Ordinal
	}
	return out
}

// TestArchiveKilledBetweenSegmentWriteAndPurge kills an archive after its
// second segment was written, restarts the server, and checks that a read
// through sees every event once, and that archiving again finishes the job.
func TestArchiveKilledBetweenSegmentWriteAndPurge(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	store := newColdStore(t, nc, 1)
	scheme := freshScheme()
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "crash"}
	ctx := context.Background()

	killing := &killingStore{ColdStore: store, killAt: 2}
	log := newLog(t, nc, jetstream.WithScheme(scheme), jetstream.WithColdStore(killing), jetstream.WithColdSegmentBytes(2000))
	for i := range 30 {
		_, err := log.Append(ctx, key, []sessionlog.Event{{Type: "t", Data: fmt.Appendf(nil, `{"n":%d,"pad":"%0200d"}`, i, i)}})
		require.NoError(t, err)
		_, err = log.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "other"}, []sessionlog.Event{{Type: "t"}})
		require.NoError(t, err)
	}
	want := readThrough(t, log, key)
	require.Len(t, want, 30)
	_, err := log.ArchiveBefore(ctx, key, want[24])
	require.ErrorIs(t, err, errKilled)

	srv.Restart()
	log = newLog(t, srv.Connect(t), jetstream.WithScheme(scheme), jetstream.WithColdStore(store), jetstream.WithColdSegmentBytes(2000))
	h, err := log.Head(ctx, key)
	require.NoError(t, err)
	require.Equal(t, uint64(30), h.Count, "nothing was purged before the kill")
	require.NotZero(t, h.ArchivedCount, "the segments written before the kill stay")
	require.Equal(t, want, readThrough(t, log, key), "no duplicate after the kill")

	n, err := log.ArchiveBefore(ctx, key, want[24])
	require.NoError(t, err)
	require.Equal(t, 25, n, "the rerun purges what was archived")
	require.Equal(t, want, readThrough(t, log, key), "no gap after the rerun")
	h, err = log.Head(ctx, key)
	require.NoError(t, err)
	require.Equal(t, sessionlog.Head{First: want[25], Last: want[29], Count: 5, ArchivedFirst: want[0], ArchivedLast: want[24], ArchivedCount: 25}, h)
	hot, err := log.LoadSince(ctx, key, 0)
	require.NoError(t, err)
	require.Len(t, hot, 5)
}
