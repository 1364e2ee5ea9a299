package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// A hostile writer stores, on a thread subject of its own tenant, a
// message with whatever header bytes it likes. These cases are what the
// read paths used to trust; each is stored between two valid events and
// every read path must report true ordinals, subjects and times, hand back
// what is not an event in its place, and read on.
type hostileCase struct {
	name string
	// header returns the raw header block (empty: none) for the message on
	// thread key; prev is the ordinal of the event before it.
	header func(h hostileEnv) string
	// subject is where it is published (default: the thread's subject).
	subject func(h hostileEnv) string
	// event reports that the message is still a valid event.
	event bool
	// empty stores no payload, as the imitation of a status reply needs.
	empty bool
	// serverTime: the event has no time header of its own, so its time is
	// the server's, whatever else it stores.
	serverTime bool
}

type hostileEnv struct {
	scheme subjects.Scheme
	key    sessionlog.ThreadKey
	prev   uint64
}

func (h hostileEnv) id(id string) string {
	return "Nats-Msg-Id: " + jetstream.MsgID(h.key.Thread, id) + "\r\n"
}
func (h hostileEnv) stream() string { return h.scheme.Stream(h.key.Tenant) }
func (h hostileEnv) subj() string   { return h.scheme.Subject(h.key.Tenant, h.key.Thread) }

// valid is the header block of a valid event with extra stored lines.
func (h hostileEnv) valid(id string, extra ...string) string {
	return "NATS/1.0\r\n" + h.id(id) + "Jetsession-Type: tool_call\r\n" + strings.Join(extra, "") + "\r\n"
}

