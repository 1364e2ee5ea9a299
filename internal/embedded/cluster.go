package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterNode is one node of a JetStream cluster on loopback. It marshals
// to JSON, so that a node can be started in a child process from the same
// plan.
type ClusterNode struct {
	Name        string
	Cluster     string   // cluster name
	Port        int      // client port
	ClusterPort int      // route port
	Routes      []string // every node's route URL, nats-route://host:port
	StoreDir    string
}

// PlanCluster picks free loopback ports for an n-node cluster, each node
// n1, n2, ... storing under dir/<node name>. Nothing is started.
func PlanCluster(cluster, dir string, n int) ([]ClusterNode, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i := range n {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(ports[n+i])
	}
	nodes := make([]ClusterNode, n)
	for i := range n {
		name := "n" + strconv.Itoa(i+1)
		nodes[i] = ClusterNode{Name: name, Cluster: cluster, Port: ports[i], ClusterPort: ports[n+i], Routes: routes,
			StoreDir: filepath.Join(dir, name)}
	}
	return nodes, nil
}

// URL is the node's client URL.
func (n ClusterNode) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.Port) }

// Apply sets the node's name, addresses, store and cluster routes on o,
// leaving its other options (limits, logging) as they are.
func (n ClusterNode) Apply(o *server.Options) {
	o.ServerName = n.Name
	o.Host = "127.0.0.1"
	o.Port = n.Port
	o.JetStream = true
	o.StoreDir = n.StoreDir
	o.Cluster = server.ClusterOpts{Name: n.Cluster, Host: "127.0.0.1", Port: n.ClusterPort}
	o.Routes = nil
	for _, r := range n.Routes {
		if u, err := url.Parse(r); err == nil {
			o.Routes = append(o.Routes, u)
		}
	}
}

// Options are the node's server options: JetStream on file storage,
// clustered with the others, without logs or signal handlers.
func (n ClusterNode) Options() *server.Options {
	o := &server.Options{NoLog: true, NoSigs: true}
	n.Apply(o)
	return o
}

// StartCluster starts the nodes in this process and waits until JetStream
// has a meta leader (ClusterReady), or ctx ends. On error every node
// started is shut down again.
func StartCluster(ctx context.Context, nodes []ClusterNode) ([]*server.Server, error) {
	var servers []*server.Server
	shutdown := func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	for _, n := range nodes {
		srv, err := server.NewServer(n.Options())
		if err != nil {
			shutdown()
			return nil, fmt.Errorf("embedded: cluster node %s: %w", n.Name, err)
		}
		// Start every node before waiting: JetStream needs a quorum to
		// elect its meta leader.
		srv.Start()
		servers = append(servers, srv)
	}
	for {
		err := ClusterReady(servers)
		if err == nil {
			return servers, nil
		}
		select {
		case <-ctx.Done():
			shutdown()
			return nil, fmt.Errorf("embedded: cluster not ready: %w (%w)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ClusterReady returns nil when the given running servers agree on one
// JetStream meta leader and each is current with it, and otherwise says
// what is missing. Nil entries (stopped nodes) are skipped.
func ClusterReady(servers []*server.Server) error {
	leaders := 0
	for _, srv := range servers {
		if srv == nil {
			continue
		}
		if !srv.JetStreamEnabled() {
			return fmt.Errorf("%s: JetStream not enabled yet", srv.Name())
		}
		if srv.JetStreamIsLeader() {
			leaders++
		}
		if !srv.JetStreamIsCurrent() {
			return fmt.Errorf("%s: not current with the meta leader", srv.Name())
		}
	}
	if leaders != 1 {
		return errors.New(strconv.Itoa(leaders) + " meta leaders")
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("embedded: finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
