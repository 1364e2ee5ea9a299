package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// source is a log the bridge follows, with a way to store what a foreign
// writer could: a message that is not a valid event.
type source interface {
	bridge.Source
	sessionlog.Log
}

type env struct {
	src     source
	corrupt func(t *testing.T, key sessionlog.ThreadKey) uint64
	dir     string
}

// forEachSource runs a test of the engine on the memory log, then on
// JetStream: the engine depends only on bridge.Source.
func forEachSource(t *testing.T, test func(t *testing.T, e *env)) {
	t.Run("memory", func(t *testing.T) {
		m := sessionlog.NewMemory()
		test(t, &env{src: m, dir: t.TempDir(), corrupt: func(t *testing.T, key sessionlog.ThreadKey) uint64 {
			ord, err := m.InjectCorrupt(key, "not an event", []byte("not an event"))
			require.NoError(t, err)
			return ord
		}})
	})
	t.Run("jetstream", func(t *testing.T) {
		srv := testserver.Start(t)
		nc := srv.Connect(t)
		log, err := jetstream.New(nc, jetstream.WithReadBatch(50, 1<<20))
		require.NoError(t, err)
		raw := testserver.DialRaw(t, srv.URL())
		test(t, &env{src: log, dir: t.TempDir(), corrupt: func(t *testing.T, key sessionlog.ThreadKey) uint64 {
			return raw.Publish(log.Scheme().Subject(key.Tenant, key.Thread), "", []byte("not an event"))
		}})
	})
}

// run runs a bridge on sink until the returned stop is called; stop waits
// for it to finish and returns Run's error.
func (e *env) run(t *testing.T, cfg bridge.Config) (b *bridge.Bridge, stop func() error) {
	cfg.Source = e.src
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 100
	}
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.DiscoverInterval = 50 * time.Millisecond
	cfg.ProgressInterval = -1
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval, cfg.MaxRetryInterval = 20*time.Millisecond, 100*time.Millisecond
	}
	b, err := bridge.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return b, stop
}

// start runs a bridge writing JSON line files into e.dir.
func (e *env) start(t *testing.T) (b *bridge.Bridge, stop func()) {
	sink, err := jsonl.NewFiles(e.dir)
	require.NoError(t, err)
	b, stopRun := e.run(t, bridge.Config{Sink: sink})
	return b, func() {
		require.NoError(t, stopRun())
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
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		// The sink may be writing: a last line without its newline is not
		// written yet.
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		} else {
			data = nil
		}
		for _, raw := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			if len(raw) == 0 {
				continue
			}
			var l line
			require.NoError(t, json.Unmarshal(raw, &l))
			out = append(out, l)
		}
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
			_, err := e.src.Append(context.Background(), k, []sessionlog.Event{{Type: "tool_call", Data: fmt.Appendf(nil, `{"i":%d}`, i)}})
			require.NoError(t, err)
		}
	}
}

// requireExactlyOnce asserts every event of the tenants appears once, and
// each tenant's ordinals arrive in increasing order.
func requireExactlyOnce(t *testing.T, lines []line, tenants map[string]int) {
	t.Helper()
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
	forEachSource(t, func(t *testing.T, e *env) {
		e.appendEvents(t, "acme", 3, 40)
		e.appendEvents(t, "globex", 2, 30)
		_, stop := e.start(t)
		defer stop()
		e.waitDelivered(t, 180)
		e.appendEvents(t, "acme", 3, 5)
		// A tenant created while the bridge runs is picked up.
		e.appendEvents(t, "Initech Corp.", 1, 7)
		lines := e.waitDelivered(t, 202)
		requireExactlyOnce(t, lines, map[string]int{"acme": 135, "globex": 60, "Initech Corp.": 7})
		for _, l := range lines {
			require.Equal(t, "tool_call", l.Type)
			require.NotEmpty(t, l.ID)
			var data struct{ I int }
			require.NoError(t, json.Unmarshal(l.Data, &data))
		}
	})
}

func TestBridgeResumesAfterARestartWithoutDuplicates(t *testing.T) {
	forEachSource(t, func(t *testing.T, e *env) {
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
		requireExactlyOnce(t, e.delivered(t), map[string]int{"acme": 150, "globex": 10})
		require.Len(t, lines, 160)
	})
}

