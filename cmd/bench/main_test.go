package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jetsession/jetsession/internal/testserver"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestMain lets this test binary serve as the server child that the
// isolated scenarios start, as the command's own binary does.
func TestMain(m *testing.M) {
	if serveChildIfAsked() {
		return
	}
	os.Exit(m.Run())
}

// runBench runs the command in-process and returns its report.
func runBench(t *testing.T, args ...string) (report, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append(args, "--json", path), &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var rep report
	require.NoError(t, json.Unmarshal(b, &rep))
	return rep, stdout.String(), stderr.String()
}

// checkReport checks that every scenario named is in the table, the JSON
// and the progress lines, with positive numbers. Timings are never compared.
func checkReport(t *testing.T, rep report, stdout, stderr string, names []string) {
	t.Helper()
	require.Len(t, rep.Scenarios, len(names))
	for i, name := range names {
		res := rep.Scenarios[i]
		require.Equal(t, name, res.Name)
		require.NotEmpty(t, res.Metrics, name)
		require.NotEmpty(t, res.Notes, name)
		require.Contains(t, stdout, "\n"+name+" ", "table row of %s", name)
		require.Contains(t, stderr, "] "+name+" ", "progress line of %s", name)
		for _, m := range res.Metrics {
			if !m.Signed {
				require.Greater(t, m.Lib, 0.0, "%s: %s", name, m.Name)
			}
			if m.Twin != "" {
				require.Greater(t, m.Raw, 0.0, "%s: %s vs %s", name, m.Name, m.Twin)
				require.Greater(t, m.Ratio, 0.0, "%s: %s vs %s", name, m.Name, m.Twin)
			}
		}
	}
	require.Greater(t, rep.Seconds, 0.0)
	require.Contains(t, stdout, "LIB/TWIN")
}

func TestSmokeRunsEveryScenario(t *testing.T) {
	rep, stdout, stderr := runBench(t, "--smoke")
	checkReport(t, rep, stdout, stderr, scenarioNames())
	require.Equal(t, 1, rep.Replicas)
	require.True(t, rep.Smoke)

	// The headline comparisons are there, with the second raw twin of a
	// single-event append.
	byName := map[string]result{}
	for _, res := range rep.Scenarios {
		byName[res.Name] = res
	}
	twins := map[string]bool{}
	for _, m := range byName["append1"].Metrics {
		twins[m.Twin] = true
	}
	require.True(t, twins[twinBare] && twins[twinHeaders], "append1 twins: %v", twins)
	has := func(scenario, prefix string) {
		for _, m := range byName[scenario].Metrics {
			if strings.HasPrefix(m.Name, prefix) {
				return
			}
		}
		t.Errorf("%s has no %q metric", scenario, prefix)
	}
	has("hydrate", "hydrate 20, LoadSince(0) p50")
	has("hydrate", "fallback: no replica serves direct gets")
	checkHydrate(t, byName["hydrate"])
	has("scale", "append over 5 tenants p99")
	has("scale", "disk per event")
	has("scale", "server RSS per empty tenant stream")
	has("memory", "server RSS per 1,000 threads")
	has("memory", "client RSS per 1,000,000 events")
	has("memory", "server RSS per 1,000,000 events, IDs out of the duplicate window")
}

// checkHydrate checks that the hydrate scenario compared the library with
// the fastest raw path and with PostgreSQL, or said why PostgreSQL was
// skipped (never outside CI: there a missing PostgreSQL fails the run).
func checkHydrate(t *testing.T, res result) {
	t.Helper()
	twins := map[string]bool{}
	for _, m := range res.Metrics {
		twins[m.Twin] = true
	}
	require.True(t, twins["fastest raw path"] && twins["raw direct-get chain"] && twins["raw ordered consumer"], "hydrate twins: %v", twins)
	notes := strings.Join(res.Notes, "; ")
	if !twins["PostgreSQL SELECT"] {
		require.Contains(t, notes, "PostgreSQL peer SKIPPED", "hydrate has neither PostgreSQL rows nor a reason")
		require.Empty(t, os.Getenv("CI"), "PostgreSQL skipped in CI")
	}
}

