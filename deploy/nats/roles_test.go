package nats_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestSingleConfig(t *testing.T) {
	opts, err := server.ProcessConfigFile("single.conf")
	require.NoError(t, err)
	require.Equal(t, 4222, opts.Port)
	require.Equal(t, 8222, opts.HTTPPort, "monitoring port")
	require.EqualValues(t, 1<<20, opts.MaxPayload)
	require.True(t, opts.JetStream)
	require.EqualValues(t, 1<<30, opts.JetStreamMaxMemory)
	require.EqualValues(t, 100<<30, opts.JetStreamMaxStore)
	require.False(t, opts.SyncAlways, "single.conf documents the default sync interval")
	require.Zero(t, opts.SyncInterval, "single.conf documents the default sync interval")
	require.NotEmpty(t, opts.Users)
	for _, u := range opts.Users {
		require.Equal(t, account, u.Account.Name, "user %s", u.Username)
	}

	// It boots, JetStream is on for the account, and monitoring answers.
	srv := startServer(t, loadConfig(t, "single.conf"))
	acc, err := srv.LookupAccount(account)
	require.NoError(t, err)
	require.True(t, acc.JetStreamEnabled())
	resp, err := http.Get(fmt.Sprintf("http://%s/healthz?js-enabled-only=true", srv.MonitorAddr()))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Nobody gets in without a user.
	_, err = nats.Connect(srv.ClientURL())
	require.ErrorContains(t, err, "Authorization Violation")
}

