// Package testserver runs real, embedded nats-server instances with
// JetStream for tests and benchmarks: a single node that can restart on the
// same store, and an in-process cluster whose nodes can be stopped and
// restarted one by one. Everything listens on 127.0.0.1 and stores its data
// in the test's temporary directory.
package testserver

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Option adjusts a node's server options before it starts, for example
// JetStream limits or the maximum payload.
type Option func(*server.Options)

// Node is one embedded nats-server with JetStream on file storage.
type Node struct {
	tb   testing.TB
	mu   sync.Mutex
	opts server.Options
	srv  *server.Server
}

// Start runs a single node and stops it when the test ends.
func Start(tb testing.TB, opts ...Option) *Node {
	tb.Helper()
	o := baseOptions(tb, "single")
	for _, opt := range opts {
		opt(&o)
	}
	n := &Node{tb: tb, opts: o}
	n.start()
	tb.Cleanup(n.Shutdown)
	return n
}

func baseOptions(tb testing.TB, name string) server.Options {
	return server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   tb.TempDir(),
		NoLog:      os.Getenv("JETSESSION_TEST_SERVER_LOG") == "",
		NoSigs:     true,
		// Explicit limits keep the server from sizing JetStream after the
		// machine's free memory and disk.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  8 << 30,
	}
}

func (n *Node) start() {
	n.tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.tb.Fatalf("testserver: new server %s: %v", n.opts.ServerName, err)
	}
	if !opts.NoLog {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		n.tb.Fatalf("testserver: %s not ready for connections", n.opts.ServerName)
	}
	// Pin the client port so that a restart comes back where clients
	// reconnect.
	if n.opts.Port == -1 {
		n.opts.Port = srv.Addr().(*net.TCPAddr).Port
	}
	n.srv = srv
}

// Server returns the running server, or nil while stopped.
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Name is the node's server name.
func (n *Node) Name() string { return n.opts.ServerName }

// URL is the client URL; it stays the same across restarts.
func (n *Node) URL() string {
	return "nats://" + net.JoinHostPort(n.opts.Host, strconv.Itoa(n.opts.Port))
}

// Shutdown stops the node and waits until it is down. It is a no-op when
// the node is already stopped.
func (n *Node) Shutdown() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart stops the node and starts it again on the same store and ports,
// then waits for JetStream to be ready.
func (n *Node) Restart() {
	n.tb.Helper()
	n.Shutdown()
	n.start()
	n.WaitJetStream()
}

// WaitJetStream polls until the node's JetStream is enabled.
func (n *Node) WaitJetStream() {
	n.tb.Helper()
	Eventually(n.tb, 20*time.Second, func() error {
		if srv := n.Server(); srv == nil || !srv.JetStreamEnabled() {
			return fmt.Errorf("JetStream not enabled on %s", n.Name())
		}
		return nil
	})
}

// Connect opens a client connection that retries forever across restarts
// and is closed when the test ends.
func (n *Node) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	return Connect(tb, n.URL(), opts...)
}

// Connect dials url with reconnects suited to tests that restart servers.
func Connect(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5 * time.Second),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		tb.Fatalf("testserver: connect %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Eventually polls cond until it returns nil, failing the test with the
// last error after timeout.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testserver: condition not met within %v: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}
