package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// collector tails in the background and records what it yields.
type collector struct {
	mu    sync.Mutex
	recs  []sessionlog.Record
	errs  []error
	ended chan struct{}
}

func collect(ctx context.Context, seq func(yield func(sessionlog.Record, error) bool)) *collector {
	c := &collector{ended: make(chan struct{})}
	go func() {
		defer close(c.ended)
		for r, err := range seq {
			c.mu.Lock()
			if err != nil {
				c.errs = append(c.errs, err)
			} else {
				c.recs = append(c.recs, r)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) waitFor(t *testing.T, n int) []sessionlog.Record {
	t.Helper()
	testserver.Eventually(t, time.Minute, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.errs) > 0 {
			t.Fatalf("tail failed: %v", c.errs)
		}
		if len(c.recs) < n {
			return fmt.Errorf("%d of %d records", len(c.recs), n)
		}
		return nil
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sessionlog.Record(nil), c.recs...)
}

// requireExactly asserts recs are the thread's events, each once, in order.
func requireExactly(t *testing.T, log *jetstream.Log, k sessionlog.ThreadKey, recs []sessionlog.Record) {
	t.Helper()
	want, err := log.LoadSince(ctx(t), k, 0)
	require.NoError(t, err)
	got := make([]uint64, len(recs))
	for i, r := range recs {
		got[i] = r.Ordinal
	}
	wantOrd := make([]uint64, len(want))
	for i, r := range want {
		wantOrd[i] = r.Ordinal
	}
	require.Equal(t, wantOrd, got, "the tail yields every event once, in order")
}

// requireNoConsumers polls until the stream has no consumer left.
func requireNoConsumers(t *testing.T, nc *nats.Conn, stream string) {
	t.Helper()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	testserver.Eventually(t, 10*time.Second, func() error {
		info, err := js.Stream(ctx(t), stream)
		if err != nil {
			return err
		}
		if n := info.CachedInfo().State.Consumers; n != 0 {
			return fmt.Errorf("%d consumers left on %s", n, stream)
		}
		return nil
	})
}

func appendN(t *testing.T, log *jetstream.Log, k sessionlog.ThreadKey, n int) {
	t.Helper()
	for i := range n {
		_, err := log.Append(ctx(t), k, events(1+i%2))
		require.NoError(t, err)
	}
}

func TestTailSurvivesAServerRestart(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	appendN(t, log, key, 10)
	tctx, stop := context.WithCancel(context.Background())
	defer stop()
	thread := collect(tctx, log.Tail(tctx, key, 0))
	tenant := collect(tctx, func(yield func(sessionlog.Record, error) bool) {
		for r, err := range log.TailTenant(tctx, key.Tenant, 0) {
			if !yield(r.Record, err) {
				return
			}
		}
	})
	thread.waitFor(t, 15)
	tenant.waitFor(t, 15)

	srv.Restart()
	appendN(t, log, key, 10)
	requireExactly(t, log, key, thread.waitFor(t, 30))
	requireExactly(t, log, key, tenant.waitFor(t, 30))

	stop()
	<-thread.ended
	<-tenant.ended
	require.Empty(t, thread.errs)
	requireNoConsumers(t, nc, log.Scheme().Stream(key.Tenant))
}

func TestTailSurvivesTheLossOfTheStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests are not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	nc := testserver.Connect(t, c.URLs())
	log := newLog(t, nc, jetstream.WithReplicas(3))
	appendN(t, log, key, 10)
	tctx, stop := context.WithCancel(context.Background())
	defer stop()
	tl := collect(tctx, log.Tail(tctx, key, 0))
	tl.waitFor(t, 15)

	leader := c.StreamLeader(log.Scheme().Stream(key.Tenant))
	leader.Shutdown()
	appendN(t, log, key, 10)
	leader.Restart()
	appendN(t, log, key, 10)
	requireExactly(t, log, key, tl.waitFor(t, 45))

	stop()
	<-tl.ended
	require.Empty(t, tl.errs)
	requireNoConsumers(t, nc, log.Scheme().Stream(key.Tenant))
}

func TestBreakingOutOfATailDeletesItsConsumer(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	appendN(t, log, key, 5)
	n := 0
	for _, err := range log.Tail(ctx(t), key, 0) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	n = 0
	for _, err := range log.TailTenant(ctx(t), key.Tenant, 0) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	requireNoConsumers(t, nc, log.Scheme().Stream(key.Tenant))
}

func TestTailReportsACorruptEventWithItsOrdinalAndGoesOn(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	appendN(t, log, key, 1)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	ack, err := js.Publish(ctx(t), log.Scheme().Subject(key.Tenant, key.Thread), []byte("no headers"))
	require.NoError(t, err)
	after, err := log.Append(ctx(t), key, events(1))
	require.NoError(t, err)
	tctx, cancel := context.WithCancel(ctx(t))
	var got []sessionlog.Record
	var tailErr error
	for r, err := range log.Tail(tctx, key, 0) {
		if err != nil {
			tailErr = err
			continue
		}
		got = append(got, r)
		if r.Ordinal == after {
			cancel()
		}
	}
	cancel()
	require.Len(t, got, 2, "the tail goes on after the corrupt event")
	require.ErrorIs(t, tailErr, sessionlog.ErrCorruptEvent)
	var ce *sessionlog.CorruptEventError
	require.ErrorAs(t, tailErr, &ce)
	require.Equal(t, ack.Sequence, ce.Ordinal)
	requireNoConsumers(t, nc, log.Scheme().Stream(key.Tenant))
}
