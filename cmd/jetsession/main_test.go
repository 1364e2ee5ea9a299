package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/internal/syncbuf"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// result is what a user sees of one invocation.
type result struct {
	code           int
	stdout, stderr string
}

// env is a fake environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// cli runs one command line the way main does, with stdin not a terminal
// (as in a script), and returns its exit code and output.
func cli(t *testing.T, e env, stdin string, args ...string) result {
	t.Helper()
	return cliFrom(t, e, strings.NewReader(stdin), false, args...)
}

// cliTerminal is cli with stdin a terminal where a person types stdin.
func cliTerminal(t *testing.T, e env, stdin string, args ...string) result {
	t.Helper()
	return cliFrom(t, e, strings.NewReader(stdin), true, args...)
}

func cliFrom(t *testing.T, e env, stdin io.Reader, terminal bool, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut syncbuf.Buffer
	err := run(ctx, args, stdio{getenv: e.get, stdin: stdin, stdout: &out, stderr: &errOut, terminal: terminal})
	code := report(&errOut, err)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// ok runs a command that must succeed and returns its standard output.
func ok(t *testing.T, e env, args ...string) string {
	t.Helper()
	r := cli(t, e, "", args...)
	require.Equal(t, 0, r.code, "jetsession %s: stderr %q", strings.Join(args, " "), r.stderr)
	return r.stdout
}

// background runs a long-lived command (tail, serve) until stop is called.
type background struct {
	stdout, stderr syncbuf.Buffer
	cancel         context.CancelFunc
	done           chan error
}

func start(e env, args ...string) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan error, 1)}
	go func() {
		b.done <- run(ctx, args, stdio{getenv: e.get, stdin: strings.NewReader(""), stdout: &b.stdout, stderr: &b.stderr})
	}()
	return b
}

// stop cancels the command as Ctrl-C does and returns its error.
func (b *background) stop(t *testing.T) error {
	t.Helper()
	b.cancel()
	select {
	case err := <-b.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("command did not stop within 10s of its context ending")
		return nil
	}
}

// waitFor polls w until it holds every want.
func waitFor(t *testing.T, w *syncbuf.Buffer, want ...string) {
	t.Helper()
	testserver.Eventually(t, 10*time.Second, func() error {
		s := w.String()
		for _, x := range want {
			if !strings.Contains(s, x) {
				return fmt.Errorf("%q not in output %q", x, s)
			}
		}
		return nil
	})
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		out = append(out, m)
	}
	return out
}

func newServer(t *testing.T) env {
	srv := testserver.Start(t)
	return env{"NATS_URL": srv.URL()}
}

