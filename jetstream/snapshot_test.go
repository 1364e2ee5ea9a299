package jetstream_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Anything that may publish on a tenant's snapshot subjects can store any
// headers and bytes there: LoadSnapshot reports each such message as
// ErrCorruptSnapshot, never trusting or panicking on it, and a save
// replaces it.
func TestForeignSnapshotMessagesAreReportedAsCorrupt(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "t.1"}
	last, err := log.Append(ctx(t), key, events(3))
	require.NoError(t, err)
	require.NoError(t, log.SaveSnapshot(ctx(t), key, last, []byte("good")))
	subject := log.Scheme().SnapshotSubject(key.Tenant, key.Thread)
	raw := testserver.DialRaw(t, srv.URL())

	const ord = jetstream.HeaderSnapshotOrdinal
	cases := map[string]struct {
		header string
		data   []byte
	}{
		"no header":              {"", []byte("state")},
		"no ordinal":             {"NATS/1.0\r\nOther: 1\r\n\r\n", []byte("state")},
		"ordinal 0":              {"NATS/1.0\r\n" + ord + ": 0\r\n\r\n", nil},
		"leading zero":           {"NATS/1.0\r\n" + ord + ": 01\r\n\r\n", nil},
		"sign":                   {"NATS/1.0\r\n" + ord + ": +1\r\n\r\n", nil},
		"negative":               {"NATS/1.0\r\n" + ord + ": -1\r\n\r\n", nil},
		"not a number":           {"NATS/1.0\r\n" + ord + ": one\r\n\r\n", nil},
		"beyond 64 bits":         {"NATS/1.0\r\n" + ord + ": 18446744073709551616\r\n\r\n", nil},
		"two ordinals":           {"NATS/1.0\r\n" + ord + ": 1\r\n" + ord + ": 2\r\n\r\n", nil},
		"ordinal and deletion":   {"NATS/1.0\r\n" + ord + ": 1\r\n" + jetstream.HeaderSnapshotDeleted + ": 2\r\n\r\n", nil},
		"malformed deletion":     {"NATS/1.0\r\n" + jetstream.HeaderSnapshotDeleted + ": x\r\n\r\n", nil},
		"oversize state":         {"NATS/1.0\r\n" + ord + ": 1\r\n\r\n", make([]byte, sessionlog.MaxSnapshotBytes+1)},
		"not a header block":     {"HTTP/1.1 200 OK\r\n\r\n", nil},
		"server headers claimed": {"NATS/1.0\r\nNats-Subject: elsewhere\r\nNats-Sequence: 1\r\nNats-Stream: x\r\n\r\n", nil},
		// The server appends its headers after the stored block: a blank
		// line in it hides them from a direct get's parser.
		"blank line hiding the server's headers": {"NATS/1.0\r\nOther: 1\r\n\r\n" + ord + ": 1\r\n\r\n", nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			raw.Publish(subject, c.header, c.data)
			_, err := log.LoadSnapshot(ctx(t), key)
			require.ErrorIs(t, err, sessionlog.ErrCorruptSnapshot)
			require.NotErrorIs(t, err, sessionlog.ErrNoSnapshot)
			// A save replaces what is worth nothing.
			require.NoError(t, log.SaveSnapshot(ctx(t), key, last, []byte("saved again")))
			s, err := log.LoadSnapshot(ctx(t), key)
			require.NoError(t, err)
			require.Equal(t, last, s.Ordinal)
			require.Equal(t, "saved again", string(s.State))
		})
	}

	// A well-formed message of a foreign writer is a snapshot like any:
	// its sequence, subject and time are the server's.
	seq := raw.Publish(subject, "NATS/1.0\r\n"+ord+": 2\r\nNats-Time-Stamp: 2000-01-01T00:00:00Z\r\n\r\n", []byte("foreign"))
	require.NotZero(t, seq)
	s, err := log.LoadSnapshot(ctx(t), key)
	require.NoError(t, err)
	require.EqualValues(t, 2, s.Ordinal)
	require.Equal(t, "foreign", string(s.State))
	require.Greater(t, s.Time.Year(), 2000)
}

