// Package js_test runs the JavaScript client of this folder (jetsession.mjs,
// which follows PROTOCOL.md only, on the published nats.js packages) against
// a real embedded NATS server, single node and a 3-node cluster, and checks
// both directions: the Go library reads, tails and appends to exactly what
// the JavaScript client wrote, and the JavaScript client reads and tails
// exactly what the library wrote, hostile names and hostile stored messages
// included.
//
// The tests need Node.js and npm; they install the packages of
// package-lock.json with npm ci when node_modules is missing. Without Node
// or npm they skip, and fail when the CI environment variable is set.
package js_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Hostile names: every kind of byte the encoding escapes, names that look
// like escapes, names differing only in case, and the longest allowed.
var (
	hostileTenants = []string{
		"Acme.EU ü*> /%_",
		strings.Repeat("€", 21) + "x", // 64 bytes
	}
	hostileThreads = []string{
		"support/4711",
		"a.b*c>d e",
		"租户/スレッド 🚀",
		"%_00 _41",
		"ACME",
		"acme",
		strings.Repeat("Ω", 128), // 256 bytes
	}
)

// ---- Running the JavaScript program ----

var installOnce struct {
	sync.Once
	err error
}

// requireNode returns the path of node, installing the npm packages once;
// it skips the test when Node or npm is missing, and fails it in CI.
func requireNode(t *testing.T) string {
	t.Helper()
	node, nerr := exec.LookPath("node")
	npm, perr := exec.LookPath("npm")
	if nerr != nil || perr != nil {
		var missing []string
		if nerr != nil {
			missing = append(missing, "node")
		}
		if perr != nil {
			missing = append(missing, "npm")
		}
		msg := fmt.Sprintf("%s not installed: the JavaScript client's interoperability tests need Node.js 18 or later and npm (Debian packages nodejs and npm)", strings.Join(missing, " and "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	installOnce.Do(func() {
		if _, err := os.Stat(filepath.Join("node_modules", "@nats-io", "jetstream", "package.json")); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			installOnce.err = fmt.Errorf("npm ci: %v\n%s", err, out)
		}
	})
	if installOnce.err != nil {
		t.Fatal(installOnce.err)
	}
	return node
}

// runJS runs one command of interop.mjs with input as its standard input and
// returns its output lines, failing the test if it exits with an error.
func runJS(t *testing.T, command string, input any) []json.RawMessage {
	t.Helper()
	node := requireNode(t)
	in, err := json.Marshal(input)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "interop.mjs", command)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node interop.mjs %s: %v\n%s", command, err, stderr.String())
	}
	var lines []json.RawMessage
	for _, l := range bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n")) {
		if len(l) > 0 {
			lines = append(lines, json.RawMessage(l))
		}
	}
	return lines
}

// jsTail is a running "tail" command of interop.mjs.
type jsTail struct {
	cmd    *exec.Cmd
	lines  chan json.RawMessage
	stderr bytes.Buffer
}

