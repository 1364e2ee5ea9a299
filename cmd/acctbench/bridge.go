package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jetsession/jetsession/accountsource"
	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// runBridge measures what following n tenants costs: a bridge process (a
// child, so that its memory is its own) runs the bridge engine on the
// tenants until it delivered one event of each, then reports; the server,
// in this process, is measured before and after it attached.
func runBridge(ctx context.Context, c config, w io.Writer) error {
	fmt.Fprintln(w, "# bridge: following every tenant (one event each delivered, tails live)")
	fmt.Fprintln(w, "| tenants | layout | bridge heap | bridge RSS | bridge goroutines | server heap per tenant | server goroutines per tenant | server connections | server subscriptions | time to deliver all |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range c.Tenants {
		for _, mode := range []string{"single", "accounts"} {
			if err := bridgeRun(ctx, n, mode, w); err != nil {
				return fmt.Errorf("%d tenants, %s: %w", n, mode, err)
			}
		}
	}
	return nil
}

type childReport struct {
	Heap, RSS   uint64
	Goroutines  int
	Connections int
	Elapsed     time.Duration
}

func bridgeRun(ctx context.Context, n int, mode string, w io.Writer) error {
	var srv *server.Server
	var arg string
	var stop func()
	data := []byte(`{"text":"one"}`)
	if mode == "accounts" {
		env, p, s, err := accountServer(n, scaleStorage)
		if err != nil {
			return err
		}
		stop, srv = s, env.Server
		for i := range n {
			tenant := fmt.Sprintf("tenant-%05d", i)
			if _, err := p.Create(ctx, tenant, benchLimits(scaleStorage)); err != nil {
				stop()
				return err
			}
			creds, err := p.Creds(ctx, tenant, provision.RoleAgent, provision.CredsOptions{})
			if err != nil {
				stop()
				return err
			}
			if err := appendOne(ctx, env.URL, creds, tenant, data); err != nil {
				stop()
				return err
			}
		}
		arg = strings.Join([]string{"accounts", env.URL, filepath.Join(env.Dir, provision.CredsDir, provision.BridgeCreds), strconv.Itoa(n)}, "|")
	} else {
		dir, err := os.MkdirTemp("", "acctbench-")
		if err != nil {
			return err
		}
		srv, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
			JetStreamMaxMemory: 1 << 30, JetStreamMaxStore: int64(n+1)*scaleStorage + 1<<30})
		if err != nil {
			return err
		}
		go srv.Start()
		stop = func() { srv.Shutdown(); srv.WaitForShutdown(); os.RemoveAll(dir) }
		if !srv.ReadyForConnections(30 * time.Second) {
			stop()
			return fmt.Errorf("server not ready")
		}
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			stop()
			return err
		}
		log, _ := jetstream.New(nc, jetstream.WithTenantQuota(scaleStorage))
		for i := range n {
			if _, err := log.Append(ctx, sessionlog.ThreadKey{Tenant: fmt.Sprintf("tenant-%05d", i), Thread: "t"},
				[]sessionlog.Event{{Type: "user_message", Data: data}}); err != nil {
				nc.Close()
				stop()
				return err
			}
		}
		nc.Close()
		arg = strings.Join([]string{"single", srv.ClientURL(), "", strconv.Itoa(n)}, "|")
	}
	defer stop()
	settle(srv)
	conns0, subs0 := srv.NumClients(), srv.NumSubscriptions()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, "--bridge-child", arg)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	waited := false
	defer func() {
		if !waited {
			stdin.Close()
			cmd.Wait()
		}
	}()
	var rep childReport
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			if err := json.Unmarshal([]byte(line), &rep); err != nil {
				return err
			}
			break
		}
	}
	if rep.Elapsed == 0 {
		return fmt.Errorf("the bridge process ended without reporting")
	}
	attached := measure()
	conns, subs := srv.NumClients()-conns0, int(srv.NumSubscriptions())-int(subs0)
	// The bridge's share of the server: what it holds with the bridge
	// attached, against what it holds once the bridge is gone (its
	// connections closed, its tails' consumers deleted).
	stdin.Close()
	cmd.Wait()
	waited = true
	settle(srv)
	detached := measure()
	heap, _, gor := perTenant(detached, attached, n)
	layout := "one account, one connection"
	if mode == "accounts" {
		layout = "account per tenant, a connection each"
	}
	fmt.Fprintf(w, "| %d | %s | %.1f MiB | %.1f MiB | %d | %.1f KiB | %.1f | %d | %d | %.1f s |\n", n, layout,
		float64(rep.Heap)/(1<<20), float64(rep.RSS)/(1<<20), rep.Goroutines, heap, gor,
		conns, subs, rep.Elapsed.Seconds())
	return nil
}

