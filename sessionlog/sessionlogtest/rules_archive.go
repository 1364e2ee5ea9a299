package sessionlogtest

import (
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

func mustArchive(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, watermark uint64) int {
	t.Helper()
	n, err := log.ArchiveBefore(ctxFor(t), key, watermark)
	require.NoError(t, err)
	return n
}

var archiveRules = []rule{
	{"archive before 0 removes nothing", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 3))
		require.Equal(t, 0, mustArchive(t, log, keyA, 0))
		requireThread(t, log, keyA, eventPayloads(evs(0, 3)))
	}},
	{"archive before the first ordinal removes only that event", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 3))
		recs := mustLoad(t, log, keyA, 0)
		require.Equal(t, 1, mustArchive(t, log, keyA, recs[0].Ordinal))
		requireThread(t, log, keyA, eventPayloads(evs(1, 2)))
	}},
	{"archive between two ordinals removes the ones at or below it", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 2))
		mustAppend(t, log, keyB, evs(0, 5))
		mustAppend(t, log, keyA, evs(2, 2))
		recs := mustLoad(t, log, keyA, 0)
		require.Greater(t, recs[2].Ordinal, recs[1].Ordinal+1)
		require.Equal(t, 2, mustArchive(t, log, keyA, recs[1].Ordinal+1))
		requireThread(t, log, keyA, eventPayloads(evs(2, 2)))
	}},
	{"archive exactly at the head removes every event", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 4))
		require.Equal(t, 4, mustArchive(t, log, keyA, last))
		requireThread(t, log, keyA, nil)
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyA))
	}},
	{"archive past the head does not hide later appends", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		require.Equal(t, 2, mustArchive(t, log, keyA, last+100))
		next := mustAppend(t, log, keyA, evs(2, 3))
		require.Less(t, next, last+100, "later ordinals fall under the earlier watermark")
		requireThread(t, log, keyA, eventPayloads(evs(2, 3)))
		require.Equal(t, 0, mustArchive(t, log, keyA, last), "the effective watermark was the head, not the larger value asked for")
		requireThread(t, log, keyA, eventPayloads(evs(2, 3)))
		require.Equal(t, 3, mustArchive(t, log, keyA, ^uint64(0)), "the largest watermark archives what exists")
		requireThread(t, log, keyA, nil)
	}},
	{"archive with a lower or equal watermark is a no-op returning 0", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 5))
		recs := mustLoad(t, log, keyA, 0)
		require.Equal(t, 3, mustArchive(t, log, keyA, recs[2].Ordinal))
		require.Equal(t, 0, mustArchive(t, log, keyA, recs[2].Ordinal))
		require.Equal(t, 0, mustArchive(t, log, keyA, recs[1].Ordinal))
		require.Equal(t, 1, mustArchive(t, log, keyA, recs[3].Ordinal))
		requireThread(t, log, keyA, eventPayloads(evs(4, 1)))
	}},
	{"archive of every event then append again continues the thread", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 3))
		require.Equal(t, 3, mustArchive(t, log, keyA, last))
		require.Empty(t, mustLoad(t, log, keyA, 0))
		next := mustAppend(t, log, keyA, evs(3, 2))
		require.Greater(t, next, last)
		recs := requireThread(t, log, keyA, eventPayloads(evs(3, 2)))
		require.Equal(t, recs, mustLoad(t, log, keyA, last))
		require.Equal(t, 2, mustArchive(t, log, keyA, next))
	}},
	{"archive leaves other threads and tenants untouched", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 3))
		mustAppend(t, log, keyB, evs(0, 3))
		mustAppend(t, log, keyX, evs(0, 3))
		require.Equal(t, 3, mustArchive(t, log, keyA, ^uint64(0)))
		requireThread(t, log, keyA, nil)
		requireThread(t, log, keyB, eventPayloads(evs(0, 3)))
		requireThread(t, log, keyX, eventPayloads(evs(0, 3)))
	}},
	{"archive of an unknown tenant or thread returns 0 and creates nothing", func(t *testing.T, log sessionlog.Log) {
		require.Equal(t, 0, mustArchive(t, log, noKey, 10))
		require.Equal(t, 0, mustArchive(t, log, sessionlog.ThreadKey{Tenant: keyA.Tenant, Thread: "none"}, 10))
		mustAppend(t, log, noKey, evs(0, 1), sessionlog.ExpectLast(0))
	}},
}
