package jetstream_test

import (
	"testing"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
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
