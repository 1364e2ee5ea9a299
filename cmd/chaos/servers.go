package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverVersion is the nats-server release the command installs when no
// binary is found, the one the project is tested against.
const serverVersion = "v2.15.2"

// ErrNoServer is returned when no nats-server binary can be found or
// installed (for example without network access).
var ErrNoServer = errors.New("nats-server is not available")

// findServer returns the nats-server binary to run: bin when set, else
// nats-server from PATH, else $(go env GOPATH)/bin/nats-server, installed
// there with go install when missing (like deploy/nats/cluster/cluster.sh).
func findServer(ctx context.Context, log *slog.Logger, bin string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%w: --nats-server %s: %v", ErrNoServer, bin, err)
		}
		return bin, nil
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("%w: nats-server is not on PATH and `go env GOPATH` failed: %v", ErrNoServer, err)
	}
	gopath := strings.TrimSpace(string(out))
	if i := strings.IndexByte(gopath, os.PathListSeparator); i >= 0 {
		gopath = gopath[:i]
	}
	p := filepath.Join(gopath, "bin", "nats-server")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	log.Info("installing nats-server with go install", "version", serverVersion, "into", filepath.Dir(p))
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/nats-io/nats-server/v2@"+serverVersion)
	cmd.Dir = os.TempDir() // outside any module: go install pkg@version ignores it anyway
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: go install github.com/nats-io/nats-server/v2@%s failed: %v: %s",
			ErrNoServer, serverVersion, err, strings.TrimSpace(stderr.String()))
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: go install succeeded but %s is missing", ErrNoServer, p)
	}
	return p, nil
}

// serverBinaryVersion returns what `nats-server --version` prints, for
// example "v2.15.2".
func serverBinaryVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		s = s[i+1:]
	}
	return s, nil
}

// node is one nats-server child process with its ports, config and data.
type node struct {
	name        string
	clientPort  int
	clusterPort int
	httpPort    int
	confPath    string
	storeDir    string
	logPath     string
	bin         string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
	paused bool
}

func (n *node) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort) }

// start runs the server process. Its output is appended to logPath.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("node %s is already running (pid %d)", n.name, n.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "-c", n.confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting node %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.paused = cmd, exited, false
	return nil
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("node %s is not running", n.name)
	}
	return n.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits until the process is gone. It returns when
// the process was reaped: nothing it sent can arrive later.
func (n *node) kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing node %s: %w", n.name, err)
	}
	<-exited
	n.mu.Lock()
	n.cmd, n.paused = nil, false
	n.mu.Unlock()
	return nil
}

// pause stops the process with SIGSTOP; resume continues it.
func (n *node) pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	return nil
}

func (n *node) resume() error {
	if err := n.signal(syscall.SIGCONT); err != nil {
		return err
	}
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	return nil
}

// serving reports whether the process runs and is not paused.
func (n *node) serving() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !n.paused
}

// stop ends the process gracefully (SIGCONT, SIGTERM), killing it when it
// has not exited within timeout.
func (n *node) stop(timeout time.Duration) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	n.mu.Lock()
	n.cmd, n.paused = nil, false
	n.mu.Unlock()
}

// cluster is three (or more) nats-server processes on loopback with
// generated configs, free ports and their own data folder.
type cluster struct {
	dir   string
	nodes []*node
	log   *slog.Logger
	http  *http.Client
}

// clusterConfig is how the cluster's servers are configured.
type clusterConfig struct {
	bin        string
	dir        string
	nodes      int
	syncAlways bool
}

