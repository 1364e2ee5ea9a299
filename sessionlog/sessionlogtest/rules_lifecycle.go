package sessionlogtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

func lister(t *testing.T, log sessionlog.Log) sessionlog.ThreadLister {
	t.Helper()
	l, ok := log.(sessionlog.ThreadLister)
	require.True(t, ok, "every backend must implement sessionlog.ThreadLister; %T does not", log)
	return l
}

func deleter(t *testing.T, log sessionlog.Log) sessionlog.Deleter {
	t.Helper()
	d, ok := log.(sessionlog.Deleter)
	require.True(t, ok, "every backend must implement sessionlog.Deleter; %T does not", log)
	return d
}

func tenantReader(t *testing.T, log sessionlog.Log) sessionlog.TenantReader {
	t.Helper()
	r, ok := log.(sessionlog.TenantReader)
	require.True(t, ok, "every backend must implement sessionlog.TenantReader; %T does not", log)
	return r
}

func listThreads(t *testing.T, log sessionlog.Log, tenant string, opts ...sessionlog.ThreadsOption) []sessionlog.ThreadInfo {
	t.Helper()
	var out []sessionlog.ThreadInfo
	for info, err := range lister(t, log).Threads(ctxFor(t), tenant, opts...) {
		require.NoError(t, err)
		out = append(out, info)
	}
	return out
}

func threadNames(infos []sessionlog.ThreadInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Thread
	}
	return out
}

func key(thread string) sessionlog.ThreadKey {
	return sessionlog.ThreadKey{Tenant: keyA.Tenant, Thread: thread}
}

var listingRules = []rule{
	{"threads are listed by name with their counts, last ordinals, times and types", func(t *testing.T, log sessionlog.Log) {
		at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
		mustAppend(t, log, key("b"), []sessionlog.Event{{Type: "user_message"}, {Type: "tool_call", Time: at}})
		lastA := mustAppend(t, log, key("a.x*y"), []sessionlog.Event{{Type: "model_reply", Time: at.Add(time.Second)}})
		mustAppend(t, log, keyX, evs(0, 1)) // another tenant
		got := listThreads(t, log, keyA.Tenant)
		require.Equal(t, []string{"a.x*y", "b"}, threadNames(got))
		require.Equal(t, uint64(1), got[0].Events)
		require.Equal(t, lastA, got[0].LastOrdinal)
		require.Equal(t, "model_reply", got[0].LastType)
		require.True(t, at.Add(time.Second).Equal(got[0].LastTime))
		require.Equal(t, uint64(2), got[1].Events)
		require.Equal(t, "tool_call", got[1].LastType)
		require.True(t, at.Equal(got[1].LastTime))
		require.Zero(t, got[0].FirstOrdinal, "first ordinals are reported only when asked")
		withFirst := listThreads(t, log, keyA.Tenant, sessionlog.WithFirstOrdinals())
		require.Equal(t, lastA, withFirst[0].FirstOrdinal)
		require.Equal(t, mustHead(t, log, key("b")).First, withFirst[1].FirstOrdinal)
	}},
	{"a listing by name pages and resumes after the last thread seen", func(t *testing.T, log sessionlog.Log) {
		var names []string
		for i := range 7 {
			name := fmt.Sprintf("t%02d", i)
			names = append(names, name)
			mustAppend(t, log, key(name), evs(i, 1))
		}
		var got []string
		after := ""
		for range 10 {
			page := listThreads(t, log, keyA.Tenant, sessionlog.ThreadsAfter(after), sessionlog.ThreadsLimit(3))
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 3)
			got = append(got, threadNames(page)...)
			after = page[len(page)-1].Thread
		}
		require.Equal(t, names, got)
	}},
	{"a listing by recent activity puts the newest first and resumes", func(t *testing.T, log sessionlog.Log) {
		for _, name := range []string{"old", "middle", "new"} {
			mustAppend(t, log, key(name), evs(0, 1))
		}
		mustAppend(t, log, key("old"), evs(1, 1)) // old is now the most recent
		got := listThreads(t, log, keyA.Tenant, sessionlog.ByRecentActivity())
		require.Equal(t, []string{"old", "new", "middle"}, threadNames(got))
		rest := listThreads(t, log, keyA.Tenant, sessionlog.ActiveBefore(got[0].LastOrdinal), sessionlog.ThreadsLimit(1))
		require.Equal(t, []string{"new"}, threadNames(rest))
	}},
	{"threads without live events are not listed, and an unknown tenant lists nothing", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, key("archived"), evs(0, 2))
		mustAppend(t, log, key("kept"), evs(2, 1))
		_, err := log.ArchiveBefore(ctxFor(t), key("archived"), last)
		require.NoError(t, err)
		require.Equal(t, []string{"kept"}, threadNames(listThreads(t, log, keyA.Tenant)))
		require.Empty(t, listThreads(t, log, noKey.Tenant))
		mustAppend(t, log, noKey, evs(0, 1), sessionlog.ExpectLast(0)) // nothing was created
		for _, err := range lister(t, log).Threads(ctxFor(t), "", sessionlog.ThreadsLimit(1)) {
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey)
		}
	}},
}

