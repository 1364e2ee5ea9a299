package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge/parquet"
	"github.com/jetsession/jetsession/internal/syncbuf"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	pq "github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

func noEnv(string) string { return "" }

// startRun runs the command in-process until the returned stop is called.
func startRun(t *testing.T, args []string, stdout io.Writer) (started, func() error) {
	st, stop, _ := startRunLogged(t, args, stdout, nil)
	return st, stop
}

// startRunLogged is startRun with the daemon's log, and hooks.
func startRunLogged(t *testing.T, args []string, stdout io.Writer, h *hooks) (started, func() error, *syncbuf.Buffer) {
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncbuf.Buffer{}
	startedCh := make(chan started, 1)
	done := make(chan error, 1)
	if h == nil {
		h = &hooks{}
	}
	h.onStart = func(s started) { startedCh <- s }
	go func() {
		done <- run(ctx, args, noEnv, stdout, stderr, h)
	}()
	select {
	case st := <-startedCh:
		return st, func() error {
			cancel()
			return <-done
		}, stderr
	case err := <-done:
		cancel()
		t.Fatalf("bridge ended before starting: %v\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("bridge did not start within 30s\n%s", stderr)
	}
	return started{}, nil, nil
}

func TestMainJobRunsOnAnEmbeddedServerWithTheDemoFleet(t *testing.T) {
	dir := t.TempDir()
	stdout := &syncbuf.Buffer{}
	st, stop := startRun(t, []string{"--demo", "--listen", "127.0.0.1:0", "--data-dir", dir, "--http", "127.0.0.1:0", "--flush-interval", "20ms"}, stdout)
	testserver.Eventually(t, time.Minute, func() error {
		if n := strings.Count(stdout.String(), "\n"); n < 20 {
			return fmt.Errorf("%d events on stdout", n)
		}
		return nil
	})
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n")[:20] {
		require.Regexp(t, `^\{"tenant":"(acme|globex|initech)","thread":"conversation-\d","ordinal":\d+,"event_id":"[^"]+","type":"(user_message|tool_call|tool_result|error|model_reply|handoff)","time":"[^"]+"`, line)
	}
	resp, err := http.Get("http://" + st.HTTPAddr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	metrics := regexp.MustCompile(`(?s)jetsession_bridge_delivered_events_total [1-9].*jetsession_bridge_lag_events\{tenant="(acme|globex|initech)"\}`)
	testserver.Eventually(t, time.Minute, func() error {
		resp, err := http.Get("http://" + st.HTTPAddr + "/metrics")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !metrics.Match(body) {
			return fmt.Errorf("/metrics lacks the delivered count or a tenant's lag")
		}
		return nil
	})
	require.NoError(t, stop())
	// The embedded server kept its data in the data folder.
	require.DirExists(t, filepath.Join(dir, "nats", "jetstream"))
}

func TestBadConfigurationIsRefusedBeforeAnythingStarts(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unknown sink":          {args: []string{"--sink", "kafka"}, want: `unknown sink "kafka"`},
		"postgres without url":  {args: []string{"--sink", "postgres"}, want: "--postgres-url (or DATABASE_URL) is required"},
		"zero batch":            {args: []string{"--batch-size", "0"}, want: "--batch-size must be 1 to 1000000"},
		"absurd batch":          {args: []string{"--batch-size", "2000000000"}, want: "--batch-size must be 1 to 1000000, got 2000000000"},
		"spinning flush":        {args: []string{"--flush-interval", "1ns"}, want: "--flush-interval must be at least 1ms"},
		"spinning discovery":    {args: []string{"--discover-interval", "1ns"}, want: "--discover-interval must be at least 100ms"},
		"garbage NATS URL":      {args: []string{"--nats", "nats://no such host"}, want: "--nats: "},
		"NATS URL scheme":       {args: []string{"--nats", "http://localhost:4222"}, want: `unknown scheme "http"`},
		"missing creds file":    {args: []string{"--nats", "nats://localhost", "--creds", "/no/such.creds"}, want: "--creds: "},
		"invalid inbox prefix":  {args: []string{"--inbox-prefix", "_INBOX.>"}, want: "--inbox-prefix: "},
		"certificate, no key":   {args: []string{"--nats", "tls://localhost", "--tls-cert", "/no/cert.pem"}, want: "--tls-key: "},
		"bad listen port":       {args: []string{"--listen", "127.0.0.1:99999"}, want: "--listen"},
		"bad listen address":    {args: []string{"--listen", "nowhere"}, want: "--listen"},
		"bad http address":      {args: []string{"--http", "localhost"}, want: "--http"},
		"bad subject prefix":    {args: []string{"--subject-prefix", "a.*"}, want: "subject prefix"},
		"bad log level":         {args: []string{"--log-level", "loud"}, want: "--log-level"},
		"bad environment value": {env: map[string]string{"JETSESSION_BATCH_SIZE": "many"}, want: "JETSESSION_BATCH_SIZE"},
		"stray argument":        {args: []string{"extra"}, want: "unexpected arguments"},
		"unknown flag":          {args: []string{"--nope"}, want: "flag provided but not defined"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			stderr := &bytes.Buffer{}
			getenv := func(k string) string { return tc.env[k] }
			err := run(context.Background(), append(tc.args, "--data-dir", dir), getenv, io.Discard, stderr, &hooks{onStart: func(started) {
				t.Fatal("the bridge started despite a bad configuration")
			}})
			var ce *configError
			require.ErrorAs(t, err, &ce, "a configuration error (exit code 2)")
			require.Contains(t, err.Error()+stderr.String(), tc.want)
			require.NoDirExists(t, dir, "nothing is created for a bad configuration")
		})
	}
}