// startJSTail starts a tail and waits until its consumer exists.
func startJSTail(t *testing.T, input any) *jsTail {
	t.Helper()
	node := requireNode(t)
	in, err := json.Marshal(input)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	jt := &jsTail{cmd: exec.CommandContext(ctx, node, "interop.mjs", "tail"), lines: make(chan json.RawMessage, 1024)}
	jt.cmd.Stdin = bytes.NewReader(in)
	jt.cmd.Stderr = &jt.stderr
	out, err := jt.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, jt.cmd.Start())
	go func() {
		defer close(jt.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			jt.lines <- json.RawMessage(slices.Clone(sc.Bytes()))
		}
	}()
	select {
	case l, ok := <-jt.lines:
		if !ok || string(l) != `{"ready":true}` {
			jt.cmd.Wait()
			t.Fatalf("JavaScript tail did not start: %s %s", l, jt.stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("JavaScript tail did not start in time")
	}
	return jt
}

// wait returns the tail's lines once it exited after its count of events.
func (jt *jsTail) wait(t *testing.T) []jsItem {
	t.Helper()
	var items []jsItem
	for l := range jt.lines {
		var it jsItem
		require.NoError(t, json.Unmarshal(l, &it), "line %s", l)
		items = append(items, it)
	}
	if err := jt.cmd.Wait(); err != nil {
		t.Fatalf("JavaScript tail: %v\n%s", err, jt.stderr.String())
	}
	return items
}

// ---- What crosses between the two ----

type jsEvent struct {
	ID   string            `json:"id,omitempty"`
	Type string            `json:"type"`
	Time string            `json:"time,omitempty"`
	Data []byte            `json:"data,omitempty"`
	Meta map[string]string `json:"meta,omitempty"`
}

type jsAppend struct {
	Conditional bool      `json:"conditional,omitempty"`
	Events      []jsEvent `json:"events"`
}

type jsThread struct {
	Thread  string     `json:"thread"`
	Appends []jsAppend `json:"appends,omitempty"`
	Cursor  uint64     `json:"cursor,omitempty"`
}

type jsRecord struct {
	Ordinal uint64            `json:"ordinal"`
	ID      string            `json:"id"`
	Type    string            `json:"type"`
	Time    string            `json:"time"`
	Data    []byte            `json:"data"`
	Meta    map[string]string `json:"meta"`
}

type jsCorrupt struct {
	Ordinal uint64 `json:"ordinal"`
	Reason  string `json:"reason"`
}

type jsItem struct {
	Thread  string     `json:"thread"`
	Record  *jsRecord  `json:"record"`
	Corrupt *jsCorrupt `json:"corrupt"`
}

type jsWriteResult struct {
	Threads []struct {
		Thread  string `json:"thread"`
		Appends []struct {
			Last  uint64   `json:"last"`
			IDs   []string `json:"ids"`
			Times []string `json:"times"`
		} `json:"appends"`
	} `json:"threads"`
	Conflict string   `json:"conflict"`
	Partial  string   `json:"partial"`
	Refused  []string `json:"refused"`
	LastSeq  uint64   `json:"last_seq"`
	Messages uint64   `json:"messages"`
}

type jsReadResult struct {
	Threads []struct {
		Thread  string      `json:"thread"`
		Records []jsRecord  `json:"records"`
		Corrupt []jsCorrupt `json:"corrupt"`
	} `json:"threads"`
}

// fullMeta is metadata at the limits: 64 entries of 4096 bytes in all, with
// NUL, new lines and multi-byte characters in values.
func fullMeta() map[string]string {
	m := make(map[string]string, sessionlog.MaxMetaEntries)
	used := 0
	for i := range sessionlog.MaxMetaEntries {
		k := fmt.Sprintf("ключ%02d", i)
		v := "\x00\n\"ü🚀\\"
		if i == sessionlog.MaxMetaEntries-1 {
			v += strings.Repeat("v", sessionlog.MaxMetaBytes-used-len(k)-len(v))
		}
		m[k] = v
		used += len(k) + len(v)
	}
	return m
}

// eventsFor returns the events thread i is given, grouped in appends: a
// single event, an atomic batch of three, a conditional single, a
// conditional batch, covering the limits of every field.
func eventsFor(i int) [][]sessionlog.Event {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	binary := make([]byte, 256)
	for b := range binary {
		binary[b] = byte(b)
	}
	return [][]sessionlog.Event{
		{{ID: fmt.Sprintf("%d-single", i), Type: "user_message", Time: at("2026-12-01T10:20:30.123456789Z"), Data: []byte(`{"text":"hi ü"}`), Meta: map[string]string{"model": "gpt-x"}}},
		{
			{ID: fmt.Sprintf("ü-%d-b1 :/", i), Type: "tool_call", Time: at("0001-01-01T00:00:00.000000001Z"), Data: binary},
			{ID: strings.Repeat("i", sessionlog.MaxIDBytes-8) + fmt.Sprintf("%08d", i), Type: strings.Repeat("τ", sessionlog.MaxTypeBytes/2), Time: at("9999-12-31T23:59:59.999999999Z")},
			{ID: fmt.Sprintf("%d-b3", i), Type: "tool_result", Time: at("2026-12-01T10:20:30Z"), Data: []byte("{}"), Meta: fullMeta()},
		},
		{{ID: fmt.Sprintf("%d-c1", i), Type: "handoff", Time: at("2026-12-01T10:20:31.5Z"), Data: []byte(`"x"`)}},
		{
			{ID: fmt.Sprintf("%d-c2", i), Type: "model_reply", Time: at("2026-12-01T10:20:32.000000001Z"), Meta: map[string]string{"a": ""}},
			{ID: fmt.Sprintf("%d-c3", i), Type: "interrupt", Time: at("1970-01-01T00:00:00Z"), Data: []byte{0}},
		},
	}
}

func toJS(e sessionlog.Event) jsEvent {
	return jsEvent{ID: e.ID, Type: e.Type, Time: e.Time.UTC().Format(time.RFC3339Nano), Data: e.Data, Meta: e.Meta}
}

// requireSameRecord checks that a record the JavaScript client read is the
// record the library read.
func requireSameRecord(t *testing.T, want sessionlog.Record, got jsRecord, format string, args ...any) {
	t.Helper()
	msgAndArgs := []any{fmt.Sprintf(format, args...)}
	require.Equal(t, want.Ordinal, got.Ordinal, msgAndArgs...)
	require.Equal(t, want.ID, got.ID, msgAndArgs...)
	require.Equal(t, want.Type, got.Type, msgAndArgs...)
	gotTime, err := time.Parse(time.RFC3339Nano, got.Time)
	require.NoError(t, err, msgAndArgs...)
	require.True(t, want.Time.Equal(gotTime), "time %s, want %s %v", got.Time, want.Time.Format(time.RFC3339Nano), msgAndArgs[0])
	require.True(t, bytes.Equal(want.Data, got.Data), "data %q, want %q %v", got.Data, want.Data, msgAndArgs[0])
	require.Equal(t, len(want.Meta), len(got.Meta), msgAndArgs...)
	if len(want.Meta) > 0 {
		require.Equal(t, want.Meta, got.Meta, msgAndArgs...)
	}
}

// ---- The environments ----

type env struct {
	// jsURLs are the servers the JavaScript client connects to: it writes
	// through the first and reads back through the second.
	jsURLs   []string
	rawURL   string // where hostile messages are published
	nc       *nats.Conn
	replicas int
}

func (e env) log(t *testing.T, opts ...jetstream.Option) *jetstream.Log {
	t.Helper()
	l, err := jetstream.New(e.nc, append([]jetstream.Option{jetstream.WithReplicas(e.replicas)}, opts...)...)
	require.NoError(t, err)
	return l
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// quiet keeps nats.go from printing, for each hostile message whose headers
// it cannot parse, what the library reports as a corrupt event anyway.
var quiet = nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})

