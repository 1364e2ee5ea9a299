package jsonl_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/stretchr/testify/require"
)

func rows(tenant string, from, n int) []bridge.Row {
	out := make([]bridge.Row, n)
	for i := range out {
		out[i] = bridge.Row{Tenant: tenant, Thread: "t", Ordinal: uint64(from + i), ID: "e", Type: "tool_call",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: []byte(`{"k":"<v>"}`), Meta: map[string]string{"m": "1"}}
	}
	return out
}

func TestWriterWritesOneObjectPerLineThenSavesPositions(t *testing.T) {
	var out bytes.Buffer
	posPath := filepath.Join(t.TempDir(), "state", "pos.json")
	s, err := jsonl.NewWriter(&out, posPath)
	require.NoError(t, err)
	ctx := context.Background()
	batch := rows("acme", 1, 2)
	batch[1].Data = []byte{0xff, 0x00} // not JSON: written base64-encoded
	require.NoError(t, s.Write(ctx, batch, bridge.Positions{"acme": 2}))
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	require.Len(t, lines, 2)
	require.JSONEq(t, `{"tenant":"acme","thread":"t","ordinal":1,"id":"e","type":"tool_call","time":"2026-01-02T03:04:05.000000006Z","data":{"k":"<v>"},"meta":{"m":"1"}}`, string(lines[0]))
	var second map[string]any
	require.NoError(t, json.Unmarshal(lines[1], &second))
	require.Equal(t, "/wA=", second["data_base64"])
	require.NotContains(t, second, "data")

	// Positions survive a new sink on the same file, and never move back.
	require.NoError(t, s.Write(ctx, nil, bridge.Positions{"acme": 1, "globex": 7}))
	again, err := jsonl.NewWriter(&out, posPath)
	require.NoError(t, err)
	pos, err := again.Positions(ctx)
	require.NoError(t, err)
	require.Equal(t, bridge.Positions{"acme": 2, "globex": 7}, pos)
}

func TestFilesRotateAndHoldEveryLine(t *testing.T) {
	dir := t.TempDir()
	s, err := jsonl.NewFiles(dir, jsonl.WithMaxFileBytes(300))
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, s.Write(ctx, rows("acme", 1+i*2, 2), bridge.Positions{"acme": uint64(2 + i*2)}))
	}
	require.NoError(t, s.Close(ctx))
	files, err := filepath.Glob(filepath.Join(dir, "events-*.jsonl"))
	require.NoError(t, err)
	require.Greater(t, len(files), 1, "a 300-byte limit rotates")
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			require.True(t, json.Valid(sc.Bytes()))
			n++
		}
		fh.Close()
	}
	require.Equal(t, 10, n)
	reopened, err := jsonl.NewFiles(dir)
	require.NoError(t, err)
	pos, err := reopened.Positions(ctx)
	require.NoError(t, err)
	require.Equal(t, bridge.Positions{"acme": 10}, pos)
}

func TestBadConfigurationIsRefused(t *testing.T) {
	_, err := jsonl.NewWriter(nil, "x")
	require.Error(t, err)
	_, err = jsonl.NewWriter(&bytes.Buffer{}, "")
	require.Error(t, err)
	_, err = jsonl.NewFiles("")
	require.Error(t, err)
	_, err = jsonl.NewFiles(t.TempDir(), jsonl.WithMaxFileAge(0))
	require.Error(t, err)
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	_, err = jsonl.NewFiles(filepath.Join(blocker, "sub"))
	require.Error(t, err)
	damaged := filepath.Join(t.TempDir(), "pos.json")
	require.NoError(t, os.WriteFile(damaged, []byte("{"), 0o644))
	_, err = jsonl.NewWriter(&bytes.Buffer{}, damaged)
	require.ErrorContains(t, err, "damaged")
}
