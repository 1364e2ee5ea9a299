package provision_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
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
	_, agent := agentLog(t, env, creds, "")
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "t1"}
	last, err := agent.Append(ctx, key, events("one", "two"))
	require.NoError(t, err)
	recs, err := agent.LoadSince(ctx, key, 0)
	require.NoError(t, err)
	require.Len(t, recs, 2)

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
	_ = errors.Is
	_ = testserver.Eventually
}