func TestInteropSingleNode(t *testing.T) {
	t.Parallel()
	requireNode(t)
	srv := testserver.Start(t)
	e := env{jsURLs: []string{srv.URL(), srv.URL()}, rawURL: srv.URL(), nc: srv.Connect(t, quiet), replicas: 1}
	runInterop(t, e)
}

func TestInteropClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster tests are not run with -short")
	}
	t.Parallel()
	requireNode(t)
	c := testserver.StartCluster(t, 3)
	// The JavaScript client writes through one node and reads back through
	// another; the library and the hostile writer use the third.
	e := env{jsURLs: []string{c.Nodes[0].URL(), c.Nodes[1].URL()}, rawURL: c.Nodes[2].URL(), nc: c.Nodes[2].Connect(t, quiet), replicas: 3}
	runInterop(t, e)
}

func runInterop(t *testing.T, e env) {
	t.Run("the library reads, tails and appends to what the JavaScript client wrote", func(t *testing.T) {
		for i, tenant := range hostileTenants {
			t.Run(fmt.Sprintf("tenant %d", i), func(t *testing.T) { testLibraryReadsJS(t, e, tenant) })
		}
	})
	t.Run("the JavaScript client reads and tails what the library wrote", func(t *testing.T) {
		for i, tenant := range hostileTenants {
			t.Run(fmt.Sprintf("tenant %d", i), func(t *testing.T) { testJSReadsLibrary(t, e, tenant) })
		}
	})
	t.Run("the JavaScript client steps over hostile messages as the library does", func(t *testing.T) {
		testHostile(t, e, "hostile "+hostileTenants[0])
	})
}

// ---- JavaScript writes, the library reads ----

