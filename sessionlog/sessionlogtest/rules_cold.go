package sessionlogtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

func mustLoadAll(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, cursor uint64) []sessionlog.Record {
	t.Helper()
	recs, err := log.LoadSince(ctxFor(t), key, cursor, sessionlog.IncludeArchived())
	require.NoError(t, err)
	return recs
}

func mustScanAll(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, cursor uint64) []sessionlog.Record {
	t.Helper()
	var out []sessionlog.Record
	for rec, err := range log.Scan(ctxFor(t), key, cursor, sessionlog.IncludeArchived()) {
		require.NoError(t, err)
		out = append(out, rec)
	}
	return out
}

// requireSameRecords compares records field by field (times by instant).
func requireSameRecords(t *testing.T, want, got []sessionlog.Record) {
	t.Helper()
	require.Equal(t, ordinals(want), ordinals(got))
	for i := range want {
		w, g := want[i], got[i]
		require.True(t, w.Time.Equal(g.Time), "ordinal %d: time %v, want %v", w.Ordinal, g.Time, w.Time)
		w.Time, g.Time = time.Time{}, time.Time{}
		require.Equal(t, w, g, "ordinal %d", w.Ordinal)
	}
}

// richEvents returns n events with IDs, times, metadata and binary-ish
// payloads.
func richEvents(first, n int) []sessionlog.Event {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	out := make([]sessionlog.Event, n)
	for i := range out {
		k := first + i
		out[i] = sessionlog.Event{
			ID:   fmt.Sprintf("evt-%d", k),
			Type: []string{"user_message", "tool_call", "model_reply"}[k%3],
			Time: at.Add(time.Duration(k) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"n":%d,"text":"caf\u00e9 %d"}`, k, k),
		}
		if k%2 == 0 {
			out[i].Meta = map[string]string{"agent": "planner", "step": fmt.Sprint(k)}
		}
	}
	return out
}

func coldRules(corrupt Corrupter) []rule {
	rules := []rule{
		{"archive moves events to the cold tier and a read through returns them in order", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, richEvents(0, 3))
			mustAppend(t, log, keyB, evs(0, 2))
			mustAppend(t, log, keyA, richEvents(3, 3))
			before := mustLoad(t, log, keyA, 0)
			require.Len(t, before, 6)
			require.Equal(t, 4, mustArchive(t, log, keyA, before[3].Ordinal))
			requireSameRecords(t, before[4:], mustLoad(t, log, keyA, 0))
			requireSameRecords(t, before, mustLoadAll(t, log, keyA, 0))
			requireSameRecords(t, before, mustScanAll(t, log, keyA, 0))
			requireThread(t, log, keyB, eventPayloads(evs(0, 2)))
		}},
		{"a read through from a cursor returns only what follows it, cold and hot", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, evs(0, 6))
			all := mustLoad(t, log, keyA, 0)
			mustArchive(t, log, keyA, all[3].Ordinal)
			for i, r := range all {
				requireSameRecords(t, all[i+1:], mustLoadAll(t, log, keyA, r.Ordinal))
				requireSameRecords(t, all[i+1:], mustScanAll(t, log, keyA, r.Ordinal))
			}
			require.Empty(t, mustLoadAll(t, log, keyA, all[5].Ordinal+100))
			require.Empty(t, mustLoadAll(t, log, noKey, 0))
			require.Equal(t, sessionlog.Head{}, mustHead(t, log, noKey))
		}},
		{"repeated archives leave no gap and no duplicate", func(t *testing.T, log sessionlog.Log) {
			for i := range 5 {
				mustAppend(t, log, keyA, evs(i*4, 4))
				mustAppend(t, log, keyB, evs(i, 1))
			}
			all := mustLoad(t, log, keyA, 0)
			require.Equal(t, 3, mustArchive(t, log, keyA, all[2].Ordinal))
			require.Equal(t, 0, mustArchive(t, log, keyA, all[2].Ordinal), "an equal watermark is a no-op")
			require.Equal(t, 0, mustArchive(t, log, keyA, all[0].Ordinal), "a lower watermark is a no-op")
			require.Equal(t, 5, mustArchive(t, log, keyA, all[7].Ordinal+1))
			require.Equal(t, 1, mustArchive(t, log, keyA, all[8].Ordinal))
			requireSameRecords(t, all, mustLoadAll(t, log, keyA, 0))
			requireSameRecords(t, all[9:], mustLoad(t, log, keyA, 0))
		}},
		{"archive past the head with a cold tier does not hide later appends", func(t *testing.T, log sessionlog.Log) {
			last := mustAppend(t, log, keyA, evs(0, 2))
			require.Equal(t, 2, mustArchive(t, log, keyA, last+100))
			mustAppend(t, log, keyA, evs(2, 3))
			requireThread(t, log, keyA, eventPayloads(evs(2, 3)))
			require.Equal(t, eventPayloads(evs(0, 5)), payloads(mustLoadAll(t, log, keyA, 0)))
			require.Equal(t, 3, mustArchive(t, log, keyA, ^uint64(0)))
			requireThread(t, log, keyA, nil)
			all := mustLoadAll(t, log, keyA, 0)
			require.Equal(t, eventPayloads(evs(0, 5)), payloads(all))
			requireStrictlyIncreasing(t, ordinals(all))
		}},
		{"a read through sees every append that returned", func(t *testing.T, log sessionlog.Log) {
			for i := range 20 {
				last := mustAppend(t, log, keyA, evs(i, 1))
				recs := mustLoadAll(t, log, keyA, 0)
				require.Len(t, recs, i+1)
				require.Equal(t, last, recs[i].Ordinal)
				if i%5 == 4 {
					mustArchive(t, log, keyA, last)
				}
			}
		}},
		{"head reports the archived part beside the hot one", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, evs(0, 5))
			all := mustLoad(t, log, keyA, 0)
			require.Equal(t, sessionlog.Head{First: all[0].Ordinal, Last: all[4].Ordinal, Count: 5}, mustHead(t, log, keyA))
			mustArchive(t, log, keyA, all[2].Ordinal)
			require.Equal(t, sessionlog.Head{First: all[3].Ordinal, Last: all[4].Ordinal, Count: 2,
				ArchivedFirst: all[0].Ordinal, ArchivedLast: all[2].Ordinal, ArchivedCount: 3}, mustHead(t, log, keyA))
			mustArchive(t, log, keyA, all[4].Ordinal)
			require.Equal(t, sessionlog.Head{ArchivedFirst: all[0].Ordinal, ArchivedLast: all[4].Ordinal, ArchivedCount: 5}, mustHead(t, log, keyA))
		}},
		{"deleting a thread removes its archived events too", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, evs(0, 4))
			mustAppend(t, log, keyB, evs(0, 2))
			all := mustLoad(t, log, keyA, 0)
			mustArchive(t, log, keyA, all[2].Ordinal)
			mustArchive(t, log, keyB, ^uint64(0))
			n, err := deleter(t, log).DeleteThread(ctxFor(t), keyA)
			require.NoError(t, err)
			require.Equal(t, 1, n, "the hot events removed")
			require.Empty(t, mustLoadAll(t, log, keyA, 0))
			require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyA))
			next := mustAppend(t, log, keyA, evs(10, 1))
			require.Equal(t, []uint64{next}, ordinals(mustLoadAll(t, log, keyA, 0)), "the thread's next life starts without its archive")
			require.Equal(t, eventPayloads(evs(0, 2)), payloads(mustLoadAll(t, log, keyB, 0)), "other threads keep theirs")
		}},
		{"deleting a tenant removes its archived events and a tenant created again has none", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, evs(0, 3))
			mustAppend(t, log, keyX, evs(0, 3))
			mustArchive(t, log, keyA, ^uint64(0))
			mustArchive(t, log, keyX, ^uint64(0))
			require.NoError(t, deleter(t, log).DeleteTenant(ctxFor(t), keyA.Tenant))
			require.Empty(t, mustLoadAll(t, log, keyA, 0))
			require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyA))
			next := mustAppend(t, log, keyA, evs(5, 1))
			require.Equal(t, []uint64{next}, ordinals(mustLoadAll(t, log, keyA, 0)))
			require.Equal(t, eventPayloads(evs(0, 3)), payloads(mustLoadAll(t, log, keyX, 0)), "other tenants keep theirs")
		}},
		{"archives of one thread leave other threads and tenants untouched", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, evs(0, 3))
			mustAppend(t, log, keyB, evs(0, 3))
			mustAppend(t, log, keyX, evs(0, 3))
			mustArchive(t, log, keyA, ^uint64(0))
			require.Equal(t, eventPayloads(evs(0, 3)), payloads(mustLoadAll(t, log, keyA, 0)))
			for _, k := range []sessionlog.ThreadKey{keyB, keyX} {
				requireThread(t, log, k, eventPayloads(evs(0, 3)))
				require.Equal(t, eventPayloads(evs(0, 3)), payloads(mustLoadAll(t, log, k, 0)))
				require.Zero(t, mustHead(t, log, k).ArchivedCount)
			}
		}},
		{"thread names that differ only in case or escaping archive apart", func(t *testing.T, log sessionlog.Log) {
			names := []string{"Thread", "thread", "THREAD", "a/b", "a_2fb", "a.b", "ж", "x y", "日本"}
			for i, n := range names {
				mustAppend(t, log, key(n), evs(i, 2))
				mustArchive(t, log, key(n), ^uint64(0))
			}
			for i, n := range names {
				require.Equal(t, eventPayloads(evs(i, 2)), payloads(mustLoadAll(t, log, key(n), 0)), "thread %q", n)
			}
		}},
		{"a read through while archives run sees no gap and no duplicate", func(t *testing.T, log sessionlog.Log) {
			for i := range 10 {
				mustAppend(t, log, keyA, evs(i*30, 30))
				mustAppend(t, log, keyB, evs(i, 1))
			}
			all := mustLoad(t, log, keyA, 0)
			require.Len(t, all, 300)
			want := ordinals(all)
			var wg sync.WaitGroup
			done := make(chan struct{})
			var archErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(done)
				for i := 9; i < len(all); i += 10 {
					if _, err := log.ArchiveBefore(ctxFor(t), keyA, all[i].Ordinal); err != nil {
						archErr = err
						return
					}
				}
			}()
			reads := 0
			for running := true; running || reads < 2; reads++ {
				select {
				case <-done:
					running = false
				default:
				}
				require.Equal(t, want, ordinals(mustScanAll(t, log, keyA, 0)), "read %d", reads)
				require.Equal(t, want, ordinals(mustLoadAll(t, log, keyA, 0)), "read %d", reads)
			}
			wg.Wait()
			require.NoError(t, archErr)
			require.Empty(t, mustLoad(t, log, keyA, 0))
		}},
		{"a time to live expires archived events too", func(t *testing.T, log sessionlog.Log) {
			mustAppend(t, log, keyA, []sessionlog.Event{{Type: "ephemeral", TTL: time.Second, Data: []byte(`"gone"`)}})
			kept := mustAppend(t, log, keyA, []sessionlog.Event{{Type: "kept", Data: []byte(`"kept"`)}})
			mustArchive(t, log, keyA, kept)
			waitFor(t, 30*time.Second, func() error {
				if got := payloads(mustLoadAll(t, log, keyA, 0)); len(got) != 1 {
					return fmt.Errorf("read through shows %v", got)
				}
				return nil
			})
			require.Equal(t, []uint64{kept}, ordinals(mustScanAll(t, log, keyA, 0)))
			require.Equal(t, sessionlog.Head{ArchivedFirst: kept, ArchivedLast: kept, ArchivedCount: 1}, mustHead(t, log, keyA))
		}},
	}
	if corrupt != nil {
		rules = append(rules, rule{"a message that is not an event is archived and reported in its place when read through", func(t *testing.T, log sessionlog.Log) {
			first := mustAppend(t, log, keyA, evs(0, 1))
			bad := corrupt(t, log, keyA)
			last := mustAppend(t, log, keyA, evs(1, 1))
			require.Equal(t, 3, mustArchive(t, log, keyA, last))
			var got []uint64
			var corrupted []uint64
			for rec, err := range log.Scan(ctxFor(t), keyA, 0, sessionlog.IncludeArchived()) {
				var ce *sessionlog.CorruptEventError
				if errors.As(err, &ce) {
					require.Equal(t, bad, ce.Ordinal)
					require.Equal(t, keyA, ce.Key)
					corrupted = append(corrupted, rec.Ordinal)
					continue
				}
				require.NoError(t, err)
				got = append(got, rec.Ordinal)
			}
			require.Equal(t, []uint64{first, last}, got)
			require.Equal(t, []uint64{bad}, corrupted)
			recs, err := log.LoadSince(ctxFor(t), keyA, 0, sessionlog.IncludeArchived())
			require.ErrorIs(t, err, sessionlog.ErrCorruptEvent)
			require.Equal(t, []uint64{first, last}, ordinals(recs))
			require.Equal(t, uint64(3), mustHead(t, log, keyA).ArchivedCount)
		}})
	}
	return rules
}
