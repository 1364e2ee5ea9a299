package jetstream_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestPermissionRefusalsWithAndWithoutAWatcher: New leaves the connection's
// error handler as it was; a refused call is ErrPermissionDenied either
// way, at once with a PermissionWatcher, and Close restores the handler.
func TestPermissionRefusalsWithAndWithoutAWatcher(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "p"},
			// May use the JetStream API and its inbox, not publish events.
			{Username: "reader", Password: "p", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	})
	admin := newLog(t, testserver.Connect(t, srv.URL(), nats.UserInfo("admin", "p")))
	_, err := admin.Append(ctx(t), key, events(1))
	require.NoError(t, err)

	var seen atomic.Int32
	custom := func(*nats.Conn, *nats.Subscription, error) { seen.Add(1) }
	nc := testserver.Connect(t, srv.URL(), nats.UserInfo("reader", "p"), nats.ErrorHandler(custom))
	opts := []jetstream.Option{jetstream.WithScheme(admin.Scheme()), jetstream.WithRequestTimeout(time.Second)}
	plain, err := jetstream.New(nc, opts...)
	require.NoError(t, err)
	same := func() bool { return reflect.ValueOf(nc.ErrorHandler()).Pointer() == reflect.ValueOf(custom).Pointer() }
	require.True(t, same(), "New must not wrap the connection's error handler")

	// Without a watcher: known when the call times out.
	start := time.Now()
	_, err = plain.Append(ctx(t), key, events(2))
	require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
	require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout), "the timeout stays in the chain: %v", err)
	t.Logf("refused without a watcher after %v: %v", time.Since(start), err)

	// With one: known as soon as the server reports it.
	w := jetstream.WatchPermissions(nc)
	require.False(t, same())
	watched, err := jetstream.New(nc, append(opts, jetstream.WithRequestTimeout(time.Minute), jetstream.WithPermissionWatcher(w))...)
	require.NoError(t, err)
	start = time.Now()
	_, err = watched.Append(ctx(t), key, events(2))
	require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
	require.False(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout), "the watcher ends the call before its deadline: %v", err)
	t.Logf("refused with a watcher after %v: %v", time.Since(start), err)
	require.Positive(t, seen.Load(), "the connection's own handler still hears every error")

	w.Close()
	require.True(t, same(), "Close restores the handler")
	_, err = jetstream.New(testserver.Connect(t, srv.URL(), nats.UserInfo("admin", "p")), jetstream.WithPermissionWatcher(w))
	require.ErrorIs(t, err, jetstream.ErrInvalidConfig, "a watcher of another connection is refused")
	records, err := admin.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)
	require.Len(t, records, 1, "nothing was stored")
}