func testLibraryReadsJS(t *testing.T, e env, tenant string) {
	log := e.log(t)
	// A tenant tail started before the tenant exists waits for its stream.
	tailCtx, stopTail := context.WithCancel(ctxT(t))
	defer stopTail()
	var tailMu sync.Mutex
	var tailed []sessionlog.TenantRecord
	tailDone := make(chan error, 1)
	go func() {
		for rec, err := range log.TailTenant(tailCtx, tenant, 0) {
			if err != nil {
				tailDone <- err
				return
			}
			tailMu.Lock()
			tailed = append(tailed, rec)
			tailMu.Unlock()
		}
		tailDone <- nil
	}()

	var threads []jsThread
	var want []sessionlog.TenantRecord // in append order, ordinals filled in below
	for i, th := range hostileThreads {
		jt := jsThread{Thread: th}
		for g, group := range eventsFor(i) {
			a := jsAppend{Conditional: g >= 2}
			for _, ev := range group {
				a.Events = append(a.Events, toJS(ev))
				want = append(want, sessionlog.TenantRecord{Thread: th, Record: sessionlog.Record{Event: ev}})
			}
			jt.Appends = append(jt.Appends, a)
		}
		threads = append(threads, jt)
	}
	// One append whose ID and time the JavaScript client fills in.
	threads[0].Appends = append(threads[0].Appends, jsAppend{Events: []jsEvent{{Type: "note"}}})
	want = append(want, sessionlog.TenantRecord{Thread: threads[0].Thread, Record: sessionlog.Record{Event: sessionlog.Event{Type: "note"}}})
	started := time.Now()

	lines := runJS(t, "write", map[string]any{"servers": e.jsURLs, "tenant": tenant, "replicas": e.replicas, "threads": threads})
	require.Len(t, lines, 1)
	var res jsWriteResult
	require.NoError(t, json.Unmarshal(lines[0], &res))
	require.NotEmpty(t, res.Conflict, "a stale conditional append is a conflict")
	require.NotEmpty(t, res.Partial, "a batch repeating one stored event is a partial retry")
	require.Len(t, res.Refused, 12, "the limits the JavaScript client enforces on append")

	// Every event got the ordinals the JavaScript client was told: a batch's
	// events consecutive ones, ending at the ordinal its append returned.
	byThread := map[string][]*sessionlog.TenantRecord{}
	for i := range want {
		byThread[want[i].Thread] = append(byThread[want[i].Thread], &want[i])
	}
	for _, th := range res.Threads {
		recs := byThread[th.Thread]
		n := 0
		for _, a := range th.Appends {
			for j := range a.IDs {
				r := recs[n]
				r.Ordinal = a.Last - uint64(len(a.IDs)-1-j)
				if r.ID == "" { // filled in by the JavaScript client
					r.ID = a.IDs[j]
					tm, err := time.Parse(time.RFC3339Nano, a.Times[j])
					require.NoError(t, err)
					require.WithinDuration(t, started, tm, time.Minute)
					r.Time = tm
				}
				require.Equal(t, r.ID, a.IDs[j])
				n++
			}
		}
		require.Len(t, recs, n, "thread %q", th.Thread)
	}
	slices.SortFunc(want, func(a, b sessionlog.TenantRecord) int { return int(a.Ordinal) - int(b.Ordinal) })
	for i, r := range want {
		require.Equal(t, uint64(i+1), r.Ordinal, "ordinals are the tenant's sequence, 1 to %d", len(want))
	}
	// Retries, duplicate probes, the conflict and the partial retry stored
	// nothing.
	require.Equal(t, uint64(len(want)), res.LastSeq)
	require.Equal(t, uint64(len(want)), res.Messages)

	// The library reads exactly what was written, thread by thread.
	for _, th := range hostileThreads {
		key := sessionlog.ThreadKey{Tenant: tenant, Thread: th}
		recs, err := log.LoadSince(ctxT(t), key, 0)
		require.NoError(t, err, "thread %q", th)
		var exp []sessionlog.Record
		for _, w := range want {
			if w.Thread == th {
				exp = append(exp, w.Record)
			}
		}
		require.Len(t, recs, len(exp), "thread %q", th)
		for j := range exp {
			requireSameEvent(t, exp[j], recs[j], "thread %q record %d", th, j)
		}
	}
	// A thread tail from a cursor yields the rest of the thread.
	longest := sessionlog.ThreadKey{Tenant: tenant, Thread: hostileThreads[6]}
	all, err := log.LoadSince(ctxT(t), longest, 0)
	require.NoError(t, err)
	tctx, cancelTail := context.WithCancel(ctxT(t))
	var fromTail []sessionlog.Record
	for rec, err := range log.Tail(tctx, longest, all[0].Ordinal) {
		require.NoError(t, err)
		if fromTail = append(fromTail, rec); len(fromTail) == len(all)-1 {
			break
		}
	}
	cancelTail()
	for j := range fromTail {
		requireSameEvent(t, all[j+1], fromTail[j], "thread tail record %d", j)
	}

	// ... and its tenant tail saw them live, in order.
	testserver.Eventually(t, 30*time.Second, func() error {
		tailMu.Lock()
		defer tailMu.Unlock()
		if len(tailed) < len(want) {
			return fmt.Errorf("tail saw %d of %d events", len(tailed), len(want))
		}
		return nil
	})
	stopTail()
	require.NoError(t, <-tailDone)
	require.Len(t, tailed, len(want))
	for i := range want {
		require.Equal(t, want[i].Thread, tailed[i].Thread, "tailed event %d", i)
		requireSameEvent(t, want[i].Record, tailed[i].Record, "tailed event %d", i)
	}

	// The stream the JavaScript client created is the one the library would
	// create.
	requireLibraryStreamConfig(t, e, log, tenant)

	// The library appends to the tenant the JavaScript client created, and
	// the JavaScript client reads it back.
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: hostileThreads[1]}
	last, err := log.Append(ctxT(t), key, []sessionlog.Event{{ID: "from-go", Type: "note", Data: []byte(`{"from":"go"}`)}})
	require.NoError(t, err)
	require.Equal(t, uint64(len(want)+1), last)
	read := readJS(t, e, tenant, []jsThread{{Thread: key.Thread, Cursor: last - 1}})
	require.Len(t, read.Threads[0].Records, 1)
	require.Equal(t, "from-go", read.Threads[0].Records[0].ID)
	require.Equal(t, last, read.Threads[0].Records[0].Ordinal)

	// The JavaScript client archives; the library no longer reads what it
	// archived.
	th0 := res.Threads[0]
	watermark := th0.Appends[1].Last
	out := runJS(t, "archive", map[string]any{"servers": e.jsURLs, "tenant": tenant, "thread": th0.Thread, "watermark": watermark})
	require.JSONEq(t, `{"purged":4}`, string(out[0]), "the single event and the batch of three")
	require.JSONEq(t, `{"again":0}`, string(out[1]), "archiving again removes nothing")
	head, err := log.Head(ctxT(t), sessionlog.ThreadKey{Tenant: tenant, Thread: th0.Thread})
	require.NoError(t, err)
	require.Greater(t, head.First, watermark)
	recs, err := log.LoadSince(ctxT(t), sessionlog.ThreadKey{Tenant: tenant, Thread: th0.Thread}, 0)
	require.NoError(t, err)
	require.Greater(t, recs[0].Ordinal, watermark)
}

