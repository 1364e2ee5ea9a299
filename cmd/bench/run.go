package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/pgtest"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// scenario is one named measurement.
type scenario struct {
	name  string
	about string
	// iters and smokeIters are the interleaved pairs per repetition, for
	// scenarios that repeat one operation; 0 when sizes come from other
	// flags.
	iters, smokeIters int
	// isolated scenarios start their own fresh servers (or, with --nats,
	// their own connection), so that memory readings are theirs alone.
	isolated  bool
	byDefault bool
	run       func(ctx context.Context, r *runner, t *target) (*outcome, error)
}

// outcome is what a scenario measured: the metrics of each repetition
// (medians over repetitions are reported) and notes for the reader.
type outcome struct {
	reps  [][]metric
	notes []string
}

func (o *outcome) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

// runner holds the run's configuration and its shared state.
type runner struct {
	cfg    config
	stderr io.Writer
	id     string // makes stream names unique, for shared servers
	tmp    string // temporary folder of the run's servers

	current *scenario

	// The run's PostgreSQL, started by the first scenario that needs it.
	pg      *pgtest.Server
	pgErr   error
	pgTried bool
	// cleanups run at the end of the run, last first.
	cleanups []func()
}

func (r *runner) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
	if r.pg != nil {
		r.pg.Stop()
		r.pg = nil
	}
}

// pairs is the number of interleaved pairs per repetition of the running
// scenario.
func (r *runner) pairs() int {
	s := r.current
	switch {
	case r.cfg.iters > 0:
		return r.cfg.iters
	case r.cfg.smoke:
		return s.smokeIters
	default:
		return s.iters
	}
}

// report is the whole run, as written with --json.
type report struct {
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"`
	Args        []string  `json:"args"`
	Go          string    `json:"go"`
	OS          string    `json:"os"`
	CPUs        int       `json:"cpus"`
	Server      string    `json:"server"`
	Replicas    int       `json:"replicas"`
	Payload     int       `json:"payload_bytes"`
	Reps        int       `json:"reps"`
	Smoke       bool      `json:"smoke"`
	Scenarios   []result  `json:"scenarios"`
	GoalsMissed []string  `json:"goals_missed"`
}

