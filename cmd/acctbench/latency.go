package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// agentLog is an agent's Log and a live tail of its tenant.
type agentLog struct {
	name  string
	log   *jetstream.Log
	tail  chan time.Time
	close func()
}

// runLatency appends 512-byte events one at a time as an agent in its own
// account and as an agent of the shared account (single.conf with
// accounts.conf), in alternating rounds, while a tail of the tenant
// follows: the append's latency, and from the start of the append to the
// tail's delivery.
func runLatency(ctx context.Context, c config, w io.Writer) error {
	acct, err := accountAgent(ctx)
	if err != nil {
		return err
	}
	defer acct.close()
	single, err := singleAgent(ctx)
	if err != nil {
		return err
	}
	defer single.close()
	data := fmt.Appendf(nil, `{"text":%q}`, strings.Repeat("x", 512-len(`{"text":""}`)))
	type series struct{ appends, tails []time.Duration }
	got := map[string]*series{acct.name: {}, single.name: {}}
	const round = 250
	for done := 0; done < c.Events; done += round {
		for _, a := range []*agentLog{single, acct} {
			s := got[a.name]
			key := sessionlog.ThreadKey{Tenant: "acme", Thread: "bench"}
			for range min(round, c.Events-done) {
				start := time.Now()
				if _, err := a.log.Append(ctx, key, []sessionlog.Event{{Type: "user_message", Data: data}}); err != nil {
					return fmt.Errorf("%s: %w", a.name, err)
				}
				s.appends = append(s.appends, time.Since(start))
				select {
				case at := <-a.tail:
					s.tails = append(s.tails, at.Sub(start))
				case <-time.After(10 * time.Second):
					return fmt.Errorf("%s: the tail delivered nothing in 10s", a.name)
				}
			}
		}
	}
	fmt.Fprintf(w, "# latency: %d appends of one 512-byte event per layout, alternating rounds of %d, a tail following\n", c.Events, round)
	fmt.Fprintln(w, "| layout | append p50 | append p99 | append -> tail p50 | append -> tail p99 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, a := range []*agentLog{single, acct} {
		s := got[a.name]
		a50, a99 := quantiles(s.appends)
		t50, t99 := quantiles(s.tails)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", a.name, us(a50), us(a99), us(t50), us(t99))
	}
	sa, _ := quantiles(got[single.name].appends)
	aa, _ := quantiles(got[acct.name].appends)
	st, _ := quantiles(got[single.name].tails)
	at, _ := quantiles(got[acct.name].tails)
	fmt.Fprintf(w, "\naccount per tenant / one account, p50: append %.2fx, append -> tail %.2fx\n\n", float64(aa)/float64(sa), float64(at)/float64(st))
	return nil
}

// follow starts a tenant tail that reports when each record arrives.
func follow(ctx context.Context, log *jetstream.Log, name string, closeConns func()) (*agentLog, error) {
	tctx, cancel := context.WithCancel(ctx)
	tail := make(chan time.Time, 16)
	head, _, err := log.Tenant(ctx, "acme")
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		for _, err := range log.TailTenant(tctx, "acme", head.LastOrdinal) {
			if err != nil {
				return
			}
			tail <- time.Now()
		}
	}()
	return &agentLog{name: name, log: log, tail: tail, close: func() { cancel(); closeConns() }}, nil
}

func accountAgent(ctx context.Context) (*agentLog, error) {
	env, p, stop, err := accountServer(1, 1<<30)
	if err != nil {
		return nil, err
	}
	if _, err := p.Create(ctx, "acme", benchLimits(1<<30)); err != nil {
		stop()
		return nil, err
	}
	creds, err := p.Creds(ctx, "acme", provision.RoleAgent, provision.CredsOptions{})
	if err != nil {
		stop()
		return nil, err
	}
	path := filepath.Join(env.Dir, "agent.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		stop()
		return nil, err
	}
	nc, err := nats.Connect(env.URL, nats.UserCredentials(path))
	if err != nil {
		stop()
		return nil, err
	}
	log, err := jetstream.New(nc, jetstream.WithStreamCreation(false))
	if err != nil {
		nc.Close()
		stop()
		return nil, err
	}
	return follow(ctx, log, "account per tenant (tenant-accounts.conf)", func() { nc.Close(); stop() })
}

func singleAgent(ctx context.Context) (*agentLog, error) {
	dir, err := os.MkdirTemp("", "acctbench-")
	if err != nil {
		return nil, err
	}
	opts, err := server.ProcessConfigFile(filepath.Join(filepath.Dir(acctest.ConfigPath()), "single.conf"))
	if err != nil {
		return nil, err
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, 0, dir, true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go srv.Start()
	stop := func() { srv.Shutdown(); srv.WaitForShutdown(); os.RemoveAll(dir) }
	if !srv.ReadyForConnections(30 * time.Second) {
		stop()
		return nil, fmt.Errorf("single.conf: server not ready")
	}
	for !srv.JetStreamEnabled() {
		time.Sleep(10 * time.Millisecond)
	}
	prov, err := nats.Connect(srv.ClientURL(), nats.UserInfo("provisioner", "change-me-provisioner"), nats.CustomInboxPrefix("_INBOX_PROVISIONER"))
	if err != nil {
		stop()
		return nil, err
	}
	plog, _ := jetstream.New(prov, jetstream.WithTenantQuota(1<<30))
	if err := plog.EnsureTenant(ctx, "acme"); err != nil {
		prov.Close()
		stop()
		return nil, err
	}
	prov.Close()
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("agent-acme", "change-me-agent-acme"), nats.CustomInboxPrefix("_INBOX_acme"))
	if err != nil {
		stop()
		return nil, err
	}
	log, err := jetstream.New(nc, jetstream.WithStreamCreation(false))
	if err != nil {
		nc.Close()
		stop()
		return nil, err
	}
	return follow(ctx, log, "one account (single.conf, accounts.conf)", func() { nc.Close(); stop() })
}
