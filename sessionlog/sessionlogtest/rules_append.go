package sessionlogtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

var ordinalRules = []rule{
	{"append returns the ordinal of the batch's last event", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 3))
		recs := requireThread(t, log, keyA, eventPayloads(evs(0, 3)))
		require.Equal(t, last, recs[2].Ordinal)
	}},
	{"ordinals strictly increase across appends in slice order", func(t *testing.T, log sessionlog.Log) {
		var lasts []uint64
		for i := range 5 {
			lasts = append(lasts, mustAppend(t, log, keyA, evs(i*2, 2)))
		}
		requireStrictlyIncreasing(t, lasts)
		recs := requireThread(t, log, keyA, eventPayloads(evs(0, 10)))
		for i, last := range lasts {
			require.Equal(t, last, recs[i*2+1].Ordinal)
		}
	}},
	{"ordinals come from one sequence per tenant", func(t *testing.T, log sessionlog.Log) {
		a1 := mustAppend(t, log, keyA, evs(0, 1))
		b1 := mustAppend(t, log, keyB, evs(1, 1))
		a2 := mustAppend(t, log, keyA, evs(2, 1))
		x1 := mustAppend(t, log, keyX, evs(3, 1))
		require.Less(t, a1, b1)
		require.Less(t, b1, a2)
		require.Equal(t, []uint64{a1, a2}, ordinals(mustLoad(t, log, keyA, 0)))
		require.Equal(t, []uint64{x1}, ordinals(mustLoad(t, log, keyX, 0)))
	}},
	{"ordinals are never reused after every event was archived", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 3))
		n, err := log.ArchiveBefore(ctxFor(t), keyA, last)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		next := mustAppend(t, log, keyA, evs(3, 2))
		require.Greater(t, next, last+1)
		recs := requireThread(t, log, keyA, eventPayloads(evs(3, 2)))
		require.Greater(t, recs[0].Ordinal, last)
	}},
}

var atomicRules = []rule{
	{"concurrent appenders on one thread never interleave batches", func(t *testing.T, log sessionlog.Log) {
		const writers, batches = 8, 100
		type batch struct {
			writer, seq, size int
			last              uint64
		}
		var (
			mu   sync.Mutex
			done []batch
			wg   sync.WaitGroup
			errs = make(chan error, writers)
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for b := range batches {
					size := 1 + rng.IntN(5)
					events := make([]sessionlog.Event, size)
					for i := range events {
						events[i] = sessionlog.Event{Type: "tool_call", Data: fmt.Appendf(nil, "%d/%d/%d/%d", w, b, i, size)}
					}
					last, err := log.Append(ctxFor(t), keyA, events)
					if err != nil {
						errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
						return
					}
					mu.Lock()
					done = append(done, batch{w, b, size, last})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		recs := mustLoad(t, log, keyA, 0)
		requireStrictlyIncreasing(t, ordinals(recs))
		total := 0
		byLast := map[uint64]batch{}
		for _, b := range done {
			total += b.size
			byLast[b.last] = b
		}
		require.Len(t, recs, total)
		// Walk the thread: each batch must appear whole and contiguous, ending
		// at the ordinal its Append returned.
		for i := 0; i < len(recs); {
			var w, b, k, size int
			_, err := fmt.Sscanf(string(recs[i].Data), "%d/%d/%d/%d", &w, &b, &k, &size)
			require.NoError(t, err)
			require.Equal(t, 0, k, "batch %d/%d does not start at its first event", w, b)
			for j := range size {
				require.Equal(t, fmt.Sprintf("%d/%d/%d/%d", w, b, j, size), string(recs[i+j].Data), "batch %d/%d interleaved", w, b)
			}
			got, ok := byLast[recs[i+size-1].Ordinal]
			require.True(t, ok, "no Append returned ordinal %d", recs[i+size-1].Ordinal)
			require.Equal(t, [2]int{w, b}, [2]int{got.writer, got.seq})
			i += size
		}
	}},
	{"a rejected batch stores none of its events", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		bad := evs(1, 3)
		bad[2].Type = ""
		_, err := log.Append(ctxFor(t), keyA, bad)
		require.ErrorIs(t, err, sessionlog.ErrInvalidEvent)
		requireThread(t, log, keyA, eventPayloads(evs(0, 1)))
	}},
	{"concurrent appenders on many threads keep each thread ordered", func(t *testing.T, log sessionlog.Log) {
		const threads, perThread = 16, 20
		var wg sync.WaitGroup
		errs := make(chan error, threads)
		for th := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := sessionlog.ThreadKey{Tenant: "acme", Thread: fmt.Sprintf("t%d", th)}
				for i := range perThread {
					if _, err := log.Append(ctxFor(t), key, evs(i, 1)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for th := range threads {
			requireThread(t, log, sessionlog.ThreadKey{Tenant: "acme", Thread: fmt.Sprintf("t%d", th)}, eventPayloads(evs(0, perThread)))
		}
	}},
}

var emptyAppendRules = []rule{
	{"empty append stores nothing and returns the last ordinal", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		require.Equal(t, last, mustAppend(t, log, keyA, nil))
		require.Equal(t, last, mustAppend(t, log, keyA, []sessionlog.Event{}))
		requireThread(t, log, keyA, eventPayloads(evs(0, 2)))
	}},
	{"empty append to an unknown thread returns 0 and creates nothing", func(t *testing.T, log sessionlog.Log) {
		require.Equal(t, uint64(0), mustAppend(t, log, noKey, nil))
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, noKey))
		require.Empty(t, mustLoad(t, log, noKey, 0))
	}},
	{"empty append after archiving everything returns 0", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		_, err := log.ArchiveBefore(ctxFor(t), keyA, last)
		require.NoError(t, err)
		require.Equal(t, uint64(0), mustAppend(t, log, keyA, nil))
	}},
}

