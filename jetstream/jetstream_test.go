package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

var key = sessionlog.ThreadKey{Tenant: "acme", Thread: "thread-1"}

func events(n int) []sessionlog.Event {
	out := make([]sessionlog.Event, n)
	for i := range out {
		out[i] = sessionlog.Event{Type: "tool_call", Data: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	return out
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestStreamIsCreatedOnFirstAppendWithTheDocumentedSettings(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	scheme := freshScheme()
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithTenantQuota(1<<20),
		jetstream.WithDuplicateWindow(time.Minute), jetstream.WithCompression(true))
	require.NoError(t, err)
	js, err := natsjs.New(nc)
	require.NoError(t, err)

	// Reads and archives never create a stream.
	_, err = log.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)
	_, err = log.ArchiveBefore(ctx(t), key, 10)
	require.NoError(t, err)
	_, err = log.Head(ctx(t), key)
	require.NoError(t, err)
	_, err = log.Append(ctx(t), key, nil)
	require.NoError(t, err)
	_, err = js.Stream(ctx(t), scheme.Stream(key.Tenant))
	require.ErrorIs(t, err, natsjs.ErrStreamNotFound)

	_, err = log.Append(ctx(t), key, events(1))
	require.NoError(t, err)
	st, err := js.Stream(ctx(t), scheme.Stream(key.Tenant))
	require.NoError(t, err)
	cfg := st.CachedInfo().Config
	require.Equal(t, []string{scheme.TenantFilter("acme")}, cfg.Subjects)
	require.Equal(t, natsjs.FileStorage, cfg.Storage)
	require.Equal(t, natsjs.LimitsPolicy, cfg.Retention)
	require.Equal(t, natsjs.DiscardNew, cfg.Discard)
	require.Equal(t, int64(1<<20), cfg.MaxBytes)
	require.Equal(t, time.Minute, cfg.Duplicates)
	require.Equal(t, natsjs.S2Compression, cfg.Compression)
	require.True(t, cfg.DenyDelete)
	require.False(t, cfg.DenyPurge)
	require.True(t, cfg.AllowDirect)
	require.True(t, cfg.AllowAtomicPublish)
	require.Equal(t, "acme", cfg.Metadata["jetsession.tenant"])
}

func TestWireFormatIsReadableByAPlainClient(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	scheme := freshScheme()
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme))
	require.NoError(t, err)
	at := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	k := sessionlog.ThreadKey{Tenant: "Acme Corp", Thread: "user.42/chat"}
	last, err := log.Append(ctx(t), k, []sessionlog.Event{{ID: "e1", Type: "user_message", Time: at, Data: []byte(`{"text":"hi"}`), Meta: map[string]string{"model": "m"}}})
	require.NoError(t, err)

	js, err := natsjs.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx(t), scheme.StreamPrefix+"_41cme_20_43orp")
	require.NoError(t, err)
	msg, err := st.GetMsg(ctx(t), last)
	require.NoError(t, err)
	require.Equal(t, scheme.SubjectPrefix+"._41cme_20_43orp.user_2e42_2fchat", msg.Subject)
	require.Equal(t, `{"text":"hi"}`, string(msg.Data))
	require.Equal(t, "user_2e42_2fchat:e1", msg.Header.Get("Nats-Msg-Id"))
	require.Equal(t, "user_message", msg.Header.Get("Jetsession-Type"))
	require.Equal(t, "2026-05-06T07:08:09.00000001Z", msg.Header.Get("Jetsession-Time"))
	require.Equal(t, `{"model":"m"}`, msg.Header.Get("Jetsession-Meta"))

	// A plain client appends following the documented format; the log
	// reads it back, taking the time from the server when none is given.
	h := nats.Header{}
	h.Set("Nats-Msg-Id", jetstream.MsgID(k.Thread, "py-1"))
	h.Set("Jetsession-Type", "tool_result")
	ack, err := js.PublishMsg(ctx(t), &nats.Msg{Subject: scheme.Subject(k.Tenant, k.Thread), Header: h, Data: []byte("ok")})
	require.NoError(t, err)
	recs, err := log.LoadSince(ctx(t), k, last)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, ack.Sequence, recs[0].Ordinal)
	require.Equal(t, "py-1", recs[0].ID)
	require.Equal(t, "tool_result", recs[0].Type)
	require.WithinDuration(t, time.Now(), recs[0].Time, time.Minute)
}