var loadLastRules = []rule{
	{"load last returns the last n live events in ordinal order", func(t *testing.T, log sessionlog.Log) {
		for i := range 30 {
			mustAppend(t, log, keyA, evs(i, 1))
			mustAppend(t, log, keyB, evs(100+i, 1)) // interleaved
		}
		all := mustLoad(t, log, keyA, 0)
		for _, n := range []int{1, 10, 29, 30, 31, 1000} {
			got, err := log.LoadLast(ctxFor(t), keyA, n)
			require.NoError(t, err)
			want := all[max(0, len(all)-n):]
			require.Equal(t, ordinals(want), ordinals(got), "last %d", n)
			require.Equal(t, payloads(want), payloads(got), "last %d", n)
		}
		got, err := log.LoadLast(ctxFor(t), keyA, 0)
		require.NoError(t, err)
		require.Empty(t, got)
		got, err = log.LoadLast(ctxFor(t), noKey, 5)
		require.NoError(t, err)
		require.Empty(t, got)
		_, err = log.LoadLast(ctxFor(t), sessionlog.ThreadKey{Tenant: "acme"}, 5)
		require.ErrorIs(t, err, sessionlog.ErrInvalidKey)
	}},
	{"load last sees what was archived as gone", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 5))
		_, err := log.ArchiveBefore(ctxFor(t), keyA, last-2)
		require.NoError(t, err)
		got, err := log.LoadLast(ctxFor(t), keyA, 10)
		require.NoError(t, err)
		require.Equal(t, eventPayloads(evs(3, 2)), payloads(got))
	}},
}