func TestBridgeQuarantinesACorruptEventAndMovesPastIt(t *testing.T) {
	forEachSource(t, func(t *testing.T, e *env) {
		e.appendEvents(t, "acme", 1, 3)
		bad := e.corrupt(t, sessionlog.ThreadKey{Tenant: "acme", Thread: "t0"})
		e.appendEvents(t, "acme", 1, 2)
		last := e.corrupt(t, sessionlog.ThreadKey{Tenant: "acme", Thread: "t1"}) // the tenant's last message
		q, err := bridge.OpenQuarantineFile(filepath.Join(t.TempDir(), "q.jsonl"), 1<<20)
		require.NoError(t, err)
		defer q.Close()
		sink, err := jsonl.NewFiles(e.dir)
		require.NoError(t, err)
		_, stop := e.run(t, bridge.Config{Sink: sink, Quarantine: q})
		lines := e.waitDelivered(t, 5)
		requireExactlyOnce(t, lines, map[string]int{"acme": 5})
		testserver.Eventually(t, time.Minute, func() error {
			pos, err := sink.Positions(context.Background())
			if err != nil || pos["acme"] != last {
				return fmt.Errorf("position %d, want %d (past the last, quarantined message): %v", pos["acme"], last, err)
			}
			return nil
		})
		require.NoError(t, stop())
		got := readQuarantine(t, q.Path())
		require.Len(t, got, 2)
		require.Equal(t, []uint64{bad, last}, []uint64{got[0].Ordinal, got[1].Ordinal})
		require.Equal(t, "acme", got[0].Tenant)
		require.Equal(t, "t0", got[0].Thread)
		require.Equal(t, []byte("not an event"), got[0].Data)
		require.NotEmpty(t, got[0].Reason)
	})
}

func readQuarantine(t *testing.T, path string) []bridge.Quarantined {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []bridge.Quarantined
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var q bridge.Quarantined
		require.NoError(t, json.Unmarshal(sc.Bytes(), &q))
		out = append(out, q)
	}
	return out
}

func TestBridgeRefusesAnIncompleteConfiguration(t *testing.T) {
	_, err := bridge.New(bridge.Config{BatchSize: -1})
	require.ErrorContains(t, err, "a source is required")
	require.ErrorContains(t, err, "a sink is required")
	require.ErrorContains(t, err, "batch size must be positive")
}

// refusingSink is a real JSON lines sink that refuses, while refuse says
// so, every write holding a row of one tenant: the one failure path the
// engine must isolate.
type refusingSink struct {
	bridge.Sink
	tenant string
	mu     sync.Mutex
	refuse bool
	all    bool // refuse every write, as a sink that is down
}

var errRefused = errors.New("sink refuses this row")

func (s *refusingSink) set(refuse, all bool) {
	s.mu.Lock()
	s.refuse, s.all = refuse, all
	s.mu.Unlock()
}

func (s *refusingSink) Write(ctx context.Context, rows []bridge.Row, pos bridge.Positions) error {
	s.mu.Lock()
	refuse, all := s.refuse, s.all
	s.mu.Unlock()
	if all {
		return errors.New("sink is down")
	}
	if refuse {
		if _, ok := pos[s.tenant]; ok {
			return errRefused
		}
	}
	return s.Sink.Write(ctx, rows, pos)
}

