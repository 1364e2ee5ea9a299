package sessionlogtest

import (
	"errors"
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// foreignRules are the rules for stored messages that do not follow the
// protocol: they are handed back with their ordinal, in their place, and
// never stop, rewind or end a read. corrupt stores one; without it the
// rules are skipped.
func foreignRules(corrupt Corrupter) []rule {
	with := func(run func(t *testing.T, log sessionlog.Log, corrupt Corrupter)) func(t *testing.T, log sessionlog.Log) {
		return func(t *testing.T, log sessionlog.Log) {
			if corrupt == nil {
				t.Skip("no Corrupter given to sessionlogtest.Run (WithCorrupter): the foreign-message rules need one")
			}
			run(t, log, corrupt)
		}
	}
	return []rule{
		{"a corrupt message is reported with its ordinal and later events still load", with(func(t *testing.T, log sessionlog.Log, corrupt Corrupter) {
			first := mustAppend(t, log, keyA, evs(0, 1))
			bad := corrupt(t, log, keyA)
			last := mustAppend(t, log, keyA, evs(1, 2))
			require.Greater(t, bad, first)
			require.Greater(t, last, bad)

			recs, err := log.LoadSince(ctxFor(t), keyA, 0)
			require.ErrorIs(t, err, sessionlog.ErrCorruptEvent)
			var ce *sessionlog.CorruptEventError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, bad, ce.Ordinal)
			require.Equal(t, keyA, ce.Key)
			require.Equal(t, []uint64{bad}, corruptOrdinals(err))
			require.Equal(t, eventPayloads(evs(0, 3)), payloads(recs), "every valid event is returned beside the error")
			requireStrictlyIncreasing(t, ordinals(recs))
		})},
		{"a reader steps over a corrupt message by reading after its ordinal", with(func(t *testing.T, log sessionlog.Log, corrupt Corrupter) {
			mustAppend(t, log, keyA, evs(0, 1))
			bad := corrupt(t, log, keyA)
			mustAppend(t, log, keyA, evs(1, 1))
			require.Equal(t, eventPayloads(evs(1, 1)), payloads(mustLoad(t, log, keyA, bad)))
		})},
		{"scan yields a corrupt message in its place and goes on", with(func(t *testing.T, log sessionlog.Log, corrupt Corrupter) {
			a := mustAppend(t, log, keyA, evs(0, 1))
			bad1 := corrupt(t, log, keyA)
			bad2 := corrupt(t, log, keyA)
			c := mustAppend(t, log, keyA, evs(1, 1))
			var got []uint64
			var bad []uint64
			for rec, err := range log.Scan(ctxFor(t), keyA, 0) {
				var ce *sessionlog.CorruptEventError
				if errors.As(err, &ce) {
					bad = append(bad, ce.Ordinal)
					got = append(got, ce.Ordinal)
					continue
				}
				require.NoError(t, err)
				got = append(got, rec.Ordinal)
			}
			require.Equal(t, []uint64{a, bad1, bad2, c}, got)
			require.Equal(t, []uint64{bad1, bad2}, bad)
		})},
		{"a corrupt message is live: head counts it and archive removes it", with(func(t *testing.T, log sessionlog.Log, corrupt Corrupter) {
			first := mustAppend(t, log, keyA, evs(0, 1))
			bad := corrupt(t, log, keyA)
			require.Equal(t, sessionlog.Head{First: first, Last: bad, Count: 2}, mustHead(t, log, keyA))
			last, err := log.Append(ctxFor(t), keyA, nil)
			require.NoError(t, err)
			require.Equal(t, bad, last, "an empty append reports the last message, valid or not")
			_, err = log.Append(ctxFor(t), keyA, evs(1, 1), sessionlog.ExpectLast(first))
			require.ErrorIs(t, err, sessionlog.ErrConflict)
			n, err := log.ArchiveBefore(ctxFor(t), keyA, bad)
			require.NoError(t, err)
			require.Equal(t, 2, n)
			recs, err := log.LoadSince(ctxFor(t), keyA, 0)
			require.NoError(t, err)
			require.Empty(t, recs)
		})},
		{"a corrupt message touches no other thread or tenant", with(func(t *testing.T, log sessionlog.Log, corrupt Corrupter) {
			mustAppend(t, log, keyB, evs(0, 1))
			mustAppend(t, log, keyX, evs(1, 1))
			corrupt(t, log, keyA)
			requireThread(t, log, keyB, eventPayloads(evs(0, 1)))
			requireThread(t, log, keyX, eventPayloads(evs(1, 1)))
		})},
		{"tails yield a corrupt message in its place and go on", with(func(t *testing.T, log sessionlog.Log, corrupt Corrupter) {
			tl := tailer(t, log)
			a := mustAppend(t, log, keyA, evs(0, 1))
			bad1 := corrupt(t, log, keyA)
			ctx := tailCtx(t)
			thread := startTail(ctx, tl, keyA, 0)
			tenant := startTail(ctx, tl, sessionlog.ThreadKey{Tenant: keyA.Tenant}, 0)
			// The live part: a corrupt message after the catch-up.
			b := mustAppend(t, log, keyA, evs(1, 1))
			bad2 := corrupt(t, log, keyA)
			c := mustAppend(t, log, keyA, evs(2, 1))
			want := []uint64{a, bad1, b, bad2, c}
			for name, ch := range map[string]<-chan tailItem{"thread tail": thread, "tenant tail": tenant} {
				items := takeItems(t, ch, len(want))
				var got []uint64
				for i, it := range items {
					if want[i] == bad1 || want[i] == bad2 {
						var ce *sessionlog.CorruptEventError
						require.ErrorAs(t, it.err, &ce, "%s item %d", name, i)
						got = append(got, ce.Ordinal)
						continue
					}
					require.NoError(t, it.err, "%s item %d", name, i)
					got = append(got, it.rec.Ordinal)
				}
				require.Equal(t, want, got, name)
			}
		})},
	}
}

// corruptOrdinals lists the ordinals of the corrupt events err reports.
func corruptOrdinals(err error) []uint64 {
	var out []uint64
	for _, ce := range sessionlog.CorruptEvents(err) {
		out = append(out, ce.Ordinal)
	}
	return out
}
