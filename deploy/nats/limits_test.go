package nats_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestOneAccountDoesNotStopAHostileTenant pins what README.md says the
// one-account roles cannot do: stop an agent that writes raw NATS instead
// of using the library. The server never checks the reply subject of a
// request against the requester's permissions, and a direct get answers
// with a payload the requester stored itself: inside one account that
// reply reaches every stream and the JetStream API itself. With agent
// rights only, acme reads globex, forges and corrupts globex events and
// deletes globex's stream. If this test fails, the server (or the
// roles) closed a gap: update README.md ("What the permissions do not
// cover") and turn the assertions around.
func TestOneAccountDoesNotStopAHostileTenant(t *testing.T) {
	opts := loadConfig(t, "single.conf")
	srv := startServer(t, opts)
	url := srv.ClientURL()
	ctx := ctxFor(t, time.Minute)
	admin := connect(t, opts, url, "admin", "")
	adminLog := admin.log(t)
	provLog := connect(t, opts, url, "provisioner", provisionerInbox).log(t)
	require.NoError(t, provLog.EnsureTenant(ctx, "acme"))
	require.NoError(t, provLog.EnsureTenant(ctx, "globex"))
	globexLog := connect(t, opts, url, "agent-globex", tenantInbox("globex")).log(t, jetstream.WithStreamCreation(false))
	secretKey := sessionlog.ThreadKey{Tenant: "globex", Thread: "secret"}
	_, err := globexLog.Append(ctx, secretKey, events("globex only"))
	require.NoError(t, err)

	acme := connect(t, opts, url, "agent-acme", tenantInbox("acme"))
	acmeLog := acme.log(t, jetstream.WithStreamCreation(false))

	t.Run("a direct get reply reaches the JetStream API", func(t *testing.T) {
		// acme stores a consumer-create request for globex's stream as an
		// event, then direct-gets it with the API subject as reply: the
		// stream answers with the stored payload, and the API takes it
		// as a request from the account.
		leak, err := acme.nc.SubscribeSync(tenantInbox("acme") + ".leak")
		require.NoError(t, err)
		request, err := json.Marshal(map[string]any{"stream_name": "jetsession-globex", "config": map[string]any{
			"name": "leak", "deliver_subject": tenantInbox("acme") + ".leak", "deliver_policy": "all",
			"ack_policy": "none", "filter_subject": "jetsession.globex.*"}})
		require.NoError(t, err)
		seq, err := acmeLog.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "payload"},
			[]sessionlog.Event{{Type: "x", Data: request}})
		require.NoError(t, err)
		require.NoError(t, acme.nc.PublishMsg(&nats.Msg{
			Subject: "$JS.API.DIRECT.GET.jetsession-acme",
			Reply:   "$JS.API.CONSUMER.CREATE.jetsession-globex.leak",
			Data:    fmt.Appendf(nil, `{"seq":%d}`, seq),
		}))
		msg, err := leak.NextMsg(10 * time.Second)
		require.NoError(t, err, "the reflected request no longer works: update README.md")
		require.Equal(t, "jetsession.globex.secret", msg.Subject)
		require.JSONEq(t, `{"text":"globex only"}`, string(msg.Data))
		acme.noViolations(t) // every subject acme used is one it may use
	})

	t.Run("a direct get reply is stored by another tenant's stream", func(t *testing.T) {
		// The reply carries the stored headers, so globex's stream keeps a
		// copy that reads as an ordinary globex event.
		seq, err := acmeLog.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "forged"}, events("written by acme"))
		require.NoError(t, err)
		require.NoError(t, acme.nc.PublishMsg(&nats.Msg{
			Subject: "$JS.API.DIRECT.GET.jetsession-acme",
			Reply:   "jetsession.globex.forged",
			Data:    fmt.Appendf(nil, `{"seq":%d}`, seq),
		}))
		var recs []sessionlog.Record
		testserver.Eventually(t, 10*time.Second, func() error {
			recs, err = adminLog.LoadSince(ctx, sessionlog.ThreadKey{Tenant: "globex", Thread: "forged"}, 0)
			if err == nil && len(recs) != 1 {
				err = fmt.Errorf("globex holds %d forged events, want 1 (if none arrive, update README.md)", len(recs))
			}
			return err
		})
		require.JSONEq(t, `{"text":"written by acme"}`, string(recs[0].Data))
		acme.noViolations(t)
	})
	t.Run("an acknowledgement lands in another tenant's thread", func(t *testing.T) {
		require.NoError(t, acme.nc.PublishMsg(&nats.Msg{
			Subject: "jetsession.acme.ack",
			Reply:   "jetsession.globex.broken",
			Header:  nats.Header{"Nats-Msg-Id": []string{"ack:1"}},
		}))
		testserver.Eventually(t, 10*time.Second, func() error {
			_, err := adminLog.LoadSince(ctx, sessionlog.ThreadKey{Tenant: "globex", Thread: "broken"}, 0)
			if !errors.Is(err, sessionlog.ErrCorruptEvent) {
				return fmt.Errorf("reading the thread: %v, want a corrupt event (if none arrives, update README.md)", err)
			}
			return nil
		})
		acme.noViolations(t)
	})

	t.Run("a direct get reply deletes another tenant's stream", func(t *testing.T) {
		// An event with an empty payload is an empty request.
		reply, err := acme.nc.RequestMsg(&nats.Msg{Subject: "jetsession.acme.empty",
			Header: nats.Header{"Nats-Msg-Id": []string{"empty:1"}}}, 5*time.Second)
		require.NoError(t, err)
		var ack struct{ Seq uint64 }
		require.NoError(t, json.Unmarshal(reply.Data, &ack))
		require.NoError(t, acme.nc.PublishMsg(&nats.Msg{
			Subject: "$JS.API.DIRECT.GET.jetsession-acme",
			Reply:   "$JS.API.STREAM.DELETE.jetsession-globex",
			Data:    fmt.Appendf(nil, `{"seq":%d}`, ack.Seq),
		}))
		testserver.Eventually(t, 10*time.Second, func() error {
			tenants, err := adminLog.Tenants(ctx)
			if err == nil && len(tenants) != 1 {
				err = fmt.Errorf("%d tenants left, want only acme (if globex stays, update README.md)", len(tenants))
			}
			return err
		})
		acme.noViolations(t)
	})
}