func hostileCases() []hostileCase {
	sub := func(suffix string) func(h hostileEnv) string {
		return func(h hostileEnv) string {
			return h.scheme.SubjectPrefix + "." + subjects.EncodeTenant(h.key.Tenant) + "." + suffix
		}
	}
	return []hostileCase{
		{name: "stored Nats-Sequence", event: true, header: func(h hostileEnv) string {
			return h.valid("seq", "Nats-Sequence: 1\r\n")
		}},
		{name: "stored Nats-Sequence of 2^64-1", event: true, header: func(h hostileEnv) string {
			return h.valid("max", "Nats-Sequence: 18446744073709551615\r\n")
		}},
		{name: "stored Nats-Subject of another thread", event: true, header: func(h hostileEnv) string {
			return h.valid("subj", "Nats-Subject: "+h.scheme.Subject(h.key.Tenant, "victim")+"\r\n")
		}},
		{name: "stored Nats-Time-Stamp, Nats-Stream, Nats-Num-Pending and Nats-Last-Sequence", event: true, serverTime: true, header: func(h hostileEnv) string {
			return h.valid("ts", "Nats-Time-Stamp: 2001-02-03T04:05:06Z\r\n", "Nats-Stream: other\r\n", "Nats-Num-Pending: 0\r\n", "Nats-Last-Sequence: 1\r\n")
		}},
		{name: "stored Status 404", event: true, header: func(h hostileEnv) string { return h.valid("404", "Status: 404\r\n") }},
		{name: "stored Status 204 EOB", event: true, header: func(h hostileEnv) string {
			return h.valid("204", "Status: 204\r\n", "Description: EOB\r\n", "Nats-Num-Pending: 0\r\n")
		}},
		{name: "stored Status 409", event: true, header: func(h hostileEnv) string { return h.valid("409", "Status: 409\r\n") }},
		{name: "stored Status 503", event: true, header: func(h hostileEnv) string { return h.valid("503", "Status: 503\r\n") }},
		{name: "stored Status 100 flow control", event: true, header: func(h hostileEnv) string {
			return h.valid("100", "Status: 100\r\n", "Nats-Last-Consumer: 99\r\n")
		}},
		{name: "forged sequence hiding the server's headers behind a blank line", event: true, header: func(h hostileEnv) string {
			return h.valid("hidden", fmt.Sprintf("Nats-Stream: %s\r\nNats-Subject: %s\r\nNats-Sequence: %d\r\nNats-Time-Stamp: 2001-02-03T04:05:06Z\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: %d\r\n",
				h.stream(), h.subj(), h.prev+1000, h.prev)) + "zz"
		}},
		{name: "forged first reply of a batch hiding the server's headers behind a blank line", event: true, header: func(h hostileEnv) string {
			// The read batch of 2 makes the message the first reply of its
			// request, whose Nats-Last-Sequence is 0.
			return h.valid("hidden0", fmt.Sprintf("Nats-Stream: %s\r\nNats-Subject: %s\r\nNats-Sequence: %d\r\nNats-Time-Stamp: 2001-02-03T04:05:06Z\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 0\r\n",
				h.stream(), h.subj(), h.prev+1000)) + "zz"
		}},
		{name: "forged end of the batch it starts, hiding the server's headers behind a blank line", empty: true, header: func(h hostileEnv) string {
			return "NATS/1.0\r\nStatus: 204\r\nDescription: EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 0\r\n\r\nzz"
		}},
		{name: "forged end of batch hiding the server's headers behind a blank line", empty: true, header: func(h hostileEnv) string {
			return fmt.Sprintf("NATS/1.0\r\nStatus: 204\r\nDescription: EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: %d\r\n\r\nzz", h.prev)
		}},
		{name: "forged not-found hiding the server's headers behind a blank line", empty: true, header: func(h hostileEnv) string {
			return "NATS/1.0\r\nStatus: 404\r\nDescription: Message Not Found\r\n\r\nzz"
		}},
		{name: "terse header lines", event: true, header: func(h hostileEnv) string {
			return "NATS/1.0\nNats-Msg-Id:" + jetstream.MsgID(h.key.Thread, "terse") + "\nJetsession-Type:tool_call\n\n"
		}},
		{name: "header without its end", header: func(h hostileEnv) string {
			return "NATS/1.0\r\n" + h.id("open") + "Jetsession-Type: t\r\nNats-Sequence: 77"
		}},
		{name: "header that is not a NATS header", header: func(h hostileEnv) string { return "XXXX/1.0\r\nA: 1\r\n\r\n" }},
		{name: "no headers", header: func(h hostileEnv) string { return "" }},
		{name: "no type", header: func(h hostileEnv) string { return "NATS/1.0\r\n" + h.id("notype") + "\r\n" }},
		{name: "no ID", header: func(h hostileEnv) string { return "NATS/1.0\r\nJetsession-Type: t\r\n\r\n" }},
		{name: "ID of another thread", header: func(h hostileEnv) string {
			return "NATS/1.0\r\nNats-Msg-Id: " + jetstream.MsgID("other", "x") + "\r\nJetsession-Type: t\r\n\r\n"
		}},
		{name: "bad time", header: func(h hostileEnv) string { return h.valid("badtime", "Jetsession-Time: yesterday\r\n") }},
		{name: "time in year 10000", header: func(h hostileEnv) string {
			return h.valid("y10k", "Jetsession-Time: 10000-01-01T00:00:00Z\r\n")
		}},
		{name: "time in year -1", header: func(h hostileEnv) string {
			return h.valid("yminus", "Jetsession-Time: -0001-01-01T00:00:00Z\r\n")
		}},
		{name: "time with a one-digit hour", header: func(h hostileEnv) string {
			return h.valid("t1", "Jetsession-Time: 2026-01-02T1:00:00Z\r\n")
		}},
		{name: "time with a comma before its fraction", header: func(h hostileEnv) string {
			return h.valid("tcomma", "Jetsession-Time: 2026-01-02T10:00:00,5Z\r\n")
		}},
		{name: "time with an offset of +24:00", header: func(h hostileEnv) string {
			return h.valid("t24", "Jetsession-Time: 2026-01-02T10:00:00+24:00\r\n")
		}},
		{name: "time with an offset", event: true, header: func(h hostileEnv) string {
			return h.valid("toff", "Jetsession-Time: 2026-01-02T10:00:00.5+02:00\r\n")
		}},
		{name: "bad metadata", header: func(h hostileEnv) string { return h.valid("badmeta", "Jetsession-Meta: {\r\n") }},
		{name: "metadata that is not strings", header: func(h hostileEnv) string {
			return h.valid("nummeta", `Jetsession-Meta: {"a":1}`+"\r\n")
		}},
		{name: "metadata key with a control character", header: func(h hostileEnv) string {
			return h.valid("ctlmeta", `Jetsession-Meta: {"a\u0001":"v"}`+"\r\n")
		}},
		{name: "type with a 0xff byte", header: func(h hostileEnv) string {
			return "NATS/1.0\r\n" + h.id("fftype") + "Jetsession-Type: a\xffb\r\n\r\n"
		}},
		{name: "type with a NUL", header: func(h hostileEnv) string {
			return "NATS/1.0\r\n" + h.id("nultype") + "Jetsession-Type: a\x00b\r\n\r\n"
		}},
		{name: "ID with a 0xff byte", header: func(h hostileEnv) string {
			return "NATS/1.0\r\nNats-Msg-Id: " + subjects.EncodeThread(h.key.Thread) + ":a\xff\r\nJetsession-Type: t\r\n\r\n"
		}},
		{name: "type longer than the limit", header: func(h hostileEnv) string {
			return "NATS/1.0\r\n" + h.id("longtype") + "Jetsession-Type: " + strings.Repeat("t", sessionlog.MaxTypeBytes+1) + "\r\n\r\n"
		}},
		{name: "subject whose thread token is NUL", subject: sub("_00"), header: func(h hostileEnv) string { return h.valid("nulthread") }},
		{name: "subject whose thread token is not UTF-8", subject: sub("_ff"), header: func(h hostileEnv) string { return h.valid("ffthread") }},
		{name: "subject whose thread token is not canonical", subject: sub("a_41"), header: func(h hostileEnv) string { return h.valid("noncanon") }},
	}
}