func TestUndecodableMessagesAreReportedWithTheirOrdinal(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	scheme := freshScheme()
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme))
	require.NoError(t, err)
	first, err := log.Append(ctx(t), key, events(1))
	require.NoError(t, err)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	subject := scheme.Subject(key.Tenant, key.Thread)
	bad := map[string]nats.Header{
		"no headers":       nil,
		"no type":          {"Nats-Msg-Id": {jetstream.MsgID(key.Thread, "x")}},
		"no id":            {"Jetsession-Type": {"t"}},
		"id of a thread":   {"Nats-Msg-Id": {jetstream.MsgID("other", "x")}, "Jetsession-Type": {"t"}},
		"bad time":         {"Nats-Msg-Id": {jetstream.MsgID(key.Thread, "y")}, "Jetsession-Type": {"t"}, "Jetsession-Time": {"yesterday"}},
		"bad meta":         {"Nats-Msg-Id": {jetstream.MsgID(key.Thread, "z")}, "Jetsession-Type": {"t"}, "Jetsession-Meta": {"{"}},
		"meta not strings": {"Nats-Msg-Id": {jetstream.MsgID(key.Thread, "w")}, "Jetsession-Type": {"t"}, "Jetsession-Meta": {`{"a":1}`}},
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			ack, err := js.PublishMsg(ctx(t), &nats.Msg{Subject: subject, Header: h, Data: []byte("garbage")})
			require.NoError(t, err)
			next, err := log.Append(ctx(t), key, events(1))
			require.NoError(t, err)
			recs, err := log.LoadSince(ctx(t), key, 0)
			require.ErrorIs(t, err, sessionlog.ErrCorruptEvent)
			var ce *sessionlog.CorruptEventError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, ack.Sequence, ce.Ordinal)
			require.Equal(t, key, ce.Key)
			require.Equal(t, []byte("garbage"), ce.Data, "the stored payload is handed back for inspection")
			require.Contains(t, err.Error(), fmt.Sprint(ack.Sequence))
			// Every valid event is returned beside the error.
			require.Equal(t, []uint64{first, next}, ordinals(recs))
			// Scan yields it in its place and goes on.
			var got []uint64
			for r, err := range log.Scan(ctx(t), key, 0) {
				if errors.As(err, &ce) {
					got = append(got, ce.Ordinal)
					continue
				}
				require.NoError(t, err)
				got = append(got, r.Ordinal)
			}
			require.Equal(t, []uint64{first, ack.Sequence, next}, got)
			// Once archived, the thread reads cleanly again.
			_, err = log.ArchiveBefore(ctx(t), key, next)
			require.NoError(t, err)
			recs, err = log.LoadSince(ctx(t), key, 0)
			require.NoError(t, err)
			require.Empty(t, recs)
			first, err = log.Append(ctx(t), key, events(1))
			require.NoError(t, err)
		})
	}
}

