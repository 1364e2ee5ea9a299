package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
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

// agentLog connects with issued credentials and returns a Log that
// creates no stream.
func agentLog(t *testing.T, env *acctest.Env, creds []byte, inbox string) (*nats.Conn, *jetstream.Log) {
	t.Helper()
	nc, err := env.ConnectCreds(t, creds, inbox)
	require.NoError(t, err)
	l, err := jetstream.New(nc, jetstream.WithStreamCreation(false), jetstream.WithPermissionWatcher(jetstream.WatchPermissions(nc)))
	require.NoError(t, err)
	return nc, l
}

func TestTenantLifecycle(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p := env.Provisioner(t)
	ctx := ctxFor(t, 2*time.Minute)

	rec, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	require.Equal(t, provision.StateActive, rec.State)
	require.Len(t, rec.Readers, 2)
	_, err = p.Create(ctx, "acme", provision.Limits{})
	require.ErrorIs(t, err, provision.ErrTenantExists)

	creds, err := p.Creds(ctx, "acme", provision.RoleAgent, provision.CredsOptions{Name: "agent-1"})
	require.NoError(t, err)
	agentConn, agent := agentLog(t, env, creds, "")
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "t1"}
	last, err := agent.Append(ctx, key, events("one", "two"))
	require.NoError(t, err)
	recs, err := agent.LoadSince(ctx, key, 0)
	require.NoError(t, err)
	require.Len(t, recs, 2)

	// Snapshots: agents may not create streams; the provisioner made the
	// snapshot stream, with its share of the account's storage.
	require.NoError(t, agent.SaveSnapshot(ctx, key, last, []byte("state")))
	snap, err := agent.LoadSnapshot(ctx, key)
	require.NoError(t, err)
	require.Equal(t, last, snap.Ordinal)
	snapQuota := func() int64 {
		t.Helper()
		msg, err := agentConn.Request("$JS.API.STREAM.INFO."+subjects.Default().SnapshotStream("acme"), nil, 5*time.Second)
		require.NoError(t, err)
		var info struct {
			Config struct {
				MaxBytes int64  `json:"max_bytes"`
				Discard  string `json:"discard"`
			} `json:"config"`
		}
		require.NoError(t, json.Unmarshal(msg.Data, &info), "%s", msg.Data)
		require.Equal(t, "new", info.Config.Discard, "a full snapshot stream refuses saves, it drops no other snapshot")
		return info.Config.MaxBytes
	}
	require.Equal(t, provision.DefaultLimits().SnapshotBytes(), snapQuota())
	bigger := provision.DefaultLimits()
	bigger.StorageBytes *= 2
	_, err = p.SetLimits(ctx, "acme", bigger)
	require.NoError(t, err)
	require.Equal(t, bigger.SnapshotBytes(), snapQuota())

	// Suspended: the agent's connection is closed and it cannot come back.
	_, err = p.Suspend(ctx, "acme")
	require.NoError(t, err)
	_, err = env.ConnectCreds(t, creds, "")
	require.Error(t, err)
	_, err = p.Resume(ctx, "acme")
	require.NoError(t, err)
	_, agent = agentLog(t, env, creds, "")
	_, err = agent.Append(ctx, key, events("three"))
	require.NoError(t, err)

	// Deleted, then created again: ordinals go on.
	require.NoError(t, p.Delete(ctx, "acme"))
	_, err = env.ConnectCreds(t, creds, "")
	require.Error(t, err, "credentials of a deleted tenant")
	rec2, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	require.NotEqual(t, rec.Account, rec2.Account)
	_, err = env.ConnectCreds(t, creds, "")
	require.Error(t, err, "credentials of the tenant's former life")
	creds2, err := p.Creds(ctx, "acme", provision.RoleAgent, provision.CredsOptions{})
	require.NoError(t, err)
	_, agent2 := agentLog(t, env, creds2, "")
	next, err := agent2.Append(ctx, key, events("again"))
	require.NoError(t, err)
	require.Greater(t, next, last+1)
	_, err = agent2.LoadSnapshot(ctx, key)
	require.ErrorIs(t, err, sessionlog.ErrNoSnapshot, "the tenant's former snapshots went with it")
}

func TestLimitsAreCheckedBeforeAnythingChanges(t *testing.T) {
	require.NoError(t, provision.DefaultLimits().Validate())
	for name, edit := range map[string]func(*provision.Limits){
		"no storage":       func(l *provision.Limits) { l.StorageBytes = 0 },
		"no connection":    func(l *provision.Limits) { l.Connections = 0 },
		"one consumer":     func(l *provision.Limits) { l.Consumers = 1 },
		"tiny payload":     func(l *provision.Limits) { l.PayloadBytes = 1000 },
		"no subscriptions": func(l *provision.Limits) { l.Subscriptions = 0 },
	} {
		l := provision.DefaultLimits()
		edit(&l)
		require.ErrorIs(t, l.Validate(), provision.ErrInvalidLimits, name)
	}
	env := acctest.Start(t, acctest.Options{})
	p := env.Provisioner(t)
	_, err := p.Create(ctxFor(t, time.Minute), "acme", provision.Limits{StorageBytes: 1})
	require.ErrorIs(t, err, provision.ErrInvalidLimits)
	_, err = p.Get(ctxFor(t, time.Minute), "acme")
	require.ErrorIs(t, err, provision.ErrTenantNotFound, "nothing was recorded")
}