func requireSameEvent(t *testing.T, want, got sessionlog.Record, format string, args ...any) {
	t.Helper()
	msgAndArgs := []any{fmt.Sprintf(format, args...)}
	require.Equal(t, want.Ordinal, got.Ordinal, msgAndArgs...)
	require.Equal(t, want.ID, got.ID, msgAndArgs...)
	require.Equal(t, want.Type, got.Type, msgAndArgs...)
	require.True(t, want.Time.Equal(got.Time), "time %s, want %s %v", got.Time.Format(time.RFC3339Nano), want.Time.Format(time.RFC3339Nano), msgAndArgs[0])
	require.True(t, bytes.Equal(want.Data, got.Data), "data %q, want %q %v", got.Data, want.Data, msgAndArgs[0])
	require.Equal(t, len(want.Meta), len(got.Meta), msgAndArgs...)
	if len(want.Meta) > 0 {
		require.Equal(t, want.Meta, got.Meta, msgAndArgs...)
	}
}

// requireLibraryStreamConfig checks that the tenant's stream, created by the
// JavaScript client from PROTOCOL.md, has the configuration the library
// gives the streams it creates.
func requireLibraryStreamConfig(t *testing.T, e env, log *jetstream.Log, tenant string) {
	t.Helper()
	js, err := natsjs.New(e.nc)
	require.NoError(t, err)
	s, err := js.Stream(ctxT(t), subjects.Default().Stream(tenant))
	require.NoError(t, err)
	got := s.CachedInfo().Config
	want := log.StreamConfig(tenant)
	// Create the library's own stream for a control tenant: the server fills
	// in its defaults the same way for both.
	control := "control-" + fmt.Sprint(time.Now().UnixNano())
	require.NoError(t, log.EnsureTenant(ctxT(t), control))
	cs, err := js.Stream(ctxT(t), subjects.Default().Stream(control))
	require.NoError(t, err)
	lib := cs.CachedInfo().Config

	require.Equal(t, want.Name, got.Name)
	require.Equal(t, want.Subjects, got.Subjects)
	require.Equal(t, want.Description, got.Description)
	require.Equal(t, tenant, got.Metadata["jetsession.tenant"])
	// Everything else is the library's configuration, as the server keeps it.
	for _, c := range []*natsjs.StreamConfig{&got, &lib} {
		c.Name, c.Subjects, c.Description, c.Metadata = "", nil, "", nil
	}
	require.Equal(t, lib, got)
}

// ---- The library writes, JavaScript reads ----

func readJS(t *testing.T, e env, tenant string, threads []jsThread) jsReadResult {
	t.Helper()
	return readJSBatch(t, e, tenant, threads, 3)
}

// readJSBatch reads with direct gets of at most batch messages each.
func readJSBatch(t *testing.T, e env, tenant string, threads []jsThread, batch int) jsReadResult {
	t.Helper()
	lines := runJS(t, "read", map[string]any{"servers": e.jsURLs[1:], "tenant": tenant, "threads": threads, "read_batch": batch})
	require.Len(t, lines, 1)
	var res jsReadResult
	require.NoError(t, json.Unmarshal(lines[0], &res))
	require.Len(t, res.Threads, len(threads))
	return res
}

