package embedded_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/embedded"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestATakenAddressIsRefusedAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = embedded.Start(embedded.Config{Port: port, StoreDir: t.TempDir()})
	require.ErrorIs(t, err, embedded.ErrAddressInUse)
}

func TestAnUnwritableStoreIsRefusedAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := embedded.Start(embedded.Config{StoreDir: filepath.Join(file, "store")})
	require.Error(t, err)
	require.Error(t, embedded.CheckWritable(filepath.Join(file, "store")))
	require.NoError(t, embedded.CheckWritable(filepath.Join(t.TempDir(), "new", "folder")))
}

func TestAPlannedClusterElectsAMetaLeader(t *testing.T) {
	plan, err := embedded.PlanCluster("test", t.TempDir(), 3)
	require.NoError(t, err)
	require.Len(t, plan, 3)
	seen := map[int]bool{}
	for _, n := range plan {
		assert.Len(t, n.Routes, 3)
		assert.False(t, seen[n.Port] || seen[n.ClusterPort], "ports are distinct")
		seen[n.Port], seen[n.ClusterPort] = true, true
		assert.Equal(t, "nats://127.0.0.1:"+strconv.Itoa(n.Port), n.URL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	servers, err := embedded.StartCluster(ctx, plan)
	require.NoError(t, err)
	defer func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}()
	require.NoError(t, embedded.ClusterReady(servers))
	nc, err := nats.Connect(plan[1].URL())
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Request("$JS.API.INFO", nil, 5*time.Second)
	require.NoError(t, err, "JetStream answers on a node")
}