func TestASinkRefusingOneTenantsRowsNeverStopsTheOthers(t *testing.T) {
	forEachSource(t, func(t *testing.T, e *env) {
		files, err := jsonl.NewFiles(e.dir)
		require.NoError(t, err)
		sink := &refusingSink{Sink: files, tenant: "acme", refuse: true}
		e.appendEvents(t, "acme", 2, 20)
		e.appendEvents(t, "globex", 2, 20)
		b, stop := e.run(t, bridge.Config{Sink: sink})
		// Only acme is ever stuck: a sampler watches throughout.
		var sampled sync.WaitGroup
		sampling, stopSampling := context.WithCancel(context.Background())
		othersStuck := map[string]bool{}
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			for sampling.Err() == nil {
				for _, s := range b.Stuck() {
					if s.Tenant != "acme" {
						othersStuck[s.Tenant] = true
					}
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
		// globex flows, live too, while acme is refused.
		testserver.Eventually(t, time.Minute, func() error {
			if n := countTenant(e.delivered(t), "globex"); n < 40 {
				return fmt.Errorf("%d of 40 globex events delivered", n)
			}
			return nil
		})
		// acme's first batch may reach the sink after globex's, alone: a
		// lone tenant's refused batch is read as the sink being down until
		// another tenant's write succeeds. Wait for it, so the last word
		// is globex's.
		testserver.Eventually(t, time.Minute, func() error {
			if len(b.Stuck()) == 0 {
				return errors.New("acme is not stuck yet")
			}
			return nil
		})
		e.appendEvents(t, "globex", 1, 10)
		e.appendEvents(t, "acme", 1, 5)
		testserver.Eventually(t, time.Minute, func() error {
			if n := countTenant(e.delivered(t), "globex"); n < 50 {
				return fmt.Errorf("%d of 50 globex events delivered", n)
			}
			return nil
		})
		require.Zero(t, countTenant(e.delivered(t), "acme"))
		stopSampling()
		sampled.Wait()
		require.Empty(t, othersStuck, "a tenant the sink takes was held back with the refused one")
		stuck := b.Stuck()
		require.Len(t, stuck, 1)
		require.Equal(t, "acme", stuck[0].Tenant)
		require.ErrorIs(t, stuck[0].Err, errRefused)
		require.True(t, b.Healthy(), "one stuck tenant does not make the bridge unhealthy")
		// Once the sink takes acme's rows, acme catches up: nothing lost,
		// nothing twice.
		sink.set(false, false)
		lines := e.waitDelivered(t, 95)
		require.Empty(t, b.Stuck())
		require.NoError(t, stop())
		requireExactlyOnce(t, lines, map[string]int{"acme": 45, "globex": 50})
	})
}

func TestASinkDownForEveryoneMakesTheBridgeUnhealthyAndLosesNothing(t *testing.T) {
	forEachSource(t, func(t *testing.T, e *env) {
		files, err := jsonl.NewFiles(e.dir)
		require.NoError(t, err)
		sink := &refusingSink{Sink: files, all: true}
		e.appendEvents(t, "acme", 1, 10)
		e.appendEvents(t, "globex", 1, 10)
		b, stop := e.run(t, bridge.Config{Sink: sink})
		testserver.Eventually(t, time.Minute, func() error {
			if b.Healthy() {
				return errors.New("still healthy")
			}
			return nil
		})
		sink.set(false, false)
		lines := e.waitDelivered(t, 20)
		testserver.Eventually(t, time.Minute, func() error {
			if !b.Healthy() {
				return errors.New("not healthy again")
			}
			return nil
		})
		require.NoError(t, stop())
		requireExactlyOnce(t, lines, map[string]int{"acme": 10, "globex": 10})
	})
}

func TestALargeBacklogTakesTurnsWithOtherTenants(t *testing.T) {
	forEachSource(t, func(t *testing.T, e *env) {
		big := make([]sessionlog.Event, 500)
		for i := range 16 {
			for j := range big {
				big[j] = sessionlog.Event{Type: "t", Data: fmt.Appendf(nil, `{"i":%d}`, i*500+j)}
			}
			_, err := e.src.Append(context.Background(), sessionlog.ThreadKey{Tenant: "big", Thread: "t"}, big)
			require.NoError(t, err)
		}
		sink, err := jsonl.NewFiles(e.dir)
		require.NoError(t, err)
		_, stop := e.run(t, bridge.Config{Sink: sink, CatchUpConcurrency: 1, CatchUpChunk: 100, BatchSize: 20})
		// The big tenant holds the only catch-up slot when the small one
		// arrives.
		e.waitDelivered(t, 1)
		e.appendEvents(t, "small", 1, 10)
		lines := e.waitDelivered(t, 8_010)
		require.NoError(t, stop())
		requireExactlyOnce(t, lines, map[string]int{"big": 8_000, "small": 10})
		lastSmall, lastBig := 0, 0
		for i, l := range lines {
			if l.Tenant == "small" {
				lastSmall = i
			} else {
				lastBig = i
			}
		}
		// In turns of 100 events, the small tenant is done long before the
		// big backlog is.
		require.Less(t, lastSmall, lastBig, "the small tenant waited for the big backlog")
	})
}

func countTenant(lines []line, tenant string) int {
	n := 0
	for _, l := range lines {
		if l.Tenant == tenant {
			n++
		}
	}
	return n
}

func TestLagIsZeroWhenTheLastEventsWereArchivedBeforeTheBridgeReadThem(t *testing.T) {
	forEachSource(t, func(t *testing.T, e *env) {
		e.appendEvents(t, "acme", 1, 5)
		_, stop := e.start(t)
		e.waitDelivered(t, 5)
		stop()
		k := sessionlog.ThreadKey{Tenant: "acme", Thread: "gone"}
		evs := make([]sessionlog.Event, 5)
		for i := range evs {
			evs[i] = sessionlog.Event{Type: "t"}
		}
		last, err := e.src.Append(context.Background(), k, evs)
		require.NoError(t, err)
		_, err = e.src.ArchiveBefore(context.Background(), k, last)
		require.NoError(t, err)
		b, stop := e.start(t)
		defer stop()
		testserver.Eventually(t, time.Minute, func() error {
			if lag, ok := b.Lag()["acme"]; !ok || lag != 0 {
				return fmt.Errorf("lag %d (known %v)", lag, ok)
			}
			return nil
		})
	})
}
