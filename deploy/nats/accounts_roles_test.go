package nats_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/accountsource"
	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

func TestTenantAccountsConfig(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	o := env.Opts
	require.Len(t, o.TrustedOperators, 1, "operator mode")
	require.True(t, o.TrustedOperators[0].StrictSigningKeyUsage, "accounts come from the operator's signing key only")
	require.Equal(t, env.Setup.SystemAccount, o.SystemAccount)
	res, ok := o.AccountResolver.(*server.DirAccResolver)
	require.True(t, ok, "a full resolver keeps account JWTs: %T", o.AccountResolver)
	require.NotNil(t, res)
	require.EqualValues(t, 1<<20, o.MaxPayload)
	require.True(t, o.JetStream)
	require.EqualValues(t, 100<<30, o.JetStreamMaxStore)

	// Nobody gets in without credentials, and the operations account's
	// are no tenant's.
	_, err := nats.Connect(env.URL)
	require.ErrorContains(t, err, "Authorization Violation")
	_, err = nats.Connect(env.URL, nats.UserInfo("admin", "change-me-admin"))
	require.ErrorContains(t, err, "Authorization Violation")
}

// TestTenantAccountRoles runs every role of an account-per-tenant
// deployment through the library, on tenant-accounts.conf: the
// provisioner creates, suspends, limits and deletes tenants at run time,
// agents and archivers use their tenant, readers and the bridge follow
// every tenant, one created while the bridge runs included.
func TestTenantAccountRoles(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p, sys, ops := provisioner(t, env)
	ctx := ctxFor(t, 3*time.Minute)
	for _, tenant := range []string{"acme", "globex"} {
		_, err := p.Create(ctx, tenant, provision.Limits{})
		require.NoError(t, err)
	}
	sys.noViolations(t)
	ops.noViolations(t)

	acme := credsClient(t, env, issue(t, p, "acme", provision.RoleAgent), "agent-acme", "")
	acmeLog := acme.log(t, jetstream.WithStreamCreation(false))
	acmeKey := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/1"}
	globex := credsClient(t, env, issue(t, p, "globex", provision.RoleAgent), "agent-globex", "")
	globexLog := globex.log(t, jetstream.WithStreamCreation(false))
	globexKey := sessionlog.ThreadKey{Tenant: "globex", Thread: "secret"}
	_, err := globexLog.Append(ctx, globexKey, events("globex only"))
	require.NoError(t, err)

	var last uint64
	t.Run("agent appends, loads, lists and tails its tenant", func(t *testing.T) {
		first, err := acmeLog.Append(ctx, acmeKey, events("one"))
		require.NoError(t, err)
		last, err = acmeLog.Append(ctx, acmeKey, events("two", "three", "four"))
		require.NoError(t, err)
		recs, err := acmeLog.LoadSince(ctx, acmeKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 4)
		head, err := acmeLog.Head(ctx, acmeKey)
		require.NoError(t, err)
		require.Equal(t, sessionlog.Head{First: first, Last: last, Count: 4}, head)
		lastTwo, err := acmeLog.LoadLast(ctx, acmeKey, 2)
		require.NoError(t, err)
		require.Len(t, lastTwo, 2)
		n := 0
		for _, err := range acmeLog.ScanTenant(ctx, "acme", 0) {
			require.NoError(t, err)
			n++
		}
		require.Equal(t, 4, n)
		threads := 0
		for _, err := range acmeLog.Threads(ctx, "acme") {
			require.NoError(t, err)
			threads++
		}
		require.Equal(t, 1, threads)

		tctx, stop := context.WithCancel(ctx)
		defer stop()
		thread, threadErr := drain(acmeLog.Tail(tctx, acmeKey, last))
		tenant, tenantErr := drain(acmeLog.TailTenant(tctx, "acme", last))
		live, err := acmeLog.Append(ctx, acmeKey, events("live"))
		require.NoError(t, err)
		require.Equal(t, live, next(t, thread, threadErr).Ordinal)
		require.Equal(t, live, next(t, tenant, tenantErr).Ordinal)
		stop()
		last = live

		// Past the flow-control window.
		bulk := sessionlog.ThreadKey{Tenant: "acme", Thread: "bulk"}
		payload := fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 700_000))
		for range 12 {
			_, err := acmeLog.Append(ctx, bulk, []sessionlog.Event{{Type: "blob", Data: payload}})
			require.NoError(t, err)
		}
		bctx, bstop := context.WithCancel(ctx)
		defer bstop()
		out, errc := drain(acmeLog.Tail(bctx, bulk, 0))
		for range 12 {
			next(t, out, errc)
		}
		bstop()

		// Snapshots: the provisioner made the tenant's snapshot stream
		// (agents may not create streams), with its share of the
		// account's storage; an agent saves and loads within its rights.
		require.NoError(t, acmeLog.SaveSnapshot(ctx, acmeKey, last, []byte("acme state")))
		snap, err := acmeLog.LoadSnapshot(ctx, acmeKey)
		require.NoError(t, err)
		require.Equal(t, last, snap.Ordinal)
		require.Equal(t, "acme state", string(snap.State))
		acme.noViolations(t)
	})

	t.Run("agent cannot archive, delete threads or manage its stream", func(t *testing.T) {
		probe := credsClient(t, env, issue(t, p, "acme", provision.RoleAgent), "probe-acme", "")
		pl := probe.log(t, jetstream.WithStreamCreation(false))
		_, err := pl.ArchiveBefore(ctxFor(t, deniedWait), acmeKey, 1<<40)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		probe.violation(t, "Publish", "$JS.API.STREAM.PURGE.jetsession-acme")
		_, err = pl.DeleteThread(ctxFor(t, deniedWait), acmeKey)
		require.Error(t, err)
		probe.violation(t, "Publish", "jetsession.acme.$deleted")
		// Another tenant's snapshots are not even in its account.
		err = pl.SaveSnapshot(ctxFor(t, deniedWait), globexKey, 1, []byte("intrusion"))
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		probe.violation(t, "Publish", "$JS.API.STREAM.")
		_, err = pl.LoadSnapshot(ctxFor(t, deniedWait), globexKey)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		probe.violation(t, "Publish", "$JS.API.STREAM.INFO.jetsession-_s-globex")
		for _, subject := range []string{"$JS.API.STREAM.CREATE.jetsession-_s-acme", "$JS.API.STREAM.DELETE.jetsession-_s-acme",
			"$JS.API.STREAM.PURGE.jetsession-_s-acme", "jetsession.globex.$snapshot.secret"} {
			require.NoError(t, probe.nc.Publish(subject, nil))
			probe.violation(t, "Publish", subject)
		}
		recs, err := acmeLog.LoadSince(ctx, acmeKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 5)
	})

	t.Run("archiver archives and deletes threads of its tenant", func(t *testing.T) {
		arch := credsClient(t, env, issue(t, p, "acme", provision.RoleArchiver), "archiver-acme", "")
		archLog := arch.log(t, jetstream.WithStreamCreation(false))
		purged, err := archLog.ArchiveBefore(ctx, acmeKey, last-1)
		require.NoError(t, err)
		require.Equal(t, 4, purged)
		doomed := sessionlog.ThreadKey{Tenant: "acme", Thread: "doomed"}
		_, err = acmeLog.Append(ctx, doomed, events("x", "y"))
		require.NoError(t, err)
		n, err := archLog.DeleteThread(ctx, doomed)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		arch.noViolations(t) // it looked for the snapshot stream, within its rights
	})

	t.Run("reader reads and tails its tenant and writes nothing", func(t *testing.T) {
		rd := credsClient(t, env, issue(t, p, "globex", provision.RoleReader), "reader-globex", provision.ReaderInbox)
		rl := rd.log(t, jetstream.WithStreamCreation(false))
		info, ok, err := rl.Tenant(ctx, "globex")
		require.NoError(t, err)
		require.True(t, ok)
		require.EqualValues(t, 1, info.Events)
		recs, err := rl.LoadSince(ctx, globexKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		for _, err := range rl.Threads(ctx, "globex") {
			require.NoError(t, err)
		}
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		out, errc := drain(rl.TailTenant(tctx, "globex", 0))
		require.Equal(t, recs[0].Ordinal, next(t, out, errc).Ordinal)
		stop()
		rd.noViolations(t)
		_, err = rl.Append(ctxFor(t, deniedWait), globexKey, events("x"))
		require.Error(t, err)
		rd.violation(t, "Publish", "jetsession.globex.")
		_, err = rl.ArchiveBefore(ctxFor(t, deniedWait), globexKey, 1<<40)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		_, err = rl.LoadSnapshot(ctxFor(t, deniedWait), globexKey)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied, "snapshots are not the reader's")
		rd.violation(t, "Publish", "$JS.API.STREAM.INFO.jetsession-_s-globex")
	})

	t.Run("the provisioner's user in a tenant account reads no event", func(t *testing.T) {
		// What the provisioner issues itself for each change of a stream.
		keys, err := provision.LoadKeys(env.Dir)
		require.NoError(t, err)
		rec, err := p.Get(ctx, "globex")
		require.NoError(t, err)
		user, _ := nkeys.CreateUser()
		pub, _ := user.PublicKey()
		uc := jwt.NewUserClaims(pub)
		uc.IssuerAccount = rec.Account
		uc.SetScoped(true)
		token, err := uc.Encode(keys.Roles[provision.RoleProvisioner])
		require.NoError(t, err)
		seed, _ := user.Seed()
		creds, err := jwt.FormatUserConfig(token, seed)
		require.NoError(t, err)
		prov := credsClient(t, env, creds, "provisioner-globex", provision.ProvisionerInbox)
		pl := prov.log(t, jetstream.WithStreamCreation(false))
		info, ok, err := pl.Tenant(ctx, "globex")
		require.NoError(t, err, "it sees the stream's state")
		require.True(t, ok)
		require.EqualValues(t, 1, info.Events)
		prov.noViolations(t)
		_, err = pl.LoadSince(ctxFor(t, deniedWait), globexKey, 0)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		prov.violation(t, "Publish", "$JS.API.DIRECT.GET.jetsession-globex")
		_, err = pl.Append(ctxFor(t, deniedWait), globexKey, events("x"))
		require.Error(t, err)
		prov.violation(t, "Publish", "jetsession.globex.")
		for _, subject := range []string{"$JS.API.STREAM.MSG.GET.jetsession-globex", "$JS.API.CONSUMER.CREATE.jetsession-globex.c.jetsession.globex.*",
			"$JS.API.STREAM.MSG.GET.jetsession-_s-globex", "jetsession.globex.$snapshot.secret",
			"$JS.API.STREAM.PURGE.jetsession-globex", "$JS.API.DIRECT.GET.jetsession-globex"} {
			require.NoError(t, prov.nc.Publish(subject, nil))
			prov.violation(t, "Publish", subject)
		}
	})

	t.Run("the bridge follows every tenant, one created while it runs included", func(t *testing.T) {
		bops := opsClient(t, env, provision.BridgeCreds, provision.ReaderInbox)
		src, err := accountsource.New(ctx, accountsource.Config{Ops: bops.nc, Key: env.ReaderKey(t, provision.BridgeCreds),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		defer src.Close()
		sink := acctest.NewMemorySink()
		b, err := bridge.New(bridge.Config{Source: src, Sink: sink, BatchSize: 100, FlushInterval: 10 * time.Millisecond,
			DiscoverInterval: time.Minute, ProgressInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.Run(rctx) }()
		defer func() {
			stop()
			require.NoError(t, <-done)
		}()
		delivered := func(tenant, text string) func() error {
			return func() error {
				for _, r := range sink.Rows(tenant) {
					if strings.Contains(string(r.Data), text) {
						return nil
					}
				}
				return fmt.Errorf("%s: %q not delivered", tenant, text)
			}
		}
		testserver.Eventually(t, 20*time.Second, delivered("globex", "globex only"))
		testserver.Eventually(t, 20*time.Second, delivered("acme", "live"))

		// Created while the bridge runs; the bridge lists tenants once a
		// minute here, so only the registry watch can find it in time.
		_, err = p.Create(ctx, "initech", provision.Limits{})
		require.NoError(t, err)
		initech := credsClient(t, env, issue(t, p, "initech", provision.RoleAgent), "agent-initech", "")
		initechLog := initech.log(t, jetstream.WithStreamCreation(false))
		initechKey := sessionlog.ThreadKey{Tenant: "initech", Thread: "t"}
		start := time.Now()
		_, err = initechLog.Append(ctx, initechKey, events("hello initech"))
		require.NoError(t, err)
		testserver.Eventually(t, 10*time.Second, delivered("initech", "hello initech"))
		t.Logf("an event of a tenant created at run time reached the sink %v after its append", time.Since(start))

		// Suspended: its agents are out, the bridge still reads it.
		_, err = initechLog.Append(ctx, initechKey, events("before the suspension"))
		require.NoError(t, err)
		_, err = p.Suspend(ctx, "initech")
		require.NoError(t, err)
		testserver.Eventually(t, 10*time.Second, func() error {
			if initech.nc.IsConnected() {
				return errors.New("the suspended tenant's agent is still connected")
			}
			return nil
		})
		_, err = env.ConnectCreds(t, issue(t, p, "initech", provision.RoleAgent), "")
		require.ErrorContains(t, err, "Authorization Violation")
		testserver.Eventually(t, 10*time.Second, delivered("initech", "before the suspension"))
		_, err = p.Resume(ctx, "initech")
		require.NoError(t, err)

		// Deleted: the deletion reaches the sink; created again: ordinals
		// go on and the bridge follows its new account.
		lastBefore := sink.Rows("initech")[len(sink.Rows("initech"))-1].Ordinal
		require.NoError(t, p.Delete(ctx, "initech"))
		testserver.Eventually(t, 20*time.Second, func() error {
			if n := len(sink.Rows("initech")); n != 0 {
				return fmt.Errorf("the sink still holds %d rows of the deleted tenant", n)
			}
			return nil
		})
		_, err = p.Create(ctx, "initech", provision.Limits{})
		require.NoError(t, err)
		again := credsClient(t, env, issue(t, p, "initech", provision.RoleAgent), "agent-initech-2", "")
		againLog := again.log(t, jetstream.WithStreamCreation(false))
		ord, err := againLog.Append(ctx, initechKey, events("second life"))
		require.NoError(t, err)
		require.Greater(t, ord, lastBefore, "ordinals are never reused")
		testserver.Eventually(t, 20*time.Second, delivered("initech", "second life"))
		bops.noViolations(t)
		sys.noViolations(t)
		ops.noViolations(t)
	})
}