func TestAppendAndRead(t *testing.T) {
	e := newServer(t)

	// A new tenant needs --create: a typo must not make a stream.
	r := cli(t, e, "", "append", "acme", "support/4711", "--type", "user_message", "--data", `{"text":"hi"}`)
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, `tenant "acme" has no stream`)
	assert.Contains(t, r.stderr, "--create")

	first := ok(t, e, "append", "acme", "support/4711", "--type", "user_message", "--data", `{"text":"hi <there> & you"}`, "--create")
	assert.Equal(t, "1\n", first)
	// Flags may come before the arguments too; --id makes retries no-ops.
	assert.Equal(t, "2\n", ok(t, e, "append", "--type", "model_reply", "--id", "reply-1", "--meta", "model=m1", "--meta", "k=a=b",
		"acme", "support/4711", "--data", `{"role":"assistant","text":"`+strings.Repeat("x", 200)+`"}`))
	assert.Equal(t, "2\n", ok(t, e, "append", "acme", "support/4711", "--type", "model_reply", "--id", "reply-1", "--data", `{}`))
	// @file and standard input.
	file := filepath.Join(t.TempDir(), "payload.json")
	require.NoError(t, os.WriteFile(file, []byte("{\"tool\": \"refund\"}\n"), 0o600))
	assert.Equal(t, "3\n", ok(t, e, "append", "acme", "billing", "--type", "tool_call", "--data", "@"+file))
	r = cli(t, e, `{"ok": true}`, "append", "acme", "billing", "--type", "tool_result", "--data", "-", "--json", "--expect-last", "3")
	require.Equal(t, 0, r.code, r.stderr)
	appended := jsonLines(t, r.stdout)
	require.Len(t, appended, 1)
	assert.Equal(t, float64(4), appended[0]["ordinal"])
	assert.NotEmpty(t, appended[0]["id"])
	// No payload at all is allowed (an interrupt, say).
	assert.Equal(t, "5\n", ok(t, e, "append", "acme", "support/4711", "--type", "interrupt"))

	// "--" ends the flags, for names that start with '-'.
	assert.Equal(t, "6\n", ok(t, e, "append", "--type", "x", "acme", "--", "-dash"))
	assert.Equal(t, "-dash", jsonLines(t, ok(t, e, "load", "--json", "acme", "--", "-dash"))[0]["thread"])

	// A stale --expect-last is a conflict naming the actual last ordinal.
	r = cli(t, e, "", "append", "acme", "support/4711", "--type", "x", "--data", "1", "--expect-last", "2")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, "conflict: the last ordinal of acme/support/4711 is 5, not 2")
	assert.Contains(t, r.stderr, "retry with --expect-last 5")

	t.Run("load", func(t *testing.T) {
		out := ok(t, e, "load", "acme", "support/4711")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4)
		assert.Regexp(t, `^\s*ORDINAL\s+TIME\s+TYPE\s+DATA$`, lines[0])
		assert.Regexp(t, `^\s+1  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  user_message\s+\{"text":"hi <there> & you"\}$`, lines[1])
		assert.Contains(t, lines[2], "model_reply")
		assert.True(t, strings.HasSuffix(lines[2], "…"), "long payloads are trimmed: %q", lines[2])
		assert.Less(t, len([]rune(lines[2][strings.Index(lines[2], "{"):])), 101)
		assert.Regexp(t, `^\s+5  .*  interrupt$`, lines[3])

		recs := jsonLines(t, ok(t, e, "load", "acme", "support/4711", "--json"))
		require.Len(t, recs, 3)
		assert.Equal(t, float64(1), recs[0]["ordinal"])
		assert.Equal(t, "acme", recs[0]["tenant"])
		assert.Equal(t, "support/4711", recs[0]["thread"])
		assert.Equal(t, map[string]any{"text": "hi <there> & you"}, recs[0]["data"])
		assert.Equal(t, "reply-1", recs[1]["event_id"])
		assert.Equal(t, map[string]any{"model": "m1", "k": "a=b"}, recs[1]["meta"])
		_, err := time.Parse(time.RFC3339Nano, recs[1]["time"].(string))
		assert.NoError(t, err)
		assert.NotContains(t, recs[2], "data")

		// --since and --limit, with a hint on how to go on.
		r := cli(t, e, "", "load", "acme", "support/4711", "--since", "1", "--limit", "1", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		recs = jsonLines(t, r.stdout)
		require.Len(t, recs, 1)
		assert.Equal(t, float64(2), recs[0]["ordinal"])
		assert.Contains(t, r.stderr, "continue with --since 2")
		r = cli(t, e, "", "load", "acme", "support/4711", "--since", "5")
		assert.Equal(t, 0, r.code)
		assert.Empty(t, r.stdout)
		assert.Contains(t, r.stderr, "no live events in acme/support/4711 after ordinal 5")
	})

	t.Run("head", func(t *testing.T) {
		out := ok(t, e, "head", "acme", "support/4711")
		assert.Equal(t, "tenant  acme\nthread  support/4711\nfirst   1\nlast    5\ncount   3\n", out)
		h := jsonLines(t, ok(t, e, "head", "acme", "billing", "--json"))
		assert.Equal(t, []map[string]any{{"tenant": "acme", "thread": "billing", "first": 3.0, "last": 4.0, "count": 2.0}}, h)
		h = jsonLines(t, ok(t, e, "head", "acme", "nobody", "--json"))
		assert.Equal(t, 0.0, h[0]["count"])
	})

	t.Run("threads", func(t *testing.T) {
		out := ok(t, e, "threads", "acme")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4)
		assert.Regexp(t, `^THREAD\s+EVENTS\s+LAST ORDINAL\s+LAST TIME\s+LAST TYPE$`, lines[0])
		// Most recently active first.
		assert.Regexp(t, `^-dash\s+1\s+6\s+\d{4}-\S+Z\s+x$`, lines[1])
		assert.Regexp(t, `^support/4711\s+3\s+5\s+\d{4}-\S+Z\s+interrupt$`, lines[2])
		assert.Regexp(t, `^billing\s+2\s+4\s+\S+\s+tool_result$`, lines[3])

		rows := jsonLines(t, ok(t, e, "threads", "acme", "--json"))
		require.Len(t, rows, 3)
		assert.Equal(t, "support/4711", rows[1]["thread"])
		assert.Equal(t, 3.0, rows[1]["events"])
		assert.Equal(t, 5.0, rows[1]["last_ordinal"])
		assert.Equal(t, "interrupt", rows[1]["last_type"])
		assert.Equal(t, "billing", rows[2]["thread"])
		_, err := time.Parse(time.RFC3339Nano, rows[2]["last_time"].(string))
		assert.NoError(t, err)
	})

	t.Run("tenants", func(t *testing.T) {
		ok(t, e, "append", "globex", "t1", "--type", "x", "--data", "{}", "--create")
		out := ok(t, e, "tenants")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 3)
		assert.Regexp(t, `^TENANT\s+EVENTS\s+THREADS\s+LAST ORDINAL\s+BYTES$`, lines[0])
		assert.Regexp(t, `^acme\s+6\s+3\s+6\s+\d+(\.\d)? (B|KiB)$`, lines[1])
		assert.Regexp(t, `^globex\s+1\s+1\s+1\s+`, lines[2])

		rows := jsonLines(t, ok(t, e, "tenants", "--json"))
		require.Len(t, rows, 2)
		assert.Equal(t, "acme", rows[0]["tenant"])
		assert.Equal(t, "jetsession-acme", rows[0]["stream"])
		assert.Equal(t, 6.0, rows[0]["events"])
		assert.Equal(t, 3.0, rows[0]["threads"])
		assert.Equal(t, 6.0, rows[0]["last_ordinal"])
		assert.Greater(t, rows[0]["bytes"], 0.0)
	})
}

