package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// serverOrSkip finds (or installs) nats-server. Without one the test fails
// in CI and skips elsewhere.
func serverOrSkip(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := findServer(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), "")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and nats-server %s cannot be found or installed: %v", serverVersion, err)
		}
		t.Skipf("nats-server %s cannot be found or installed (install it with `go install github.com/nats-io/nats-server/v2@%s`): %v", serverVersion, serverVersion, err)
	}
	return bin
}

// TestTinyChaosRunFindsNoViolation runs the command in-process against
// three real nats-server processes: two leader kills, then the checker.
// Timings are never judged; only the checker's categories are.
func TestTinyChaosRunFindsNoViolation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes and kills leaders for about half a minute")
	}
	bin := serverOrSkip(t)
	var stdout, stderr bytes.Buffer
	args := []string{
		"--nats-server", bin, "--seed", "15", "--json", "-",
		"--kills", "2", "--pauses", "0", "--cluster-kills", "0", "--client-faults", "1", "--duration", "20s",
		"--tenants", "1", "--threads", "3", "--writers", "2", "--rate", "10",
	}
	err := run(context.Background(), args, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), tail(stderr.String(), 40))
	}
	var s summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("the --json - summary does not decode: %v\n%s", err, stdout.String())
	}
	if !s.OK || s.Violations != 0 {
		t.Fatalf("violations: %+v", s.Checker)
	}
	if s.Seed != 15 || !strings.Contains(s.Replay, "--seed 15") {
		t.Errorf("seed %d, replay %q: want seed 15 in both", s.Seed, s.Replay)
	}
	if got := s.FaultsDone[faultLeaderKill]; got != 2 {
		t.Errorf("%d leader kills done, want 2", got)
	}
	if got := s.FaultsDone[faultClientReconnect]; got != 1 {
		t.Errorf("%d client faults done, want 1", got)
	}
	for _, c := range categories {
		if _, ok := s.Checker.Counts[c]; !ok {
			t.Errorf("category %s missing from the summary", c)
		}
	}
	if s.Workload.Acked == 0 || s.Workload.Probes == 0 || s.Workload.TailDeliveries == 0 || s.Workload.StoredEvents == 0 {
		t.Errorf("the workload did too little to check anything: %+v", s.Workload)
	}
	figs := map[string]dist{}
	for _, f := range s.Latency {
		figs[f.Name] = f.dist
	}
	for _, name := range []string{"append", "tail_delay", "election_leader_kill", "append_recovery", "raw_publish_recovery", "client_reconnected", "client_append_recovery"} {
		if figs[name].N == 0 {
			t.Errorf("figure %s has no sample", name)
		}
	}
}

func TestFinishFailsOnViolationsOnly(t *testing.T) {
	s := &summary{Checker: &checkResult{Counts: map[category]int{catLost: 0}}, OK: true,
		Latency: []figure{{Name: "append", dist: dist{N: 1, P50: 1e6, P99: 1e6, Max: 1e6}}},
		Goals:   []goalResult{{Goal: "tail delay", Figure: 1e9, Limit: 1, Met: false}}}
	var out bytes.Buffer
	if err := finish(config{}, s, &out); err != nil {
		t.Fatalf("missed latency goals failed the run: %v", err)
	}
	if !strings.Contains(out.String(), "result: OK") {
		t.Errorf("human summary lacks the result:\n%s", out.String())
	}
	s.Checker.Counts[catLost], s.Violations, s.OK = 3, 3, false
	out.Reset()
	err := finish(config{JSONPath: "-"}, s, &out)
	var ve *violationsError
	if !errors.As(err, &ve) || ve.n != 3 || exitCode(err) != 1 {
		t.Fatalf("got %v (exit %d), want 3 violations and exit 1", err, exitCode(err))
	}
	var back summary
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Checker.Counts[catLost] != 3 {
		t.Fatalf("JSON summary: %v, %+v", err, back.Checker)
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{&violationsError{1}, 1},
		{usageError{errors.New("bad")}, 2},
		{&setupError{errors.New("cluster never formed")}, 3},
		{&setupError{fmt.Errorf("%w: offline", ErrNoServer)}, 4},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%v: exit %d, want %d", c.err, got, c.want)
		}
	}
}

func TestFlagsHaveWorkingDefaults(t *testing.T) {
	c, err := parseConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kills < 1 || c.faults() < c.Kills || c.Duration <= 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--kills", "-1"},
		{"--writers", "0"},
		{"--batch-ratio", "1.5"},
		{"--max-batch", "1"},
		{"--max-batch", "5000"},
		{"--duration", "0s"},
		{"--rate", "0"},
		{"--op-timeout", "1s", "--attempt-timeout", "5s"},
		{"--no-such-flag"},
		{"extra"},
	} {
		_, err := parseConfig(args, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) || exitCode(err) != 2 {
			t.Errorf("%q: got %v, want a usage error (exit 2)", args, err)
		}
	}
}

func TestReplayCommandNamesSeedAndChangedFlags(t *testing.T) {
	c := defaultConfig()
	c.Seed, c.Kills, c.SyncAlways = 77, 100, true
	got := replayCommand(c)
	for _, want := range []string{"--seed 77", "--kills 100", "--sync-always"} {
		if !strings.Contains(got, want) {
			t.Errorf("replay %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "--writers") {
		t.Errorf("replay %q repeats a default", got)
	}
}

func TestErrorKindsGroupByShape(t *testing.T) {
	a := errorKind(errors.New(`jetstream: creating stream jetsession-chaos-0 for tenant "chaos-0": context deadline exceeded`))
	b := errorKind(errors.New(`jetstream: creating stream jetsession-chaos-1 for tenant "chaos-1": context deadline exceeded`))
	if a != b {
		t.Fatalf("%q and %q differ", a, b)
	}
}

func TestFaultPlanIsSeededAndComplete(t *testing.T) {
	c := defaultConfig()
	c.Kills, c.Pauses, c.ClusterKills, c.ClientFaults = 5, 2, 2, 1
	plan := func(seed uint64) []faultKind {
		return (&injector{cfg: c, rng: newRand(seed)}).plan()
	}
	a, b := plan(1), plan(1)
	if len(a) != 10 || strings.Join(kindNames(a), ",") != strings.Join(kindNames(b), ",") {
		t.Fatalf("plans %v and %v: want the same 10 faults for one seed", a, b)
	}
	if a[0] == faultClusterKill {
		t.Errorf("plan %v starts with a cluster kill", a)
	}
	if n := countKinds(a); n[faultLeaderKill] != 5 || n[faultPause] != 2 || n[faultClusterKill] != 2 || n[faultClientReconnect] != 1 {
		t.Errorf("plan %v: counts %v", a, n)
	}
}

func kindNames(ks []faultKind) []string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return out
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