// result is one scenario's aggregated metrics.
type result struct {
	Name    string   `json:"name"`
	About   string   `json:"about"`
	Seconds float64  `json:"seconds"`
	Metrics []metric `json:"metrics"`
	Notes   []string `json:"notes,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	if cfg.list {
		return listScenarios(stdout, cfg)
	}
	started := time.Now()
	id := make([]byte, 3)
	rand.Read(id)
	r := &runner{cfg: cfg, stderr: stderr, id: hex.EncodeToString(id)}
	if r.tmp, err = os.MkdirTemp("", "jetsession-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(r.tmp)
	defer r.close()

	rep := report{
		Started: started.UTC(), Args: args, Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		CPUs: runtime.NumCPU(), Replicas: cfg.replicas, Payload: cfg.payload, Reps: cfg.reps, Smoke: cfg.smoke,
		Server: "nats-server v" + server.VERSION + " (embedded, in this process)",
	}
	switch {
	case cfg.natsURL != "":
		rep.Server = "external server at --nats"
	case cfg.cluster:
		rep.Server = "nats-server v" + server.VERSION + " (3-node cluster, in this process)"
	}

	fmt.Fprintf(stderr, "bench: %s, R%d, %d CPUs, %d-byte payloads, %d repetitions, %d scenarios\n",
		rep.Server, cfg.replicas, runtime.NumCPU(), cfg.payload, cfg.reps, len(cfg.scenarios))

	// The shared target serves every scenario but the isolated ones; it is
	// started on first use and stopped before the isolated ones run, so
	// that their memory readings do not include it.
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var shared *target
	defer func() {
		if shared != nil {
			shared.close()
		}
	}()
	for i, name := range cfg.scenarios {
		s := findScenario(name)
		var t *target
		if s.isolated {
			if shared != nil {
				shared.close()
				shared = nil
			}
		} else {
			if shared == nil {
				if shared, err = r.sharedTarget(ctx); err != nil {
					return err
				}
				if cfg.natsURL != "" {
					rep.Server = "nats-server v" + shared.nc.ConnectedServerVersion() + " at --nats"
				}
			}
			t = shared
		}
		begin := time.Now()
		r.current = s
		out, err := s.run(ctx, r, t)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		res := result{Name: name, About: s.about, Seconds: time.Since(begin).Seconds(), Metrics: aggregate(out.reps), Notes: out.notes}
		rep.Scenarios = append(rep.Scenarios, res)
		fmt.Fprintf(stderr, "bench: [%d/%d] %-12s %6.1fs  %s\n", i+1, len(cfg.scenarios), name, res.Seconds, headline(res))
	}
	rep.Seconds = time.Since(started).Seconds()
	for _, res := range rep.Scenarios {
		for _, m := range res.Metrics {
			if m.Goal != nil && !m.Met {
				rep.GoalsMissed = append(rep.GoalsMissed, fmt.Sprintf("%s: %s vs %s = %.2f (goal %s %.2f)", res.Name, m.Name, m.Twin, m.Ratio, m.Goal.Op, m.Goal.Value))
			}
		}
	}
	if err := writeTable(stdout, rep, cfg.format); err != nil {
		return err
	}
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing --json: %w", err)
		}
	}
	fmt.Fprintf(stderr, "bench: done in %.1fs\n", rep.Seconds)
	return nil
}

func listScenarios(w io.Writer, cfg config) error {
	fmt.Fprintln(w, "Scenarios, in the order they run (all run by default):")
	for _, s := range allScenarios {
		size := ""
		if s.iters > 0 {
			size = fmt.Sprintf(" [%d pairs per repetition, --smoke %d]", s.iters, s.smokeIters)
		}
		fmt.Fprintf(w, "  %-13s %s%s\n", s.name, s.about, size)
	}
	_, err := fmt.Fprintf(w, "\nscale: --tenants %d --threads %d; memory: --memory-threads %s --memory-events %d; catchup: --catchup-events %d\n",
		cfg.tenants, cfg.threads, joinInts(cfg.memThreads), cfg.memEvents, cfg.catchup)
	return err
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

// target is a connection to the servers under test with a library Log and
// the means to make raw twins of its streams.
type target struct {
	nc       *nats.Conn
	js       natsjs.JetStream
	log      *jetstream.Log
	scheme   subjects.Scheme // the library's streams
	raw      subjects.Scheme // raw twin streams, names of the same length
	replicas int
	payload  []byte
	servers  *servers // nil when the servers are not ours to measure
	stop     func()
	deleteAt bool // delete our streams when closing (a shared, external server)
}

// newTarget connects to url and builds the Log the scenarios measure.
func (r *runner) newTarget(url, tag string) (*target, error) {
	nc, err := nats.Connect(url, nats.Name("jetsession-bench"), nats.Timeout(10*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	scheme := subjects.Scheme{SubjectPrefix: "jsb" + tag + r.id, StreamPrefix: "jsb" + tag + r.id + "-"}
	raw := subjects.Scheme{SubjectPrefix: "raw" + tag + r.id, StreamPrefix: "raw" + tag + r.id + "-"}
	log, err := jetstream.New(nc, jetstream.WithScheme(scheme), jetstream.WithReplicas(r.cfg.replicas))
	if err != nil {
		nc.Close()
		return nil, err
	}
	payload := make([]byte, r.cfg.payload)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	return &target{nc: nc, js: js, log: log, scheme: scheme, raw: raw, replicas: r.cfg.replicas, payload: payload, stop: nc.Close}, nil
}

// sharedTarget starts (or connects to) the servers of the per-operation
// scenarios.
func (r *runner) sharedTarget(ctx context.Context) (*target, error) {
	if r.cfg.natsURL != "" {
		t, err := r.newTarget(r.cfg.natsURL, "s")
		if err != nil {
			return nil, err
		}
		t.deleteAt = true
		return t, nil
	}
	srvs, err := startInProcess(ctx, r.tmp, r.cfg.cluster)
	if err != nil {
		return nil, err
	}
	t, err := r.newTarget(srvs.urls[0], "s")
	if err != nil {
		srvs.close()
		return nil, err
	}
	// Removing the store once the servers stop spares the isolated
	// scenarios that follow the writeback of its gigabyte of messages.
	t.stop = func() {
		t.nc.Close()
		srvs.close()
		for _, dir := range srvs.storeDirs {
			os.RemoveAll(dir)
		}
	}
	return t, nil
}

// isolatedTarget starts fresh servers in their own processes, so that their
// memory can be read apart from the client's; with --nats it makes a new
// connection to the given servers instead.
func (r *runner) isolatedTarget(ctx context.Context, tag string) (*target, error) {
	if r.cfg.natsURL != "" {
		t, err := r.newTarget(r.cfg.natsURL, tag)
		if err != nil {
			return nil, err
		}
		t.deleteAt = true
		t.servers = &servers{pids: r.cfg.serverPIDs}
		return t, nil
	}
	nodes := 1
	if r.cfg.cluster {
		nodes = 3
	}
	srvs, err := startChildren(ctx, r.tmp, nodes)
	if err != nil {
		return nil, err
	}
	t, err := r.newTarget(srvs.urls[0], tag)
	if err != nil {
		srvs.close()
		return nil, err
	}
	t.servers = srvs
	t.stop = func() {
		t.nc.Close()
		srvs.close()
		for _, dir := range srvs.storeDirs {
			os.RemoveAll(dir)
		}
	}
	return t, nil
}

// close deletes the run's streams from a server that is not ours, then
// disconnects and stops the servers we started.
func (t *target) close() {
	if t.deleteAt {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		names := t.js.StreamNames(ctx)
		var ours []string
		for name := range names.Name() {
			if strings.HasPrefix(name, t.scheme.StreamPrefix) || strings.HasPrefix(name, t.raw.StreamPrefix) {
				ours = append(ours, name)
			}
		}
		for _, name := range ours {
			_ = t.js.DeleteStream(ctx, name)
		}
	}
	t.stop()
}

// rawStream creates the raw twin of tenant's stream: the library's stream
// configuration under the raw scheme's name and subjects.
func (t *target) rawStream(ctx context.Context, tenant string) (stream string, err error) {
	cfg := t.log.StreamConfig(tenant)
	cfg.Name = t.raw.Stream(tenant)
	cfg.Subjects = []string{t.raw.TenantFilter(tenant)}
	cfg.Description = "jetsession-bench raw twin"
	if _, err := t.js.CreateStream(ctx, cfg); err != nil {
		return "", fmt.Errorf("creating raw stream %s: %w", cfg.Name, err)
	}
	return cfg.Name, nil
}
