package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// TestAnAccountBoundsWhatItsTenantUses: on tenant-accounts.conf a tenant
// that tries to exhaust the server (connections, subscriptions, message
// size, storage, consumers, streams, memory) is stopped at its account's
// limits, and another tenant goes on working meanwhile.
func TestAnAccountBoundsWhatItsTenantUses(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p, _, _ := provisioner(t, env)
	ctx := ctxFor(t, 3*time.Minute)
	limits := provision.Limits{StorageBytes: 2 << 20, Consumers: 4, Connections: 4, Subscriptions: 20, PayloadBytes: 256 << 10}
	hogRec, err := p.Create(ctx, "hog", limits)
	require.NoError(t, err)
	_, err = p.Create(ctx, "victim", provision.Limits{})
	require.NoError(t, err)
	hogCreds := issue(t, p, "hog", provision.RoleAgent)
	victimCreds := issue(t, p, "victim", provision.RoleAgent)
	victim := credsClient(t, env, victimCreds, "agent-victim", "")
	victimLog := victim.log(t, jetstream.WithStreamCreation(false))
	victimKey := sessionlog.ThreadKey{Tenant: "victim", Thread: "t"}
	// stillWorks checks that the victim appends, reads and tails.
	stillWorks := func(t *testing.T) {
		t.Helper()
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		head, err := victimLog.Head(ctx, victimKey)
		require.NoError(t, err)
		out, errc := drain(victimLog.Tail(tctx, victimKey, head.Last))
		last, err := victimLog.Append(ctx, victimKey, events("still here"))
		require.NoError(t, err)
		require.Equal(t, last, next(t, out, errc).Ordinal)
		recs, err := victimLog.LoadSince(ctx, victimKey, head.Last)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		victim.noViolations(t)
	}
	stillWorks(t)

	t.Run("connections past the account's limit are refused", func(t *testing.T) {
		var open []*nats.Conn
		var err error
		for range limits.Connections + provision.ServiceConnections + 1 {
			var nc *nats.Conn
			if nc, err = env.ConnectCreds(t, hogCreds, ""); err != nil {
				break
			}
			open = append(open, nc)
		}
		require.ErrorIs(t, err, nats.ErrMaxAccountConnectionsExceeded)
		require.Len(t, open, int(limits.Connections+provision.ServiceConnections))
		stillWorks(t)
		for _, nc := range open {
			nc.Close()
		}
	})

	t.Run("subscriptions past the account's limit are refused", func(t *testing.T) {
		acc, err := env.Server.LookupAccount(hogRec.Account)
		require.NoError(t, err)
		before := acc.TotalSubs()
		// The server counts subscriptions per connection.
		hog := credsClient(t, env, hogCreds, "sub-hog", "")
		for i := range limits.Subscriptions + 5 {
			_, err := hog.nc.SubscribeSync(fmt.Sprintf("_INBOX.sub.%d", i))
			require.NoError(t, err)
		}
		testserver.Eventually(t, 5*time.Second, func() error {
			for _, e := range hog.asyncErrors() {
				if strings.Contains(e, "maximum subscriptions exceeded") {
					return nil
				}
			}
			return fmt.Errorf("no refusal among %q", hog.asyncErrors())
		})
		require.LessOrEqual(t, int64(acc.TotalSubs()-before), limits.Subscriptions)
		// The victim subscribes freely.
		for i := range 100 {
			_, err := victim.nc.SubscribeSync(fmt.Sprintf("_INBOX.victim.%d", i))
			require.NoError(t, err)
		}
		require.NoError(t, victim.nc.Flush())
		stillWorks(t)
		hog.nc.Close()
	})

	t.Run("a message past the account's payload limit is refused", func(t *testing.T) {
		// The client library learns the account's limit from the server
		// after its first round trip, and refuses to send more.
		hog := credsClient(t, env, hogCreds, "payload-hog", "")
		require.NoError(t, hog.nc.Flush())
		require.NoError(t, hog.nc.Flush())
		require.EqualValues(t, limits.PayloadBytes, hog.nc.MaxPayload())
		hogLog := hog.log(t, jetstream.WithStreamCreation(false))
		require.Less(t, hogLog.Limits().MaxEventBytes, int(limits.PayloadBytes))
		_, err := hogLog.Append(ctx, sessionlog.ThreadKey{Tenant: "hog", Thread: "big"},
			[]sessionlog.Event{{Type: "big", Data: fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 300<<10))}})
		require.ErrorIs(t, err, sessionlog.ErrEventTooLarge)
		// A raw client that sends it anyway has its connection closed.
		raw := dialJWT(t, env.URL, hogCreds)
		fmt.Fprintf(raw.conn, "PUB jetsession.hog.big %d\r\n%s\r\n", limits.PayloadBytes+1, make([]byte, limits.PayloadBytes+1))
		line := raw.next(t)
		for strings.HasPrefix(line, "INFO") {
			line = raw.next(t)
		}
		require.Contains(t, line, "Maximum Payload Violation")
		// The victim's account has the server's 1 MB.
		_, err = victimLog.Append(ctx, victimKey, []sessionlog.Event{{Type: "big", Data: fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 600<<10))}})
		require.NoError(t, err)
		stillWorks(t)
	})

	t.Run("a tenant's storage stops at its limit, with ErrQuotaExceeded", func(t *testing.T) {
		hog := credsClient(t, env, hogCreds, "store-hog", "")
		hogLog := hog.log(t, jetstream.WithStreamCreation(false), jetstream.WithMaxEventSize(200<<10))
		key := sessionlog.ThreadKey{Tenant: "hog", Thread: "fill"}
		blob := fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 100<<10))
		var err error
		for range 100 {
			if _, err = hogLog.Append(ctx, key, []sessionlog.Event{{Type: "blob", Data: blob}}); err != nil {
				break
			}
		}
		require.ErrorIs(t, err, sessionlog.ErrQuotaExceeded)
		t.Logf("the full tenant's append: %v", err)
		info, ok, err := hogLog.Tenant(ctx, "hog")
		require.NoError(t, err)
		require.True(t, ok)
		require.LessOrEqual(t, int64(info.Bytes), limits.StorageBytes)
		stillWorks(t)
	})

	t.Run("consumers past the account's limit are refused", func(t *testing.T) {
		hog := credsClient(t, env, hogCreds, "consumer-hog", "")
		code := 0
		for i := range limits.Consumers + 1 {
			name := fmt.Sprintf("c%d", i)
			req, _ := json.Marshal(map[string]any{"stream_name": "jetsession-hog", "config": map[string]any{
				"name": name, "deliver_subject": "_INBOX.c." + name, "ack_policy": "none", "filter_subject": "jetsession.hog.*"}})
			msg, err := hog.nc.Request("$JS.API.CONSUMER.CREATE.jetsession-hog."+name+".jetsession.hog.*", req, 5*time.Second)
			require.NoError(t, err)
			if code = apiError(t, msg); code != 0 {
				t.Logf("consumer %d: %s", i+1, msg.Data)
				break
			}
		}
		require.Equal(t, 10026, code, "maximum consumers limit reached")
		stillWorks(t)
	})

	t.Run("no second stream, no memory stream, no stream without a size", func(t *testing.T) {
		root := grantRoot(t, env, hogRec.Account, "root-hog")
		// Even after deleting its own stream.
		msg, err := root.nc.Request("$JS.API.STREAM.DELETE.jetsession-hog", nil, 5*time.Second)
		require.NoError(t, err)
		require.Zero(t, apiError(t, msg), "%s", msg.Data)
		for _, cfg := range []string{
			`{"name":"mem","subjects":["mem.>"],"storage":"memory","max_bytes":1048576}`,
			`{"name":"unbounded","subjects":["u.>"],"storage":"file"}`,
			`{"name":"huge","subjects":["h.>"],"storage":"file","max_bytes":1073741824}`,
		} {
			var c struct{ Name string }
			require.NoError(t, json.Unmarshal([]byte(cfg), &c))
			msg, err := root.nc.Request("$JS.API.STREAM.CREATE."+c.Name, []byte(cfg), 5*time.Second)
			require.NoError(t, err)
			require.NotZero(t, apiError(t, msg), "creating %s: %s", c.Name, msg.Data)
			t.Logf("creating %s: %s", c.Name, msg.Data)
		}
		stillWorks(t)
	})

	t.Run("lowering a live tenant's connection limit closes its newest connections", func(t *testing.T) {
		var open []*nats.Conn
		for range 3 {
			nc, err := env.ConnectCreds(t, victimCreds, "")
			require.NoError(t, err)
			open = append(open, nc)
		}
		lower, err := p.Get(ctx, "victim")
		require.NoError(t, err)
		l := lower.Limits
		l.Connections = 1 // with the service connections: the victim's and the two oldest
		_, err = p.SetLimits(ctx, "victim", l)
		require.NoError(t, err)
		testserver.Eventually(t, 10*time.Second, func() error {
			if open[2].IsConnected() {
				return errors.New("the newest connection is still up")
			}
			return nil
		})
		require.True(t, victim.nc.IsConnected(), "the oldest connection stays")
		stillWorks(t)
	})
}
