package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jetsession/jetsession/internal/pgtest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// bridgeBinary builds the command once per test run, so that a test can
// kill a real process.
func bridgeBinary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jetsession-bridge-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "bridge")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binary
}

func countRows(t *testing.T, dsn string) (rows, distinct int, positions map[string]uint64) {
	rows, distinct, positions, err := queryPositions(dsn)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return 0, 0, nil // the sink has not created its tables yet
	}
	require.NoError(t, err)
	return rows, distinct, positions
}

// queryPositions reads the PostgreSQL sink's row counts and positions.
func queryPositions(dsn string) (rows, distinct int, positions map[string]uint64, err error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, nil, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (tenant, thread, event_id)) FROM jetsession_events`).Scan(&rows, &distinct)
	if err != nil {
		return 0, 0, nil, err
	}
	positions = map[string]uint64{}
	r, err := conn.Query(ctx, `SELECT tenant, ordinal FROM jetsession_events_positions`)
	if err != nil {
		return 0, 0, nil, err
	}
	defer r.Close()
	for r.Next() {
		var tenant string
		var ord int64
		if err := r.Scan(&tenant, &ord); err != nil {
			return 0, 0, nil, err
		}
		positions[tenant] = uint64(ord)
	}
	return rows, distinct, positions, r.Err()
}

// TestSIGKILLMidStreamLosesAndDuplicatesNothingInPostgreSQL kills the bridge
// with SIGKILL while it delivers a backlog to PostgreSQL, restarts it, and
// checks every event is stored exactly once and positions reach the head.
func TestSIGKILLMidStreamLosesAndDuplicatesNothingInPostgreSQL(t *testing.T) {
	dsn := pgtest.Start(t)
	bin := bridgeBinary(t)
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	const tenants, perTenant = 8, 2500
	heads := map[string]uint64{}
	for i := range perTenant / 5 {
		for tn := range tenants {
			tenant := fmt.Sprint("tenant-", tn)
			batch := make([]sessionlog.Event, 5)
			for j := range batch {
				batch[j] = sessionlog.Event{Type: "tool_result", Data: fmt.Appendf(nil, `{"i":%d,"j":%d}`, i, j)}
			}
			last, err := log.Append(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: fmt.Sprint("t", i%7)}, batch)
			require.NoError(t, err)
			heads[tenant] = last
		}
	}
	total := tenants * perTenant

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--nats", srv.URL(), "--sink", "postgres", "--postgres-url", dsn,
			"--http", "", "--batch-size", "300", "--data-dir", t.TempDir(), "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	first := start()
	testserver.Eventually(t, time.Minute, func() error {
		if n, _, _ := countRows(t, dsn); n < total/5 {
			return fmt.Errorf("%d rows so far", n)
		}
		return nil
	})
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	killedAt, _, _ := countRows(t, dsn)
	require.Less(t, killedAt, total, "the kill must land mid-stream")

	// Live events appended while the bridge is down arrive too.
	for tn := range tenants {
		tenant := fmt.Sprint("tenant-", tn)
		last, err := log.Append(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: "late"}, []sessionlog.Event{{Type: "user_message"}})
		require.NoError(t, err)
		heads[tenant] = last
	}
	total += tenants

	second := start()
	defer func() {
		second.Process.Signal(syscall.SIGTERM)
		second.Wait()
	}()
	testserver.Eventually(t, 2*time.Minute, func() error {
		n, distinct, positions := countRows(t, dsn)
		if n != total || distinct != total {
			return fmt.Errorf("%d rows (%d distinct) of %d", n, distinct, total)
		}
		for tenant, head := range heads {
			if positions[tenant] != head {
				return fmt.Errorf("position of %s is %d, head %d", tenant, positions[tenant], head)
			}
		}
		return nil
	})
	require.NoError(t, second.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.Wait(), "SIGTERM shuts the bridge down cleanly")
	t.Logf("killed with %d of %d rows stored; all %d stored exactly once after the restart", killedAt, total-tenants, total)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}