// Payloads written by other clients: not JSON, or not even an event.
func TestForeignPayloads(t *testing.T) {
	srv := testserver.Start(t)
	e := env{"NATS_URL": srv.URL()}
	nc := srv.Connect(t)
	log, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "raw"}
	_, err = log.Append(ctx, key, []sessionlog.Event{
		{Type: "blob", Data: []byte{0xff, 0x00, 0x01}},
		{Type: "text", Data: []byte("plain\ntext \x1b[31mred\u202e")},
	})
	require.NoError(t, err)

	out := ok(t, e, "load", "acme", "raw", "--json")
	recs := jsonLines(t, out)
	require.Len(t, recs, 2)
	assert.Equal(t, "/wAB", recs[0]["data_raw"])
	assert.NotContains(t, recs[0], "data")
	// --json prints the JSON record of the bridge's JSON-lines sink.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var row bridge.Row
		require.NoError(t, json.Unmarshal([]byte(line), &row))
		assert.Equal(t, "acme", row.Tenant)
		b, err := row.MarshalJSON()
		require.NoError(t, err)
		assert.Equal(t, line, string(b))
	}

	out = ok(t, e, "load", "acme", "raw")
	assert.Contains(t, out, "<3 bytes of binary data")
	// Control and bidi characters never reach the terminal raw.
	assert.Contains(t, out, `plain\u000atext \u001b[31mred\u202e`)
	assert.NotContains(t, out, "\x1b")

	// A message without the event headers is reported with its ordinal,
	// and the events after it are still printed.
	_, err = nc.Request("jetsession.acme.raw", []byte("{}"), 5*time.Second)
	require.NoError(t, err)
	_, err = log.Append(ctx, key, []sessionlog.Event{{Type: "after", Data: []byte(`{"after":true}`)}})
	require.NoError(t, err)
	r := cli(t, e, "", "load", "acme", "raw")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "skipping ordinal 3 of tenant acme (raw): not a valid event: no Nats-Msg-Id header")
	assert.Contains(t, r.stderr, "nats stream get jetsession-acme 3")
	assert.Contains(t, r.stdout, `{"after":true}`)
}

