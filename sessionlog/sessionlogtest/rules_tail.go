package sessionlogtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// tailItem is one element a tail yielded.
type tailItem struct {
	thread string
	rec    sessionlog.Record
	err    error
}

// tailer asserts that log implements sessionlog.Tailer.
func tailer(t *testing.T, log sessionlog.Log) sessionlog.Tailer {
	t.Helper()
	tl, ok := log.(sessionlog.Tailer)
	require.True(t, ok, "every backend must implement sessionlog.Tailer; %T does not", log)
	return tl
}

// startTail runs a thread tail (or a tenant tail when key.Thread is empty)
// in a goroutine and returns its items; the channel closes when the tail
// ends. Cancel ctx to stop it.
func startTail(ctx context.Context, tl sessionlog.Tailer, key sessionlog.ThreadKey, cursor uint64) <-chan tailItem {
	ch := make(chan tailItem)
	send := func(it tailItem) bool {
		select {
		case ch <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(ch)
		if key.Thread == "" {
			for r, err := range tl.TailTenant(ctx, key.Tenant, cursor) {
				if !send(tailItem{r.Thread, r.Record, err}) {
					return
				}
			}
			return
		}
		for r, err := range tl.Tail(ctx, key, cursor) {
			if !send(tailItem{key.Thread, r, err}) {
				return
			}
		}
	}()
	return ch
}

// take waits for n records from a tail, failing on an error or a timeout.
func take(t *testing.T, ch <-chan tailItem, n int) []tailItem {
	t.Helper()
	out := takeItems(t, ch, n)
	for _, it := range out {
		require.NoError(t, it.err)
	}
	return out
}

// takeItems waits for n items from a tail, records or errors, failing if
// the tail ends or they do not arrive within a minute.
func takeItems(t *testing.T, ch <-chan tailItem, n int) []tailItem {
	t.Helper()
	out := make([]tailItem, 0, n)
	timeout := time.After(time.Minute)
	for len(out) < n {
		select {
		case it, ok := <-ch:
			require.True(t, ok, "the tail ended after %d of %d items", len(out), n)
			out = append(out, it)
		case <-timeout:
			t.Fatalf("only %d of %d items arrived within a minute", len(out), n)
		}
	}
	return out
}

// requireQuiet asserts the tail yields nothing more for a short while.
func requireQuiet(t *testing.T, ch <-chan tailItem) {
	t.Helper()
	select {
	case it, ok := <-ch:
		if ok {
			t.Fatalf("unexpected extra tail item: ordinal %d thread %q err %v", it.rec.Ordinal, it.thread, it.err)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func itemOrdinals(items []tailItem) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.rec.Ordinal
	}
	return out
}

func itemPayloads(items []tailItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.rec.Data)
	}
	return out
}

func tailCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(ctxFor(t))
	t.Cleanup(cancel)
	return ctx
}

