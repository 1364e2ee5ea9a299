package testserver

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is an in-process JetStream cluster of embedded nodes on loopback.
type Cluster struct {
	tb    testing.TB
	Nodes []*Node
}

// StartCluster runs an n-node JetStream cluster, waits for a meta leader,
// and stops every node when the test ends. Its ports, routes and stores
// come from embedded.PlanCluster, the plan the benchmark command uses too.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	plan, err := embedded.PlanCluster("jetsession-test", tb.TempDir(), n)
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	c := &Cluster{tb: tb}
	for _, spec := range plan {
		o := baseOptions(tb, spec.Name)
		spec.Apply(&o)
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
		servers := make([]*server.Server, 0, len(c.Nodes))
		for _, n := range c.Nodes {
			servers = append(servers, n.Server())
		}
		return embedded.ClusterReady(servers)
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
