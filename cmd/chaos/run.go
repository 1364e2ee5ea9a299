package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
)

// violationsError is returned when the checker found violations.
type violationsError struct{ n int }

func (e *violationsError) Error() string {
	return fmt.Sprintf("the checker found %d violations", e.n)
}

// setupError is a run that could not be carried out (no server, a cluster
// that never formed): nothing was checked.
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// warmup is how long the workload runs before the first fault, and settle
// how long after the last one before appends stop.
const (
	warmup = 2 * time.Second
	settle = 3 * time.Second
)

// run is the whole command: parse flags, run the scenario, print the
// summary. It returns a *violationsError when the checker found any.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	s, err := scenario(ctx, cfg, log)
	if err != nil {
		return err
	}
	return finish(cfg, s, stdout)
}

// finish prints the summary as asked and turns violations into an error.
func finish(cfg config, s *summary, stdout io.Writer) error {
	if cfg.JSONPath != "" {
		if err := writeSummaryJSON(cfg.JSONPath, stdout, s); err != nil {
			return err
		}
	}
	if cfg.JSONPath != "-" {
		writeHuman(stdout, s)
	}
	if !s.OK {
		return &violationsError{s.Violations}
	}
	return nil
}

func writeSummaryJSON(path string, stdout io.Writer, s *summary) error {
	if path == "-" {
		return writeJSON(stdout, s)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeJSON(f, s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scenario runs servers, workload and faults, then checks the history.
func scenario(ctx context.Context, cfg config, log *slog.Logger) (*summary, error) {
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	started := time.Now()
	replay := replayCommand(cfg)
	log.Info("chaos run", "seed", cfg.Seed, "replay", replay)

	bin, err := findServer(ctx, log, cfg.ServerBin)
	if err != nil {
		return nil, &setupError{err}
	}
	version, err := serverBinaryVersion(ctx, bin)
	if err != nil {
		return nil, &setupError{err}
	}
	if version != serverVersion {
		log.Warn("nats-server is not the release the project is tested with", "binary", bin, "version", version, "tested", serverVersion)
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "jetsession-chaos-"); err != nil {
			return nil, &setupError{err}
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, &setupError{err}
	}
	keep := cfg.Keep
	defer func() {
		if keep {
			log.Info("servers' configs, data and logs kept", "dir", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	cl, err := newCluster(clusterConfig{bin: bin, dir: dir, nodes: 3, syncAlways: cfg.SyncAlways}, log)
	if err != nil {
		return nil, &setupError{err}
	}
	if err := cl.start(ctx, cfg.HealTimeout); err != nil {
		keep = true
		return nil, &setupError{fmt.Errorf("starting the cluster: %w", err)}
	}
	defer cl.stop()
	log.Info("cluster up", "nodes", strings.Join(cl.urls(0), ","), "server", version)

	rng := newRand(uint64(cfg.Seed))
	tenants := make([]string, cfg.Tenants)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("chaos-%d", i)
	}
	w := newWorkload(cfg, cl, log, tenants, uint64(cfg.Seed))
	defer w.close()
	if err := w.open(); err != nil {
		return nil, &setupError{err}
	}
	streams := map[string]string{}
	for _, t := range tenants {
		ectx, cancel := context.WithTimeout(ctx, cfg.HealTimeout)
		err := w.nodeLogs[0].EnsureTenant(ectx, t)
		cancel()
		if err != nil {
			return nil, &setupError{fmt.Errorf("creating tenant %s: %w", t, err)}
		}
		streams[w.nodeLogs[0].StreamConfig(t).Name] = t
	}
	inj := &injector{cfg: cfg, cl: cl, log: log, rng: rng, tenants: tenants, streams: streams, onFault: w.faultProbes, clients: w.clientConns}
	for _, t := range tenants {
		if _, err := inj.leaderOf(ctx, t); err != nil {
			return nil, &setupError{err}
		}
	}

	tailCtx, stopTails := context.WithCancel(ctx)
	defer stopTails()
	if err := w.start(ctx, tailCtx); err != nil {
		return nil, &setupError{err}
	}
	sleepCtx(ctx, warmup)
	faults := inj.run(ctx)
	if err := cl.waitHealthy(ctx, cfg.HealTimeout); err != nil {
		log.Warn("the cluster is not healthy after the faults; checking anyway", "err", err)
	}
	sleepCtx(ctx, settle)
	log.Info("faults done; finishing appends in flight", "faults", len(faults))
	w.stopAppends()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	h := w.history()
	h.Faults = faults
	finalRead(ctx, cfg, w.nodeLogs[1], h, log)
	waitTails(ctx, cfg, w, h, log)
	stopTails()
	w.tailsWG.Wait()
	h.Tails = w.history().Tails

	tenantStreams := map[string]bool{}
	for s := range streams {
		tenantStreams[s] = true
	}
	for i, a := range w.adv.perFault(faults, tenantStreams) {
		faults[i].API = &a
	}
	_, _, advTypes := w.adv.snapshot()
	res := check(h)
	figs, goals := figures(h)
	var kinds []faultKind
	for _, f := range faults {
		kinds = append(kinds, f.Kind)
	}
	s := &summary{
		Seed: cfg.Seed, Replay: replay, Config: cfg, ServerVersion: version, Started: started,
		ElapsedSec:    time.Since(started).Seconds(),
		FaultsPlanned: countKinds(inj.plan()), FaultsDone: countKinds(kinds), Faults: faults,
		Workload: workloadStats(h, w.errKinds), Checker: res, Violations: res.violations(),
		Latency: figs, Goals: goals, Slowest: slowest(h, 10), SlowestTail: slowestTail(h, 10), Advisories: advTypes,
	}
	s.OK = s.Violations == 0
	if !s.OK {
		keep = true
	}
	return s, nil
}

// newRand is the fault schedule's random source for a seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

// replayCommand is the command line that replays this run's schedule.
func replayCommand(cfg config) string {
	d := defaultConfig()
	args := []string{"go run ./cmd/chaos", fmt.Sprintf("--seed %d", cfg.Seed)}
	add := func(name string, v, def any) {
		if v != def {
			args = append(args, fmt.Sprintf("--%s %v", name, v))
		}
	}
	add("kills", cfg.Kills, d.Kills)
	add("pauses", cfg.Pauses, d.Pauses)
	add("cluster-kills", cfg.ClusterKills, d.ClusterKills)
	add("client-faults", cfg.ClientFaults, d.ClientFaults)
	add("duration", cfg.Duration, d.Duration)
	add("down", cfg.Down, d.Down)
	add("pause-for", cfg.PauseFor, d.PauseFor)
	add("tenants", cfg.Tenants, d.Tenants)
	add("threads", cfg.Threads, d.Threads)
	add("writers", cfg.Writers, d.Writers)
	add("rate", cfg.Rate, d.Rate)
	add("batch-ratio", cfg.BatchRatio, d.BatchRatio)
	add("max-batch", cfg.MaxBatch, d.MaxBatch)
	add("payload", cfg.Payload, d.Payload)
	if cfg.SyncAlways {
		args = append(args, "--sync-always")
	}
	if !cfg.CreateProbe {
		args = append(args, "--create-probe=false")
	}
	return strings.Join(args, " ")
}

// finalRead reads every thread anything was appended to, through another
// Log than the writers', retrying failed reads for --op-timeout.
func finalRead(ctx context.Context, cfg config, l *jetstream.Log, h *history, log *slog.Logger) {
	keys := map[sessionlog.ThreadKey]bool{}
	for _, o := range h.Ops {
		keys[sessionlog.ThreadKey{Tenant: o.Tenant, Thread: o.Thread}] = true
	}
	for _, t := range h.Tails {
		if t.Thread != "" {
			keys[sessionlog.ThreadKey{Tenant: t.Tenant, Thread: t.Thread}] = true
		}
	}
	h.Final = map[string]map[string][]stored{}
	for key := range keys {
		recs, err := readThread(ctx, cfg, l, key)
		if err != nil {
			log.Error("final read failed", "tenant", key.Tenant, "thread", key.Thread, "err", err)
			h.Unreadable = append(h.Unreadable, key.Tenant+"/"+key.Thread)
			continue
		}
		if h.Final[key.Tenant] == nil {
			h.Final[key.Tenant] = map[string][]stored{}
		}
		out := make([]stored, len(recs))
		for i, r := range recs {
			out[i] = stored{Ordinal: r.Ordinal, ID: r.ID, Token: tokenOf(r.Data)}
		}
		h.Final[key.Tenant][key.Thread] = out
	}
}

func readThread(ctx context.Context, cfg config, l *jetstream.Log, key sessionlog.ThreadKey) ([]sessionlog.Record, error) {
	deadline := time.Now().Add(cfg.OpTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, cfg.AttemptTimeout)
		recs, err := l.LoadSince(actx, key, 0)
		cancel()
		if err == nil || errors.Is(err, sessionlog.ErrCorruptEvent) || ctx.Err() != nil || time.Now().After(deadline) {
			return recs, err
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// waitTails waits until every tail yielded the last stored event of its
// scope, or --settle-timeout.
func waitTails(ctx context.Context, cfg config, w *workload, h *history, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, cfg.SettleTimeout)
	defer cancel()
	for _, t := range w.tails {
		var head uint64
		for thread, recs := range h.Final[t.log.Tenant] {
			if (t.log.Thread == "" || thread == t.log.Thread) && len(recs) > 0 {
				head = max(head, recs[len(recs)-1].Ordinal)
			}
		}
		for t.top.Load() < head && ctx.Err() == nil {
			sleepCtx(ctx, 50*time.Millisecond)
		}
		if t.top.Load() < head {
			log.Warn("tail did not reach the head", "tail", t.log.Name, "at", t.top.Load(), "head", head)
		}
	}
}
