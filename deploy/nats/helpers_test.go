// Package nats_test boots the configuration files of this folder in real,
// in-process NATS servers and checks what each role may and may not do
// through the jetsession library itself.
package nats_test

import (
	"context"
	"fmt"
	"iter"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// account is the account accounts.conf puts every user in.
const account = "JETSESSION"

// deniedWait bounds calls expected to be refused: the server drops a
// denied publish without a reply, so the caller only sees its deadline. The
// proof of the refusal is the permission violation the server reports.
const deniedWait = 750 * time.Millisecond

// Inbox prefixes the roles connect with (see genaccounts).
const (
	bridgeInbox      = "_INBOX_BRIDGE"
	provisionerInbox = "_INBOX_PROVISIONER"
)

func tenantInbox(tenant string) string { return "_INBOX_" + subjects.EncodeTenant(tenant) }

// loadConfig parses a configuration file of this folder as nats-server
// would and moves it onto free loopback ports and a temporary store.
func loadConfig(tb testing.TB, path string) *server.Options {
	tb.Helper()
	opts, err := server.ProcessConfigFile(path)
	require.NoError(tb, err, "parsing %s", path)
	opts.Host = "127.0.0.1"
	opts.Port = -1
	opts.HTTPHost = "127.0.0.1"
	opts.HTTPPort = -1
	opts.StoreDir = tb.TempDir()
	opts.NoLog = os.Getenv("JETSESSION_TEST_SERVER_LOG") == ""
	opts.NoSigs = true
	return opts
}

// startServer runs opts until the test ends and waits for JetStream.
func startServer(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	return startServers(tb, opts)[0]
}

// startServers starts every server at once (a cluster's JetStream needs a
// quorum to come up), stops them when the test ends, and waits until each
// takes clients and runs JetStream.
func startServers(tb testing.TB, opts ...*server.Options) []*server.Server {
	tb.Helper()
	srvs := make([]*server.Server, len(opts))
	for i, o := range opts {
		srv, err := server.NewServer(o)
		require.NoError(tb, err)
		if !o.NoLog {
			srv.ConfigureLogger()
		}
		srvs[i] = srv
		tb.Cleanup(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
	}
	for _, srv := range srvs {
		go srv.Start()
	}
	for _, srv := range srvs {
		require.True(tb, srv.ReadyForConnections(30*time.Second), "%s not ready for connections", srv.Name())
	}
	testserver.Eventually(tb, 30*time.Second, func() error {
		for _, srv := range srvs {
			if !srv.JetStreamEnabled() {
				return fmt.Errorf("%s: JetStream not enabled yet", srv.Name())
			}
		}
		return nil
	})
	return srvs
}

// password returns the password the configuration gives user.
func password(tb testing.TB, opts *server.Options, user string) string {
	tb.Helper()
	for _, u := range opts.Users {
		if u.Username == user {
			return u.Password
		}
	}
	tb.Fatalf("no user %q in the configuration", user)
	return ""
}

// client is a connection that records the asynchronous errors the server
// reports, permission violations among them.
type client struct {
	nc      *nats.Conn
	user    string
	watcher *jetstream.PermissionWatcher

	mu   sync.Mutex
	errs []string
}

// connect logs in as user; inbox is the custom inbox prefix ("" keeps the
// default _INBOX).
func connect(tb testing.TB, opts *server.Options, url, user, inbox string) *client {
	tb.Helper()
	c := &client{user: user}
	nopts := []nats.Option{
		nats.Name(user),
		nats.UserInfo(user, password(tb, opts, user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}),
	}
	if inbox != "" {
		nopts = append(nopts, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(url, nopts...)
	require.NoError(tb, err, "connecting as %s", user)
	tb.Cleanup(nc.Close)
	c.nc = nc
	return c
}

func (c *client) asyncErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// violation waits for the server to report a permission violation whose
// subject starts with prefix; kind is "Publish" or "Subscription".
func (c *client) violation(tb testing.TB, kind, prefix string) {
	tb.Helper()
	want := fmt.Sprintf("Permissions Violation for %s to %q", kind, prefix)
	want = strings.TrimSuffix(want, `"`) // a prefix of the subject
	testserver.Eventually(tb, 5*time.Second, func() error {
		for _, e := range c.asyncErrors() {
			if strings.Contains(e, want) {
				return nil
			}
		}
		return fmt.Errorf("%s: no %q among %q", c.user, want, c.asyncErrors())
	})
}

// noViolations fails if the server reported any violation to c.
func (c *client) noViolations(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, c.nc.Flush())
	for _, e := range c.asyncErrors() {
		require.NotContains(tb, e, "Permissions Violation", "%s was refused something the library needs", c.user)
	}
}

// log returns a Log on c that fails refused calls at once; agents never
// create streams.
func (c *client) log(tb testing.TB, opts ...jetstream.Option) *jetstream.Log {
	tb.Helper()
	c.mu.Lock()
	if c.watcher == nil {
		c.watcher = jetstream.WatchPermissions(c.nc)
	}
	w := c.watcher
	c.mu.Unlock()
	l, err := jetstream.New(c.nc, append([]jetstream.Option{jetstream.WithPermissionWatcher(w)}, opts...)...)
	require.NoError(tb, err)
	return l
}

func ctxFor(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func events(texts ...string) []sessionlog.Event {
	out := make([]sessionlog.Event, len(texts))
	for i, t := range texts {
		out[i] = sessionlog.Event{Type: "user_message", Data: fmt.Appendf(nil, `{"text":%q}`, t)}
	}
	return out
}

// drain runs seq in the background and hands over what it yields; it
// stops when ctx ends.
func drain[T any](seq iter.Seq2[T, error]) (<-chan T, <-chan error) {
	out := make(chan T, 1024)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for v, err := range seq {
			if err != nil {
				errc <- err
				return
			}
			out <- v
		}
	}()
	return out, errc
}

// next waits for the next value of a drained sequence.
func next[T any](tb testing.TB, out <-chan T, errc <-chan error) T {
	tb.Helper()
	select {
	case v, ok := <-out:
		require.True(tb, ok, "the sequence ended early")
		return v
	case err := <-errc:
		tb.Fatalf("the sequence failed: %v", err)
	case <-time.After(10 * time.Second):
		tb.Fatal("nothing yielded within 10s")
	}
	var zero T
	return zero
}

// freePorts returns n distinct free loopback ports.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
