package jetstream_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsession/jetsession/coldstore/jsstore"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/sessionlogtest"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

var schemeSeq atomic.Int64

// freshScheme gives each log its own names, so that logs sharing a server
// start empty.
func freshScheme() subjects.Scheme {
	n := schemeSeq.Add(1)
	return subjects.Scheme{SubjectPrefix: fmt.Sprintf("js%d", n), StreamPrefix: fmt.Sprintf("js%d-", n)}
}

func newLog(t testing.TB, nc *nats.Conn, opts ...jetstream.Option) *jetstream.Log {
	t.Helper()
	log, err := jetstream.New(nc, append([]jetstream.Option{jetstream.WithScheme(freshScheme())}, opts...)...)
	require.NoError(t, err)
	return log
}

// newColdStore returns an empty cold store in JetStream with its own
// names.
func newColdStore(t testing.TB, nc *nats.Conn, replicas int) sessionlog.ColdStore {
	t.Helper()
	n := schemeSeq.Add(1)
	s, err := jsstore.New(nc, jsstore.WithReplicas(replicas), jsstore.WithPrefixes(fmt.Sprintf("cold%d-", n), fmt.Sprintf("cold%d", n)))
	require.NoError(t, err)
	return s
}

// corrupter publishes, as a plain client ignoring the protocol would, a
// message without any header on the thread's subject.
func corrupter(nc *nats.Conn) sessionlogtest.Corrupter {
	return func(t *testing.T, log sessionlog.Log, key sessionlog.ThreadKey) uint64 {
		jl := log.(*jetstream.Log)
		// On a cluster this connection's node may learn of a stream just
		// created elsewhere a moment later; nothing was stored meanwhile.
		var reply *nats.Msg
		var err error
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			reply, err = nc.Request(jl.Scheme().Subject(key.Tenant, key.Thread), []byte("not an event"), 10*time.Second)
			if !errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
				break
			}
		}
		require.NoError(t, err)
		var ack struct {
			Seq uint64 `json:"seq"`
		}
		require.NoError(t, json.Unmarshal(reply.Data, &ack))
		require.NotZero(t, ack.Seq, "publish refused: %s", reply.Data)
		return ack.Seq
	}
}

func TestConformanceSingleNode(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	sessionlogtest.Run(t, func(t *testing.T) sessionlog.Log { return newLog(t, nc) }, sessionlogtest.WithCorrupter(corrupter(nc)),
		sessionlogtest.WithColdTier(func(t *testing.T) sessionlog.Log {
			return newLog(t, nc, jetstream.WithColdStore(newColdStore(t, nc, 1)))
		}))
}

// TestConformanceReadConsumers runs the suite with every read of more than
// two events going through a read consumer after its first batch.
func TestConformanceReadConsumers(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	opts := []jetstream.Option{jetstream.WithReadBatch(2, 1<<20), jetstream.WithConsumerReads(1)}
	sessionlogtest.Run(t, func(t *testing.T) sessionlog.Log { return newLog(t, nc, opts...) }, sessionlogtest.WithCorrupter(corrupter(nc)),
		sessionlogtest.WithColdTier(func(t *testing.T) sessionlog.Log {
			return newLog(t, nc, append(opts, jetstream.WithColdStore(newColdStore(t, nc, 1)))...)
		}))
}

func TestConformanceClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster conformance is not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	// Connect to a single node: most streams' leaders are elsewhere, so
	// reads meet lagging followers.
	nc := c.Nodes[0].Connect(t)
	sessionlogtest.Run(t, func(t *testing.T) sessionlog.Log { return newLog(t, nc, jetstream.WithReplicas(3)) },
		sessionlogtest.WithCorrupter(corrupter(c.Nodes[2].Connect(t))),
		sessionlogtest.WithColdTier(func(t *testing.T) sessionlog.Log {
			return newLog(t, nc, jetstream.WithReplicas(3), jetstream.WithColdStore(newColdStore(t, nc, 3)))
		}))
}
