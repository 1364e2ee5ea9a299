package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/bridge/parquet"
	"github.com/jetsession/jetsession/internal/pgtest"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/stretchr/testify/require"
)

// TestAHostileTenantNeverStopsAnotherTenantsDelivery runs the bridge into
// PostgreSQL, Parquet and JSON lines at once while tenant acme's own
// subjects receive, from a raw client, every kind of message that once
// spoofed ordinals, rewound scans or made a sink refuse a batch. globex
// appends all along. Every globex event and every valid acme event must
// arrive exactly once with its true ordinal; the rest must be quarantined.
func TestAHostileTenantNeverStopsAnotherTenantsDelivery(t *testing.T) {
	dsn := pgtest.Start(t)
	srv := testserver.Start(t)
	nc := srv.Connect(t)
	log, err := jetstream.New(nc)
	require.NoError(t, err)
	raw := testserver.DialRaw(t, srv.URL())
	ctx := context.Background()
	scheme := log.Scheme()
	acme := sessionlog.ThreadKey{Tenant: "acme", Thread: "support/4711"}
	acmeSubject := scheme.Subject(acme.Tenant, acme.Thread)
	tenantSubject := func(token string) string {
		return scheme.SubjectPrefix + "." + subjects.EncodeTenant("acme") + "." + token
	}
	valid := func(id string, extra string) string {
		return "NATS/1.0\r\nNats-Msg-Id: " + jetstream.MsgID(acme.Thread, id) + "\r\nJetsession-Type: tool_call\r\n" + extra + "\r\n"
	}

	wantValid := map[string]map[uint64]bool{"acme": {}, "globex": {}}
	var wantQuarantined []uint64
	appendGood := func(tenant string, n int) {
		for i := range n {
			k := sessionlog.ThreadKey{Tenant: tenant, Thread: fmt.Sprint("t", i%3)}
			ord, err := log.Append(ctx, k, []sessionlog.Event{{Type: "user_message", Data: fmt.Appendf(nil, `{"i":%d}`, i)}})
			require.NoError(t, err)
			wantValid[tenant][ord] = true
		}
	}
	appendGood("acme", 1)
	// A backlog: valid events storing a spoofed Nats-Sequence of 1, which
	// once rewound the catch-up scan.
	for i := range 300 {
		ord := raw.Publish(acmeSubject, valid(fmt.Sprint("spoof", i), "Nats-Sequence: 1\r\n"), []byte(`{"spoofed":true}`))
		wantValid["acme"][ord] = true
	}
	appendGood("globex", 20)

	dir := t.TempDir()
	jsonlDir, parquetDir := filepath.Join(dir, "jsonl"), filepath.Join(dir, "parquet")
	quarantinePath := filepath.Join(dir, "quarantine.jsonl")
	st, stop := startRun(t, []string{"--nats", srv.URL(), "--data-dir", dir, "--http", "127.0.0.1:0",
		"--sink", "jsonl,parquet,postgres", "--postgres-url", dsn, "--jsonl-path", jsonlDir, "--parquet-dir", parquetDir,
		"--quarantine", quarantinePath, "--flush-interval", "20ms", "--discover-interval", "100ms"}, io.Discard)

	hostile := []struct {
		subject, header string
		payload         []byte
		event           bool
	}{
		{tenantSubject("_00"), valid("nul-thread", ""), []byte(`{}`), false},
		{tenantSubject("_ff"), valid("ff-thread", ""), []byte(`{}`), false},
		{acmeSubject, "NATS/1.0\r\nNats-Msg-Id: " + jetstream.MsgID(acme.Thread, "fftype") + "\r\nJetsession-Type: a\xffb\r\n\r\n", []byte(`{}`), false},
		{acmeSubject, "NATS/1.0\r\nNats-Msg-Id: " + subjects.EncodeThread(acme.Thread) + ":a\xff\r\nJetsession-Type: t\r\n\r\n", []byte(`{}`), false},
		{acmeSubject, valid("y10k", "Jetsession-Time: 10000-01-01T00:00:00Z\r\n"), []byte(`{}`), false},
		{acmeSubject, valid("yneg", "Jetsession-Time: -0001-01-01T00:00:00Z\r\n"), []byte(`{}`), false},
		{acmeSubject, valid("max", "Nats-Sequence: 18446744073709551615\r\n"), []byte(`{}`), true},
		{acmeSubject, valid("s404", "Status: 404\r\n"), []byte(`{}`), true},
		{acmeSubject, valid("s204", "Status: 204\r\nDescription: EOB\r\n"), []byte(`{}`), true},
		{acmeSubject, valid("subj", "Nats-Subject: "+scheme.Subject("acme", "victim")+"\r\n"), []byte(`{}`), true},
		{acmeSubject, "NATS/1.0\r\nStatus: 204\r\nDescription: EOB\r\nNats-Num-Pending: 0\r\nNats-Last-Sequence: 0\r\n\r\nzz", nil, false},
		{acmeSubject, "", []byte("no headers at all"), false},
		{acmeSubject, "NATS/1.0\r\nJetsession-Type: t\r\n\r\n", []byte("no id"), false},
		{acmeSubject, valid("badmeta", `Jetsession-Meta: {"a":1}`+"\r\n"), []byte(`{}`), false},
	}
	for round := range 3 {
		for i, h := range hostile {
			header := h.header
			if round > 0 {
				header = strings.ReplaceAll(header, "Nats-Msg-Id: "+jetstream.MsgID(acme.Thread, ""), "Nats-Msg-Id: "+jetstream.MsgID(acme.Thread, fmt.Sprint(round, "-")))
			}
			ord := raw.Publish(h.subject, header, h.payload)
			if h.event {
				wantValid["acme"][ord] = true
			} else {
				wantQuarantined = append(wantQuarantined, ord)
			}
			if i%4 == 0 {
				appendGood("globex", 5)
			}
		}
	}
	appendGood("acme", 10)
	appendGood("globex", 10)
	var lastAcme uint64
	for o := range wantValid["acme"] {
		lastAcme = max(lastAcme, o)
	}
	for _, o := range wantQuarantined {
		lastAcme = max(lastAcme, o)
	}

	// Everything valid reaches PostgreSQL with its true ordinal, once.
	testserver.Eventually(t, 2*time.Minute, func() error {
		got, err := pgOrdinals(ctx, dsn)
		if err != nil {
			return err
		}
		for tenant, want := range wantValid {
			if len(got[tenant]) != len(want) {
				return fmt.Errorf("%s: %d of %d rows in PostgreSQL", tenant, len(got[tenant]), len(want))
			}
		}
		return nil
	})
	got, err := pgOrdinals(ctx, dsn)
	require.NoError(t, err)
	require.Equal(t, wantValid, got, "PostgreSQL holds exactly the valid events, at their true ordinals")
	testserver.Eventually(t, time.Minute, func() error {
		pos, err := pgPositions(ctx, dsn)
		if err != nil || pos["acme"] != lastAcme {
			return fmt.Errorf("acme position %d, want %d: %v", pos["acme"], lastAcme, err)
		}
		return nil
	})

	// The bridge is healthy, nothing is stuck, the quarantine is counted.
	health := httpGet(t, "http://"+st.HTTPAddr+"/healthz")
	require.True(t, strings.HasPrefix(health, "ok"), health)
	metrics := httpGet(t, "http://"+st.HTTPAddr+"/metrics")
	m := regexp.MustCompile(`jetsession_bridge_quarantined_events_total\{tenant="acme"\} (\d+)`).FindStringSubmatch(metrics)
	require.NotNil(t, m, "no quarantine metric for acme")
	n, _ := strconv.Atoi(m[1])
	require.Equal(t, len(wantQuarantined), n)
	require.NotContains(t, metrics, `jetsession_bridge_stuck_tenant{`)
	require.NoError(t, stop())

	// The quarantine names every bad message, with its true ordinal.
	var quarantined []uint64
	f, err := os.Open(quarantinePath)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var q bridge.Quarantined
		require.NoError(t, json.Unmarshal(sc.Bytes(), &q))
		require.Equal(t, "acme", q.Tenant)
		require.NotEmpty(t, q.Reason)
		quarantined = append(quarantined, q.Ordinal)
	}
	require.ElementsMatch(t, wantQuarantined, quarantined)

	// JSON lines and Parquet hold the same rows: no duplicates, no
	// rewound scan, true ordinals and threads.
	for name, rows := range map[string][]bridge.Row{"jsonl": readJSONL(t, jsonlDir), "parquet": readParquet(t, parquetDir)} {
		seen := map[string]map[uint64]bool{"acme": {}, "globex": {}}
		for _, r := range rows {
			require.False(t, seen[r.Tenant][r.Ordinal], "%s: %s ordinal %d twice", name, r.Tenant, r.Ordinal)
			seen[r.Tenant][r.Ordinal] = true
			if r.Tenant == "acme" && r.ID != "" && strings.HasPrefix(r.ID, "subj") {
				require.Equal(t, acme.Thread, r.Thread, "%s: a stored Nats-Subject moved an event", name)
			}
		}
		require.Equal(t, wantValid, seen, name)
	}
}

func pgOrdinals(ctx context.Context, dsn string) (map[string]map[uint64]bool, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	out := map[string]map[uint64]bool{"acme": {}, "globex": {}}
	rows, err := conn.Query(ctx, `SELECT tenant, ordinal FROM jetsession_events`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var tenant string
		var ord int64
		if err := rows.Scan(&tenant, &ord); err != nil {
			return nil, err
		}
		if out[tenant] == nil {
			out[tenant] = map[uint64]bool{}
		}
		out[tenant][uint64(ord)] = true
	}
	return out, rows.Err()
}

func pgPositions(ctx context.Context, dsn string) (map[string]uint64, error) {
	_, _, pos, err := queryPositions(dsn)
	return pos, err
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func readJSONL(t *testing.T, dir string) []bridge.Row {
	t.Helper()
	var out []bridge.Row
	for r, err := range jsonl.ReadFiles(dir) {
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

func readParquet(t *testing.T, dir string) []bridge.Row {
	t.Helper()
	rows, err := parquet.ReadDir(dir)
	require.NoError(t, err)
	return rows
}