func TestTailThread(t *testing.T) {
	e := newServer(t)
	ok(t, e, "append", "acme", "t1", "--type", "user_message", "--data", `{"n":1}`, "--create")
	ok(t, e, "append", "acme", "other", "--type", "user_message", "--data", `{"n":2}`)

	tail := start(e, "tail", "acme", "t1")
	waitFor(t, &tail.stdout, `{"n":1}`)
	waitFor(t, &tail.stderr, `following acme/t1 after ordinal 0`)
	ok(t, e, "append", "acme", "t1", "--type", "model_reply", "--data", `{"n":3}`)
	waitFor(t, &tail.stdout, `model_reply       {"n":3}`)
	require.NoError(t, tail.stop(t))
	assert.NotContains(t, tail.stdout.String(), `{"n":2}`, "another thread's event")

	// --json and --since: only what follows, in full.
	tail = start(e, "tail", "acme", "t1", "--since", "3", "--json")
	ok(t, e, "append", "acme", "t1", "--type", "tool_call", "--data", `{"n":4}`, "--meta", "a=b")
	waitFor(t, &tail.stdout, `"ordinal":4`)
	require.NoError(t, tail.stop(t))
	recs := jsonLines(t, tail.stdout.String())
	require.Len(t, recs, 1)
	assert.Equal(t, "t1", recs[0]["thread"])
	assert.Equal(t, map[string]any{"n": 4.0}, recs[0]["data"])
	assert.Equal(t, map[string]any{"a": "b"}, recs[0]["meta"])
}

func TestTailTenant(t *testing.T) {
	e := newServer(t)
	// The tenant does not exist yet: with --wait the tail waits for it.
	tail := start(e, "tail", "acme", "--wait")
	waitFor(t, &tail.stderr, `tenant "acme" has no stream yet`)
	ok(t, e, "append", "acme", "t1", "--type", "user_message", "--data", `{"n":1}`, "--create")
	ok(t, e, "append", "acme", "t2", "--type", "tool_call", "--data", `{"n":2}`)
	waitFor(t, &tail.stdout, "THREAD", `t1                user_message      {"n":1}`, `t2                tool_call         {"n":2}`)
	require.NoError(t, tail.stop(t))

	tail = start(e, "tail", "acme", "--json", "--since", "1")
	ok(t, e, "append", "acme", "t3", "--type", "handoff", "--data", `{"to":"human"}`)
	waitFor(t, &tail.stdout, `"thread":"t3"`)
	require.NoError(t, tail.stop(t))
	recs := jsonLines(t, tail.stdout.String())
	require.Len(t, recs, 2)
	assert.Equal(t, "t2", recs[0]["thread"])
	assert.Equal(t, 3.0, recs[1]["ordinal"])
}

