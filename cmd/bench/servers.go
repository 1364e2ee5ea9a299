package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// servers are the NATS servers a target runs on, as far as the command can
// see them: in this process, in child processes (whose memory it can read
// and whose garbage collector it can ask to run), or external ones known
// only by process id.
type servers struct {
	urls      []string
	storeDirs []string
	pids      []int
	children  []*child
	stops     []func()
}

// startInProcess runs one embedded server, or a 3-node cluster, in this
// process, each node storing under dir.
func startInProcess(ctx context.Context, dir string, cluster bool) (*servers, error) {
	s := &servers{}
	if !cluster {
		store := filepath.Join(dir, "shared")
		srv, err := embedded.Start(embedded.Config{StoreDir: store, Name: "bench"})
		if err != nil {
			return nil, err
		}
		s.urls, s.storeDirs = []string{srv.ClientURL()}, []string{store}
		s.stops = append(s.stops, func() { srv.Shutdown(); srv.WaitForShutdown() })
		return s, nil
	}
	plan, err := embedded.PlanCluster(clusterName, filepath.Join(dir, "shared"), 3)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nodes, err := embedded.StartCluster(wctx, plan)
	if err != nil {
		return nil, err
	}
	for i, srv := range nodes {
		s.stops = append(s.stops, func() { srv.Shutdown(); srv.WaitForShutdown() })
		s.urls = append(s.urls, plan[i].URL())
		s.storeDirs = append(s.storeDirs, plan[i].StoreDir)
	}
	return s, nil
}

// clusterName names the benchmark's clusters.
const clusterName = "jetsession-bench"

// waitJetStream waits until JetStream answers on every URL: on a cluster,
// until a meta leader is elected.
func waitJetStream(ctx context.Context, urls []string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range urls {
		for {
			err := func() error {
				nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
				if err != nil {
					return err
				}
				defer nc.Close()
				msg, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
				if err != nil {
					return err
				}
				if bytes.Contains(msg.Data, []byte(`"error"`)) {
					return errors.New(string(msg.Data))
				}
				return nil
			}()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("JetStream not ready at %s within 60s: %w", u, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// childEnv carries a child server's node, as JSON: an embedded.ClusterNode
// of a cluster plan, or of a single node when its ClusterPort is 0.
const childEnv = "JETSESSION_BENCH_SERVER"

// serveChildIfAsked runs a server child when this process was started as
// one, and reports whether it was. The child prints its client URL, then
// answers "gc" lines on standard input (collect garbage and return memory
// to the OS, so that its RSS shows what it keeps rather than when its
// collector last ran) and stops at the end of its input, which also comes
// when the parent dies.
func serveChildIfAsked() bool {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return false
	}
	fail := func(err error) bool {
		fmt.Fprintln(os.Stderr, "bench server child:", err)
		os.Exit(1)
		return true
	}
	var spec embedded.ClusterNode
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fail(err)
	}
	var srv *server.Server
	var err error
	if spec.ClusterPort == 0 {
		srv, err = embedded.Start(embedded.Config{Port: spec.Port, StoreDir: spec.StoreDir, Name: spec.Name})
	} else {
		if srv, err = server.NewServer(spec.Options()); err == nil {
			srv.Start()
			if !srv.ReadyForConnections(30 * time.Second) {
				err = errors.New("not ready for connections within 30s")
			}
		}
	}
	if err != nil {
		return fail(err)
	}
	fmt.Printf("url %s\n", srv.ClientURL())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "gc" {
			runtime.GC()
			debug.FreeOSMemory()
			fmt.Println("ok")
		}
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	return true
}

// child is a server running in a child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer
	mu     sync.Mutex
}

// startChildren runs an n-node server set (one node, or a cluster) in
// child processes of this same binary, storing under a fresh folder of dir.
func startChildren(ctx context.Context, dir string, n int) (*servers, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to start a server process: %w", err)
	}
	store, err := os.MkdirTemp(dir, "isolated-")
	if err != nil {
		return nil, err
	}
	// A child process cannot be started by embedded.StartCluster, which
	// runs nodes in this process: the children share the plan (ports,
	// routes, options) and are waited for over the network.
	specs := []embedded.ClusterNode{{Name: "bench-isolated", StoreDir: filepath.Join(store, "n1")}}
	if n > 1 {
		if specs, err = embedded.PlanCluster(clusterName, store, n); err != nil {
			return nil, err
		}
	}
	s := &servers{}
	for _, spec := range specs {
		c, url, err := startChild(exe, spec)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("starting server process %s: %w", spec.Name, err)
		}
		s.children = append(s.children, c)
		s.pids = append(s.pids, c.cmd.Process.Pid)
		s.urls = append(s.urls, url)
		s.storeDirs = append(s.storeDirs, spec.StoreDir)
	}
	if err := waitJetStream(ctx, s.urls); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func startChild(exe string, spec embedded.ClusterNode) (*child, string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	c := &child{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c.out = bufio.NewReader(stdout)
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		got <- line{s, err}
	}()
	select {
	case l := <-got:
		if url, ok := strings.CutPrefix(strings.TrimSpace(l.s), "url "); ok && l.err == nil {
			return c, url, nil
		}
		c.stop()
		return nil, "", fmt.Errorf("no URL from the server process (%v): %s", l.err, strings.TrimSpace(c.stderr.String()))
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, "", errors.New("the server process did not start within 60s")
	}
}

// gc asks the child to collect garbage and return free memory to the OS.
func (c *child) gc() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, "gc\n"); err != nil {
		return err
	}
	l, err := c.out.ReadString('\n')
	if err == nil && strings.TrimSpace(l) != "ok" {
		err = fmt.Errorf("unexpected reply %q", l)
	}
	return err
}

// stop ends the child's input, which stops its server, and kills it if it
// has not exited within 30 seconds.
func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func (s *servers) close() {
	for _, c := range s.children {
		c.stop()
	}
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.children, s.stops = nil, nil
}

// rss returns the servers' resident memory in bytes, summed over their
// processes, after each child collected its garbage; ok is false when the
// command cannot read it (external servers without --server-pid, or no
// /proc).
func (s *servers) rss() (int64, bool) {
	if s == nil || len(s.pids) == 0 {
		return 0, false
	}
	for _, c := range s.children {
		if err := c.gc(); err != nil {
			return 0, false
		}
	}
	var total int64
	for _, pid := range s.pids {
		v, err := readRSS(pid)
		if err != nil {
			return 0, false
		}
		total += v
	}
	return total, true
}

// disk returns the bytes of every file under the servers' store folders,
// once it has stopped changing (the file store writes behind the
// acknowledgement); ok is false for servers that are not ours.
func (s *servers) disk(ctx context.Context) (int64, bool) {
	if s == nil || len(s.storeDirs) == 0 {
		return 0, false
	}
	walk := func() int64 {
		var n int64
		for _, dir := range s.storeDirs {
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if info, err := d.Info(); err == nil {
						n += info.Size()
					}
				}
				return nil
			})
		}
		return n
	}
	last := walk()
	for range 20 {
		select {
		case <-ctx.Done():
			return last, true
		case <-time.After(250 * time.Millisecond):
		}
		n := walk()
		if n == last {
			break
		}
		last = n
	}
	return last, true
}

// readRSS reads a process's resident set size (VmRSS) from /proc.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

// clientMemory is this process's memory after a full collection: its RSS
// and the Go heap in use.
func clientMemory() (rss, heap int64, ok bool) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	v, err := readRSS(os.Getpid())
	return v, int64(ms.HeapInuse), err == nil
}