func TestEnvironmentConfiguresTheBridge(t *testing.T) {
	env := map[string]string{"JETSESSION_SINK": "jsonl,parquet", "NATS_URL": "nats://x:1", "JETSESSION_BATCH_SIZE": "7",
		"NATS_USER": "ops", "NATS_PASSWORD": "nats-cli", "JETSESSION_PASSWORD": "pw", "NATS_INBOX_PREFIX": "_INBOX_ops"}
	cfg, err := parseConfig([]string{"--batch-size", "9"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "ops", cfg.NATS.User, "the nats CLI's variables are honoured")
	require.Equal(t, "pw", cfg.NATS.Password, "JETSESSION_<FLAG> wins over the nats CLI's variable")
	require.Equal(t, "_INBOX_ops", cfg.NATS.InboxPrefix)
	require.Equal(t, []string{"jsonl", "parquet"}, cfg.Sinks)
	require.Equal(t, "nats://x:1", cfg.NATS.URL)
	require.Equal(t, 9, cfg.BatchSize, "flags win over the environment")
}

func TestParquetAndJSONLinesSinksAtOnce(t *testing.T) {
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	want := map[string][]sessionlog.Record{}
	for i := range 60 {
		key := sessionlog.ThreadKey{Tenant: []string{"acme", "Globex Ltd"}[i%2], Thread: fmt.Sprint("t", i%3)}
		_, err := log.Append(ctx, key, []sessionlog.Event{{Type: "tool_call", Data: fmt.Appendf(nil, `{"i":%d}`, i), Meta: map[string]string{"k": "v"}}})
		require.NoError(t, err)
	}
	total := 0
	for _, tenant := range []string{"acme", "Globex Ltd"} {
		for th := range 3 {
			recs, err := log.LoadSince(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: fmt.Sprint("t", th)}, 0)
			require.NoError(t, err)
			want[tenant] = append(want[tenant], recs...)
			total += len(recs)
		}
	}
	dir := t.TempDir()
	parquetDir, jsonlDir := filepath.Join(dir, "parquet"), filepath.Join(dir, "jsonl")
	_, stop := startRun(t, []string{"--nats", srv.URL(), "--data-dir", dir, "--http", "", "--sink", "jsonl,parquet",
		"--jsonl-path", jsonlDir, "--parquet-dir", parquetDir, "--flush-interval", "20ms"}, io.Discard)
	testserver.Eventually(t, time.Minute, func() error {
		n := 0
		files, _ := filepath.Glob(filepath.Join(jsonlDir, "events-*.jsonl"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			n += bytes.Count(b, []byte("\n"))
		}
		if n < total {
			return fmt.Errorf("%d of %d lines", n, total)
		}
		return nil
	})
	require.NoError(t, stop(), "shutdown flushes the Parquet buffers")

	files, err := filepath.Glob(filepath.Join(parquetDir, "tenant_key=*", "date=*", "*.parquet"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	got := map[string]map[uint64]parquet.Record{}
	for _, f := range files {
		rows, err := pq.ReadFile[parquet.Record](f)
		require.NoError(t, err)
		for _, r := range rows {
			if got[r.Tenant] == nil {
				got[r.Tenant] = map[uint64]parquet.Record{}
			}
			got[r.Tenant][uint64(r.Ordinal)] = r
		}
	}
	for tenant, recs := range want {
		require.Len(t, got[tenant], len(recs), tenant)
		for _, rec := range recs {
			r, ok := got[tenant][rec.Ordinal]
			require.True(t, ok, "%s ordinal %d missing from Parquet", tenant, rec.Ordinal)
			require.Equal(t, rec.ID, r.EventID)
			require.Equal(t, rec.Type, r.Type)
			require.Equal(t, string(rec.Data), *r.Data)
			require.Equal(t, rec.Meta, r.Meta)
			require.WithinDuration(t, rec.Time, time.UnixMicro(r.Time), time.Microsecond)
		}
	}
}