func TestInitNeverOverwritesAFolder(t *testing.T) {
	dir := t.TempDir()
	setup, err := provision.Init(dir, provision.InitOptions{})
	require.NoError(t, err)
	_, err = provision.Init(dir, provision.InitOptions{})
	require.ErrorIs(t, err, provision.ErrInvalidConfig)
	again, err := provision.ReadSetup(dir)
	require.NoError(t, err)
	require.Equal(t, setup, again)
	keys, err := provision.LoadKeys(dir)
	require.NoError(t, err)
	require.Len(t, keys.Readers, 2)
}

// TestAProvisionerIssuesOnlyTheRolesWhoseKeysItHolds: without the agent
// role's seed, a provisioner still creates tenants and issues readers, and
// refuses agent credentials with ErrMissingKey.
func TestAProvisionerIssuesOnlyTheRolesWhoseKeysItHolds(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	require.NoError(t, os.Remove(filepath.Join(env.Dir, provision.KeysDir, "role-agent.nk")))
	p := env.Provisioner(t)
	ctx := ctxFor(t, time.Minute)
	_, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	_, err = p.Creds(ctx, "acme", provision.RoleAgent, provision.CredsOptions{})
	require.ErrorIs(t, err, provision.ErrMissingKey)
	_, err = p.Creds(ctx, "acme", provision.RoleReader, provision.CredsOptions{})
	require.NoError(t, err)
	_, err = p.Creds(ctx, "acme", provision.RoleProvisioner, provision.CredsOptions{})
	require.ErrorIs(t, err, provision.ErrInvalidConfig)
	_, err = p.Creds(ctx, "nobody", provision.RoleReader, provision.CredsOptions{})
	require.ErrorIs(t, err, provision.ErrTenantNotFound)
}

// TestAccountStorageIsAReservation: on one server, the storage limits of
// all accounts must fit max_file_store; a tenant past it gets no
// JetStream, and Create says so.
func TestAccountStorageIsAReservation(t *testing.T) {
	env := acctest.Start(t, acctest.Options{Edit: func(o *server.Options) { o.JetStreamMaxStore = 1 << 30 }})
	p := env.Provisioner(t)
	ctx := ctxFor(t, time.Minute)
	limits := provision.DefaultLimits()
	limits.StorageBytes = 300 << 20 // the operations account reserves 256 MiB
	var err error
	created := 0
	for i := range 4 {
		if _, err = p.Create(ctx, fmt.Sprintf("t%d", i), limits); err != nil {
			break
		}
		created++
	}
	require.ErrorIs(t, err, provision.ErrNoJetStream)
	require.Equal(t, 2, created, "256 MiB + 2 x 300 MiB fit 1 GiB, a third does not")
	t.Logf("the tenant past the server's store: %v", err)
	rec, err := p.Get(ctx, fmt.Sprintf("t%d", created))
	require.NoError(t, err)
	require.Equal(t, provision.StateCreating, rec.State)
	// Room made, the same call finishes it.
	require.NoError(t, p.Delete(ctx, "t0"))
	_, err = p.Create(ctx, fmt.Sprintf("t%d", created), limits)
	require.NoError(t, err)
}

func TestRevokedCredentialsStopWorkingAtOnce(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p := env.Provisioner(t)
	ctx := ctxFor(t, time.Minute)
	_, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	leaked, err := p.Creds(ctx, "acme", provision.RoleAgent, provision.CredsOptions{})
	require.NoError(t, err)
	kept, err := p.Creds(ctx, "acme", provision.RoleAgent, provision.CredsOptions{})
	require.NoError(t, err)
	nc, _ := agentLog(t, env, leaked, "")
	kp, err := nkeys.ParseDecoratedNKey(leaked)
	require.NoError(t, err)
	pub, _ := kp.PublicKey()
	_, err = p.Revoke(ctx, "acme", pub)
	require.NoError(t, err)
	testserver.Eventually(t, 10*time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("the revoked user is still connected")
		}
		return nil
	})
	_, err = env.ConnectCreds(t, leaked, "")
	require.Error(t, err)
	_, err = env.ConnectCreds(t, kept, "")
	require.NoError(t, err, "other credentials keep working")
}

// TestConcurrentProvisionersCreateATenantOnce: two provisioners creating
// the same tenant at once make one account; the other call fails with
// ErrConflict or ErrTenantExists.
func TestConcurrentProvisionersCreateATenantOnce(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	a, b := env.Provisioner(t), env.Provisioner(t)
	ctx := ctxFor(t, time.Minute)
	errs := make(chan error, 2)
	for _, p := range []*provision.Provisioner{a, b} {
		go func() {
			_, err := p.Create(ctx, "acme", provision.Limits{})
			errs <- err
		}()
	}
	var failed []error
	for range 2 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	require.Len(t, failed, 1, "exactly one creation wins")
	require.True(t, errors.Is(failed[0], provision.ErrConflict) || errors.Is(failed[0], provision.ErrTenantExists), "%v", failed[0])
	rec, err := a.Get(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, provision.StateActive, rec.State)
}