func TestFullTenantRefusesAppendsWithErrQuotaExceeded(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log, err := jetstream.New(nc, jetstream.WithScheme(freshScheme()), jetstream.WithTenantQuota(64<<10))
	require.NoError(t, err)
	payload := make([]byte, 4<<10)
	var stored int
	var quotaErr error
	for i := range 100 {
		n := 1 + i%3
		batch := make([]sessionlog.Event, n)
		for j := range batch {
			batch[j] = sessionlog.Event{Type: "t", Data: payload}
		}
		if _, err := log.Append(ctx(t), key, batch); err != nil {
			quotaErr = err
			break
		}
		stored += n
	}
	require.ErrorIs(t, quotaErr, sessionlog.ErrQuotaExceeded)
	recs, err := log.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)
	require.Len(t, recs, stored, "nothing was discarded and the refused append stored nothing")
	_, err = log.Append(ctx(t), key, []sessionlog.Event{{Type: "t", Data: payload}})
	require.ErrorIs(t, err, sessionlog.ErrQuotaExceeded)
	// Archiving frees room.
	_, err = log.ArchiveBefore(ctx(t), key, recs[len(recs)-1].Ordinal)
	require.NoError(t, err)
	_, err = log.Append(ctx(t), key, events(3))
	require.NoError(t, err)
}

func TestInvalidConfigurationIsRefused(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) { o.MaxPayload = 256 << 10 })
	nc := srv.Connect(t)
	for name, opt := range map[string]jetstream.Option{
		"zero replicas":          jetstream.WithReplicas(0),
		"six replicas":           jetstream.WithReplicas(6),
		"zero quota":             jetstream.WithTenantQuota(0),
		"negative window":        jetstream.WithDuplicateWindow(-time.Second),
		"bad subject prefix":     jetstream.WithScheme(subjects.Scheme{SubjectPrefix: "a.*", StreamPrefix: "x"}),
		"bad stream prefix":      jetstream.WithScheme(subjects.Scheme{SubjectPrefix: "a", StreamPrefix: "a.b"}),
		"zero request timeout":   jetstream.WithRequestTimeout(0),
		"zero batches":           jetstream.WithMaxConcurrentBatches(0),
		"event over max payload": jetstream.WithMaxEventSize(512 << 10),
		"empty limits":           jetstream.WithLimits(sessionlog.Limits{}),
		"unknown storage":        jetstream.WithStorage(jetstream.Storage(9)),
		"empty API prefix":       jetstream.WithAPIPrefix(""),
	} {
		_, err := jetstream.New(nc, opt)
		require.ErrorIs(t, err, jetstream.ErrInvalidConfig, name)
	}
	_, err := jetstream.New(nil)
	require.ErrorIs(t, err, jetstream.ErrInvalidConfig)

	// The default event size shrinks to fit a smaller server payload.
	log, err := jetstream.New(nc, jetstream.WithScheme(freshScheme()))
	require.NoError(t, err)
	require.Equal(t, 256<<10-32<<10, log.Limits().MaxEventBytes)
	_, err = log.Append(ctx(t), key, []sessionlog.Event{{Type: "t", Data: make([]byte, 240<<10)}})
	require.ErrorIs(t, err, sessionlog.ErrEventTooLarge)
}

func TestWithoutStreamCreationAnUnprovisionedTenantIsAnError(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	scheme := freshScheme()
	agent, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithStreamCreation(false))
	require.NoError(t, err)
	_, err = agent.Append(ctx(t), key, events(1))
	require.ErrorIs(t, err, jetstream.ErrTenantNotProvisioned)
	_, err = agent.Append(ctx(t), key, events(2))
	require.ErrorIs(t, err, jetstream.ErrTenantNotProvisioned)

	provisioner, err := jetstream.New(nc, jetstream.WithScheme(scheme))
	require.NoError(t, err)
	require.NoError(t, provisioner.EnsureTenant(ctx(t), key.Tenant))
	require.NoError(t, provisioner.EnsureTenant(ctx(t), key.Tenant), "ensuring twice is fine")
	require.ErrorIs(t, provisioner.EnsureTenant(ctx(t), ""), sessionlog.ErrInvalidKey)
	_, err = agent.Append(ctx(t), key, events(2))
	require.NoError(t, err)
}

