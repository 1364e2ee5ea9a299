package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rough edges a new user met, each with the behaviour it now has.

func TestTimeoutWithoutAUnitSuggestsOne(t *testing.T) {
	r := cli(t, env{}, "", "tenants", "--timeout", "5")
	assert.Equal(t, exitUsage, r.code)
	assert.Equal(t, "jetsession: --timeout \"5\" is not a duration (add a unit, for example --timeout 5s)\n", r.stderr)
	r = cli(t, env{}, "", "tenants", "--timeout", "soon")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, `--timeout "soon" is not a duration (for example --timeout 10s or 1m30s)`)
}

func TestReplicasASingleServerCannotHaveAreExplained(t *testing.T) {
	e := newServer(t)
	r := cli(t, e, "", "append", "acme", "t1", "--type", "x", "--create", "--replicas", "3")
	assert.Equal(t, exitRuntime, r.code)
	assert.Contains(t, r.stderr, "jetsession: this NATS server is not part of a cluster, so it keeps one copy of a stream only (use --replicas 1, or create the tenant on a cluster)")
	assert.NotContains(t, r.stderr, "err_code", "no raw API error")
	assert.Contains(t, ok(t, e, "tenants"), "no tenants", "nothing was created")
}

func TestTailOfATenantWithoutAStreamFailsUnlessWait(t *testing.T) {
	e := newServer(t)
	ok(t, e, "append", "acme", "t1", "--type", "x", "--create")
	for _, args := range [][]string{{"tail", "acmee"}, {"tail", "acmee", "t1"}} {
		r := cli(t, e, "", args...)
		assert.Equal(t, exitRuntime, r.code, "%v", args)
		assert.Equal(t, "jetsession: tenant \"acmee\" has no stream (check the name with 'jetsession tenants', or add --wait to wait for its first event)\n", r.stderr)
	}
	// --wait waits, as the library's tail does.
	tail := start(e, "tail", "acmee", "--wait")
	waitFor(t, &tail.stderr, `tenant "acmee" has no stream yet: waiting for its first event`)
	ok(t, e, "append", "acmee", "t1", "--type", "x", "--data", `{"late":true}`, "--create")
	waitFor(t, &tail.stdout, `{"late":true}`)
	require.NoError(t, tail.stop(t))
}

func TestTailSincePastTheHeadSaysSo(t *testing.T) {
	e := newServer(t)
	ok(t, e, "append", "acme", "t1", "--type", "x", "--create")
	ok(t, e, "append", "acme", "t1", "--type", "x")
	tail := start(e, "tail", "acme", "t1", "--since", "100")
	waitFor(t, &tail.stderr, "--since 100 is past the last ordinal of tenant \"acme\", 2: following acme/t1, but only ordinals above 100 will show (pass --since 2 to see every new event)")
	require.NoError(t, tail.stop(t))

	// At the head is where a resumed tail starts: nothing to warn about.
	tail = start(e, "tail", "acme", "--since", "2")
	waitFor(t, &tail.stderr, `following tenant "acme" after ordinal 2`)
	require.NoError(t, tail.stop(t))
	assert.NotContains(t, tail.stderr.String(), "past the last ordinal")
}

func TestBinaryPayloadsFromStandardInputOrAFile(t *testing.T) {
	e := newServer(t)
	blob := []byte{0x00, 0xff, 0x1b, '\n', ' ', 0x80, 'x', ' '}
	r := cli(t, e, string(blob), "append", "acme", "bin", "--type", "image", "--binary", "--data", "-", "--create")
	require.Equal(t, 0, r.code, r.stderr)
	file := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(file, blob[:3], 0o600))
	ok(t, e, "append", "acme", "bin", "--type", "image", "--binary", "--data", "@"+file)
	// Even JSON-looking bytes are kept byte for byte, white space included.
	ok(t, e, "append", "acme", "bin", "--type", "text", "--binary", "--data", " {\"a\": 1} ")

	recs := jsonLines(t, ok(t, e, "load", "acme", "bin", "--json"))
	require.Len(t, recs, 3)
	assert.Equal(t, base64.StdEncoding.EncodeToString(blob), recs[0]["data_raw"])
	assert.Equal(t, base64.StdEncoding.EncodeToString(blob[:3]), recs[1]["data_raw"])
	log, err := jetstream.New(testserver.Connect(t, e["NATS_URL"]))
	require.NoError(t, err)
	stored, err := log.LoadSince(context.Background(), sessionlog.ThreadKey{Tenant: "acme", Thread: "bin"}, 0)
	require.NoError(t, err)
	assert.Equal(t, []byte(" {\"a\": 1} "), stored[2].Data)

	r = cli(t, e, "", "append", "acme", "bin", "--type", "x", "--binary")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--binary needs --data")
	// Without --binary, the JSON error says how to store other bytes.
	r = cli(t, e, string(blob), "append", "acme", "bin", "--type", "x", "--data", "-")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "or store any bytes with --binary")
}

