package accountsource_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jetsession/jetsession/accountsource"
	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

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

func newSource(t *testing.T, env *acctest.Env) *accountsource.Source {
	t.Helper()
	ops := env.Connect(t, provision.BridgeCreds, provision.ReaderInbox)
	src, err := accountsource.New(ctxFor(t, 30*time.Second), accountsource.Config{
		Ops: ops, Key: env.ReaderKey(t, provision.BridgeCreds),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(src.Close)
	return src
}

func agent(t *testing.T, env *acctest.Env, p *provision.Provisioner, tenant string) *jetstream.Log {
	t.Helper()
	creds, err := p.Creds(ctxFor(t, 10*time.Second), tenant, provision.RoleAgent, provision.CredsOptions{})
	require.NoError(t, err)
	nc, err := env.ConnectCreds(t, creds, "")
	require.NoError(t, err)
	l, err := jetstream.New(nc, jetstream.WithStreamCreation(false), jetstream.WithPermissionWatcher(jetstream.WatchPermissions(nc)))
	require.NoError(t, err)
	return l
}

// texts returns the "text" of each row the sink holds for tenant.
func texts(sink *acctest.MemorySink, tenant string) []string {
	var out []string
	for _, r := range sink.Rows(tenant) {
		out = append(out, string(r.Data))
	}
	return out
}

func TestBridgeFollowsTenantsAcrossAccounts(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p := env.Provisioner(t)
	ctx := ctxFor(t, 2*time.Minute)
	_, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	acme := agent(t, env, p, "acme")
	_, err = acme.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}, events("backlog"))
	require.NoError(t, err)

	src := newSource(t, env)
	sink := acctest.NewMemorySink()
	b, err := bridge.New(bridge.Config{Source: src, Sink: sink, BatchSize: 100, FlushInterval: 10 * time.Millisecond,
		DiscoverInterval: time.Minute, ProgressInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }()
	defer func() { stop(); require.NoError(t, <-done) }()

	want := func(tenant string, n int) {
		t.Helper()
		testserver.Eventually(t, 20*time.Second, func() error {
			if got := texts(sink, tenant); len(got) != n {
				return fmt.Errorf("%s: %d rows delivered, want %d: %q", tenant, len(got), n, got)
			}
			return nil
		})
	}
	want("acme", 1)
	_, err = acme.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}, events("live"))
	require.NoError(t, err)
	want("acme", 2)

	// A tenant created while the bridge runs is followed within seconds,
	// although the bridge lists tenants once a minute here: the registry
	// is watched.
	start := time.Now()
	_, err = p.Create(ctx, "initech", provision.Limits{})
	require.NoError(t, err)
	initech := agent(t, env, p, "initech")
	_, err = initech.Append(ctx, sessionlog.ThreadKey{Tenant: "initech", Thread: "t"}, events("hello"))
	require.NoError(t, err)
	want("initech", 1)
	t.Logf("a tenant created at run time was delivered %v after its creation began", time.Since(start))

	// Suspended tenants are still read.
	_, err = p.Suspend(ctx, "initech")
	require.NoError(t, err)
	require.NoError(t, p.Delete(ctx, "acme"))
	testserver.Eventually(t, 20*time.Second, func() error {
		for _, d := range sink.Deletions() {
			if d.Tenant == "acme" && d.Thread == "" {
				return nil
			}
		}
		return errors.New("the deletion of acme has not reached the sink")
	})
	want("acme", 0)

	// Created again: its ordinals go on, and the bridge follows it.
	_, err = p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	acme = agent(t, env, p, "acme")
	_, err = acme.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}, events("second life"))
	require.NoError(t, err)
	want("acme", 1)
	require.Equal(t, `{"text":"second life"}`, texts(sink, "acme")[0])
}