func appendOne(ctx context.Context, url string, creds []byte, tenant string, data []byte) error {
	token, err := nkeys.ParseDecoratedJWT(creds)
	if err != nil {
		return err
	}
	kp, err := nkeys.ParseDecoratedNKey(creds)
	if err != nil {
		return err
	}
	seed, _ := kp.Seed()
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(token, string(seed)))
	if err != nil {
		return err
	}
	defer nc.Close()
	log, err := jetstream.New(nc, jetstream.WithStreamCreation(false))
	if err != nil {
		return err
	}
	_, err = log.Append(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: "t"}, []sessionlog.Event{{Type: "user_message", Data: data}})
	return err
}

// bridgeChild is the bridge process: it follows every tenant until one
// event of each was delivered, reports, and runs until its standard input
// closes.
func bridgeChild(ctx context.Context, arg string, w io.Writer) error {
	parts := strings.Split(arg, "|")
	if len(parts) != 4 {
		return fmt.Errorf("bad --bridge-child %q", arg)
	}
	mode, url, creds := parts[0], parts[1], parts[2]
	n, _ := strconv.Atoi(parts[3])
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := time.Now()
	var src bridge.Source
	var connections func() int
	if mode == "accounts" {
		data, err := os.ReadFile(creds)
		if err != nil {
			return err
		}
		key, err := nkeys.ParseDecoratedNKey(data)
		if err != nil {
			return err
		}
		ops, err := nats.Connect(url, nats.UserCredentials(creds), nats.CustomInboxPrefix(provision.ReaderInbox))
		if err != nil {
			return err
		}
		defer ops.Close()
		as, err := accountsource.New(ctx, accountsource.Config{Ops: ops, Key: key, Logger: quiet, Concurrency: 32,
			LogOptions: []jetstream.Option{jetstream.WithReadBatch(2000, 2<<20), jetstream.WithTailBuffer(2 << 20)}})
		if err != nil {
			return err
		}
		defer as.Close()
		src, connections = as, func() int { return as.Connections() + 1 }
	} else {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		log, err := jetstream.New(nc, jetstream.WithReadBatch(2000, 2<<20), jetstream.WithTailBuffer(2<<20))
		if err != nil {
			return err
		}
		src, connections = log, func() int { return 1 }
	}
	sink := &countSink{}
	b, err := bridge.New(bridge.Config{Source: src, Sink: sink, Logger: quiet, ProgressInterval: -1, CatchUpConcurrency: 16})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }()
	for b.Delivered() < uint64(n) {
		select {
		case err := <-done:
			return fmt.Errorf("the bridge stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	u := measure()
	rep, _ := json.Marshal(childReport{Heap: u.heap, RSS: u.rss, Goroutines: u.goroutines, Connections: connections(), Elapsed: elapsed})
	fmt.Fprintf(w, "READY %s\n", rep)
	io.Copy(io.Discard, os.Stdin)
	cancel()
	<-done
	return nil
}

// countSink discards rows and deletions: the bridge's own counter measures
// delivery, and the benchmark measures the bridge, not a sink.
type countSink struct{}

func (s *countSink) Name() string { return "count" }
func (s *countSink) Positions(context.Context) (bridge.Positions, error) {
	return bridge.Positions{}, nil
}
func (s *countSink) Write(context.Context, []bridge.Row, bridge.Positions) error { return nil }
func (s *countSink) Delete(context.Context, []bridge.Deletion, bridge.Positions) error {
	return nil
}
func (s *countSink) Flush(context.Context) error { return nil }
func (s *countSink) Close(context.Context) error { return nil }

// settle waits until the server's connection count holds still: closed
// connections leave the server a moment after the client closes them.
func settle(srv *server.Server) {
	last := srv.NumClients()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n := srv.NumClients()
		if n == last {
			return
		}
		last = n
	}
}