// newCluster writes the configs of the cluster's nodes under cfg.dir; it
// starts nothing.
func newCluster(cfg clusterConfig, log *slog.Logger) (*cluster, error) {
	ports, err := freePorts(3 * cfg.nodes)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: cfg.dir, log: log, http: &http.Client{Timeout: 2 * time.Second}}
	var routes []string
	for i := range cfg.nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[cfg.nodes+i]))
	}
	for i := range cfg.nodes {
		n := &node{
			name:        fmt.Sprintf("n%d", i+1),
			clientPort:  ports[i],
			clusterPort: ports[cfg.nodes+i],
			httpPort:    ports[2*cfg.nodes+i],
			bin:         cfg.bin,
		}
		n.confPath = filepath.Join(cfg.dir, n.name+".conf")
		n.storeDir = filepath.Join(cfg.dir, n.name)
		n.logPath = filepath.Join(cfg.dir, n.name+".log")
		if err := os.WriteFile(n.confPath, []byte(nodeConfig(n, routes, cfg.syncAlways)), 0o644); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// nodeConfig is the server config of n, in the shape of
// deploy/nats/cluster/n1.conf, without accounts (everything runs in the
// default account).
func nodeConfig(n *node, routes []string, syncAlways bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Node %s of a jetsession chaos cluster; generated, every run has its own.\n", n.name)
	fmt.Fprintf(&b, "server_name: %s\nhost: 127.0.0.1\nport: %d\nhttp_port: %d\nmax_payload: 1MB\n\n", n.name, n.clientPort, n.httpPort)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 8GB\n", n.storeDir)
	if syncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "cluster {\n  name: jetsession-chaos\n  listen: 127.0.0.1:%d\n  routes: [\n", n.clusterPort)
	for _, r := range routes {
		fmt.Fprintf(&b, "    %s\n", r)
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// start starts every node and waits until the cluster is healthy.
func (c *cluster) start(ctx context.Context, timeout time.Duration) error {
	for _, n := range c.nodes {
		if out, err := exec.CommandContext(ctx, n.bin, "-c", n.confPath, "-t").CombinedOutput(); err != nil {
			return fmt.Errorf("config of %s refused: %v: %s", n.name, err, strings.TrimSpace(string(out)))
		}
	}
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			c.stop()
			return err
		}
	}
	return c.waitHealthy(ctx, timeout)
}

// urls returns the client URLs of every node, starting with node first.
func (c *cluster) urls(first int) []string {
	out := make([]string, 0, len(c.nodes))
	for i := range c.nodes {
		out = append(out, c.nodes[(first+i)%len(c.nodes)].url())
	}
	return out
}

func (c *cluster) node(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// stop ends every node gracefully.
func (c *cluster) stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { n.stop(10 * time.Second) })
	}
	wg.Wait()
}

// getJSON fetches a monitoring endpoint of n into v. It fails unless the
// server answers 200.
func (c *cluster) getJSON(ctx context.Context, n *node, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", n.httpPort, path), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", n.name, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}

// healthy reports whether every node answers /healthz with 200: JetStream
// has a meta leader and every node is current with it and its streams.
func (c *cluster) healthy(ctx context.Context) error {
	for _, n := range c.nodes {
		if !n.serving() {
			return fmt.Errorf("%s is not serving", n.name)
		}
		if err := c.getJSON(ctx, n, "/healthz", nil); err != nil {
			return err
		}
	}
	return nil
}

// waitHealthy polls healthy until it holds or timeout passes.
func (c *cluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster was not healthy within %v: %w", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// jsz is the part of /jsz the command reads.
type jsz struct {
	ServerName string `json:"server_name"`
	Meta       *struct {
		Leader string `json:"leader"`
	} `json:"meta_cluster"`
	Accounts []struct {
		Streams []struct {
			Name    string `json:"name"`
			Cluster *struct {
				Leader      string     `json:"leader"`
				RaftGroup   string     `json:"raft_group"`
				LeaderSince *time.Time `json:"leader_since"`
			} `json:"cluster"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

// claim is a node's claim to lead a stream, since when.
type claim struct {
	node  string
	since time.Time
}

// leaders asks every serving node which streams it leads and whether it
// leads the meta layer, and returns stream -> claim and the meta leader
// ("" when none claims it). A node is believed only about itself, so a
// paused or partitioned node's view of others never counts. A stream claim
// needs the stream's raft group and a leader_since: a node still starting
// up, whose raft group is not running yet, names itself leader without
// them (clusterInfo in nats-server's jetstream_cluster.go).
func (c *cluster) leaders(ctx context.Context) (map[string]claim, string) {
	streams := map[string]claim{}
	meta := ""
	for _, n := range c.nodes {
		if !n.serving() {
			continue
		}
		var j jsz
		if err := c.getJSON(ctx, n, "/jsz?streams=true&stream-leader-only=true", &j); err != nil {
			continue
		}
		if j.Meta != nil && j.Meta.Leader == n.name {
			meta = n.name
		}
		for _, a := range j.Accounts {
			for _, s := range a.Streams {
				if cl := s.Cluster; cl != nil && cl.Leader == n.name && cl.RaftGroup != "" && cl.LeaderSince != nil {
					if prev, ok := streams[s.Name]; !ok || cl.LeaderSince.After(prev.since) {
						streams[s.Name] = claim{node: n.name, since: *cl.LeaderSince}
					}
				}
			}
		}
	}
	return streams, meta
}