func TestArchive(t *testing.T) {
	e := newServer(t)
	for i := range 4 {
		ok(t, e, "append", "acme", "t1", "--type", "x", "--data", fmt.Sprint(i), "--create")
	}

	// "n" (or anything but y/yes, or nothing) archives nothing.
	r := cliTerminal(t, e, "n\n", "archive", "acme", "t1", "--before", "2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "acme/t1 holds 4 live events, ordinals 1 to 4.")
	assert.Contains(t, r.stderr, "Archive events of acme/t1 up to ordinal 2? [y/N] ")
	assert.Equal(t, "nothing archived\n", r.stdout)
	r = cliTerminal(t, e, "", "archive", "acme", "t1", "--before", "2", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 0.0, jsonLines(t, r.stdout)[0]["archived"])
	assert.Contains(t, ok(t, e, "head", "acme", "t1"), "count   4")

	// Without a terminal there is nobody to ask: --yes is required, and
	// nothing is read or changed.
	for _, stdin := range []string{"", "y\n"} {
		r = cli(t, e, stdin, "archive", "acme", "t1", "--before", "2")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "standard input is not a terminal (pass --yes to archive without asking)")
		assert.Empty(t, r.stdout)
	}
	assert.Contains(t, ok(t, e, "head", "acme", "t1"), "count   4")

	r = cliTerminal(t, e, "y\n", "archive", "acme", "t1", "--before", "2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "archived 2 events of acme/t1 up to ordinal 2\n", r.stdout)
	assert.Contains(t, ok(t, e, "head", "acme", "t1"), "first   3\nlast    4\ncount   2")

	// --yes does not ask; a watermark past the head removes what exists.
	r = cli(t, e, "", "archive", "acme", "t1", "--before", "100", "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "[y/N]")
	assert.Equal(t, []map[string]any{{"tenant": "acme", "thread": "t1", "before": 100.0, "archived": 2.0}}, jsonLines(t, r.stdout))
	assert.Empty(t, strings.TrimSpace(ok(t, e, "load", "acme", "t1")))

	r = cliTerminal(t, e, "", "archive", "acme", "t1", "--before", "100")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "acme/t1 has no live events: nothing to archive\n", r.stdout)
}

func TestBadInput(t *testing.T) {
	e := newServer(t)
	ok(t, e, "append", "acme", "t1", "--type", "x", "--data", "{}", "--create")
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"threads", "nope"}, exitRuntime, `tenant "nope" has no stream (check the name with 'jetsession tenants')`},
		{[]string{"head", "nope", "t1"}, exitRuntime, `tenant "nope" has no stream (check the name with 'jetsession tenants')`},
		{[]string{"load", "nope", "t1"}, exitRuntime, `tenant "nope" has no stream (check the name with 'jetsession tenants')`},
		{[]string{"archive", "nope", "t1", "--before", "1", "--yes"}, exitRuntime, `tenant "nope" has no stream`},
		{[]string{"append", "acme", "t1", "--type", "x", "--data", `{"a":`}, exitUsage, "--data is not valid JSON"},
		{[]string{"append", "acme", "t1", "--type", "x", "--data", `hello`}, exitUsage, "--data is not valid JSON"},
		{[]string{"append", "acme", "t1", "--type", "x", "--data", "-"}, exitUsage, "--data - (standard input) is not valid JSON"},
		{[]string{"append", "acme", "t1", "--type", "x", "--data", "@/does/not/exist"}, exitUsage, "cannot read the payload file"},
		{[]string{"append", "acme", "t1", "--data", "{}"}, exitUsage, "--type is required"},
		{[]string{"append", "acme", "t1", "--type", "x", "--meta", "novalue"}, exitUsage, `--meta "novalue" is not key=value`},
		{[]string{"append", "acme", "t1", "--type", "x", "--expect-last", "-1"}, exitUsage, `--expect-last "-1" is not an ordinal`},
		{[]string{"append", "acme", "t1", "--type", " x"}, exitRuntime, "invalid event"},
		{[]string{"load", "acme", "t1", "--since", "abc"}, exitUsage, `--since "abc" is not an ordinal`},
		{[]string{"load", "acme", "t1", "--limit", "ten"}, exitUsage, `--limit "ten" is not a count`},
		{[]string{"tail", "acme", "--since", "1.5"}, exitUsage, `--since "1.5" is not an ordinal`},
		{[]string{"archive", "acme", "t1", "--before", "x"}, exitUsage, `--before "x" is not an ordinal`},
		{[]string{"archive", "acme", "t1"}, exitUsage, "--before N is required"},
		{[]string{"load", "acme"}, exitUsage, "missing arguments: usage is 'jetsession load TENANT THREAD'"},
		{[]string{"threads"}, exitUsage, "missing arguments"},
		{[]string{"tail"}, exitUsage, "missing arguments"},
		{[]string{"head", "acme", "t1", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"load", "acme", "--", "t1", "--since", "1"}, exitUsage, `unexpected argument "--since": flags go before '--'`},
		{[]string{"load", "acme", "t1", "--sinse", "1"}, exitUsage, "unknown flag --sinse (see 'jetsession load --help')"},
		{[]string{"load", "acme", "t1", "--since"}, exitUsage, "--since needs a value"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate" (see 'jetsession help')`},
		{[]string{"help", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"load", long, "t1"}, exitUsage, "invalid name: tenant"},
		{[]string{"tail", "", "t1"}, exitUsage, `invalid name: tenant "" is empty`},
		{[]string{"tenants", "--timeout", "0s"}, exitUsage, "--timeout must be positive"},
		{[]string{"tenants", "--subject-prefix", "a.*"}, exitUsage, "--subject-prefix"},
		{[]string{"serve", "--listen", "nope"}, exitUsage, `--listen "nope" is not HOST:PORT`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := cli(t, e, "", tc.args...)
			assert.Equal(t, tc.code, r.code, "stderr %q", r.stderr)
			assert.True(t, strings.HasPrefix(r.stderr, "jetsession: "), "stderr %q", r.stderr)
			assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
		})
	}
	// Nothing above changed the thread.
	assert.Contains(t, ok(t, e, "head", "acme", "t1"), "count   1")
	rows := jsonLines(t, ok(t, e, "tenants", "--json"))
	assert.Len(t, rows, 1, "no tenant was created by a failed command")
}

