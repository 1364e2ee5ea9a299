package testserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is an in-process JetStream cluster of embedded nodes on loopback.
type Cluster struct {
	tb    testing.TB
	Nodes []*Node
}

// StartCluster runs an n-node JetStream cluster, waits for a meta leader,
// and stops every node when the test ends.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	ports := freePorts(tb, 2*n)
	routes := make([]*url.URL, n)
	for i := range n {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+i])}
	}
	c := &Cluster{tb: tb}
	for i := range n {
		o := baseOptions(tb, fmt.Sprintf("n%d", i+1))
		o.Port = ports[i]
		o.Cluster = server.ClusterOpts{Name: "jetsession-test", Host: "127.0.0.1", Port: ports[n+i]}
		o.Routes = routes
		for _, opt := range opts {
			opt(&o)
		}
		c.Nodes = append(c.Nodes, &Node{tb: tb, opts: o})
	}
	// Start all nodes before waiting: JetStream needs a quorum to elect its
	// meta leader.
	done := make(chan struct{}, n)
	for _, node := range c.Nodes {
		go func() {
			defer func() { done <- struct{}{} }()
			node.start()
		}()
	}
	for range n {
		<-done
	}
	tb.Cleanup(func() {
		for _, node := range c.Nodes {
			node.Shutdown()
		}
	})
	c.WaitMetaLeader()
	return c
}

func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("testserver: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// URLs returns every node's client URL, comma separated, for nats.Connect.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// WaitMetaLeader polls until the running nodes agree on a JetStream meta
// leader and every running node is current.
func (c *Cluster) WaitMetaLeader() {
	c.tb.Helper()
	Eventually(c.tb, 30*time.Second, func() error {
		leaders := 0
		for _, n := range c.Nodes {
			srv := n.Server()
			if srv == nil {
				continue
			}
			if !srv.JetStreamEnabled() {
				return fmt.Errorf("%s: JetStream not enabled yet", n.Name())
			}
			if srv.JetStreamIsLeader() {
				leaders++
			}
			if !srv.JetStreamIsCurrent() {
				return fmt.Errorf("%s: not current with the meta leader", n.Name())
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d meta leaders", leaders)
		}
		return nil
	})
}

// StreamLeader polls until one running node leads the stream (in the global
// account) and returns it.
func (c *Cluster) StreamLeader(stream string) *Node {
	c.tb.Helper()
	var leader *Node
	Eventually(c.tb, 30*time.Second, func() error {
		leader = nil
		for _, n := range c.Nodes {
			if srv := n.Server(); srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
				leader = n
				return nil
			}
		}
		return errors.New("no leader for stream " + stream)
	})
	return leader
}

// Others returns the nodes other than n.
func (c *Cluster) Others(n *Node) []*Node {
	var out []*Node
	for _, o := range c.Nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}
