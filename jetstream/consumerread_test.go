package jetstream_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// appendEvents appends n events to the thread in batches.
func appendEvents(t *testing.T, log *jetstream.Log, k sessionlog.ThreadKey, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		_, err := log.Append(ctx(t), k, events(min(100, n-i)))
		require.NoError(t, err)
	}
}

// requireOrdinalsIncrease checks that recs are n records in strictly
// increasing ordinal order.
func requireOrdinalsIncrease(t *testing.T, recs []sessionlog.Record, n int) {
	t.Helper()
	require.Len(t, recs, n)
	for i := 1; i < len(recs); i++ {
		require.Greater(t, recs[i].Ordinal, recs[i-1].Ordinal)
	}
}

// consumerCount returns how many consumers the tenant stream has.
func consumerCount(t *testing.T, nc *nats.Conn, stream string) int {
	t.Helper()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx(t), stream)
	require.NoError(t, err)
	info, err := st.Info(ctx(t))
	require.NoError(t, err)
	return info.State.Consumers
}

// countRequests counts the requests sent on subjects matching filter.
func countRequests(t *testing.T, url, filter string, opts ...nats.Option) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	mon := testserver.Connect(t, url, opts...)
	_, err := mon.Subscribe(filter, func(*nats.Msg) { n.Add(1) })
	require.NoError(t, err)
	require.NoError(t, mon.Flush())
	return &n
}

func TestALongReadGoesThroughAConsumerAndDeletesIt(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	k := sessionlog.ThreadKey{Tenant: "acme", Thread: "long"}
	for _, tc := range []struct {
		name      string
		opts      []jetstream.Option
		consumers int32
	}{
		{"by default", nil, 1},
		{"turned off", []jetstream.Option{jetstream.WithConsumerReads(0)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := newLog(t, nc, tc.opts...)
			appendEvents(t, log, k, 1000)
			creations := countRequests(t, srv.URL(), "$JS.API.CONSUMER.CREATE.>")
			recs, err := log.LoadSince(ctx(t), k, 0)
			require.NoError(t, err)
			requireOrdinalsIncrease(t, recs, 1000)
			short, err := log.LoadSince(ctx(t), k, recs[899].Ordinal)
			require.NoError(t, err)
			requireOrdinalsIncrease(t, short, 100) // fewer than the minimum: direct gets only
			require.Equal(t, tc.consumers, creations.Load())
			stream := log.Scheme().Stream(k.Tenant)
			require.Eventually(t, func() bool { return consumerCount(t, nc, stream) == 0 }, 5*time.Second, 20*time.Millisecond,
				"the read's consumer is deleted once it ends")
		})
	}
}

// TestAReadWhoseConsumerLosesMessagesGoesOnWithDirectGets lets a read's
// consumer overflow the client's buffer while the reader pauses: the
// client drops deliveries, the read sees the gap and reads the rest with
// direct gets, with nothing lost or repeated.
func TestAReadWhoseConsumerLosesMessagesGoesOnWithDirectGets(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // slow consumer errors expected
	log := newLog(t, nc, jetstream.WithTailBuffer(1<<20))
	k := sessionlog.ThreadKey{Tenant: "acme", Thread: "long"}
	big := make([]byte, 8<<10)
	for i := 0; i < 3000; i += 50 {
		evs := make([]sessionlog.Event, 50)
		for j := range evs {
			evs[j] = sessionlog.Event{Type: "tool_result", Data: big}
		}
		_, err := log.Append(ctx(t), k, evs)
		require.NoError(t, err)
	}
	directGets := countRequests(t, srv.URL(), "$JS.API.DIRECT.GET.>")
	var recs []sessionlog.Record
	for rec, err := range log.Scan(ctx(t), k, 0) {
		require.NoError(t, err)
		recs = append(recs, rec)
		if len(recs) == 200 {
			time.Sleep(300 * time.Millisecond) // the consumer outruns the buffer
		}
	}
	requireOrdinalsIncrease(t, recs, 3000)
	require.Greater(t, directGets.Load(), int32(1), "the read went on with direct gets after its consumer")
}

func TestReadsWithoutTheRightsToCreateConsumersUseDirectGets(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "p"},
			{Username: "agent", Password: "p", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}, Deny: []string{"$JS.API.CONSUMER.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	})
	admin := newLog(t, testserver.Connect(t, srv.URL(), nats.UserInfo("admin", "p")))
	k := sessionlog.ThreadKey{Tenant: "acme", Thread: "long"}
	appendEvents(t, admin, k, 1000)
	var refusals atomic.Int32 // the server reports each refused request
	nc := testserver.Connect(t, srv.URL(), nats.UserInfo("agent", "p"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				refusals.Add(1)
			}
		}))
	log, err := jetstream.New(nc, jetstream.WithScheme(admin.Scheme()), jetstream.WithPermissionWatcher(jetstream.WatchPermissions(nc)))
	require.NoError(t, err)
	for range 3 {
		recs, err := log.LoadSince(ctx(t), k, 0)
		require.NoError(t, err)
		requireOrdinalsIncrease(t, recs, 1000)
	}
	require.NoError(t, nc.Flush())
	require.Equal(t, int32(1), refusals.Load(), "one refusal turns consumer reads off")
}