var tailRules = []rule{
	{"tail yields the backlog, then live events, in order", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 3))
		ch := startTail(tailCtx(t), tailer(t, log), keyA, 0)
		got := take(t, ch, 3)
		mustAppend(t, log, keyA, evs(3, 2))
		mustAppend(t, log, keyB, evs(100, 1))
		mustAppend(t, log, keyX, evs(200, 1))
		mustAppend(t, log, keyA, evs(5, 1))
		got = append(got, take(t, ch, 3)...)
		require.Equal(t, eventPayloads(evs(0, 6)), itemPayloads(got))
		require.Equal(t, ordinals(mustLoad(t, log, keyA, 0)), itemOrdinals(got))
		requireQuiet(t, ch)
	}},
	{"tail from the last seen ordinal yields exactly the rest", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 5))
		all := mustLoad(t, log, keyA, 0)
		ch := startTail(tailCtx(t), tailer(t, log), keyA, all[2].Ordinal)
		got := take(t, ch, 2)
		require.Equal(t, ordinals(all[3:]), itemOrdinals(got))
		requireQuiet(t, ch)
		last := mustAppend(t, log, keyA, evs(5, 1))
		require.Equal(t, []uint64{last}, itemOrdinals(take(t, ch, 1)))
	}},
	{"tail does not replay archived events", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 4))
		all := mustLoad(t, log, keyA, 0)
		mustArchive(t, log, keyA, all[1].Ordinal)
		ch := startTail(tailCtx(t), tailer(t, log), keyA, 0)
		require.Equal(t, ordinals(all[2:]), itemOrdinals(take(t, ch, 2)))
		requireQuiet(t, ch)
	}},
	{"tail yields every event of concurrent appenders once, in order", func(t *testing.T, log sessionlog.Log) {
		ch := startTail(tailCtx(t), tailer(t, log), keyA, 0)
		const writers, appends = 4, 25
		var wg sync.WaitGroup
		defer wg.Wait()
		errs := make(chan error, writers)
		total := 0
		for w := range writers {
			for i := range appends {
				total += 1 + (w+i)%3
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range appends {
					if _, err := log.Append(ctxFor(t), keyA, evs(w*1000+i*10, 1+(w+i)%3)); err != nil {
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
		got := take(t, ch, total)
		require.Equal(t, ordinals(mustLoad(t, log, keyA, 0)), itemOrdinals(got))
		requireQuiet(t, ch)
	}},
	{"a tail that stops reading does not block writers", func(t *testing.T, log sessionlog.Log) {
		ch := startTail(tailCtx(t), tailer(t, log), keyA, 0)
		mustAppend(t, log, keyA, evs(0, 1))
		take(t, ch, 1)
		// The tail's reader now stalls while writers go on.
		big := make([]byte, 16<<10)
		for i := range 200 {
			actx, cancel := context.WithTimeout(ctxFor(t), 10*time.Second)
			_, err := log.Append(actx, keyA, []sessionlog.Event{{Type: "t", Data: fmt.Appendf(big[:0:len(big)], "%d", i+1)}})
			cancel()
			require.NoError(t, err, "append %d while a tail is not read", i)
		}
		got := take(t, ch, 200)
		for i, it := range got {
			require.Equal(t, fmt.Sprint(i+1), string(it.rec.Data))
		}
	}},
	{"tail ends without an error when its context ends", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 1))
		ctx, cancel := context.WithCancel(ctxFor(t))
		tl := tailer(t, log)
		done := make(chan []error)
		go func() {
			var errs []error
			for _, err := range tl.Tail(ctx, keyA, 0) {
				if err != nil {
					errs = append(errs, err)
				}
			}
			done <- errs
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case errs := <-done:
			require.Empty(t, errs)
		case <-time.After(30 * time.Second):
			t.Fatal("the tail did not end after its context was cancelled")
		}
	}},
	{"breaking out of a tail stops it", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 5))
		n := 0
		for _, err := range tailer(t, log).Tail(ctxFor(t), keyA, 0) {
			require.NoError(t, err)
			if n++; n == 2 {
				break
			}
		}
		require.Equal(t, 2, n)
		// The log is still fully usable.
		mustAppend(t, log, keyA, evs(5, 1))
		require.Len(t, mustLoad(t, log, keyA, 0), 6)
	}},
	{"tenant tail yields every thread's events in ordinal order, naming the thread", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 2))
		mustAppend(t, log, keyB, evs(10, 1))
		mustAppend(t, log, keyX, evs(20, 1))
		ch := startTail(tailCtx(t), tailer(t, log), sessionlog.ThreadKey{Tenant: keyA.Tenant}, 0)
		got := take(t, ch, 3)
		fresh := sessionlog.ThreadKey{Tenant: keyA.Tenant, Thread: "created later"}
		mustAppend(t, log, fresh, evs(30, 2))
		mustAppend(t, log, keyB, evs(11, 1))
		got = append(got, take(t, ch, 3)...)
		requireStrictlyIncreasing(t, itemOrdinals(got))
		var threads []string
		for _, it := range got {
			threads = append(threads, it.thread)
		}
		require.Equal(t, []string{keyA.Thread, keyA.Thread, keyB.Thread, fresh.Thread, fresh.Thread, keyB.Thread}, threads)
		require.Equal(t, []string{`{"n":0}`, `{"n":1}`, `{"n":10}`, `{"n":30}`, `{"n":31}`, `{"n":11}`}, itemPayloads(got))
		requireQuiet(t, ch)
	}},
	{"tenant tail resumes from one cursor across threads", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 2))
		cursor := mustAppend(t, log, keyB, evs(10, 2))
		mustAppend(t, log, keyA, evs(2, 1))
		mustAppend(t, log, keyB, evs(12, 1))
		ch := startTail(tailCtx(t), tailer(t, log), sessionlog.ThreadKey{Tenant: keyA.Tenant}, cursor)
		got := take(t, ch, 2)
		require.Equal(t, []string{`{"n":2}`, `{"n":12}`}, itemPayloads(got))
		requireQuiet(t, ch)
	}},
	{"tail of a tenant that does not exist yet waits for its first events", func(t *testing.T, log sessionlog.Log) {
		tl := tailer(t, log)
		threadCh := startTail(tailCtx(t), tl, noKey, 0)
		tenantCh := startTail(tailCtx(t), tl, sessionlog.ThreadKey{Tenant: noKey.Tenant}, 0)
		requireQuiet(t, threadCh)
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, noKey))
		last := mustAppend(t, log, noKey, evs(0, 2), sessionlog.ExpectLast(0))
		require.Equal(t, last, take(t, threadCh, 2)[1].rec.Ordinal)
		require.Equal(t, last, take(t, tenantCh, 2)[1].rec.Ordinal)
	}},
	{"tail refuses an invalid key with one ErrInvalidKey", func(t *testing.T, log sessionlog.Log) {
		tl := tailer(t, log)
		for name, key := range InvalidKeys() {
			n := 0
			for _, err := range tl.Tail(ctxFor(t), key, 0) {
				require.ErrorIs(t, err, sessionlog.ErrInvalidKey, name)
				n++
			}
			require.Equal(t, 1, n, name)
			if key.Tenant == keyA.Tenant {
				continue // only the thread is invalid
			}
			n = 0
			for _, err := range tl.TailTenant(ctxFor(t), key.Tenant, 0) {
				require.ErrorIs(t, err, sessionlog.ErrInvalidKey, name)
				n++
			}
			require.Equal(t, 1, n, name)
		}
	}},
}
