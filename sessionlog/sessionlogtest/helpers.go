package sessionlogtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

var (
	keyA  = sessionlog.ThreadKey{Tenant: "acme", Thread: "thread-a"}
	keyB  = sessionlog.ThreadKey{Tenant: "acme", Thread: "thread-b"}
	keyX  = sessionlog.ThreadKey{Tenant: "globex", Thread: "thread-a"}
	noKey = sessionlog.ThreadKey{Tenant: "nobody", Thread: "nothing"}
)

// ctxFor returns a context that ends with the test, bounded so that a hung
// backend fails the test instead of the whole run.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ev returns an event of the given type whose payload names it.
func ev(typ string, n int) sessionlog.Event {
	return sessionlog.Event{Type: typ, Data: fmt.Appendf(nil, `{"n":%d}`, n)}
}

// evs returns n events with payloads numbered from first.
func evs(first, n int) []sessionlog.Event {
	out := make([]sessionlog.Event, n)
	for i := range out {
		out[i] = ev("user_message", first+i)
	}
	return out
}

func mustAppend(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, events []sessionlog.Event, opts ...sessionlog.AppendOption) uint64 {
	t.Helper()
	last, err := log.Append(ctxFor(t), key, events, opts...)
	require.NoError(t, err)
	return last
}

func mustLoad(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, cursor uint64) []sessionlog.Record {
	t.Helper()
	recs, err := log.LoadSince(ctxFor(t), key, cursor)
	require.NoError(t, err)
	return recs
}

func mustHead(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey) sessionlog.Head {
	t.Helper()
	h, err := log.Head(ctxFor(t), key)
	require.NoError(t, err)
	return h
}

func ordinals(recs []sessionlog.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Ordinal
	}
	return out
}

func payloads(recs []sessionlog.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func eventPayloads(events []sessionlog.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = string(e.Data)
	}
	return out
}

func requireStrictlyIncreasing(t *testing.T, ords []uint64) {
	t.Helper()
	for i := 1; i < len(ords); i++ {
		require.Greater(t, ords[i], ords[i-1], "ordinal %d is not greater than the one before it: %v", i, ords)
	}
}

// requireThread asserts the thread holds exactly these payloads in order,
// with strictly increasing ordinals, and returns its records.
func requireThread(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey, want []string) []sessionlog.Record {
	t.Helper()
	recs := mustLoad(t, log, key, 0)
	if len(want) == 0 {
		require.Empty(t, recs)
		return recs
	}
	require.Equal(t, want, payloads(recs))
	requireStrictlyIncreasing(t, ordinals(recs))
	return recs
}