var deletionRules = []rule{
	{"deleting a thread removes its events and touches nothing else", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 3))
		mustAppend(t, log, keyA, evs(3, 2))
		mustAppend(t, log, keyB, evs(5, 1))
		mustAppend(t, log, keyX, evs(6, 1))
		n, err := deleter(t, log).DeleteThread(ctxFor(t), keyA)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		requireThread(t, log, keyA, nil)
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyA))
		requireThread(t, log, keyB, eventPayloads(evs(5, 1)))
		requireThread(t, log, keyX, eventPayloads(evs(6, 1)))
		require.Equal(t, []string{keyB.Thread}, threadNames(listThreads(t, log, keyA.Tenant)))
		n, err = deleter(t, log).DeleteThread(ctxFor(t), keyA)
		require.NoError(t, err)
		require.Zero(t, n, "deleting again removes nothing")
		n, err = deleter(t, log).DeleteThread(ctxFor(t), noKey)
		require.NoError(t, err)
		require.Zero(t, n)
		_, err = deleter(t, log).DeleteThread(ctxFor(t), sessionlog.ThreadKey{Tenant: "acme"})
		require.ErrorIs(t, err, sessionlog.ErrInvalidKey)
	}},
	{"a deleted thread never gets its ordinals again, and a stale ExpectLast conflicts", func(t *testing.T, log sessionlog.Log) {
		old := mustAppend(t, log, keyA, evs(0, 3))
		tenantLast := mustAppend(t, log, keyB, evs(3, 1))
		_, err := deleter(t, log).DeleteThread(ctxFor(t), keyA)
		require.NoError(t, err)
		_, err = log.Append(ctxFor(t), keyA, evs(4, 1), sessionlog.ExpectLast(old))
		require.ErrorIs(t, err, sessionlog.ErrConflict, "a writer that read the thread before its deletion is refused")
		next := mustAppend(t, log, keyA, evs(5, 1))
		require.Greater(t, next, tenantLast, "a new event of a deleted thread is numbered after everything the tenant had")
		requireThread(t, log, keyA, eventPayloads(evs(5, 1)))
	}},
	{"thread deletions appear in tenant reads only when asked", func(t *testing.T, log sessionlog.Log) {
		a := mustAppend(t, log, keyA, evs(0, 2))
		_, err := deleter(t, log).DeleteThread(ctxFor(t), keyA)
		require.NoError(t, err)
		b := mustAppend(t, log, keyB, evs(2, 1))
		var plain []uint64
		for rec, err := range tenantReader(t, log).ScanTenant(ctxFor(t), keyA.Tenant, 0) {
			require.NoError(t, err)
			require.Nil(t, rec.Deletion)
			plain = append(plain, rec.Ordinal)
		}
		require.Equal(t, []uint64{b}, plain)
		var got []*sessionlog.Deletion
		var ords []uint64
		for rec, err := range tenantReader(t, log).ScanTenant(ctxFor(t), keyA.Tenant, 0, sessionlog.IncludeDeletions()) {
			require.NoError(t, err)
			ords = append(ords, rec.Ordinal)
			if rec.Deletion != nil {
				got = append(got, rec.Deletion)
			}
		}
		require.Len(t, got, 1)
		require.Equal(t, keyA.Thread, got[0].Thread)
		require.Equal(t, keyA.Tenant, got[0].Tenant)
		require.Greater(t, got[0].Before, a)
		require.Less(t, got[0].Before, b)
		require.Equal(t, []uint64{got[0].Before, b}, ords)
		// A tail that includes deletions sees them live too.
		ch := make(chan sessionlog.TenantRecord, 1)
		ctx := tailCtx(t)
		go func() {
			for rec, err := range tailer(t, log).TailTenant(ctx, keyA.Tenant, b, sessionlog.IncludeDeletions()) {
				if err == nil {
					ch <- rec
				}
				return
			}
		}()
		_, err = deleter(t, log).DeleteThread(ctxFor(t), keyB)
		require.NoError(t, err)
		select {
		case rec := <-ch:
			require.NotNil(t, rec.Deletion, "ordinal %d", rec.Ordinal)
			require.Equal(t, keyB.Thread, rec.Deletion.Thread)
		case <-time.After(time.Minute):
			t.Fatal("the tail did not yield the deletion within a minute")
		}
	}},
	{"deleting a tenant removes it whole; created again, it numbers on", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 2))
		last := mustAppend(t, log, keyB, evs(2, 2))
		mustAppend(t, log, keyX, evs(4, 1))
		require.NoError(t, deleter(t, log).DeleteTenant(ctxFor(t), keyA.Tenant))
		requireThread(t, log, keyA, nil)
		requireThread(t, log, keyB, nil)
		require.Empty(t, listThreads(t, log, keyA.Tenant))
		requireThread(t, log, keyX, eventPayloads(evs(4, 1)))
		tenants, err := tenantReader(t, log).Tenants(ctxFor(t))
		require.NoError(t, err)
		for _, info := range tenants {
			require.NotEqual(t, keyA.Tenant, info.Tenant, "a deleted tenant is not listed")
		}
		require.NoError(t, deleter(t, log).DeleteTenant(ctxFor(t), keyA.Tenant), "deleting an unknown tenant is not an error")
		require.ErrorIs(t, deleter(t, log).DeleteTenant(ctxFor(t), ""), sessionlog.ErrInvalidKey)
		next := mustAppend(t, log, keyA, evs(5, 1))
		require.Greater(t, next, last, "ordinals are never reused, not even after the tenant was deleted")
	}},
	{"a tail of a deleted tenant ends with ErrTenantDeleted", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		ch := startTail(tailCtx(t), tailer(t, log), sessionlog.ThreadKey{Tenant: keyA.Tenant}, 0)
		take(t, ch, 1)
		require.NoError(t, deleter(t, log).DeleteTenant(ctxFor(t), keyA.Tenant))
		timeout := time.After(time.Minute)
		for {
			select {
			case it, ok := <-ch:
				require.True(t, ok, "the tail ended without an error")
				if it.err != nil {
					require.ErrorIs(t, it.err, sessionlog.ErrTenantDeleted)
					return
				}
			case <-timeout:
				t.Fatal("the tail of a deleted tenant did not end within a minute")
			}
		}
	}},
}