// endless is a standard input that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestAPayloadLargerThanAnEventIsNotReadWhole(t *testing.T) {
	// Nothing to connect to: the payload is refused first.
	e := env{"NATS_URL": "nats://127.0.0.1:1"}
	want := "holds more than 1000000 bytes, more than an event can (store large payloads elsewhere and append a reference)\n"
	if _, err := os.Stat("/dev/zero"); err == nil {
		r := cli(t, e, "", "append", "acme", "t1", "--type", "x", "--data", "@/dev/zero")
		assert.Equal(t, exitUsage, r.code)
		assert.Equal(t, "jetsession: --data @/dev/zero "+want, r.stderr)
	}
	r := cliFrom(t, e, endless{}, false, "append", "acme", "t1", "--type", "x", "--binary", "--data", "-")
	assert.Equal(t, exitUsage, r.code)
	assert.Equal(t, "jetsession: --data - (standard input) "+want, r.stderr)
}

func TestEventTooLargeIsSaidOnce(t *testing.T) {
	// A server whose messages are smaller than the default event: the log
	// lowers its limit to fit, and the payload passes the CLI's own bound.
	srv := testserver.Start(t, func(o *server.Options) { o.MaxPayload = 64 << 10 })
	e := env{"NATS_URL": srv.URL()}
	ok(t, e, "append", "acme", "t1", "--type", "x", "--create")
	file := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(file, []byte(`"`+strings.Repeat("a", 100<<10)+`"`), 0o600))
	r := cli(t, e, "", "append", "acme", "t1", "--type", "x", "--data", "@"+file)
	assert.Equal(t, exitRuntime, r.code)
	assert.Regexp(t, `^jetsession: event too large: 1024\d\d bytes \(payload, type, ID and metadata\), at most \d+ fit on this server \(store large payloads elsewhere and append a reference\)\n$`, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, "at most"), "said once: %q", r.stderr)
}