// TestRoles runs every role of accounts.conf against single.conf through
// the library, in order: tenants are provisioned, then used.
func TestRoles(t *testing.T) {
	opts := loadConfig(t, "single.conf")
	srv := startServer(t, opts)
	url := srv.ClientURL()
	as := func(user, inbox string) *client { return connect(t, opts, url, user, inbox) }

	admin := as("admin", "")
	adminLog := admin.log(t)
	acme := as("agent-acme", tenantInbox("acme"))
	acmeLog := acme.log(t, jetstream.WithStreamCreation(false))
	globex := as("agent-globex", tenantInbox("globex"))
	globexLog := globex.log(t, jetstream.WithStreamCreation(false))
	acmeKey := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/1"}
	globexKey := sessionlog.ThreadKey{Tenant: "globex", Thread: "secret"}
	ctx := ctxFor(t, time.Minute)

	t.Run("agents cannot create tenants", func(t *testing.T) {
		_, err := acmeLog.Append(ctx, acmeKey, events("too early"))
		require.ErrorIs(t, err, jetstream.ErrTenantNotProvisioned)
		t.Logf("append to an unprovisioned tenant: %v", err)
		acme.noViolations(t) // the lookup it made is one it may make

		// A Log left to create streams tries, and the server refuses.
		probe := as("agent-acme", tenantInbox("acme"))
		_, err = probe.log(t).Append(ctxFor(t, deniedWait), acmeKey, events("too early"))
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		t.Logf("append with stream creation on: %v", err)
		probe.violation(t, "Publish", "$JS.API.STREAM.") // the deleted-tenant lookup, or the creation
		tenants, err := adminLog.Tenants(ctx)
		require.NoError(t, err)
		require.Empty(t, tenants)
	})

	t.Run("provisioner creates tenants and reads nothing", func(t *testing.T) {
		prov := as("provisioner", provisionerInbox)
		provLog := prov.log(t)
		for range 2 { // idempotent
			require.NoError(t, provLog.EnsureTenant(ctx, "acme"))
			require.NoError(t, provLog.EnsureTenant(ctx, "globex"))
			require.NoError(t, provLog.EnsureSnapshots(ctx, "acme"))
			require.NoError(t, provLog.EnsureSnapshots(ctx, "globex"))
		}
		prov.noViolations(t)
		tenants, err := adminLog.Tenants(ctx)
		require.NoError(t, err)
		require.Len(t, tenants, 2)
		require.ElementsMatch(t, []string{"acme", "globex"}, []string{tenants[0].Tenant, tenants[1].Tenant})

		_, err = provLog.Append(ctxFor(t, deniedWait), acmeKey, events("x"))
		require.Error(t, err)
		prov.violation(t, "Publish", "jetsession.acme.")
		_, err = provLog.LoadSince(ctxFor(t, deniedWait), acmeKey, 0)
		require.Error(t, err)
		prov.violation(t, "Publish", "$JS.API.DIRECT.GET.jetsession-acme")
	})

	t.Run("provisioner deletes a tenant, which numbers on when created again", func(t *testing.T) {
		prov := as("provisioner", provisionerInbox)
		provLog := prov.log(t)
		admin := adminLog
		temp := sessionlog.ThreadKey{Tenant: "initech", Thread: "t"}
		require.NoError(t, provLog.EnsureTenant(ctx, temp.Tenant))
		last, err := admin.Append(ctx, temp, events("a", "b"))
		require.NoError(t, err)
		require.NoError(t, admin.SaveSnapshot(ctx, temp, last, []byte("state")))
		require.NoError(t, provLog.DeleteTenant(ctx, temp.Tenant))
		recs, err := admin.LoadSince(ctx, temp, 0)
		require.NoError(t, err)
		require.Empty(t, recs)
		_, err = admin.LoadSnapshot(ctx, temp)
		require.ErrorIs(t, err, sessionlog.ErrNoSnapshot, "the provisioner deleted the tenant's snapshots")
		require.NoError(t, provLog.EnsureTenant(ctx, temp.Tenant))
		next, err := admin.Append(ctx, temp, events("c"))
		require.NoError(t, err)
		require.Greater(t, next, last)
		prov.noViolations(t)
		require.NoError(t, provLog.DeleteTenant(ctx, temp.Tenant))
	})

	var last uint64 // acmeKey's last ordinal
	t.Run("agent appends, loads and tails its tenant", func(t *testing.T) {
		first, err := acmeLog.Append(ctx, acmeKey, events("one"))
		require.NoError(t, err)
		last, err = acmeLog.Append(ctx, acmeKey, events("two", "three", "four")) // an atomic batch
		require.NoError(t, err)
		recs, err := acmeLog.LoadSince(ctx, acmeKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 4)
		require.Equal(t, first, recs[0].Ordinal)
		require.Equal(t, last, recs[3].Ordinal)
		head, err := acmeLog.Head(ctx, acmeKey)
		require.NoError(t, err)
		require.Equal(t, sessionlog.Head{First: first, Last: last, Count: 4}, head)
		n := 0
		for _, err := range acmeLog.ScanTenant(ctx, "acme", 0) {
			require.NoError(t, err)
			n++
		}
		require.Equal(t, 4, n)

		// Live tails of the thread and of the tenant, from the head.
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		thread, threadErr := drain(acmeLog.Tail(tctx, acmeKey, last))
		tenant, tenantErr := drain(acmeLog.TailTenant(tctx, "acme", last))
		live, err := acmeLog.Append(ctx, acmeKey, events("live"))
		require.NoError(t, err)
		other := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/2"}
		elsewhere, err := acmeLog.Append(ctx, other, events("elsewhere"))
		require.NoError(t, err)
		require.Equal(t, live, next(t, thread, threadErr).Ordinal)
		require.Equal(t, live, next(t, tenant, tenantErr).Ordinal)
		rec := next(t, tenant, tenantErr)
		require.Equal(t, elsewhere, rec.Ordinal)
		require.Equal(t, "support/2", rec.Thread)
		stop()
		last = live
		acme.noViolations(t)
	})

	t.Run("agent saves and loads its tenant's snapshots, never another's", func(t *testing.T) {
		require.NoError(t, acmeLog.SaveSnapshot(ctx, acmeKey, last, []byte(`{"acme":"state"}`)))
		snap, err := acmeLog.LoadSnapshot(ctx, acmeKey)
		require.NoError(t, err)
		require.Equal(t, last, snap.Ordinal)
		acme.noViolations(t)
		globexSnap := sessionlog.ThreadKey{Tenant: "globex", Thread: "snapshotted"}
		globexLast, err := globexLog.Append(ctx, globexSnap, events("globex before its snapshot"))
		require.NoError(t, err)
		require.NoError(t, globexLog.SaveSnapshot(ctx, globexSnap, globexLast, []byte("globex secret state")))
		globex.noViolations(t)

		probe := as("agent-acme", tenantInbox("acme"))
		pl := probe.log(t, jetstream.WithStreamCreation(false))
		err = pl.SaveSnapshot(ctxFor(t, deniedWait), globexSnap, globexLast, []byte("intrusion"))
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		probe.violation(t, "Publish", "$JS.API.STREAM.")
		_, err = pl.LoadSnapshot(ctxFor(t, deniedWait), globexSnap)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		probe.violation(t, "Publish", "$JS.API.STREAM.INFO.jetsession-_s-globex")
		for _, subject := range []string{
			"jetsession.globex.$snapshot.secret",
			"$JS.API.STREAM.MSG.GET.jetsession-_s-globex",
			"$JS.API.STREAM.INFO.jetsession-_s-globex",
			"$JS.API.DIRECT.GET.jetsession-_s-globex",
			"$JS.API.STREAM.CREATE.jetsession-_s-acme",
			"$JS.API.STREAM.UPDATE.jetsession-_s-acme",
			"$JS.API.STREAM.PURGE.jetsession-_s-acme",
			"$JS.API.STREAM.DELETE.jetsession-_s-acme",
			"$JS.API.STREAM.MSG.DELETE.jetsession-_s-acme",
		} {
			require.NoError(t, probe.nc.Publish(subject, []byte("x")))
			probe.violation(t, "Publish", subject)
		}
		snap, err = globexLog.LoadSnapshot(ctx, globexSnap)
		require.NoError(t, err)
		require.Equal(t, "globex secret state", string(snap.State), "globex's snapshot is untouched")
	})

	t.Run("agent tail answers flow control", func(t *testing.T) {
		// More than the consumer's flow-control window (2 MiB at first)
		// makes the server ask the tail to confirm what it read.
		bulk := sessionlog.ThreadKey{Tenant: "acme", Thread: "bulk"}
		payload := fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 700_000))
		for range 12 {
			_, err := acmeLog.Append(ctx, bulk, []sessionlog.Event{{Type: "blob", Data: payload}})
			require.NoError(t, err)
		}
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		out, errc := drain(acmeLog.Tail(tctx, bulk, 0))
		for range 12 {
			next(t, out, errc)
		}
		stop()
		acme.noViolations(t)
	})

	t.Run("agent cannot reach other tenants or manage streams", func(t *testing.T) {
		probe := as("agent-acme", tenantInbox("acme"))
		pl := probe.log(t, jetstream.WithStreamCreation(false))
		noRecords := func(seq func(func(sessionlog.TenantRecord, error) bool)) error {
			for _, err := range seq {
				if err != nil {
					return err
				}
				return errors.New("a record was yielded")
			}
			return errors.New("the sequence ended without an error")
		}
		tail := func(ctx context.Context, key sessionlog.ThreadKey) error {
			for _, err := range pl.Tail(ctx, key, 0) {
				if err != nil {
					return err
				}
				return errors.New("a record was yielded")
			}
			return errors.New("the tail ended without an error")
		}
		cases := []struct {
			name, subject string
			call          func(context.Context) error
		}{
			{"append to globex", "jetsession.globex.", func(ctx context.Context) error {
				_, err := pl.Append(ctx, globexKey, events("intrusion"))
				return err
			}},
			{"load globex", "$JS.API.STREAM.INFO.jetsession-globex", func(ctx context.Context) error {
				_, err := pl.LoadSince(ctx, globexKey, 0)
				return err
			}},
			{"head of globex", "$JS.API.STREAM.INFO.jetsession-globex", func(ctx context.Context) error {
				_, err := pl.Head(ctx, globexKey)
				return err
			}},
			{"scan globex", "$JS.API.DIRECT.GET.jetsession-globex", func(ctx context.Context) error {
				return noRecords(pl.ScanTenant(ctx, "globex", 0))
			}},
			{"tail globex", "$JS.API.CONSUMER.CREATE.jetsession-globex.", func(ctx context.Context) error {
				return tail(ctx, globexKey)
			}},
			{"tail tenant globex", "$JS.API.CONSUMER.CREATE.jetsession-globex.", func(ctx context.Context) error {
				return noRecords(pl.TailTenant(ctx, "globex", 0))
			}},
			{"archive globex", "$JS.API.STREAM.PURGE.jetsession-globex", func(ctx context.Context) error {
				_, err := pl.ArchiveBefore(ctx, globexKey, 1<<40)
				return err
			}},
			{"archive acme", "$JS.API.STREAM.PURGE.jetsession-acme", func(ctx context.Context) error {
				_, err := pl.ArchiveBefore(ctx, acmeKey, 1<<40)
				return err
			}},
		}
		t.Run("library", func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					err := c.call(ctxFor(t, deniedWait))
					require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
					t.Logf("%s: %v", c.name, err)
					probe.violation(t, "Publish", c.subject)
				})
			}
		})
		recs, err := acmeLog.LoadSince(ctx, acmeKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 5, "nothing of acme was purged")

		for _, subject := range []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.LIST",
			"$JS.API.STREAM.NAMES",
			"$JS.API.STREAM.CREATE.jetsession-initech",
			"$JS.API.STREAM.UPDATE.jetsession-acme",
			"$JS.API.STREAM.DELETE.jetsession-acme",
			"$JS.API.STREAM.DELETE.jetsession-globex",
			"$JS.API.STREAM.PURGE.jetsession-globex",
			"$JS.API.STREAM.MSG.DELETE.jetsession-acme",
			"$JS.API.STREAM.MSG.GET.jetsession-globex",
			"$JS.API.DIRECT.GET.jetsession-globex",
			"$JS.API.CONSUMER.CREATE.jetsession-globex.c.jetsession.globex.*",
			"$JS.API.CONSUMER.CREATE.jetsession-acme.c.jetsession.globex.*",
			"$JS.API.CONSUMER.CREATE.jetsession-acme",
			"$JS.API.CONSUMER.DURABLE.CREATE.jetsession-acme.c",
			"$JS.API.CONSUMER.DELETE.jetsession-globex.c",
			"$JS.API.CONSUMER.LIST.jetsession-acme",
			"$JS.FC.jetsession-globex.c.1",
			"$SYS.REQ.SERVER.PING",
			"_INBOX_globex.x",
			"jetsession.globex.t",
		} {
			require.NoError(t, probe.nc.Publish(subject, nil))
			probe.violation(t, "Publish", subject)
		}
	})

	t.Run("agent receives nothing of another tenant", func(t *testing.T) {
		tap := as("agent-acme", tenantInbox("acme"))
		got := make(chan *nats.Msg, 1024)
		for _, subject := range []string{
			">", "jetsession.>", "jetsession.globex.*", "jetsession.acme.*",
			"_INBOX.>", "_INBOX_globex.>", "$JS.>", "$JS.EVENT.>", "$JS.ACK.>", "$JS.FC.>", "$SYS.>",
		} {
			_, err := tap.nc.ChanSubscribe(subject, got)
			require.NoError(t, err)
			tap.violation(t, "Subscription", subject)
		}
		// Its own inbox is allowed: globex's replies must not land there.
		_, err := tap.nc.ChanSubscribe(tenantInbox("acme")+".>", got)
		require.NoError(t, err)
		require.NoError(t, tap.nc.Flush())

		// globex writes, reads and tails.
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		out, errc := drain(globexLog.Tail(tctx, globexKey, 0))
		secret, err := globexLog.Append(ctx, globexKey, events("globex only"))
		require.NoError(t, err)
		require.Equal(t, secret, next(t, out, errc).Ordinal)
		stop()
		recs, err := globexLog.LoadSince(ctx, globexKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		globex.noViolations(t)

		// Whatever reached the server before the round trip reached tap.
		require.NoError(t, tap.nc.Flush())
		require.Empty(t, got, "agent-acme received messages")
	})

	t.Run("agent without its inbox prefix gets no replies", func(t *testing.T) {
		plain := as("agent-acme", "")
		key := sessionlog.ThreadKey{Tenant: "acme", Thread: "no-inbox"}
		evs := events("unacknowledged")
		_, err := plain.log(t, jetstream.WithStreamCreation(false)).Append(ctxFor(t, deniedWait), key, evs)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		require.ErrorContains(t, err, "_INBOX")
		plain.violation(t, "Subscription", "_INBOX.")
		// The publish itself was allowed and is stored (the refusal of the
		// reply subscription can reach the client first); only its
		// acknowledgement was lost. Retrying the same events dedups onto it.
		var stored []sessionlog.Record
		testserver.Eventually(t, 10*time.Second, func() error {
			stored, err = adminLog.LoadSince(ctx, key, 0)
			if err == nil && len(stored) != 1 {
				err = fmt.Errorf("%d events stored", len(stored))
			}
			return err
		})
		again, err := acmeLog.Append(ctx, key, evs)
		require.NoError(t, err)
		require.Equal(t, stored[0].Ordinal, again)
	})

	t.Run("archiver purges its tenant only", func(t *testing.T) {
		arch := as("archiver-acme", tenantInbox("acme"))
		archLog := arch.log(t, jetstream.WithStreamCreation(false))
		purged, err := archLog.ArchiveBefore(ctx, acmeKey, last-1)
		require.NoError(t, err)
		require.Equal(t, 4, purged)
		recs, err := archLog.LoadSince(ctx, acmeKey, 0)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		require.Equal(t, last, recs[0].Ordinal)
		arch.noViolations(t)

		_, err = archLog.ArchiveBefore(ctxFor(t, deniedWait), globexKey, 1<<40)
		require.Error(t, err)
		arch.violation(t, "Publish", "$JS.API.STREAM.PURGE.jetsession-globex")
		for _, subject := range []string{
			"$JS.API.STREAM.PURGE.jetsession-globex",
			"$JS.API.STREAM.DELETE.jetsession-acme",
			"$JS.API.STREAM.UPDATE.jetsession-acme",
		} {
			require.NoError(t, arch.nc.Publish(subject, nil))
			arch.violation(t, "Publish", subject)
		}
	})

	t.Run("archivers delete threads of their tenant; agents cannot", func(t *testing.T) {
		doomed := sessionlog.ThreadKey{Tenant: "acme", Thread: "doomed"}
		doomedLast, err := acmeLog.Append(ctx, doomed, events("x", "y"))
		require.NoError(t, err)
		require.NoError(t, acmeLog.SaveSnapshot(ctx, doomed, doomedLast, []byte("doomed state")))
		agentProbe := as("agent-acme", tenantInbox("acme"))
		_, err = agentProbe.log(t, jetstream.WithStreamCreation(false)).DeleteThread(ctxFor(t, deniedWait), doomed)
		require.Error(t, err)
		agentProbe.violation(t, "Publish", "jetsession.acme.$deleted")
		arch := as("archiver-acme", tenantInbox("acme"))
		n, err := arch.log(t, jetstream.WithStreamCreation(false)).DeleteThread(ctx, doomed)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		arch.noViolations(t)
		_, err = acmeLog.LoadSnapshot(ctx, doomed)
		require.ErrorIs(t, err, sessionlog.ErrNoSnapshot, "the thread's snapshot went with it")
	})

	t.Run("bridge follows every tenant and writes nothing", func(t *testing.T) {
		br := as("bridge", bridgeInbox)
		brLog := br.log(t)
		tenants, err := brLog.Tenants(ctx)
		require.NoError(t, err)
		require.Len(t, tenants, 2)
		for _, key := range []sessionlog.ThreadKey{acmeKey, globexKey} {
			recs, err := brLog.LoadSince(ctx, key, 0)
			require.NoError(t, err)
			require.NotEmpty(t, recs, key.Tenant)
			head, err := brLog.Head(ctx, key)
			require.NoError(t, err)
			require.Equal(t, recs[len(recs)-1].Ordinal, head.Last, key.Tenant)
		}

		dir := t.TempDir()
		sink, err := jsonl.NewFiles(dir)
		require.NoError(t, err)
		b, err := bridge.New(bridge.Config{Source: brLog, Sink: sink, BatchSize: 100,
			FlushInterval: 20 * time.Millisecond, DiscoverInterval: 100 * time.Millisecond, ProgressInterval: -1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.Run(rctx) }()
		// Backlog (scans) and live events (tails) of both tenants.
		_, err = acmeLog.Append(ctx, acmeKey, events("acme live"))
		require.NoError(t, err)
		_, err = globexLog.Append(ctx, globexKey, events("globex live"))
		require.NoError(t, err)
		testserver.Eventually(t, 20*time.Second, func() error {
			got := deliveredTexts(t, dir, false)
			for _, want := range []string{"acme/live", "acme/acme live", "globex/globex only", "globex/globex live"} {
				if !got[want] {
					return fmt.Errorf("bridge has not delivered %q yet", want)
				}
			}
			return nil
		})
		stop()
		require.NoError(t, <-done)
		require.NoError(t, sink.Close(ctx))
		require.True(t, deliveredTexts(t, dir, true)["globex/globex live"])
		br.noViolations(t) // advisories, listing, scans and tails all allowed

		probe := as("bridge", bridgeInbox)
		_, err = probe.log(t, jetstream.WithStreamCreation(false)).Append(ctxFor(t, deniedWait), acmeKey, events("x"))
		require.Error(t, err)
		probe.violation(t, "Publish", "jetsession.acme.")
		// Snapshots are not the bridge's.
		_, err = probe.log(t, jetstream.WithStreamCreation(false)).LoadSnapshot(ctxFor(t, deniedWait), acmeKey)
		require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
		probe.violation(t, "Publish", "$JS.API.DIRECT.GET.jetsession-_s-acme")
		for _, subject := range []string{
			"$JS.API.STREAM.PURGE.jetsession-acme",
			"$JS.API.STREAM.DELETE.jetsession-globex",
			"$JS.API.STREAM.CREATE.jetsession-initech",
			"$JS.API.CONSUMER.CREATE.other.c.private.*",
			"jetsession.acme.$snapshot.support_2f1",
			"$JS.API.DIRECT.GET.jetsession-_s-globex",
		} {
			require.NoError(t, probe.nc.Publish(subject, nil))
			probe.violation(t, "Publish", subject)
		}
		_, err = probe.nc.Subscribe("jetsession.>", func(*nats.Msg) {})
		require.NoError(t, err)
		probe.violation(t, "Subscription", "jetsession.>")
	})
}

// TestFlowControlPermissions is the control of "agent tail answers flow
// control": a tail over more than the flow-control window needs the $JS.FC
// permissions, and the second form serves servers running the
// js_ack_fc_v2 feature flag.
func TestFlowControlPermissions(t *testing.T) {
	for _, c := range []struct {
		name   string
		v2     bool
		remove func(string) bool
		denied string // the refused flow-control subject, if any
	}{
		{"without them the reply is refused", false, isFC, "$JS.FC.jetsession-acme."},
		{"without them the v2 reply is refused", true, isFC, "$JS.FC._."},
		{"the v2 form serves js_ack_fc_v2", true, func(s string) bool { return s == "$JS.FC.jetsession-acme.>" }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := loadConfig(t, "single.conf")
			if c.v2 {
				opts.FeatureFlags = map[string]bool{server.FeatureFlagJsAckFormatV2: true}
			}
			for _, u := range opts.Users {
				if u.Username == "agent-acme" {
					n := len(u.Permissions.Publish.Allow)
					u.Permissions.Publish.Allow = slices.DeleteFunc(u.Permissions.Publish.Allow, c.remove)
					require.Less(t, len(u.Permissions.Publish.Allow), n, "agent-acme has the $JS.FC permission removed here")
				}
			}
			srv := startServer(t, opts)
			adminLog := connect(t, opts, srv.ClientURL(), "admin", "").log(t)
			key := sessionlog.ThreadKey{Tenant: "acme", Thread: "bulk"}
			payload := fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 700_000))
			for range 12 {
				_, err := adminLog.Append(ctxFor(t, time.Minute), key, []sessionlog.Event{{Type: "blob", Data: payload}})
				require.NoError(t, err)
			}
			acme := connect(t, opts, srv.ClientURL(), "agent-acme", tenantInbox("acme"))
			tctx, stop := context.WithCancel(context.Background())
			defer stop()
			out, errc := drain(acme.log(t).Tail(tctx, key, 0))
			if c.denied != "" {
				acme.violation(t, "Publish", c.denied)
			} else {
				for range 12 {
					next(t, out, errc)
				}
				acme.noViolations(t)
			}
			stop()
			for range out { // let the tail end before the server stops
			}
		})
	}
}

func isFC(subject string) bool { return strings.HasPrefix(subject, "$JS.FC.") }

// deliveredTexts reads the bridge's JSON lines as "tenant/text"; unless
// strict, it passes over a line the sink is still writing.
func deliveredTexts(t *testing.T, dir string, strict bool) map[string]bool {
	files, err := filepath.Glob(filepath.Join(dir, "events-*.jsonl"))
	require.NoError(t, err)
	got := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 4<<20) // the bulk events are 700 KB
		for sc.Scan() {
			var line struct {
				Tenant string `json:"tenant"`
				Data   struct {
					Text string `json:"text"`
				} `json:"data"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				require.False(t, strict, "line %q: %v", sc.Text(), err)
				continue
			}
			got[line.Tenant+"/"+line.Data.Text] = true
		}
		require.NoError(t, sc.Err())
		fh.Close()
	}
	return got
}
