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
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestAnAccountPerTenantStopsAHostileTenant tries, on
// tenant-accounts.conf, every raw-NATS attack TestOneAccountDoesNotStopAHostileTenant
// shows succeeding in one account, and more, as a tenant holding agent
// credentials: each is refused, and globex's stream, events and
// consumers are exactly as they were. Reflection still works inside the
// attacker's own account (the controls show it): it reaches nothing
// else, because another tenant's stream, subjects and inboxes are in
// another account. The last part gives the attacker every right in its
// own account, the most a reflection could win it.
func TestAnAccountPerTenantStopsAHostileTenant(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p, _, _ := provisioner(t, env)
	ctx := ctxFor(t, 3*time.Minute)
	acmeRec, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	_, err = p.Create(ctx, "globex", provision.Limits{})
	require.NoError(t, err)

	globex := credsClient(t, env, issue(t, p, "globex", provision.RoleAgent), "agent-globex", "")
	globexLog := globex.log(t, jetstream.WithStreamCreation(false))
	secretKey := sessionlog.ThreadKey{Tenant: "globex", Thread: "secret"}
	_, err = globexLog.Append(ctx, secretKey, events("globex only", "still globex"))
	require.NoError(t, err)
	// globex as a reader sees it: its events, its stream and consumers.
	reader := credsClient(t, env, issue(t, p, "globex", provision.RoleReader), "reader-globex", provision.ReaderInbox)
	streamInfo := func() natsjs.StreamInfo {
		t.Helper()
		msg, err := reader.nc.Request("$JS.API.STREAM.INFO.jetsession-globex", nil, 5*time.Second)
		require.NoError(t, err)
		var info natsjs.StreamInfo
		require.NoError(t, json.Unmarshal(msg.Data, &info))
		require.Equal(t, "jetsession-globex", info.Config.Name, "%s", msg.Data)
		return info
	}
	before := streamInfo()
	unchanged := func(t *testing.T) {
		t.Helper()
		after := streamInfo()
		require.Equal(t, before.State.Msgs, after.State.Msgs, "globex's events")
		require.Equal(t, before.State.LastSeq, after.State.LastSeq, "globex's last ordinal")
		require.Equal(t, before.State.Consumers, after.State.Consumers, "globex's consumers")
		require.Equal(t, before.Config.MaxMsgs, after.Config.MaxMsgs, "globex's stream settings")
		require.Equal(t, before.Config.MaxBytes, after.Config.MaxBytes, "globex's stream settings")
		require.Equal(t, before.Created, after.Created, "globex's stream was not recreated")
	}

	acme := credsClient(t, env, issue(t, p, "acme", provision.RoleAgent), "agent-acme", "")
	acmeLog := acme.log(t, jetstream.WithStreamCreation(false))
	payloadKey := sessionlog.ThreadKey{Tenant: "acme", Thread: "payload"}
	// store keeps data as an acme event and returns its ordinal: what a
	// direct get answers with.
	store := func(t *testing.T, data any) uint64 {
		t.Helper()
		body, err := json.Marshal(data)
		require.NoError(t, err)
		seq, err := acmeLog.Append(ctx, payloadKey, []sessionlog.Event{{Type: "x", Data: body}})
		require.NoError(t, err)
		return seq
	}
	// reflect direct-gets an acme event with reply as the reply subject:
	// the server publishes the stored bytes to reply, as acme's account.
	reflect := func(t *testing.T, seq uint64, reply string) {
		t.Helper()
		require.NoError(t, acme.nc.PublishMsg(&nats.Msg{Subject: "$JS.API.DIRECT.GET.jetsession-acme", Reply: reply,
			Data: fmt.Appendf(nil, `{"seq":%d}`, seq)}))
	}
	// control reflects a consumer creation on acme's own stream, to
	// acme's own inbox, and waits for its delivery: reflection works, and
	// the reflected requests sent before it were served.
	controls := 0
	control := func(t *testing.T) {
		t.Helper()
		controls++
		name := fmt.Sprintf("control%d", controls)
		inbox := "_INBOX." + name
		sub, err := acme.nc.SubscribeSync(inbox)
		require.NoError(t, err)
		defer sub.Unsubscribe()
		seq := store(t, map[string]any{"stream_name": "jetsession-acme", "config": map[string]any{
			"name": name, "deliver_subject": inbox, "deliver_policy": "all", "ack_policy": "none",
			"filter_subject": "jetsession.acme.*", "inactive_threshold": int64(5 * time.Second)}})
		reflect(t, seq, "$JS.API.CONSUMER.CREATE.jetsession-acme."+name+".jetsession.acme.*")
		_, err = sub.NextMsg(10 * time.Second)
		require.NoError(t, err, "the control reflection into acme's own JetStream API failed")
	}
	control(t)

	t.Run("a direct get reflected into the JetStream API creates no consumer on another tenant's stream", func(t *testing.T) {
		leak, err := acme.nc.SubscribeSync("_INBOX.leak")
		require.NoError(t, err)
		seq := store(t, map[string]any{"stream_name": "jetsession-globex", "config": map[string]any{
			"name": "leak", "deliver_subject": "_INBOX.leak", "deliver_policy": "all", "ack_policy": "none",
			"filter_subject": "jetsession.globex.*"}})
		reflect(t, seq, "$JS.API.CONSUMER.CREATE.jetsession-globex.leak")
		reflect(t, seq, "$JS.API.CONSUMER.CREATE.jetsession-globex.leak.jetsession.globex.*")
		control(t)
		require.NoError(t, acme.nc.Flush())
		n, _, _ := leak.Pending()
		require.Zero(t, n, "globex's events reached acme")
		unchanged(t)
		acme.noViolations(t)
	})

	t.Run("a direct get reflected into the JetStream API deletes, truncates or purges nothing of another tenant", func(t *testing.T) {
		empty := store(t, nil)
		reflect(t, empty, "$JS.API.STREAM.DELETE.jetsession-globex")
		reflect(t, empty, "$JS.API.STREAM.PURGE.jetsession-globex")
		update := store(t, map[string]any{"name": "jetsession-globex", "subjects": []string{"jetsession.globex.*"},
			"max_msgs": 1, "discard": "old", "storage": "file", "max_bytes": 1 << 20})
		reflect(t, update, "$JS.API.STREAM.UPDATE.jetsession-globex")
		msgDelete := store(t, map[string]any{"seq": 1})
		reflect(t, msgDelete, "$JS.API.STREAM.MSG.DELETE.jetsession-globex")
		control(t)
		unchanged(t)
		acme.noViolations(t)
	})

	t.Run("replies aimed at another tenant's thread subjects store nothing there", func(t *testing.T) {
		forged := store(t, map[string]any{"text": "written by acme"})
		reflect(t, forged, "jetsession.globex.forged")
		// STREAM.INFO, STREAM.MSG.GET and an acknowledgement answer to
		// whatever reply subject the request names.
		for _, m := range []*nats.Msg{
			{Subject: "$JS.API.STREAM.INFO.jetsession-acme", Reply: "jetsession.globex.forged"},
			{Subject: "$JS.API.STREAM.MSG.GET.jetsession-acme", Reply: "jetsession.globex.forged", Data: fmt.Appendf(nil, `{"seq":%d}`, forged)},
			{Subject: "jetsession.acme.ack", Reply: "jetsession.globex.broken", Header: nats.Header{"Nats-Msg-Id": []string{"ack:1"}}},
		} {
			require.NoError(t, acme.nc.PublishMsg(m))
		}
		control(t)
		unchanged(t)
		for _, thread := range []string{"forged", "broken"} {
			recs, err := globexLog.LoadSince(ctx, sessionlog.ThreadKey{Tenant: "globex", Thread: thread}, 0)
			require.NoError(t, err, "globex's thread %q", thread)
			require.Empty(t, recs)
		}
		acme.noViolations(t)
	})

	t.Run("no stream captures another tenant's inboxes or advisories", func(t *testing.T) {
		// A stream capturing every inbox and advisory of acme's account,
		// created by reflection: refused (the account holds its two
		// streams, the events' and the snapshots', and no more), and it
		// would hold acme's own traffic only.
		capture := store(t, map[string]any{"name": "capture", "subjects": []string{"_INBOX.>", "$JS.EVENT.>"},
			"storage": "file", "max_bytes": 1 << 20})
		reflect(t, capture, "$JS.API.STREAM.CREATE.capture")
		control(t)
		acc, err := env.Server.LookupAccount(acmeRec.Account)
		require.NoError(t, err)
		require.Equal(t, 2, acc.JetStreamUsage().Streams, "acme's account holds its own streams only")

		// acme may subscribe to every inbox of its account: globex's
		// replies, deliveries and advisories never come there.
		tap := credsClient(t, env, issue(t, p, "acme", provision.RoleAgent), "tap-acme", "")
		got := make(chan *nats.Msg, 1024)
		_, err = tap.nc.ChanSubscribe("_INBOX.>", got)
		require.NoError(t, err)
		for _, subject := range []string{">", "$JS.EVENT.>", "$JS.EVENT.ADVISORY.>", "$JS.ACK.>", "$JS.FC.>", "$SYS.>", "jetsession.>", "_INBOX_READER.>"} {
			_, err := tap.nc.ChanSubscribe(subject, got)
			require.NoError(t, err)
			tap.violation(t, "Subscription", subject)
		}
		require.NoError(t, tap.nc.Flush())
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		out, errc := drain(globexLog.Tail(tctx, secretKey, before.State.LastSeq))
		last, err := globexLog.Append(ctx, secretKey, events("globex again"))
		require.NoError(t, err)
		require.Equal(t, last, next(t, out, errc).Ordinal)
		stop()
		for range out { // the tail ends once its consumer is deleted
		}
		_, err = globexLog.LoadSince(ctx, secretKey, 0)
		require.NoError(t, err)
		require.NoError(t, tap.nc.Flush())
		require.Empty(t, got, "acme received messages")
		before = streamInfo()
	})

	t.Run("stream and consumer administration, flow control and acknowledgements of another tenant are refused", func(t *testing.T) {
		probe := credsClient(t, env, issue(t, p, "acme", provision.RoleAgent), "probe-acme", "")
		for _, subject := range []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.LIST",
			"$JS.API.STREAM.NAMES",
			"$JS.API.STREAM.CREATE.jetsession-globex",
			"$JS.API.STREAM.UPDATE.jetsession-globex",
			"$JS.API.STREAM.DELETE.jetsession-globex",
			"$JS.API.STREAM.PURGE.jetsession-globex",
			"$JS.API.STREAM.INFO.jetsession-globex",
			"$JS.API.STREAM.MSG.GET.jetsession-globex",
			"$JS.API.DIRECT.GET.jetsession-globex",
			"$JS.API.CONSUMER.CREATE.jetsession-globex.c.jetsession.globex.*",
			"$JS.API.CONSUMER.LIST.jetsession-globex",
			"$JS.API.CONSUMER.DELETE.jetsession-globex.c",
			"$JS.API.STREAM.CREATE.jetsession-acme",
			"$JS.API.STREAM.UPDATE.jetsession-acme",
			"$JS.API.STREAM.DELETE.jetsession-acme",
			"$JS.API.STREAM.PURGE.jetsession-acme",
			"$JS.API.CONSUMER.DURABLE.CREATE.jetsession-acme.c",
			"$JS.FC.jetsession-globex.c.1",
			"$JS.ACK.jetsession-globex.c.1.1.1.1.1",
			"$SYS.REQ.CLAIMS.UPDATE",
			"$SYS.REQ.SERVER.PING",
			"_INBOX_READER.x",
			"jetsession.globex.t",
			"jetsession.acme.$deleted",
		} {
			require.NoError(t, probe.nc.Publish(subject, nil))
			probe.violation(t, "Publish", subject)
		}
		unchanged(t)
	})

	t.Run("with every right in its own account a tenant still reaches nothing of another", func(t *testing.T) {
		root := grantRoot(t, env, acmeRec.Account, "root-acme")

		names, err := request(root, "$JS.API.STREAM.NAMES", nil)
		require.NoError(t, err)
		var list struct{ Streams []string }
		require.NoError(t, json.Unmarshal(names.Data, &list))
		require.ElementsMatch(t, []string{"jetsession-acme", "jetsession-_s-acme"}, list.Streams, "the streams acme's account sees")

		const streamNotFound = 10059
		for _, c := range []struct{ subject, body string }{
			{"$JS.API.STREAM.INFO.jetsession-globex", ""},
			{"$JS.API.STREAM.DELETE.jetsession-globex", ""},
			{"$JS.API.STREAM.PURGE.jetsession-globex", ""},
			{"$JS.API.STREAM.UPDATE.jetsession-globex", `{"name":"jetsession-globex","subjects":["jetsession.globex.*"],"max_msgs":1,"max_bytes":1048576}`},
			{"$JS.API.STREAM.MSG.GET.jetsession-globex", `{"seq":1}`},
			{"$JS.API.STREAM.MSG.DELETE.jetsession-globex", `{"seq":1}`},
			{"$JS.API.CONSUMER.CREATE.jetsession-globex.leak", `{"stream_name":"jetsession-globex","config":{"name":"leak","deliver_subject":"_INBOX.leak","ack_policy":"none"}}`},
			{"$JS.API.CONSUMER.LIST.jetsession-globex", ""},
		} {
			msg, err := request(root, c.subject, []byte(c.body))
			require.NoError(t, err, c.subject)
			require.Equal(t, streamNotFound, apiError(t, msg), "%s: %s", c.subject, msg.Data)
		}
		// Direct gets are served by the stream itself: in acme's account
		// nobody serves globex's.
		_, err = request(root, "$JS.API.DIRECT.GET.jetsession-globex", []byte(`{"seq":1}`))
		require.ErrorIs(t, err, nats.ErrNoResponders)
		// Nor does any resolver answer claims from a tenant account.
		_, err = request(root, "$SYS.REQ.CLAIMS.UPDATE", []byte("x"))
		require.ErrorIs(t, err, nats.ErrNoResponders)

		// A second stream, one capturing globex's subjects, a memory
		// stream: beyond the account's limits.
		for _, cfg := range []string{
			`{"name":"capture","subjects":["jetsession.globex.*","_INBOX.>"],"storage":"file","max_bytes":1048576}`,
			`{"name":"mem","subjects":["mem.>"],"storage":"memory","max_bytes":1048576}`,
		} {
			var c struct{ Name string }
			require.NoError(t, json.Unmarshal([]byte(cfg), &c))
			msg, err := request(root, "$JS.API.STREAM.CREATE."+c.Name, []byte(cfg))
			require.NoError(t, err)
			require.NotZero(t, apiError(t, msg), "creating %s: %s", c.Name, msg.Data)
			t.Logf("creating stream %s: %s", c.Name, msg.Data)
		}
		// From here on root listens to every subject of acme's account.
		tap := make(chan *nats.Msg, 4096)
		_, err = root.nc.ChanSubscribe(">", tap)
		require.NoError(t, err)
		require.NoError(t, root.nc.Flush())
		// Publishing on globex's subjects reaches acme's account only.
		require.NoError(t, root.nc.Publish("jetsession.globex.forged", []byte(`{"text":"forged"}`)))

		// globex works meanwhile: appends, reads, a tail and its consumer.
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		out, errc := drain(globexLog.TailTenant(tctx, "globex", before.State.LastSeq))
		last, err := globexLog.Append(ctx, secretKey, events("under attack"))
		require.NoError(t, err)
		require.Equal(t, last, next(t, out, errc).Ordinal)
		stop()
		for range out {
		}
		// The tap works: it sees acme's own traffic.
		_, err = acmeLog.Append(ctx, sessionlog.ThreadKey{Tenant: "acme", Thread: "visible"}, events("acme's own"))
		require.NoError(t, err)
		testserver.Eventually(t, 10*time.Second, func() error {
			for {
				select {
				case m := <-tap:
					for _, part := range [][]byte{[]byte(m.Subject), []byte(m.Reply), m.Data} {
						require.NotContains(t, strings.ToLower(string(part)), "globex only", "acme saw globex's data on %s", m.Subject)
						require.NotContains(t, string(part), "under attack", "acme saw globex's data on %s", m.Subject)
					}
					if m.Subject == "jetsession.acme.visible" {
						return nil
					}
				default:
					return errors.New("the tap has not seen acme's own append yet")
				}
			}
		})
		recs, err := globexLog.LoadSince(ctx, sessionlog.ThreadKey{Tenant: "globex", Thread: "forged"}, 0)
		require.NoError(t, err)
		require.Empty(t, recs)
		info := streamInfo()
		require.Equal(t, before.State.Msgs+1, info.State.Msgs, "globex holds its own events, and only them")
		require.Equal(t, before.Created, info.Created)
	})
}