func testJSReadsLibrary(t *testing.T, e env, tenant string) {
	log := e.log(t)
	var last uint64
	for i, th := range hostileThreads {
		key := sessionlog.ThreadKey{Tenant: tenant, Thread: th}
		for _, group := range eventsFor(i) {
			var err error
			last, err = log.Append(ctxT(t), key, group)
			require.NoError(t, err)
		}
	}
	// Archive the start of one thread.
	archived := sessionlog.ThreadKey{Tenant: tenant, Thread: hostileThreads[2]}
	first, err := log.LoadSince(ctxT(t), archived, 0)
	require.NoError(t, err)
	n, err := log.ArchiveBefore(ctxT(t), archived, first[1].Ordinal)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// The JavaScript client reads every thread (a read batch of 3 makes each
	// read several requests), one from a cursor in its middle.
	var threads []jsThread
	for _, th := range hostileThreads {
		threads = append(threads, jsThread{Thread: th})
	}
	threads[3].Cursor = first[0].Ordinal + 1 // not an ordinal of the thread: reads go by the tenant's sequence
	threads = append(threads, jsThread{Thread: "no such thread"})
	res := readJS(t, e, tenant, threads)
	for i, th := range threads {
		key := sessionlog.ThreadKey{Tenant: tenant, Thread: th.Thread}
		want, err := log.LoadSince(ctxT(t), key, th.Cursor)
		require.NoError(t, err)
		got := res.Threads[i]
		require.Equal(t, th.Thread, got.Thread)
		require.Empty(t, got.Corrupt, "thread %q", th.Thread)
		require.Len(t, got.Records, len(want), "thread %q", th.Thread)
		for j := range want {
			requireSameRecord(t, want[j], got.Records[j], "thread %q record %d", th.Thread, j)
		}
	}

	// The JavaScript client tails a thread from a cursor: the backlog, then
	// what the library appends while it follows.
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: hostileThreads[6]}
	recs, err := log.LoadSince(ctxT(t), key, 0)
	require.NoError(t, err)
	cursor := recs[1].Ordinal
	backlog := len(recs) - 2
	jt := startJSTail(t, map[string]any{"servers": e.jsURLs[1:], "tenant": tenant, "thread": key.Thread, "cursor": cursor, "count": backlog + 3})
	_, err = log.Append(ctxT(t), key, []sessionlog.Event{{ID: "live-1", Type: "note"}})
	require.NoError(t, err)
	last, err = log.Append(ctxT(t), key, []sessionlog.Event{{ID: "live-2", Type: "note", Data: []byte("x")}, {ID: "live-3", Type: "note", Meta: map[string]string{"k": "v"}}})
	require.NoError(t, err)
	items := jt.wait(t)
	want, err := log.LoadSince(ctxT(t), key, cursor)
	require.NoError(t, err)
	require.Len(t, items, len(want))
	require.Equal(t, last, want[len(want)-1].Ordinal)
	for j := range want {
		require.NotNil(t, items[j].Record, "tailed item %d: %+v", j, items[j].Corrupt)
		require.Equal(t, key.Thread, items[j].Thread)
		requireSameRecord(t, want[j], *items[j].Record, "tailed record %d", j)
	}
}

// ---- Hostile stored messages ----

// hostileMessage is what a writer ignoring the protocol (or attacking it)
// stores on a thread's subject: raw header bytes and a payload.
type hostileMessage struct {
	name   string
	header func(tok string, prev uint64, stream, subject string) string
	empty  bool // no payload, as an imitation of a status reply has
	event  bool // it is still a valid event
}