var idempotencyRules = []rule{
	{"retrying a single event returns its original ordinal and stores it once", func(t *testing.T, log sessionlog.Log) {
		e := []sessionlog.Event{{ID: "evt-1", Type: "user_message", Data: []byte(`"hi"`)}}
		first := mustAppend(t, log, keyA, e)
		mustAppend(t, log, keyA, evs(1, 1))
		again := mustAppend(t, log, keyA, []sessionlog.Event{{ID: "evt-1", Type: "user_message", Data: []byte(`"hi"`)}})
		require.Equal(t, first, again)
		requireThread(t, log, keyA, []string{`"hi"`, `{"n":1}`})
	}},
	{"retrying a batch returns the original last ordinal and stores it once", func(t *testing.T, log sessionlog.Log) {
		batch := func() []sessionlog.Event {
			b := evs(0, 3)
			for i := range b {
				b[i].ID = fmt.Sprintf("batch-%d", i)
			}
			return b
		}
		first := mustAppend(t, log, keyA, batch())
		mustAppend(t, log, keyA, evs(3, 1))
		require.Equal(t, first, mustAppend(t, log, keyA, batch()))
		require.Equal(t, first, mustAppend(t, log, keyA, batch()))
		requireThread(t, log, keyA, eventPayloads(evs(0, 4)))
	}},
	{"retrying the same slice after Append filled its IDs is idempotent", func(t *testing.T, log sessionlog.Log) {
		batch := evs(0, 2)
		first := mustAppend(t, log, keyA, batch)
		for _, e := range batch {
			require.NotEmpty(t, e.ID, "Append fills empty IDs in the caller's slice")
			require.False(t, e.Time.IsZero(), "Append fills zero times in the caller's slice")
		}
		require.Equal(t, first, mustAppend(t, log, keyA, batch))
		single := evs(2, 1)
		one := mustAppend(t, log, keyA, single)
		require.Equal(t, one, mustAppend(t, log, keyA, single))
		requireThread(t, log, keyA, eventPayloads(evs(0, 3)))
	}},
	{"a retry repeating only some events fails with ErrPartialRetry and stores nothing", func(t *testing.T, log sessionlog.Log) {
		orig := []sessionlog.Event{{ID: "p-1", Type: "t", Data: []byte("1")}, {ID: "p-2", Type: "t", Data: []byte("2")}}
		mustAppend(t, log, keyA, orig)
		mixed := []sessionlog.Event{{ID: "p-2", Type: "t", Data: []byte("2")}, {ID: "p-3", Type: "t", Data: []byte("3")}}
		_, err := log.Append(ctxFor(t), keyA, mixed)
		require.ErrorIs(t, err, sessionlog.ErrPartialRetry)
		requireThread(t, log, keyA, []string{"1", "2"})
	}},
	{"the same ID on two threads names two events", func(t *testing.T, log sessionlog.Log) {
		a := mustAppend(t, log, keyA, []sessionlog.Event{{ID: "same", Type: "t", Data: []byte("a")}})
		b := mustAppend(t, log, keyB, []sessionlog.Event{{ID: "same", Type: "t", Data: []byte("b")}})
		x := mustAppend(t, log, keyX, []sessionlog.Event{{ID: "same", Type: "t", Data: []byte("x")}})
		require.NotEqual(t, a, b)
		requireThread(t, log, keyA, []string{"a"})
		requireThread(t, log, keyB, []string{"b"})
		requireThread(t, log, keyX, []string{"x"})
		require.Equal(t, x, mustLoad(t, log, keyX, 0)[0].Ordinal)
	}},
	{"a retry with the same ExpectLast reports the original ordinal", func(t *testing.T, log sessionlog.Log) {
		base := mustAppend(t, log, keyA, evs(0, 1))
		single := []sessionlog.Event{{ID: "cond-1", Type: "t", Data: []byte("s")}}
		first := mustAppend(t, log, keyA, single, sessionlog.ExpectLast(base))
		require.Equal(t, first, mustAppend(t, log, keyA, single, sessionlog.ExpectLast(base)))
		batch := []sessionlog.Event{{ID: "cond-2", Type: "t", Data: []byte("b1")}, {ID: "cond-3", Type: "t", Data: []byte("b2")}}
		second := mustAppend(t, log, keyA, batch, sessionlog.ExpectLast(first))
		require.Equal(t, second, mustAppend(t, log, keyA, batch, sessionlog.ExpectLast(first)))
		requireThread(t, log, keyA, []string{`{"n":0}`, "s", "b1", "b2"})
	}},
}