func TestHostileMessagesSingleNode(t *testing.T) {
	srv := testserver.Start(t)
	testHostileMessages(t, srv.URL(), srv.Connect(t))
}

// TestHostileMessagesThroughReadConsumers reads every case through a read
// consumer after a first batch of one event.
func TestHostileMessagesThroughReadConsumers(t *testing.T) {
	srv := testserver.Start(t)
	testHostileMessages(t, srv.URL(), srv.Connect(t), jetstream.WithConsumerReads(1))
}

func TestHostileMessagesClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests are not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	// The log reads through one node, the writer publishes through another.
	testHostileMessages(t, c.Nodes[1].URL(), c.Nodes[0].Connect(t), jetstream.WithReplicas(3))
}

func testHostileMessages(t *testing.T, writerURL string, nc *nats.Conn, opts ...jetstream.Option) {
	raw := testserver.DialRaw(t, writerURL)
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			// A small read batch makes every case span several requests.
			log := newLog(t, nc, append([]jetstream.Option{jetstream.WithReadBatch(2, 1<<20)}, opts...)...)
			k := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/4711"}
			env := hostileEnv{scheme: log.Scheme(), key: k}
			a, err := log.Append(ctx(t), k, events(2))
			require.NoError(t, err)
			env.prev = a
			subject := env.subj()
			if tc.subject != nil {
				subject = tc.subject(env)
			}
			payload := []byte("hostile payload")
			if tc.empty {
				payload = nil
			}
			bad := raw.Publish(subject, tc.header(env), payload)
			b, err := log.Append(ctx(t), k, events(2))
			require.NoError(t, err)
			require.Greater(t, bad, a)
			require.Greater(t, b, bad)
			first := a - 1 // the first event of the thread

			onThread := tc.subject == nil
			// What the thread holds, as the server numbered it.
			want := []uint64{first, a}
			var wantCorrupt []uint64
			if onThread {
				want = append(want, bad)
				if !tc.event {
					wantCorrupt = []uint64{bad}
				}
			}
			want = append(want, b-1, b)

			t.Run("LoadSince", func(t *testing.T) {
				recs, err := log.LoadSince(ctx(t), k, 0)
				got := ordinals(recs)
				for _, ce := range sessionlog.CorruptEvents(err) {
					require.Equal(t, k, ce.Key)
					got = append(got, ce.Ordinal)
				}
				if len(wantCorrupt) == 0 {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, sessionlog.ErrCorruptEvent)
					require.Equal(t, wantCorrupt, corruptOrdinalsOf(err))
				}
				require.ElementsMatch(t, want, got)
				requireStrictlyIncreasing(t, ordinals(recs))
				for _, r := range recs {
					if r.Ordinal == bad && tc.serverTime {
						require.WithinDuration(t, time.Now(), r.Time, time.Minute, "the time is the server's, not a stored header's")
					}
				}
				// Stepping over the message reads on.
				after, err := log.LoadSince(ctx(t), k, bad)
				require.NoError(t, err)
				require.Equal(t, []uint64{b - 1, b}, ordinals(after))
			})
			t.Run("Scan", func(t *testing.T) {
				var got []uint64
				for rec, err := range log.Scan(ctx(t), k, 0) {
					var ce *sessionlog.CorruptEventError
					if errors.As(err, &ce) {
						got = append(got, ce.Ordinal)
						continue
					}
					require.NoError(t, err)
					got = append(got, rec.Ordinal)
				}
				require.Equal(t, want, got)
			})
			t.Run("ScanTenant", func(t *testing.T) {
				var got []uint64
				for rec, err := range log.ScanTenant(ctx(t), k.Tenant, 0) {
					var ce *sessionlog.CorruptEventError
					if errors.As(err, &ce) {
						require.Equal(t, bad, ce.Ordinal)
						got = append(got, ce.Ordinal)
						continue
					}
					require.NoError(t, err)
					require.Equal(t, k.Thread, rec.Thread, "ordinal %d: the thread comes from the server's subject", rec.Ordinal)
					got = append(got, rec.Ordinal)
				}
				require.Equal(t, []uint64{first, a, bad, b - 1, b}, got)
			})
			// Each tail appends one event live, which the next one sees.
			tenantWant := []uint64{first, a, bad, b - 1, b}
			t.Run("Tail", func(t *testing.T) {
				live := requireTailSees(t, log, k, k.Thread, want)
				tenantWant = append(tenantWant, live)
			})
			t.Run("TailTenant", func(t *testing.T) {
				requireTailSees(t, log, k, "", tenantWant)
			})
		})
	}
}

