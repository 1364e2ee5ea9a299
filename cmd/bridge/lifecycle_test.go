package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/internal/syncbuf"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGroupStopsEveryActorInReverseOrderAndKeepsEveryError(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s)
	}
	errFirst, errLate := errors.New("first failure"), errors.New("failure while stopping")
	fail := make(chan struct{})
	g := &group{logger: slog.New(slog.DiscardHandler)}
	blocking := func(name string, err error) {
		stop := make(chan struct{})
		g.add(name, func() error {
			<-stop
			note("stopped " + name)
			return err
		}, func() {
			note("interrupt " + name)
			close(stop)
		})
	}
	blocking("a", nil)
	blocking("b", errLate)
	g.add("c", func() error {
		<-fail
		return errFirst
	}, func() { t.Error("the actor that ended is not interrupted") })
	blocking("d", nil)
	close(fail)

	err := g.run()
	require.ErrorIs(t, err, errFirst, "the first error is returned")
	require.ErrorIs(t, err, errLate, "and no other is lost")
	assert.Equal(t, []string{"interrupt d", "stopped d", "interrupt b", "stopped b", "interrupt a", "stopped a"}, order,
		"each is stopped and waited for in reverse order of start")

	// A part that ends without an error stops the others too.
	g = &group{logger: slog.New(slog.DiscardHandler)}
	order = nil
	blocking("x", nil)
	g.add("quits", func() error { return nil }, func() {})
	require.NoError(t, g.run())
	assert.Equal(t, []string{"interrupt x", "stopped x"}, order)
}

// failingSink is a sink whose positions cannot be read: the bridge engine
// fails at once.
type failingSink struct{ bridge.Sink }

var errPositions = errors.New("positions unavailable")

func (failingSink) Positions(context.Context) (bridge.Positions, error) { return nil, errPositions }

// TestAFailingPartStopsTheDaemonWithItsError runs the demo fleet beside a
// bridge engine that fails at once: the daemon must end with the engine's
// error, not run the fleet until a signal comes.
func TestAFailingPartStopsTheDaemonWithItsError(t *testing.T) {
	// The deadline only keeps a regression from hanging the test run: the
	// daemon must end on its own, long before.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stderr := &syncbuf.Buffer{}
	err := run(ctx, []string{"--demo", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0"},
		noEnv, io.Discard, stderr, &hooks{wrapSink: func(s bridge.Sink) bridge.Sink { return failingSink{s} }})
	require.ErrorIs(t, err, errPositions, "stderr:\n%s", stderr)
	require.NoError(t, ctx.Err(), "the daemon ended by itself")
	assert.Contains(t, stderr.String(), `msg="shutting down" because=bridge`)
}

// TestInterruptDrainsInReverseOrderOfStart cancels a running daemon (what
// SIGINT does): it must stop the demo fleet first, let the bridge hand its
// last batch to the sink and commit it, and stop the NATS server last.
func TestInterruptDrainsInReverseOrderOfStart(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "jsonl")
	_, stop, stderr := startRunLogged(t, []string{"--demo", "--listen", "127.0.0.1:0", "--data-dir", dir, "--http", "127.0.0.1:0",
		"--sink", "jsonl", "--jsonl-path", out, "--flush-interval", "20ms"}, io.Discard, nil)
	testserver.Eventually(t, time.Minute, func() error {
		n := 0
		files, _ := filepath.Glob(filepath.Join(out, "events-*.jsonl"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			n += strings.Count(string(b), "\n")
		}
		if n < 20 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	require.NoError(t, stop())

	var stopped []string
	for _, m := range regexp.MustCompile(`msg=stopped part="?([^"\n]+)"?`).FindAllStringSubmatch(stderr.String(), -1) {
		stopped = append(stopped, m[1])
	}
	assert.Equal(t, []string{"demo fleet", "bridge", "HTTP server", "quarantine", "sinks", "NATS connection", "embedded NATS server"}, stopped,
		"stderr:\n%s", stderr)

	// What was written is committed, and nothing beyond it.
	rows := readRows(t, out)
	written := bridge.Positions{}
	for _, r := range rows {
		written[r.Tenant] = max(written[r.Tenant], r.Ordinal)
	}
	b, err := os.ReadFile(filepath.Join(out, jsonl.PositionsFile))
	require.NoError(t, err)
	committed := bridge.Positions{}
	require.NoError(t, json.Unmarshal(b, &committed))
	assert.Equal(t, written, committed)
}

func readRows(t *testing.T, dir string) []bridge.Row {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "events-*.jsonl"))
	require.NoError(t, err)
	var rows []bridge.Row
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				var r bridge.Row
				require.NoError(t, json.Unmarshal([]byte(line), &r))
				rows = append(rows, r)
			}
		}
		fh.Close()
	}
	return rows
}