var expectLastRules = []rule{
	{"ExpectLast with the thread's last ordinal appends", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		next := mustAppend(t, log, keyA, evs(2, 2), sessionlog.ExpectLast(last))
		mustAppend(t, log, keyA, evs(4, 1), sessionlog.ExpectLast(next))
		requireThread(t, log, keyA, eventPayloads(evs(0, 5)))
	}},
	{"ExpectLast with a stale ordinal fails with ErrConflict and stores nothing", func(t *testing.T, log sessionlog.Log) {
		first := mustAppend(t, log, keyA, evs(0, 1))
		mustAppend(t, log, keyA, evs(1, 1))
		for _, events := range [][]sessionlog.Event{evs(9, 1), evs(9, 3)} {
			_, err := log.Append(ctxFor(t), keyA, events, sessionlog.ExpectLast(first))
			require.ErrorIs(t, err, sessionlog.ErrConflict)
			_, err = log.Append(ctxFor(t), keyA, events, sessionlog.ExpectLast(0))
			require.ErrorIs(t, err, sessionlog.ErrConflict)
		}
		requireThread(t, log, keyA, eventPayloads(evs(0, 2)))
	}},
	{"ExpectLast 0 appends to a new thread only", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1), sessionlog.ExpectLast(0))
		mustAppend(t, log, keyB, evs(0, 3), sessionlog.ExpectLast(0))
		_, err := log.Append(ctxFor(t), keyA, evs(1, 1), sessionlog.ExpectLast(0))
		require.ErrorIs(t, err, sessionlog.ErrConflict)
		requireThread(t, log, keyA, eventPayloads(evs(0, 1)))
	}},
	{"ExpectLast 0 holds again once every event was archived", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 2))
		_, err := log.ArchiveBefore(ctxFor(t), keyA, last)
		require.NoError(t, err)
		mustAppend(t, log, keyA, evs(2, 1), sessionlog.ExpectLast(0))
		requireThread(t, log, keyA, eventPayloads(evs(2, 1)))
	}},
	{"ExpectLast with an ordinal of another thread fails", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		b := mustAppend(t, log, keyB, evs(0, 1))
		_, err := log.Append(ctxFor(t), keyA, evs(1, 1), sessionlog.ExpectLast(b))
		require.ErrorIs(t, err, sessionlog.ErrConflict)
	}},
	{"of concurrent appends expecting the same ordinal exactly one wins", func(t *testing.T, log sessionlog.Log) {
		last := mustAppend(t, log, keyA, evs(0, 1))
		const racers = 6
		var wg sync.WaitGroup
		results := make(chan error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := log.Append(ctxFor(t), keyA, evs(10+i, 1+i%2), sessionlog.ExpectLast(last))
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		wins := 0
		for err := range results {
			if err == nil {
				wins++
				continue
			}
			require.True(t, errors.Is(err, sessionlog.ErrConflict), "unexpected error: %v", err)
		}
		require.Equal(t, 1, wins)
		recs := mustLoad(t, log, keyA, 0)
		require.True(t, len(recs) == 2 || len(recs) == 3, "exactly one racer's events were added: %v", payloads(recs))
	}},
}