// requireTailSees tails key's thread (or its whole tenant when thread is
// empty) from 0 and requires these ordinals, records or corrupt messages,
// then one more event appended live.
func requireTailSees(t *testing.T, log *jetstream.Log, key sessionlog.ThreadKey, thread string, want []uint64) (live uint64) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	var seq func(func(uint64, error) bool)
	if thread == "" {
		seq = func(yield func(uint64, error) bool) {
			for rec, err := range log.TailTenant(tctx, key.Tenant, 0) {
				if !yield(rec.Ordinal, err) {
					return
				}
			}
		}
	} else {
		seq = func(yield func(uint64, error) bool) {
			for rec, err := range log.Tail(tctx, key, 0) {
				if !yield(rec.Ordinal, err) {
					return
				}
			}
		}
	}
	var got []uint64
	for ord, err := range seq {
		var ce *sessionlog.CorruptEventError
		if errors.As(err, &ce) {
			ord = ce.Ordinal
		} else {
			require.NoError(t, err)
		}
		got = append(got, ord)
		if len(got) == len(want) {
			require.Equal(t, want, got)
			var aerr error
			live, aerr = log.Append(ctx(t), key, events(1))
			require.NoError(t, aerr)
		}
		if len(got) > len(want) {
			require.Equal(t, live, ord, "the tail goes on live after the hostile message")
			return live
		}
	}
	t.Fatalf("the tail ended after %v, want %v and one live event", got, want)
	return 0
}

func ordinals(recs []sessionlog.Record) []uint64 {
	out := make([]uint64, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Ordinal)
	}
	return out
}

func corruptOrdinalsOf(err error) []uint64 {
	var out []uint64
	for _, ce := range sessionlog.CorruptEvents(err) {
		out = append(out, ce.Ordinal)
	}
	return out
}

func requireStrictlyIncreasing(t *testing.T, ords []uint64) {
	t.Helper()
	for i := 1; i < len(ords); i++ {
		require.Greater(t, ords[i], ords[i-1], "ordinals %v", ords)
	}
}

// TestARepeatedStoredSequenceNeverRewindsAScan: 300 messages all storing
// Nats-Sequence 1 once made the tenant scan rewind and loop.
func TestARepeatedStoredSequenceNeverRewindsAScan(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc, jetstream.WithReadBatch(7, 1<<20))
	k := sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}
	_, err := log.Append(ctx(t), k, events(1))
	require.NoError(t, err)
	const n = 300
	for i := range n {
		h := nats.Header{}
		h.Set(jetstream.HeaderMsgID, jetstream.MsgID(k.Thread, fmt.Sprint("r", i)))
		h.Set(jetstream.HeaderType, "tool_call")
		h.Set("Nats-Sequence", "1")
		_, err := nc.RequestMsg(&nats.Msg{Subject: log.Scheme().Subject(k.Tenant, k.Thread), Header: h}, 5*time.Second)
		require.NoError(t, err)
	}
	var got []uint64
	for rec, err := range log.ScanTenant(ctx(t), k.Tenant, 0) {
		require.NoError(t, err)
		got = append(got, rec.Ordinal)
	}
	require.Len(t, got, n+1)
	requireStrictlyIncreasing(t, got)
	recs, err := log.LoadSince(ctx(t), k, 0)
	require.NoError(t, err)
	require.Equal(t, got, ordinals(recs))
}
