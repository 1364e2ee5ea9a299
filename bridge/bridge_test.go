package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

type env struct {
	nc  *nats.Conn
	log *jetstream.Log
	dir string
}

func newEnv(t *testing.T) *env {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log, err := jetstream.New(nc, jetstream.WithReadBatch(50, 1<<20))
	require.NoError(t, err)
	return &env{nc: nc, log: log, dir: t.TempDir()}
}

// start runs a bridge writing JSON line files into e.dir until the
// returned stop is called; stop waits for it to finish.
func (e *env) start(t *testing.T) (b *bridge.Bridge, stop func()) {
	sink, err := jsonl.NewFiles(e.dir)
	require.NoError(t, err)
	b, err = bridge.New(bridge.Config{Conn: e.nc, Log: e.log, Sink: sink, BatchSize: 100,
		FlushInterval: 20 * time.Millisecond, DiscoverInterval: 100 * time.Millisecond, ProgressInterval: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return b, func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, sink.Close(context.Background()))
	}
}

type line struct {
	Tenant  string          `json:"tenant"`
	Thread  string          `json:"thread"`
	Ordinal uint64          `json:"ordinal"`
	ID      string          `json:"event_id"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
}

// delivered reads every line written so far.
func (e *env) delivered(t *testing.T) []line {
	files, err := filepath.Glob(filepath.Join(e.dir, "events-*.jsonl"))
	require.NoError(t, err)
	sort.Strings(files)
	var out []line
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var l line
			require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
			out = append(out, l)
		}
		fh.Close()
	}
	return out
}

// waitDelivered polls until n lines were written.
func (e *env) waitDelivered(t *testing.T, n int) []line {
	var got []line
	testserver.Eventually(t, time.Minute, func() error {
		got = e.delivered(t)
		if len(got) < n {
			return fmt.Errorf("%d of %d events delivered", len(got), n)
		}
		return nil
	})
	return got
}

func (e *env) appendEvents(t *testing.T, tenant string, threads, perThread int) {
	for i := range perThread {
		for th := range threads {
			k := sessionlog.ThreadKey{Tenant: tenant, Thread: fmt.Sprint("t", th)}
			_, err := e.log.Append(context.Background(), k, []sessionlog.Event{{Type: "tool_call", Data: fmt.Appendf(nil, `{"i":%d}`, i)}})
			require.NoError(t, err)
		}
	}
}

// requireExactlyOnce asserts every event of the tenants appears once, and
// each tenant's ordinals arrive in increasing order.
func requireExactlyOnce(t *testing.T, e *env, lines []line, tenants map[string]int) {
	seen := map[string]bool{}
	last := map[string]uint64{}
	count := map[string]int{}
	for _, l := range lines {
		k := fmt.Sprint(l.Tenant, "/", l.Thread, "/", l.Ordinal)
		require.False(t, seen[k], "delivered twice: %s", k)
		seen[k] = true
		require.Greater(t, l.Ordinal, last[l.Tenant], "tenant %s out of order", l.Tenant)
		last[l.Tenant] = l.Ordinal
		count[l.Tenant]++
	}
	require.Equal(t, tenants, count)
}

func TestBridgeDeliversTheBacklogThenLiveEvents(t *testing.T) {
	e := newEnv(t)
	e.appendEvents(t, "acme", 3, 40)
	e.appendEvents(t, "globex", 2, 30)
	_, stop := e.start(t)
	defer stop()
	e.waitDelivered(t, 180)
	e.appendEvents(t, "acme", 3, 5)
	// A tenant created while the bridge runs is picked up.
	e.appendEvents(t, "Initech Corp.", 1, 7)
	lines := e.waitDelivered(t, 202)
	requireExactlyOnce(t, e, lines, map[string]int{"acme": 135, "globex": 60, "Initech Corp.": 7})
	for _, l := range lines {
		require.Equal(t, "tool_call", l.Type)
		require.NotEmpty(t, l.ID)
		var data struct{ I int }
		require.NoError(t, json.Unmarshal(l.Data, &data))
	}
}

func TestBridgeResumesAfterARestartWithoutDuplicates(t *testing.T) {
	e := newEnv(t)
	e.appendEvents(t, "acme", 2, 50)
	_, stop := e.start(t)
	e.waitDelivered(t, 100)
	stop()
	e.appendEvents(t, "acme", 2, 25)
	e.appendEvents(t, "globex", 1, 10)
	_, stop = e.start(t)
	defer stop()
	lines := e.waitDelivered(t, 160)
	time.Sleep(200 * time.Millisecond) // let anything extra arrive
	requireExactlyOnce(t, e, e.delivered(t), map[string]int{"acme": 150, "globex": 10})
	require.Len(t, lines, 160)
}

func TestBridgeReportsAndPassesOverACorruptEvent(t *testing.T) {
	e := newEnv(t)
	e.appendEvents(t, "acme", 1, 3)
	js, err := natsjs.New(e.nc)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), e.log.Scheme().Subject("acme", "t0"), []byte("not an event"))
	require.NoError(t, err)
	e.appendEvents(t, "acme", 1, 2)
	_, stop := e.start(t)
	defer stop()
	lines := e.waitDelivered(t, 5)
	requireExactlyOnce(t, e, lines, map[string]int{"acme": 5})
}

func TestBridgeRefusesAnIncompleteConfiguration(t *testing.T) {
	_, err := bridge.New(bridge.Config{BatchSize: -1})
	require.ErrorContains(t, err, "a NATS connection is required")
	require.ErrorContains(t, err, "a sink is required")
	require.ErrorContains(t, err, "batch size must be positive")
}
