package jsstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jetsession/jetsession/coldstore/jsstore"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/coldstoretest"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

var seq atomic.Int64

func TestConformanceSingleNode(t *testing.T) {
	nc := testserver.Start(t).Connect(t)
	coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore {
		n := seq.Add(1)
		s, err := jsstore.New(nc, jsstore.WithPrefixes(fmt.Sprintf("cold%d-", n), fmt.Sprintf("cold%d", n)))
		require.NoError(t, err)
		return s
	})
}

func TestConformanceClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster conformance is not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	nc := c.Nodes[0].Connect(t)
	coldstoretest.Run(t, func(t *testing.T) sessionlog.ColdStore {
		n := seq.Add(1)
		s, err := jsstore.New(nc, jsstore.WithReplicas(3), jsstore.WithPrefixes(fmt.Sprintf("cold%d-", n), fmt.Sprintf("cold%d", n)))
		require.NoError(t, err)
		return s
	})
}

// TestEveryGetSeesTheLastPutOnAReplicatedStream puts objects through one
// node and reads each at once through another: a replica that does not
// have an object yet must not make it missing.
func TestEveryGetSeesTheLastPutOnAReplicatedStream(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test is not run with -short")
	}
	c := testserver.StartCluster(t, 3)
	var stores []*jsstore.Store
	for _, node := range c.Nodes {
		s, err := jsstore.New(node.Connect(t), jsstore.WithReplicas(3), jsstore.WithPrefixes("cold-", "cold"))
		require.NoError(t, err)
		stores = append(stores, s)
	}
	ctx := context.Background()
	data := make([]byte, 256<<10)
	for i := range 60 {
		name := fmt.Sprintf("thread/%03d", i)
		data[0] = byte(i)
		require.NoError(t, stores[i%3].Put(ctx, "acme", name, data))
		for _, s := range stores {
			got, err := s.Get(ctx, "acme", name)
			require.NoError(t, err, "object %d", i)
			require.Equal(t, data, got)
		}
		var names []string
		for n, err := range stores[(i+2)%3].List(ctx, "acme", "thread/") {
			require.NoError(t, err)
			names = append(names, n)
		}
		require.Len(t, names, i+1)
	}
}

// TestReadsAStreamMadeWithoutDirectGets reads objects of a segment stream
// that does not serve direct gets (as earlier versions made them) through
// the stream leader.
func TestReadsAStreamMadeWithoutDirectGets(t *testing.T) {
	nc := testserver.Start(t).Connect(t)
	ctx := context.Background()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, natsjs.StreamConfig{Name: "old-acme", Subjects: []string{"old.acme.>"}, MaxMsgsPerSubject: 1})
	require.NoError(t, err)
	s, err := jsstore.New(nc, jsstore.WithPrefixes("old-", "old"))
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, "acme", "a/b", []byte("x")))
	got, err := s.Get(ctx, "acme", "a/b")
	require.NoError(t, err)
	require.Equal(t, []byte("x"), got)
	_, err = s.Get(ctx, "acme", "a/c")
	require.ErrorIs(t, err, sessionlog.ErrNotFound)
}