// With stream creation off, a tenant's first save needs its snapshot
// stream provisioned (EnsureSnapshots), as its first append needs its
// stream; the snapshot stream takes the tenant stream's settings.
func TestSnapshotStreamIsProvisionedLikeTheTenantStream(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	scheme := freshScheme()
	admin, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithStorage(jetstream.MemoryStorage))
	require.NoError(t, err)
	agent, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithStreamCreation(false))
	require.NoError(t, err)
	key := sessionlog.ThreadKey{Tenant: "Acme.EU", Thread: "t"}
	last, err := admin.Append(ctx(t), key, events(1))
	require.NoError(t, err)

	err = agent.SaveSnapshot(ctx(t), key, last, []byte("s"))
	require.ErrorIs(t, err, jetstream.ErrTenantNotProvisioned)
	_, err = agent.LoadSnapshot(ctx(t), key)
	require.ErrorIs(t, err, sessionlog.ErrNoSnapshot)

	require.NoError(t, admin.EnsureSnapshots(ctx(t), key.Tenant))
	require.NoError(t, admin.EnsureSnapshots(ctx(t), key.Tenant), "idempotent")
	require.NoError(t, agent.SaveSnapshot(ctx(t), key, last, []byte("s")))

	js, err := natsjs.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx(t), scheme.SnapshotStream(key.Tenant))
	require.NoError(t, err)
	cfg := st.CachedInfo().Config
	require.Equal(t, []string{scheme.SnapshotFilter(key.Tenant)}, cfg.Subjects)
	require.EqualValues(t, 1, cfg.MaxMsgsPerSubject)
	require.Equal(t, natsjs.MemoryStorage, cfg.Storage, "the tenant stream's storage")
	require.False(t, cfg.AllowRollup, "no rollups")
	require.True(t, cfg.DenyDelete)
	require.True(t, cfg.AllowDirect, "loads of single-replica streams are direct gets")
	require.Equal(t, "snapshots", cfg.Metadata["jetsession.kind"])
	tenants, err := admin.Tenants(ctx(t))
	require.NoError(t, err)
	require.Len(t, tenants, 1, "the snapshot stream is no tenant")
	require.Equal(t, key.Tenant, tenants[0].Tenant)
}

// The snapshot stream refuses a message larger than a snapshot may be,
// and SaveSnapshot refuses a state the server cannot take in one message.
func TestSnapshotsLargerThanTheServerTakesAreRefused(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) { o.MaxPayload = 256 << 10 })
	nc := srv.Connect(t)
	log := newLog(t, nc)
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}
	last, err := log.Append(ctx(t), key, events(1))
	require.NoError(t, err)
	err = log.SaveSnapshot(ctx(t), key, last, make([]byte, 300<<10))
	require.ErrorIs(t, err, sessionlog.ErrSnapshotTooLarge)
	_, err = log.LoadSnapshot(ctx(t), key)
	require.ErrorIs(t, err, sessionlog.ErrNoSnapshot)
	require.NoError(t, log.SaveSnapshot(ctx(t), key, last, make([]byte, 200<<10)))
}

// A plain NATS client loads a snapshot with one request, as PROTOCOL.md
// says.
func TestSnapshotWireFormatIsReadableByAPlainClient(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log := newLog(t, nc)
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/1"}
	last, err := log.Append(ctx(t), key, events(2))
	require.NoError(t, err)
	require.NoError(t, log.SaveSnapshot(ctx(t), key, last, []byte(`{"turns":2}`)))

	req, _ := json.Marshal(map[string]string{"last_by_subj": log.Scheme().SnapshotSubject(key.Tenant, key.Thread)})
	reply, err := nc.Request("$JS.API.STREAM.MSG.GET."+log.Scheme().SnapshotStream(key.Tenant), req, 5e9)
	require.NoError(t, err)
	var resp struct {
		Message struct {
			Subject string `json:"subject"`
			Header  []byte `json:"hdrs"`
			Data    []byte `json:"data"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal(reply.Data, &resp))
	require.Equal(t, "jetsession.acme.$snapshot.support_2f1", strings.Replace(resp.Message.Subject, log.Scheme().SubjectPrefix, "jetsession", 1))
	h, err := nats.DecodeHeadersMsg(resp.Message.Header)
	require.NoError(t, err)
	require.Equal(t, []string{"2"}, h[jetstream.HeaderSnapshotOrdinal])
	require.Equal(t, `{"turns":2}`, string(resp.Message.Data))
}