func TestSmokeOnAClusterInProcessAndInChildren(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two 3-node clusters")
	}
	names := []string{"append1", "append10", "load1000", "hydrate", "tail", "archive", "scale"}
	rep, stdout, stderr := runBench(t, "--smoke", "--cluster", "--reps", "1", "--scenarios", strings.Join(names, ","))
	checkReport(t, rep, stdout, stderr, names)
	checkHydrate(t, rep.Scenarios[3])
	require.Equal(t, 3, rep.Replicas)
	require.Contains(t, rep.Server, "3-node cluster")
}

func TestSmokeAgainstAServerAtURL(t *testing.T) {
	node := testserver.Start(t)
	names := []string{"append1", "load10", "catchup", "memory"}
	// The server runs in this test process: its pid stands in for a server's.
	rep, stdout, stderr := runBench(t, "--smoke", "--reps", "1", "--nats", node.URL(),
		"--server-pid", strconv.Itoa(os.Getpid()), "--scenarios", "memory,load10,append1,catchup")
	checkReport(t, rep, stdout, stderr, names)
	require.Contains(t, rep.Server, "at --nats")

	// The run leaves no stream behind on a server that is not its own.
	nc := node.Connect(t)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	var left []string
	for name := range js.StreamNames(context.Background()).Name() {
		left = append(left, name)
	}
	require.Empty(t, left)
}

func TestMarkdownTable(t *testing.T) {
	_, stdout, _ := runBench(t, "--smoke", "--reps", "1", "--scenarios", "append1", "--format", "markdown")
	require.Contains(t, stdout, "| scenario | measure | library | twin | twin value | lib/twin | goal |")
	require.Contains(t, stdout, "| append1 | append p50 |")
}

func TestListNamesEveryScenario(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--list"}, &stdout, &stderr))
	for _, name := range scenarioNames() {
		require.Contains(t, stdout.String(), "  "+name+" ")
	}
}

func TestBadFlagsAreRefusedClearly(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenarios", "append1,nope"}, `unknown scenario "nope" (known: append1, append10`},
		{[]string{"--scenarios", ","}, "--scenarios names no scenario"},
		{[]string{"--reps", "0"}, "--reps must be at least 1, got 0"},
		{[]string{"--iters", "-3"}, "--iters must be at least 0, got -3"},
		{[]string{"--payload", "0"}, "--payload must be at least 1"},
		{[]string{"--tenants", "0"}, "--tenants must be at least 1"},
		{[]string{"--replicas", "3"}, "--replicas 3 needs a cluster: add --cluster"},
		{[]string{"--replicas", "7", "--nats", "nats://127.0.0.1:1"}, "--replicas must be 1 to 5, got 7"},
		{[]string{"--cluster", "--nats", "nats://127.0.0.1:1"}, "--cluster and --nats exclude each other"},
		{[]string{"--server-pid", "12"}, "--server-pid only applies with --nats"},
		{[]string{"--server-pid", "x", "--nats", "nats://127.0.0.1:1"}, `--server-pid "x": "x" is not a positive whole number`},
		{[]string{"--memory-threads", "10,ten"}, `--memory-threads "10,ten": "ten" is not a positive whole number`},
		{[]string{"--format", "html"}, "--format must be text or markdown"},
		{[]string{"append1"}, `unexpected argument "append1"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			var ue usageError
			require.True(t, errors.As(err, &ue), "a usage error: %v", err)
			require.Empty(t, stdout.String(), "nothing measured")
		})
	}
	// Every problem is reported at once.
	err := run(context.Background(), []string{"--reps", "0", "--payload", "0"}, &bytes.Buffer{}, &bytes.Buffer{})
	require.ErrorContains(t, err, "--reps")
	require.ErrorContains(t, err, "--payload")
}
