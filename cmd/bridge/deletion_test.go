package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/internal/pgtest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// TestDeletionsReachTheAnalyticsCopiesEvenWhileTheBridgeIsDown: a thread
// deleted while the bridge runs, and a tenant deleted while it is down,
// leave no row in PostgreSQL once it runs again, and the JSON-lines
// deletions file names them both.
func TestDeletionsReachTheAnalyticsCopiesEvenWhileTheBridgeIsDown(t *testing.T) {
	dsn := pgtest.Start(t)
	srv := testserver.Start(t)
	log, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	doomed := sessionlog.ThreadKey{Tenant: "acme", Thread: "doomed"}
	kept := sessionlog.ThreadKey{Tenant: "acme", Thread: "kept"}
	gone := sessionlog.ThreadKey{Tenant: "globex", Thread: "t"}
	for _, k := range []sessionlog.ThreadKey{doomed, kept, gone} {
		for i := range 5 {
			_, err := log.Append(ctx, k, []sessionlog.Event{{Type: "user_message", Data: fmt.Appendf(nil, `{"i":%d}`, i)}})
			require.NoError(t, err)
		}
	}
	dir := t.TempDir()
	jsonlDir := filepath.Join(dir, "jsonl")
	args := []string{"--nats", srv.URL(), "--data-dir", dir, "--http", "", "--sink", "postgres,jsonl",
		"--postgres-url", dsn, "--jsonl-path", jsonlDir, "--flush-interval", "20ms", "--discover-interval", "100ms"}
	rows := func(k sessionlog.ThreadKey) int {
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM jetsession_events WHERE tenant = $1 AND thread = $2`, k.Tenant, k.Thread).Scan(&n))
		return n
	}
	waitRows := func(k sessionlog.ThreadKey, want int) {
		testserver.Eventually(t, time.Minute, func() error {
			if n := rows(k); n != want {
				return fmt.Errorf("%s/%s: %d rows in PostgreSQL, want %d", k.Tenant, k.Thread, n, want)
			}
			return nil
		})
	}

	_, stop := startRun(t, args, io.Discard)
	for _, k := range []sessionlog.ThreadKey{doomed, kept, gone} {
		waitRows(k, 5)
	}
	n, err := log.DeleteThread(ctx, doomed)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	waitRows(doomed, 0)
	require.NoError(t, stop())

	// While the bridge is down, a whole tenant goes.
	require.NoError(t, log.DeleteTenant(ctx, gone.Tenant))
	_, stop = startRun(t, args, io.Discard)
	waitRows(gone, 0)
	waitRows(kept, 5)
	// The deleted thread's new life reaches the sink again.
	_, err = log.Append(ctx, doomed, []sessionlog.Event{{Type: "user_message", Data: []byte(`{"again":true}`)}})
	require.NoError(t, err)
	waitRows(doomed, 1)
	require.NoError(t, stop())

	// The deletions file names both, for readers of the JSON lines.
	deletions, err := jsonl.ReadDeletions(jsonlDir)
	require.NoError(t, err)
	var names []string
	for _, d := range deletions {
		names = append(names, d.Tenant+"/"+d.Thread)
	}
	require.Contains(t, names, "acme/doomed")
	require.Contains(t, names, "globex/")
}