// TestForeignFieldsAreShownEscapedAndBounded stores, as a foreign writer
// can, events whose thread, type and metadata are as long as the protocol
// allows and full of characters a terminal would act on, and messages
// beyond the protocol's limits. Human output escapes them and cuts them
// with a marker; --json keeps them whole but escapes what a terminal would
// act on; nothing raw reaches the terminal.
func TestForeignFieldsAreShownEscapedAndBounded(t *testing.T) {
	srv := testserver.Start(t)
	e := env{"NATS_URL": srv.URL()}
	log, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	// Valid, at the limits: U+202E reverses text and U+2066 isolates it,
	// harmless only when escaped; metadata values may hold any control
	// character, such as ESC and the C1 control sequence introducer.
	nasty := "\u202e\u2066"
	thread := strings.Repeat(nasty, sessionlog.MaxThreadBytes/len(nasty))
	typ := strings.Repeat(nasty, sessionlog.MaxTypeBytes/len(nasty))
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: thread}
	meta := map[string]string{"k" + nasty: strings.Repeat(nasty+"\x1b[2J\u009b2J", 100)}
	_, err = log.Append(ctx, key, []sessionlog.Event{{ID: strings.Repeat("i", sessionlog.MaxIDBytes), Type: typ, Meta: meta,
		Data: []byte(`{"text":"` + strings.Repeat(`\u001b[31m`+nasty, 50) + `"}`)}})
	require.NoError(t, err)
	// Beyond the limits: a type far longer than allowed, from a raw client.
	raw := testserver.DialRaw(t, srv.URL())
	subject := log.Scheme().Subject("acme", "t2")
	longType := strings.Repeat("T"+nasty, 5000)
	raw.Publish(subject, "NATS/1.0\r\nNats-Msg-Id: "+jetstream.MsgID("t2", "e1")+"\r\nJetsession-Type: "+longType+"\r\n\r\n", []byte(`{}`))

	terminalSafe := func(t *testing.T, out string) {
		t.Helper()
		for _, r := range out {
			assert.False(t, unsafeRune(r) && r != '\n', "raw %U reaches the terminal", r)
		}
	}
	lineWidths := func(t *testing.T, out string, max int) {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			assert.LessOrEqual(t, utf8.RuneCountInString(line), max, "line %q", line)
		}
	}

	// load: the type column is cut with a marker.
	r := cli(t, e, "", "load", "acme", "--", thread)
	require.Equal(t, 0, r.code, r.stderr)
	terminalSafe(t, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, `\u202e\u2066`)
	assert.Contains(t, r.stdout, "…")
	lineWidths(t, r.stdout, 8+2+24+2+maxTypeShown+2+maxPayload)

	// tail of the tenant: the thread column is cut too; the message
	// beyond the limits is skipped with a bounded report.
	tail := start(e, "tail", "acme")
	waitFor(t, &tail.stderr, "skipping ordinal 2 of tenant acme (t2): not a valid event")
	waitFor(t, &tail.stdout, `\u202e`)
	require.NoError(t, tail.stop(t))
	terminalSafe(t, tail.stdout.String()+tail.stderr.String())
	lineWidths(t, tail.stdout.String(), 8+2+24+2+maxThreadShown+2+maxTypeShown+2+maxPayload)
	lineWidths(t, tail.stderr.String(), 600)

	// threads: the thread column is cut; the last message of t2 is not a
	// valid event, so its type is not shown at all.
	r = cli(t, e, "", "threads", "acme")
	require.Equal(t, 0, r.code, r.stderr)
	terminalSafe(t, r.stdout+r.stderr)
	lineWidths(t, r.stdout, maxThreadShown+maxTypeShown+80)
	assert.NotContains(t, r.stdout, `T\u202e\u2066T`, "a type beyond the limits is not an event's type")

	// --json: whole, the same JSON for a parser, escaped for a terminal.
	for _, args := range [][]string{{"load", "acme", "--json", "--", thread}, {"threads", "acme", "--json"}} {
		r = cli(t, e, "", args...)
		require.Equal(t, 0, r.code, r.stderr)
		terminalSafe(t, r.stdout)
	}
	recs := jsonLines(t, cli(t, e, "", "load", "acme", "--json", "--", thread).stdout)
	require.Len(t, recs, 1)
	assert.Equal(t, thread, recs[0]["thread"])
	assert.Equal(t, typ, recs[0]["type"])
	assert.Equal(t, map[string]any{"k" + nasty: meta["k"+nasty]}, recs[0]["meta"])
	rows := jsonLines(t, cli(t, e, "", "threads", "acme", "--json").stdout)
	require.Len(t, rows, 2)
	assert.NotContains(t, []any{rows[0]["last_type"], rows[1]["last_type"]}, longType)
}

func TestTerminalSafeJSONKeepsTheJSON(t *testing.T) {
	var b strings.Builder
	w := &terminalSafe{w: &b}
	in := "{\"a\":\"x\u202ey\u009bz\u007f\ufffd日本\"}\n"
	// Written a byte at a time, runes split across writes.
	for i := range len(in) {
		_, err := w.Write([]byte{in[i]})
		require.NoError(t, err)
	}
	assert.Equal(t, `{"a":"x\u202ey\u009bz\u007f\ufffd日本"}`+"\n", b.String())
}

func TestNullDeviceAndFilesAreNoTerminal(t *testing.T) {
	// /dev/null is a character device, yet nobody answers on it.
	null, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer null.Close()
	assert.False(t, isTerminal(null))
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f))
}