func hostileMessages() []hostileMessage {
	valid := func(id string, extra ...string) func(tok string, prev uint64, stream, subject string) string {
		return func(tok string, _ uint64, _, _ string) string {
			return "NATS/1.0\r\nNats-Msg-Id: " + tok + ":" + id + "\r\nJetsession-Type: tool_call\r\n" + strings.Join(extra, "") + "\r\n"
		}
	}
	fixed := func(h string) func(string, uint64, string, string) string {
		return func(tok string, _ uint64, _, _ string) string { return strings.ReplaceAll(h, "TOK", tok) }
	}
	meta65 := map[string]string{}
	for i := range 65 {
		meta65[fmt.Sprint(i)] = "v"
	}
	m65, _ := json.Marshal(meta65)
	return []hostileMessage{
		{name: "stored Nats-Sequence", event: true, header: valid("seq", "Nats-Sequence: 1\r\n")},
		{name: "stored Nats-Subject of another thread", event: true, header: valid("subj", "Nats-Subject: jetsession.x.victim\r\n")},
		{name: "stored Status 204 EOB", event: true, header: valid("204", "Status: 204\r\n", "Description: EOB\r\n", "Nats-Num-Pending: 0\r\n")},
		{name: "stored Status 404", event: true, header: valid("404", "Status: 404\r\n")},
		{name: "forged sequence hiding the server's headers behind a blank line", event: true, header: func(tok string, prev uint64, stream, subject string) string {
			return valid("hidden", fmt.Sprintf("Nats-Stream: %s\r\nNats-Subject: %s\r\nNats-Sequence: %d\r\nNats-Time-Stamp: 2001-02-03T04:05:06Z\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: %d\r\n",
				stream, subject, prev+1000, prev))(tok, prev, stream, subject) + "zz"
		}},
		{name: "forged first reply of a batch hiding the server's headers behind a blank line", event: true, header: func(tok string, prev uint64, stream, subject string) string {
			return valid("hidden0", fmt.Sprintf("Nats-Stream: %s\r\nNats-Subject: %s\r\nNats-Sequence: %d\r\nNats-Time-Stamp: 2001-02-03T04:05:06Z\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 0\r\n",
				stream, subject, prev+1000))(tok, prev, stream, subject) + "zz"
		}},
		{name: "forged end of batch hiding the server's headers behind a blank line", empty: true, header: func(_ string, prev uint64, _, _ string) string {
			return fmt.Sprintf("NATS/1.0\r\nStatus: 204\r\nDescription: EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: %d\r\n\r\nzz", prev)
		}},
		{name: "status line where the NATS/1.0 line belongs", empty: true, header: fixed("204 NATS/1.0\r\nNats-Msg-Id: TOK:st\r\nJetsession-Type: t\r\n\r\n")},
		{name: "header that is not a NATS header", header: fixed("XATS/1.0\r\nNats-Msg-Id: TOK:x\r\nJetsession-Type: t\r\n\r\n")},
		{name: "terse header lines", event: true, header: fixed("NATS/1.0\nNats-Msg-Id:TOK:terse\nJetsession-Type:tool_call\n\n")},
		{name: "a bare line feed between two headers", event: true, header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:lf\nJetsession-Type: t\r\n\r\n")},
		{name: "header without its end", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:open\r\nJetsession-Type: t\r\nNats-Sequence: 77")},
		{name: "no headers", header: fixed("")},
		{name: "no type", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:notype\r\n\r\n")},
		{name: "type named in other letter case", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:case\r\njetsession-type: t\r\n\r\n")},
		{name: "type given twice counts by its first value", event: true, header: valid("twice", "Jetsession-Type: second\r\n")},
		{name: "type ending in a space", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:sp\r\nJetsession-Type: t \r\n\r\n")},
		{name: "type with a 0xff byte", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:ff\r\nJetsession-Type: a\xffb\r\n\r\n")},
		{name: "type longer than the limit", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:long\r\nJetsession-Type: " + strings.Repeat("t", sessionlog.MaxTypeBytes+1) + "\r\n\r\n")},
		{name: "no ID", header: fixed("NATS/1.0\r\nJetsession-Type: t\r\n\r\n")},
		{name: "ID of another thread", header: fixed("NATS/1.0\r\nNats-Msg-Id: other:x\r\nJetsession-Type: t\r\n\r\n")},
		{name: "ID longer than the limit", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:" + strings.Repeat("i", sessionlog.MaxIDBytes+1) + "\r\nJetsession-Type: t\r\n\r\n")},
		{name: "ID with a 0xff byte", header: fixed("NATS/1.0\r\nNats-Msg-Id: TOK:a\xff\r\nJetsession-Type: t\r\n\r\n")},
		{name: "bad time", header: valid("badtime", "Jetsession-Time: yesterday\r\n")},
		{name: "time in year 10000", header: valid("y10k", "Jetsession-Time: 10000-01-01T00:00:00Z\r\n")},
		{name: "the zero time", header: valid("zero", "Jetsession-Time: 0001-01-01T00:00:00Z\r\n")},
		{name: "time before year 1 after its offset", header: valid("y0", "Jetsession-Time: 0001-01-01T00:30:00+01:00\r\n")},
		{name: "time with an offset", event: true, header: valid("offset", "Jetsession-Time: 2026-12-01T10:00:00.5+01:30\r\n")},
		{name: "time with more than nine fraction digits", event: true, header: valid("frac", "Jetsession-Time: 2026-12-01T10:00:00.1234567891Z\r\n")},
		{name: "empty time is the server's", event: true, header: valid("notime", "Jetsession-Time: \r\n")},
		{name: "bad metadata", header: valid("badmeta", "Jetsession-Meta: {\r\n")},
		{name: "metadata that is not an object", header: valid("arrmeta", "Jetsession-Meta: [1]\r\n")},
		{name: "metadata that is not strings", header: valid("nummeta", `Jetsession-Meta: {"a":1}`+"\r\n")},
		{name: "metadata null is none", event: true, header: valid("nullmeta", "Jetsession-Meta: null\r\n")},
		{name: "a null metadata value is empty", event: true, header: valid("nullval", `Jetsession-Meta: {"a":null}`+"\r\n")},
		{name: "a lone surrogate in metadata", event: true, header: valid("surrogate", `Jetsession-Meta: {"a":"\ud800"}`+"\r\n")},
		{name: "metadata key with a control character", header: valid("ctlmeta", `Jetsession-Meta: {"a\u0001":"v"}`+"\r\n")},
		{name: "65 metadata entries", header: valid("meta65", "Jetsession-Meta: "+string(m65)+"\r\n")},
		{name: "many header lines", event: true, header: valid("many", strings.Repeat("X-Pad: p\r\n", 50))},
	}
}

func testHostile(t *testing.T, e env, tenant string) {
	log := e.log(t)
	raw := testserver.DialRaw(t, e.rawURL)
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: hostileThreads[1]}
	stream := subjects.Default().Stream(tenant)
	subject := subjects.Default().Subject(tenant, key.Thread)
	tok := subjects.EncodeThread(key.Thread)
	wantCorrupt := map[uint64]string{}
	prev, err := log.Append(ctxT(t), key, []sessionlog.Event{{ID: "first", Type: "note"}})
	require.NoError(t, err)
	for _, hm := range hostileMessages() {
		var payload []byte
		if !hm.empty {
			payload = []byte("hostile payload")
		}
		seq := raw.Publish(subject, hm.header(tok, prev, stream, subject), payload)
		if !hm.event {
			wantCorrupt[seq] = hm.name
		}
		prev, err = log.Append(ctxT(t), key, []sessionlog.Event{{ID: fmt.Sprintf("after-%d", seq), Type: "note", Data: []byte("ok")}})
		require.NoError(t, err)
	}
	// Messages on subjects that name no valid thread (a tenant tail meets them).
	prefix := "jetsession." + subjects.EncodeTenant(tenant) + "."
	for _, token := range []string{"_00", "a_41", "_ff"} {
		seq := raw.Publish(prefix+token, "NATS/1.0\r\nNats-Msg-Id: "+token+":x\r\nJetsession-Type: t\r\n\r\n", []byte("x"))
		wantCorrupt[seq] = "subject " + token
	}
	last, err := log.Append(ctxT(t), key, []sessionlog.Event{{ID: "last", Type: "note"}})
	require.NoError(t, err)

	// The library's verdicts are the expected ones.
	want, err := log.LoadSince(ctxT(t), key, 0)
	var libCorrupt []uint64
	for _, ce := range sessionlog.CorruptEvents(err) {
		libCorrupt = append(libCorrupt, ce.Ordinal)
		require.Contains(t, wantCorrupt, ce.Ordinal, "the library calls a valid event corrupt: %v", ce)
	}
	require.Len(t, libCorrupt, len(wantCorrupt)-3, "corrupt messages the library reports: %v", err)

	// The JavaScript client reads the same records and the same corrupt
	// messages, through direct gets and the leader. Batches of one make every
	// message the first reply of its request, larger ones put messages
	// after others in a batch.
	for _, batch := range []int{1, 3, 1000} {
		res := readJSBatch(t, e, tenant, []jsThread{{Thread: key.Thread}}, batch)
		got := res.Threads[0]
		var jsCorrupt []uint64
		for _, c := range got.Corrupt {
			jsCorrupt = append(jsCorrupt, c.Ordinal)
		}
		require.Equal(t, libCorrupt, jsCorrupt, "batch %d: corrupt ordinals: the library's, then the JavaScript client's (reasons %+v)", batch, got.Corrupt)
		require.Len(t, got.Records, len(want), "batch %d", batch)
		for j := range want {
			requireSameRecord(t, want[j], got.Records[j], "batch %d: record %d", batch, j)
		}
		require.Equal(t, last, got.Records[len(got.Records)-1].Ordinal)
	}

	// A tenant tail in JavaScript meets every message, corrupt ones in their
	// place, as the library's tenant tail does.
	info, err := log.Tenants(ctxT(t))
	require.NoError(t, err)
	var total uint64
	for _, ti := range info {
		if ti.Tenant == tenant {
			total = ti.Events
		}
	}
	require.Equal(t, last, total)
	jt := startJSTail(t, map[string]any{"servers": e.jsURLs, "tenant": tenant, "thread": nil, "cursor": 0, "count": total})
	items := jt.wait(t)
	require.Len(t, items, int(total))
	tctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	i := 0
	for rec, err := range log.TailTenant(tctx, tenant, 0) {
		it := items[i]
		var ce *sessionlog.CorruptEventError
		if errors.As(err, &ce) {
			require.NotNil(t, it.Corrupt, "item %d: the library reports ordinal %d corrupt (%s), the JavaScript client %+v", i, ce.Ordinal, ce.Reason, it.Record)
			require.Equal(t, ce.Ordinal, it.Corrupt.Ordinal)
		} else {
			require.NoError(t, err)
			require.NotNil(t, it.Record, "item %d: the JavaScript client reports ordinal %d corrupt (%s)", i, rec.Ordinal, reason(it))
			require.Equal(t, rec.Thread, it.Thread)
			requireSameRecord(t, rec.Record, *it.Record, "tailed item %d", i)
		}
		if i++; i == len(items) {
			break
		}
	}
}

func reason(it jsItem) string {
	if it.Corrupt == nil {
		return ""
	}
	return it.Corrupt.Reason
}