func TestConnectionErrors(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "nats://app:s3cret@" + ln.Addr().String()
	ln.Close()
	r := cli(t, env{}, "", "tenants", "--nats", url, "--timeout", "2s")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, "cannot connect to NATS at nats://app:xxxxx@127.0.0.1:")
	assert.Contains(t, r.stderr, "'jetsession serve'")
	assert.Contains(t, r.stderr, "--nats")
	assert.NotContains(t, r.stderr, "s3cret")

	// The default URL comes from NATS_URL.
	r = cli(t, env{"NATS_URL": "nats://" + ln.Addr().String()}, "", "tenants", "--timeout", "2s")
	assert.Contains(t, r.stderr, "cannot connect to NATS at nats://"+ln.Addr().String())

	// Bad connection settings are command-line mistakes, found before
	// connecting.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--creds", filepath.Join(t.TempDir(), "missing.creds")}, "--creds: open "},
		{[]string{"--nkey", filepath.Join(t.TempDir(), "missing.nk")}, "--nkey: open "},
		{[]string{"--inbox-prefix", "_INBOX.*"}, `--inbox-prefix: "_INBOX.*" holds a wildcard`},
		{[]string{"--nats", "nats://no such host"}, "--nats: "},
		{[]string{"--tls-cert", "cert.pem"}, "--tls-key: --tls-cert needs its key (add --tls-key)"},
		{[]string{"--password", "pw"}, "--password: a password needs a user (add --user)"},
	} {
		r = cli(t, env{}, "", append([]string{"tenants"}, tc.args...)...)
		assert.Equal(t, exitUsage, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.want)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	}

	// A server with users: wrong or missing credentials, then right ones
	// from flags and from the environment.
	srv := testserver.Start(t, func(o *server.Options) { o.Username, o.Password = "ops", "pw" })
	r = cli(t, env{"NATS_URL": srv.URL()}, "", "tenants")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, "refused the credentials")
	assert.Contains(t, r.stderr, "--user/--password")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"))
	ok(t, env{"NATS_URL": srv.URL()}, "tenants", "--user", "ops", "--password", "pw")
	ok(t, env{"NATS_URL": srv.URL(), "NATS_USER": "ops", "NATS_PASSWORD": "pw"}, "tenants")

}

