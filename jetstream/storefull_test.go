package jetstream_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestAFullServerStoreIsErrStorageFull: with no tenant quota, the server's
// own file store limit refuses appends; that is a sentinel too, and it
// stores nothing.
func TestAFullServerStoreIsErrStorageFull(t *testing.T) {
	small := func(o *server.Options) { o.JetStreamMaxStore = 1 << 20 }
	t.Run("single node", func(t *testing.T) {
		srv := testserver.Start(t, small)
		testFullStore(t, newLog(t, srv.Connect(t)), true)
	})
	t.Run("R3", func(t *testing.T) {
		if testing.Short() {
			t.Skip("cluster tests are not run with -short")
		}
		c := testserver.StartCluster(t, 3, small)
		// A clustered server out of storage also takes the stream's leader
		// down (the server's own protection), so only the first refusal is
		// checked here.
		testFullStore(t, newLog(t, c.Nodes[0].Connect(t), jetstream.WithReplicas(3)), false)
	})
}

func testFullStore(t *testing.T, log *jetstream.Log, after bool) {
	payload := make([]byte, 16<<10)
	var stored int
	var fullErr error
	for i := range 200 {
		n := 1 + i%2
		batch := make([]sessionlog.Event, n)
		for j := range batch {
			batch[j] = sessionlog.Event{Type: "t", Data: payload}
		}
		if _, err := log.Append(ctx(t), key, batch); err != nil {
			fullErr = err
			break
		}
		stored += n
	}
	t.Logf("stored %d events, then: %v", stored, fullErr)
	require.ErrorIs(t, fullErr, sessionlog.ErrStorageFull)
	require.ErrorIs(t, fullErr, sessionlog.ErrQuotaExceeded, "a full server is a lack of room too")
	if !after {
		return
	}
	for _, n := range []int{1, 2} {
		batch := make([]sessionlog.Event, n)
		for j := range batch {
			batch[j] = sessionlog.Event{Type: "t", Data: payload}
		}
		_, err := log.Append(ctx(t), key, batch)
		require.ErrorIs(t, err, sessionlog.ErrStorageFull, "an append of %d", n)
	}
	recs, err := log.LoadSince(ctx(t), key, 0)
	require.NoError(t, err)
	require.Len(t, recs, stored, "the refused appends stored nothing")
}

// TestAnAccountOutOfStreamsRefusesANewTenantWithErrQuotaExceeded: the
// account's stream limit leaves no room for a new tenant's stream.
func TestAnAccountOutOfStreamsRefusesANewTenantWithErrQuotaExceeded(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "limits.conf")
	require.NoError(t, os.WriteFile(conf, []byte(`
accounts: { T: { jetstream: { max_streams: 1 }, users: [{user: u, password: p}] } }
`), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	srv := testserver.Start(t, func(o *server.Options) {
		o.Accounts, o.Users = opts.Accounts, opts.Users
	})
	nc := testserver.Connect(t, srv.URL(), nats.UserInfo("u", "p"))
	log := newLog(t, nc)
	_, err = log.Append(ctx(t), sessionlog.ThreadKey{Tenant: "first", Thread: "t"}, events(1))
	require.NoError(t, err)
	_, err = log.Append(ctx(t), sessionlog.ThreadKey{Tenant: "second", Thread: "t"}, events(1))
	require.ErrorIs(t, err, sessionlog.ErrQuotaExceeded)
}
