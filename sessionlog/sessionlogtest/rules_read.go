package sessionlogtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

var loadRules = []rule{
	{"load since a cursor returns every later event in order", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 5))
		all := requireThread(t, log, keyA, eventPayloads(evs(0, 5)))
		for i, r := range all {
			got := mustLoad(t, log, keyA, r.Ordinal)
			require.Equal(t, ordinals(all[i+1:]), ordinals(got))
		}
		// A cursor between two ordinals (ordinals are not dense) still works.
		mustAppend(t, log, keyB, evs(9, 1))
		mustAppend(t, log, keyA, evs(5, 1))
		tail := mustLoad(t, log, keyA, all[4].Ordinal+1)
		require.Equal(t, eventPayloads(evs(5, 1)), payloads(tail))
	}},
	{"load since a cursor at or past the head returns nothing", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 3))
		require.Empty(t, mustLoad(t, log, keyA, last))
		require.Empty(t, mustLoad(t, log, keyA, last+1000))
		require.Empty(t, mustLoad(t, log, keyA, ^uint64(0)))
	}},
	{"load of an unknown tenant or thread returns nothing and creates nothing", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		require.Empty(t, mustLoad(t, log, noKey, 0))
		require.Empty(t, mustLoad(t, log, sessionlog.ThreadKey{Tenant: keyA.Tenant, Thread: "unknown"}, 0))
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, noKey))
		// Nothing was created: the first append to that thread still sees an
		// empty thread.
		mustAppend(t, log, noKey, evs(0, 1), sessionlog.ExpectLast(0))
	}},
	{"records round trip every event field", func(t *testing.T, log sessionlog.Log) {
		at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+2", 2*3600))
		in := []sessionlog.Event{
			{ID: "e-1", Type: "tool_call", Time: at, Data: []byte(`{"tool":"search","args":{"q":"x"}}`),
				Meta: map[string]string{"model": "m-1", "unicode ✓": "value with\nnewline and \"quotes\""}},
			{ID: "e-2", Type: "model_reply", Time: at.Add(time.Nanosecond), Data: []byte{0, 1, 2, 0xff, '\r', '\n'}},
			{ID: "e 3 with inner spaces", Type: "interrupt", Time: at},
		}
		mustAppend(t, log, keyA, in)
		recs := mustLoad(t, log, keyA, 0)
		require.Len(t, recs, len(in))
		for i, r := range recs {
			require.Equal(t, in[i].ID, r.ID)
			require.Equal(t, in[i].Type, r.Type)
			require.True(t, in[i].Time.Equal(r.Time), "time %v read back as %v", in[i].Time, r.Time)
			require.Equal(t, time.UTC, r.Time.Location())
			require.Equal(t, in[i].Data, r.Data)
			require.Equal(t, in[i].Meta, r.Meta)
		}
	}},
	{"records do not alias the caller's or the log's memory", func(t *testing.T, log sessionlog.Log) {
		in := []sessionlog.Event{{Type: "t", Data: []byte("abc"), Meta: map[string]string{"k": "v"}}}
		mustAppend(t, log, keyA, in)
		in[0].Data[0] = 'X'
		in[0].Meta["k"] = "changed"
		recs := mustLoad(t, log, keyA, 0)
		require.Equal(t, "abc", string(recs[0].Data))
		require.Equal(t, "v", recs[0].Meta["k"])
		recs[0].Data[0] = 'Y'
		require.Equal(t, "abc", string(mustLoad(t, log, keyA, 0)[0].Data))
	}},
	{"a zero event time is set at append", func(t *testing.T, log sessionlog.Log) {
		before := time.Now().Add(-time.Second)
		mustAppend(t, log, keyA, evs(0, 1))
		r := mustLoad(t, log, keyA, 0)[0]
		require.True(t, r.Time.After(before) && r.Time.Before(time.Now().Add(time.Second)), "time %v", r.Time)
	}},
	{"scan yields the same records as load since, across many chunks", func(t *testing.T, log sessionlog.Log) {
		for i := range 6 {
			mustAppend(t, log, keyA, evs(i*200, 200))
		}
		mustAppend(t, log, keyB, evs(0, 10))
		want := mustLoad(t, log, keyA, 0)
		require.Len(t, want, 1200)
		for _, cursor := range []uint64{0, want[599].Ordinal, want[1199].Ordinal} {
			var got []sessionlog.Record
			for r, err := range log.Scan(ctxFor(t), keyA, cursor) {
				require.NoError(t, err)
				got = append(got, r)
			}
			i := 0
			for i < len(want) && want[i].Ordinal <= cursor {
				i++
			}
			require.Equal(t, ordinals(want[i:]), ordinals(got))
			require.Equal(t, payloads(want[i:]), payloads(got))
		}
	}},
	{"scan stops when the caller breaks out", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 20))
		n := 0
		for _, err := range log.Scan(ctxFor(t), keyA, 0) {
			require.NoError(t, err)
			n++
			if n == 5 {
				break
			}
		}
		require.Equal(t, 5, n)
	}},
	{"scan of an unknown thread yields nothing", func(t *testing.T, log sessionlog.Log) {
		for r, err := range log.Scan(ctxFor(t), noKey, 0) {
			t.Fatalf("unexpected record %v, %v", r, err)
		}
	}},
}

var readYourWritesRules = []rule{
	{"every read after an append returns it", func(t *testing.T, log sessionlog.Log) {
		var cursor uint64
		for i := range 100 {
			var last uint64
			if i%3 == 2 {
				last = mustAppend(t, log, keyA, evs(i, 2))
			} else {
				last = mustAppend(t, log, keyA, evs(i, 1))
			}
			recs := mustLoad(t, log, keyA, cursor)
			require.NotEmpty(t, recs, "append %d returned %d but a read since %d found nothing", i, last, cursor)
			require.Equal(t, last, recs[len(recs)-1].Ordinal, "append %d", i)
			require.Equal(t, last, mustHead(t, log, keyA).Last, "append %d", i)
			cursor = last
		}
	}},
	{"every read after an archive misses the archived events", func(t *testing.T, log sessionlog.Log) {
		for i := range 30 {
			last := mustAppend(t, log, keyA, evs(i*2, 2))
			_, err := log.ArchiveBefore(ctxFor(t), keyA, last-1)
			require.NoError(t, err)
			recs := mustLoad(t, log, keyA, 0)
			require.Equal(t, []uint64{last}, ordinals(recs), fmt.Sprintf("after archive %d", i))
		}
	}},
}

var headRules = []rule{
	{"head reports the first and last live ordinals and the count", func(t *testing.T, log sessionlog.Log) {
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyA))
		mustAppend(t, log, keyA, evs(0, 3))
		mustAppend(t, log, keyB, evs(0, 2))
		recs := mustLoad(t, log, keyA, 0)
		require.Equal(t, sessionlog.Head{First: recs[0].Ordinal, Last: recs[2].Ordinal, Count: 3}, mustHead(t, log, keyA))
		_, err := log.ArchiveBefore(ctxFor(t), keyA, recs[0].Ordinal)
		require.NoError(t, err)
		require.Equal(t, sessionlog.Head{First: recs[1].Ordinal, Last: recs[2].Ordinal, Count: 2}, mustHead(t, log, keyA))
		_, err = log.ArchiveBefore(ctxFor(t), keyA, recs[2].Ordinal)
		require.NoError(t, err)
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyA))
	}},
}
