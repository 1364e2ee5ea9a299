package sessionlogtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// InvalidKeys are keys every operation must refuse with ErrInvalidKey.
func InvalidKeys() map[string]sessionlog.ThreadKey {
	return map[string]sessionlog.ThreadKey{
		"empty tenant":                {Tenant: "", Thread: "t"},
		"empty thread":                {Tenant: "acme", Thread: ""},
		"tenant too long":             {Tenant: strings.Repeat("x", sessionlog.MaxTenantBytes+1), Thread: "t"},
		"thread too long":             {Tenant: "acme", Thread: strings.Repeat("x", sessionlog.MaxThreadBytes+1)},
		"tenant not UTF-8":            {Tenant: "a\xffb", Thread: "t"},
		"thread not UTF-8":            {Tenant: "acme", Thread: "\xc3"},
		"tenant with a newline":       {Tenant: "a\nb", Thread: "t"},
		"thread with a NUL":           {Tenant: "acme", Thread: "a\x00b"},
		"thread with a tab":           {Tenant: "acme", Thread: "a\tb"},
		"tenant with a C1 control":    {Tenant: "a\u0085b", Thread: "t"},
		"thread with a DEL character": {Tenant: "acme", Thread: "a\x7fb"},
	}
}

// InvalidEvents are single events Append must refuse with ErrInvalidEvent.
func InvalidEvents() map[string]sessionlog.Event {
	manyMeta := map[string]string{}
	for i := range sessionlog.MaxMetaEntries + 1 {
		manyMeta[strings.Repeat("k", i+1)] = "v"
	}
	return map[string]sessionlog.Event{
		"empty type":                     {Type: ""},
		"type with a newline":            {Type: "a\nb"},
		"type with surrounding space":    {Type: " tool_call"},
		"type too long":                  {Type: strings.Repeat("t", sessionlog.MaxTypeBytes+1)},
		"type not UTF-8":                 {Type: "\xff"},
		"ID with a carriage return":      {ID: "id\r", Type: "t"},
		"ID with trailing space":         {ID: "id ", Type: "t"},
		"ID too long":                    {ID: strings.Repeat("i", sessionlog.MaxIDBytes+1), Type: "t"},
		"ID not UTF-8":                   {ID: "\xfe", Type: "t"},
		"empty metadata key":             {Type: "t", Meta: map[string]string{"": "v"}},
		"metadata key with a control":    {Type: "t", Meta: map[string]string{"a\x01": "v"}},
		"metadata value not UTF-8":       {Type: "t", Meta: map[string]string{"k": "\xff"}},
		"too many metadata entries":      {Type: "t", Meta: manyMeta},
		"metadata larger than the bound": {Type: "t", Meta: map[string]string{"k": strings.Repeat("v", sessionlog.MaxMetaBytes)}},
		"time after year 9999":           {Type: "t", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"time before year 1":             {Type: "t", Time: time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC)},
		"time in year -1":                {Type: "t", Time: time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC)},
		"time past 9999 in UTC only":     {Type: "t", Time: time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("UTC-2", -2*3600))},
	}
}