// A least-privilege account: its own reply subjects only, and publish
// rights on the JetStream API and the session subjects (or not).
func TestPermissions(t *testing.T) {
	replies := &server.SubjectPermission{Allow: []string{"_INBOX_ops.>"}}
	srv := testserver.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "ops", Password: "pw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>", "$JS.FC.>", "jetsession.>"}},
				Subscribe: replies,
			}},
			{Username: "reader", Password: "pw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}},
				Subscribe: replies,
			}},
		}
	})
	e := env{"NATS_URL": srv.URL(), "NATS_USER": "ops", "NATS_PASSWORD": "pw", "NATS_INBOX_PREFIX": "_INBOX_ops"}
	ok(t, e, "append", "acme", "t1", "--type", "x", "--data", "{}", "--create")
	assert.Contains(t, ok(t, e, "threads", "acme"), "t1")
	tail := start(e, "tail", "acme")
	waitFor(t, &tail.stdout, "t1")
	require.NoError(t, tail.stop(t))

	// Without the prefix, replies cannot arrive: say so rather than time out.
	r := cli(t, e, "", "tenants", "--inbox-prefix", "_INBOX", "--timeout", "2s")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, `permission denied: Permissions Violation for Subscription to "_INBOX.`)
	assert.Contains(t, r.stderr, "--inbox-prefix")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"))

	// A reader cannot append.
	e["NATS_USER"] = "reader"
	assert.Contains(t, ok(t, e, "head", "acme", "t1"), "count   1")
	r = cli(t, e, "", "append", "acme", "t1", "--type", "x", "--timeout", "2s")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, `permission denied: Permissions Violation for Publish to "jetsession.acme.t1"`)
}

func TestHelp(t *testing.T) {
	r := cli(t, env{}, "")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "Commands:")
	assert.Empty(t, r.stdout)

	r = cli(t, env{}, "", "help")
	assert.Equal(t, 0, r.code)
	for _, c := range commands() {
		assert.Contains(t, r.stdout, "  "+c.name+" ")
	}

	for _, c := range commands() {
		r = cli(t, env{}, "", c.name, "--help")
		assert.Equal(t, 0, r.code, c.name)
		assert.Contains(t, r.stdout, "Usage: jetsession "+c.name, c.name)
		assert.Empty(t, r.stderr)
		if c.name != "serve" {
			assert.Contains(t, r.stdout, "--nats URL")
			assert.Contains(t, r.stdout, "--json")
		}
	}
	assert.Contains(t, cli(t, env{}, "", "help", "append").stdout, "--expect-last N")
	assert.Contains(t, cli(t, env{}, "", "load", "-h").stdout, "--since N")
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	srv := start(env{}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	waitFor(t, &srv.stdout, "NATS with JetStream is listening on nats://127.0.0.1:")
	line := strings.SplitN(srv.stdout.String(), "\n", 2)[0]
	url := strings.Fields(line[strings.Index(line, "nats://"):])[0]

	e := env{"NATS_URL": url}
	assert.Equal(t, "1\n", ok(t, e, "append", "acme", "t1", "--type", "x", "--data", "{}", "--create"))
	assert.Contains(t, ok(t, e, "tenants"), "acme")
	assert.DirExists(t, filepath.Join(dir, "jetstream"))

	// The address is taken while it runs.
	addr := strings.TrimPrefix(url, "nats://")
	r := cli(t, env{}, "", "serve", "--listen", addr, "--data-dir", t.TempDir())
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, "cannot listen on "+addr)

	require.NoError(t, srv.stop(t))
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err == nil {
		nc.Close()
	}
	assert.Error(t, err, "the server stops with its context")

	// --json prints the URL as an object; the data survives a restart.
	srv = start(env{}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--json")
	waitFor(t, &srv.stdout, `"url":"nats://127.0.0.1:`)
	var info struct {
		URL string `json:"url"`
	}
	require.NoError(t, json.Unmarshal([]byte(srv.stdout.String()), &info))
	assert.Contains(t, ok(t, env{"NATS_URL": info.URL}, "head", "acme", "t1"), "count   1")
	require.NoError(t, srv.stop(t))
}

func TestFormatting(t *testing.T) {
	assert.Equal(t, "", summarize(nil, 10))
	assert.Equal(t, `{"a":[1,2]}`, summarize([]byte("{ \"a\" : [1, 2] }\n"), 100))
	assert.Equal(t, "abcdefghi…", summarize([]byte(`abcdefghijklmnop`), 10))
	assert.Equal(t, "日本語", truncate("日本語", 3))
	assert.Equal(t, "日本…", truncate("日本語!", 3))
	assert.Equal(t, `a\u001bb\u202ec`, clean("a\x1bb\u202ec"))
	assert.Equal(t, "512 B", humanBytes(512))
	assert.Equal(t, "1.5 KiB", humanBytes(1536))
	assert.Equal(t, "3.0 GiB", humanBytes(3<<30))
}
