package jsstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jetsession/jetsession/coldstore/jsstore"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/sessionlog/coldstoretest"
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