var badInputRules = []rule{
	{"every operation refuses an invalid key and changes nothing", func(t *testing.T, log sessionlog.Log) {
		ctx := ctxFor(t)
		for name, key := range InvalidKeys() {
			_, err := log.Append(ctx, key, evs(0, 1))
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey, "Append: %s", name)
			_, err = log.Append(ctx, key, nil)
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey, "empty Append: %s", name)
			_, err = log.LoadSince(ctx, key, 0)
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey, "LoadSince: %s", name)
			_, err = log.ArchiveBefore(ctx, key, 10)
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey, "ArchiveBefore: %s", name)
			_, err = log.Head(ctx, key)
			require.ErrorIs(t, err, sessionlog.ErrInvalidKey, "Head: %s", name)
			n := 0
			for _, err := range log.Scan(ctx, key, 0) {
				require.ErrorIs(t, err, sessionlog.ErrInvalidKey, "Scan: %s", name)
				n++
			}
			require.Equal(t, 1, n, "Scan yields exactly one error: %s", name)
		}
	}},
	{"invalid events are refused with ErrInvalidEvent and nothing is stored", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		for name, bad := range InvalidEvents() {
			batch := []sessionlog.Event{ev("t", 1), bad, ev("t", 2)}
			_, err := log.Append(ctxFor(t), keyA, batch)
			require.ErrorIs(t, err, sessionlog.ErrInvalidEvent, name)
			require.Empty(t, batch[0].ID, "a refused append leaves the caller's events unchanged: %s", name)
			require.True(t, batch[2].Time.IsZero(), "a refused append leaves the caller's events unchanged: %s", name)
			_, err = log.Append(ctxFor(t), keyA, []sessionlog.Event{bad})
			require.ErrorIs(t, err, sessionlog.ErrInvalidEvent, name)
		}
		requireThread(t, log, keyA, eventPayloads(evs(0, 1)))
	}},
	{"two events of one append with the same ID are refused", func(t *testing.T, log sessionlog.Log) {
		batch := []sessionlog.Event{{ID: "x", Type: "t"}, {ID: "y", Type: "t"}, {ID: "x", Type: "t"}}
		_, err := log.Append(ctxFor(t), keyA, batch)
		require.ErrorIs(t, err, sessionlog.ErrInvalidEvent)
		requireThread(t, log, keyA, nil)
	}},
	{"an oversize event is refused with ErrEventTooLarge", func(t *testing.T, log sessionlog.Log) {
		big := sessionlog.Event{Type: "t", Data: make([]byte, sessionlog.DefaultMaxEventBytes)}
		_, err := log.Append(ctxFor(t), keyA, []sessionlog.Event{big})
		require.ErrorIs(t, err, sessionlog.ErrEventTooLarge)
		_, err = log.Append(ctxFor(t), keyA, []sessionlog.Event{ev("t", 0), big})
		require.ErrorIs(t, err, sessionlog.ErrEventTooLarge)
		requireThread(t, log, keyA, nil)
		// The largest allowed event is accepted.
		fits := sessionlog.Event{ID: "id", Type: "t", Data: make([]byte, sessionlog.DefaultMaxEventBytes-3)}
		mustAppend(t, log, keyA, []sessionlog.Event{fits})
		require.Len(t, mustLoad(t, log, keyA, 0)[0].Data, sessionlog.DefaultMaxEventBytes-3)
	}},
	{"an oversize batch is refused with ErrBatchTooLarge", func(t *testing.T, log sessionlog.Log) {
		_, err := log.Append(ctxFor(t), keyA, evs(0, sessionlog.DefaultMaxBatchEvents+1))
		require.ErrorIs(t, err, sessionlog.ErrBatchTooLarge)
		n := sessionlog.DefaultMaxBatchBytes/(sessionlog.DefaultMaxEventBytes-10) + 1
		heavy := make([]sessionlog.Event, n)
		for i := range heavy {
			heavy[i] = sessionlog.Event{Type: "t", Data: make([]byte, sessionlog.DefaultMaxEventBytes-10)}
		}
		_, err = log.Append(ctxFor(t), keyA, heavy)
		require.ErrorIs(t, err, sessionlog.ErrBatchTooLarge)
		requireThread(t, log, keyA, nil)
		// The largest batch by count is accepted, atomically.
		last := mustAppend(t, log, keyA, evs(0, sessionlog.DefaultMaxBatchEvents))
		recs := mustLoad(t, log, keyA, 0)
		require.Len(t, recs, sessionlog.DefaultMaxBatchEvents)
		require.Equal(t, last, recs[len(recs)-1].Ordinal)
	}},
	{"a cancelled context fails every operation and changes nothing", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := log.Append(ctx, keyA, evs(1, 1))
		require.ErrorIs(t, err, context.Canceled)
		_, err = log.Append(ctx, keyA, evs(1, 3))
		require.ErrorIs(t, err, context.Canceled)
		_, err = log.LoadSince(ctx, keyA, 0)
		require.ErrorIs(t, err, context.Canceled)
		_, err = log.ArchiveBefore(ctx, keyA, ^uint64(0))
		require.ErrorIs(t, err, context.Canceled)
		_, err = log.Head(ctx, keyA)
		require.ErrorIs(t, err, context.Canceled)
		for _, err := range log.Scan(ctx, keyA, 0) {
			require.ErrorIs(t, err, context.Canceled)
		}
		requireThread(t, log, keyA, eventPayloads(evs(0, 1)))
	}},
	{"errors are distinct sentinels", func(t *testing.T, _ sessionlog.Log) {
		all := []error{sessionlog.ErrInvalidKey, sessionlog.ErrInvalidEvent, sessionlog.ErrEventTooLarge,
			sessionlog.ErrBatchTooLarge, sessionlog.ErrConflict, sessionlog.ErrPartialRetry,
			sessionlog.ErrQuotaExceeded, sessionlog.ErrCorruptEvent, sessionlog.ErrStorageFull}
		for i, a := range all {
			for j, b := range all {
				// A full server is a lack of room too.
				want := i == j || a == sessionlog.ErrStorageFull && b == sessionlog.ErrQuotaExceeded
				require.Equal(t, want, errors.Is(a, b), "%v vs %v", a, b)
			}
		}
	}},
	{"times at the edges of years 1 and 9999 round trip", func(t *testing.T, log sessionlog.Log) {
		in := []sessionlog.Event{
			{Type: "t", Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
			{Type: "t", Time: sessionlog.MaxEventTime},
			{Type: "t", Time: time.Date(10000, 1, 1, 1, 0, 0, 0, time.FixedZone("UTC+2", 2*3600))},
		}
		mustAppend(t, log, keyA, in)
		recs := mustLoad(t, log, keyA, 0)
		require.Len(t, recs, len(in))
		for i, r := range recs {
			require.True(t, in[i].Time.Equal(r.Time), "time %v read back as %v", in[i].Time, r.Time)
		}
	}},
}