var retentionRules = []rule{
	{"a time to live must be whole seconds, at least one", func(t *testing.T, log sessionlog.Log) {
		for _, ttl := range []time.Duration{-time.Second, 500 * time.Millisecond, 1500 * time.Millisecond} {
			_, err := log.Append(ctxFor(t), keyA, []sessionlog.Event{{Type: "t", TTL: ttl}})
			require.ErrorIs(t, err, sessionlog.ErrInvalidEvent, "TTL %v", ttl)
		}
		requireThread(t, log, keyA, nil)
	}},
	{"an event with a time to live expires, and every read agrees", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, []sessionlog.Event{{Type: "ephemeral", TTL: time.Second, Data: []byte(`"gone"`)}})
		kept := mustAppend(t, log, keyA, []sessionlog.Event{{Type: "kept", Data: []byte(`"kept"`)}})
		mustAppend(t, log, keyB, []sessionlog.Event{{Type: "ephemeral", TTL: time.Second}})
		recs := mustLoad(t, log, keyA, 0)
		require.Len(t, recs, 2)
		require.Equal(t, time.Second, recs[0].TTL, "the TTL reads back")
		waitFor(t, 30*time.Second, func() error {
			if n := len(mustLoad(t, log, keyA, 0)); n != 1 {
				return fmt.Errorf("%d events live", n)
			}
			return nil
		})
		require.Equal(t, []string{`"kept"`}, payloads(mustLoad(t, log, keyA, 0)))
		last, err := log.LoadLast(ctxFor(t), keyA, 5)
		require.NoError(t, err)
		require.Equal(t, []uint64{kept}, ordinals(last))
		require.Equal(t, sessionlog.Head{First: kept, Last: kept, Count: 1}, mustHead(t, log, keyA))
		waitFor(t, 30*time.Second, func() error {
			if got := threadNames(listThreads(t, log, keyA.Tenant)); len(got) != 1 || got[0] != keyA.Thread {
				return fmt.Errorf("listing shows %v", got)
			}
			return nil
		})
		var tailed []uint64
		ctx, cancel := context.WithCancel(ctxFor(t))
		defer cancel()
		for rec, err := range tailer(t, log).Tail(ctx, keyA, 0) {
			require.NoError(t, err)
			tailed = append(tailed, rec.Ordinal)
			cancel()
		}
		require.Equal(t, []uint64{kept}, tailed)
	}},
}

// waitFor polls cond until it returns nil, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