func TestServerBatchLimitsAreNeverSeenByConcurrentAppenders(t *testing.T) {
	// A server allowing only 2 open atomic batches per stream: 24 writers
	// of 3-event batches must all succeed.
	srv := testserver.Start(t, func(o *server.Options) {
		o.JetStreamLimits.MaxBatchInflightPerStream = 2
		o.JetStreamLimits.MaxBatchInflightTotal = 3
	})
	nc := srv.Connect(t)
	log := newLog(t, nc)
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := sessionlog.ThreadKey{Tenant: "acme", Thread: fmt.Sprint("w", w%6)}
			for range 10 {
				if _, err := log.Append(ctx(t), k, events(3)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := 0
	for th := range 6 {
		recs, err := log.LoadSince(ctx(t), sessionlog.ThreadKey{Tenant: "acme", Thread: fmt.Sprint("w", th)}, 0)
		require.NoError(t, err)
		total += len(recs)
	}
	require.Equal(t, 24*10*3, total)
}

func TestServerBatchSizeLimitIsErrBatchTooLarge(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) { o.JetStreamLimits.MaxBatchSize = 10 })
	nc := srv.Connect(t)
	log := newLog(t, nc)
	_, err := log.Append(ctx(t), key, events(10))
	require.NoError(t, err)
	_, err = log.Append(ctx(t), key, events(11))
	require.ErrorIs(t, err, sessionlog.ErrBatchTooLarge)
	recs, err := log.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)
	require.Len(t, recs, 10)
}

func TestAcknowledgedAppendsSurviveARestart(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	var want []uint64
	for i := range 20 {
		last, err := log.Append(ctx(t), key, events(1+i%4))
		require.NoError(t, err)
		want = append(want, last)
	}
	_, err := log.ArchiveBefore(ctx(t), key, want[4])
	require.NoError(t, err)
	before, err := log.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)

	srv.Restart()
	after, err := log.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)
	require.Equal(t, before, after)
	next, err := log.Append(ctx(t), key, events(1))
	require.NoError(t, err)
	require.Greater(t, next, want[len(want)-1], "ordinals continue after a restart")
}

func TestScanTenantYieldsEveryThreadInOrderInBoundedBatches(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc, jetstream.WithReadBatch(7, 1<<20))
	var want []string
	for i := range 30 {
		k := sessionlog.ThreadKey{Tenant: "acme", Thread: fmt.Sprint("t", i%4)}
		_, err := log.Append(ctx(t), k, events(1+i%2))
		require.NoError(t, err)
	}
	_, err := log.Append(ctx(t), sessionlog.ThreadKey{Tenant: "other", Thread: "t0"}, events(3))
	require.NoError(t, err)
	for i := range 4 {
		recs, err := log.LoadSince(ctx(t), sessionlog.ThreadKey{Tenant: "acme", Thread: fmt.Sprint("t", i)}, 0)
		require.NoError(t, err)
		for _, r := range recs {
			want = append(want, fmt.Sprint(r.Ordinal, "/t", i))
		}
	}
	scan := func(cursor uint64) []string {
		var got []string
		for r, err := range log.ScanTenant(ctx(t), "acme", cursor) {
			require.NoError(t, err)
			got = append(got, fmt.Sprint(r.Ordinal, "/", r.Thread))
		}
		return got
	}
	got := scan(0)
	require.Len(t, got, 45)
	require.ElementsMatch(t, want, got)
	require.IsIncreasing(t, ordinalsOf(got))
	require.Equal(t, got[20:], scan(ordinalsOf(got)[19]))
	require.Empty(t, scan(ordinalsOf(got)[44]))

	for r, err := range log.ScanTenant(ctx(t), "nobody", 0) {
		t.Fatalf("unexpected %v %v", r, err)
	}
	for _, err := range log.ScanTenant(ctx(t), "", 0) {
		require.ErrorIs(t, err, sessionlog.ErrInvalidKey)
	}
}

func ordinalsOf(items []string) []uint64 {
	out := make([]uint64, len(items))
	for i, s := range items {
		fmt.Sscanf(s, "%d/", &out[i])
	}
	return out
}
