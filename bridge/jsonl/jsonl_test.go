package jsonl_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/bridge/sinktest"
)

func collect(t *testing.T, seq func(func(bridge.Row, error) bool)) []bridge.Row {
	t.Helper()
	var rows []bridge.Row
	for r, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// breakPositions puts a folder where the positions file goes, so that
// saving positions fails (renaming a file over a folder does), and returns
// a function restoring the file.
func breakPositions(t *testing.T, path string) func() {
	t.Helper()
	saved, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
		if saved != nil {
			if err := os.WriteFile(path, saved, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestFilesConform(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		dir := t.TempDir()
		return sinktest.Harness{
			Open: func(t *testing.T) bridge.Sink {
				// Small files, so that the suite's rows span several.
				s, err := jsonl.NewFiles(dir, jsonl.WithMaxFileBytes(4096))
				require.NoError(t, err)
				return s
			},
			Stored: func(t *testing.T) []bridge.Row { return collect(t, jsonl.ReadFiles(dir)) },
			Deletions: func(t *testing.T) []bridge.Deletion {
				ds, err := jsonl.ReadDeletions(dir)
				require.NoError(t, err)
				return ds
			},
			BreakCommits: func(t *testing.T) func() {
				return breakPositions(t, filepath.Join(dir, jsonl.PositionsFile))
			},
		}
	})
}

func TestWriterConforms(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		dir := t.TempDir()
		out := filepath.Join(dir, "stdout.jsonl")
		posPath := filepath.Join(dir, "state", "positions.json")
		return sinktest.Harness{
			// Like standard output redirected to a file, opened again by
			// each run.
			Open: func(t *testing.T) bridge.Sink {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				require.NoError(t, err)
				t.Cleanup(func() { f.Close() })
				s, err := jsonl.NewWriter(f, posPath)
				require.NoError(t, err)
				return s
			},
			Stored: func(t *testing.T) []bridge.Row {
				f, err := os.Open(out)
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				require.NoError(t, err)
				defer f.Close()
				return collect(t, jsonl.Read(f))
			},
			// A reader of the stream sees its deletion lines.
			Deletions: func(t *testing.T) []bridge.Deletion {
				f, err := os.Open(out)
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				require.NoError(t, err)
				defer f.Close()
				var ds []bridge.Deletion
				for l, err := range jsonl.ReadLines(f) {
					require.NoError(t, err)
					if l.Deletion != nil {
						ds = append(ds, *l.Deletion)
					}
				}
				return ds
			},
			BreakCommits: func(t *testing.T) func() { return breakPositions(t, posPath) },
		}
	})
}

func rows(tenant string, from, n int) []bridge.Row {
	out := make([]bridge.Row, n)
	for i := range out {
		out[i] = bridge.Row{Tenant: tenant, Thread: "t", Ordinal: uint64(from + i), ID: "e", Type: "tool_call",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: []byte(`{"k":"<v>"}`), Meta: map[string]string{"m": "1"}}
	}
	return out
}

func TestWriterWritesOneRecordPerLineThenSavesPositions(t *testing.T) {
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
	require.Equal(t, `{"tenant":"acme","thread":"t","ordinal":1,"event_id":"e","type":"tool_call","time":"2026-01-02T03:04:05.000000006Z","data":{"k":"<v>"},"meta":{"m":"1"}}`, string(lines[0]))
	var second map[string]any
	require.NoError(t, json.Unmarshal(lines[1], &second))
	require.Equal(t, "/wA=", second["data_raw"])
	require.NotContains(t, second, "data")

	// Positions survive a new sink on the same file, and never move back.
	require.NoError(t, s.Write(ctx, nil, bridge.Positions{"acme": 1, "globex": 7}))
	again, err := jsonl.NewWriter(&out, posPath)
	require.NoError(t, err)
	pos, err := again.Positions(ctx)
	require.NoError(t, err)
	require.Equal(t, bridge.Positions{"acme": 2, "globex": 7}, pos)
}

// failingWriter fails the writes it is told to, passing the others on.
type failingWriter struct {
	io.Writer
	fail bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fail {
		return 0, errors.New("disk full")
	}
	return w.Writer.Write(p)
}

func TestWriterRecoversFromAFailedWrite(t *testing.T) {
	var out bytes.Buffer
	w := &failingWriter{Writer: &out}
	s, err := jsonl.NewWriter(w, filepath.Join(t.TempDir(), "pos.json"))
	require.NoError(t, err)
	ctx := context.Background()
	w.fail = true
	require.ErrorContains(t, s.Write(ctx, rows("acme", 1, 2), bridge.Positions{"acme": 2}), "disk full")
	pos, err := s.Positions(ctx)
	require.NoError(t, err)
	require.Empty(t, pos, "nothing was written, so no position is saved")

	// The retry writes the batch once: nothing of the failed write lingers.
	w.fail = false
	require.NoError(t, s.Write(ctx, rows("acme", 1, 2), bridge.Positions{"acme": 2}))
	got := collectBuffer(t, &out)
	require.Len(t, got, 2)
	pos, err = s.Positions(ctx)
	require.NoError(t, err)
	require.Equal(t, bridge.Positions{"acme": 2}, pos)
}

func collectBuffer(t *testing.T, b *bytes.Buffer) []bridge.Row {
	return collect(t, jsonl.Read(bytes.NewReader(b.Bytes())))
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
	require.ErrorIs(t, s.Write(ctx, rows("acme", 11, 1), nil), jsonl.ErrClosed)
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

func TestReadNamesTheBadLine(t *testing.T) {
	in := `{"tenant":"a","thread":"t","ordinal":1,"event_id":"e","type":"x","time":"2026-01-01T00:00:00Z"}` + "\n" + `{"tenant":"a","thr`
	var err error
	n := 0
	for _, err = range jsonl.Read(bytes.NewReader([]byte(in))) {
		if err != nil {
			break
		}
		n++
	}
	require.Equal(t, 1, n)
	require.ErrorContains(t, err, "line 2")
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

func TestWriterWritesDeletionLines(t *testing.T) {
	var out bytes.Buffer
	posPath := filepath.Join(t.TempDir(), "state", "pos.json")
	s, err := jsonl.NewWriter(&out, posPath)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, rows("acme", 1, 3), bridge.Positions{"acme": 3}))
	require.NoError(t, s.Write(ctx, rows("globex", 1, 2), bridge.Positions{"globex": 2}))
	at := time.Date(2026, 12, 1, 21, 35, 54, 524506186, time.UTC)
	ds := []bridge.Deletion{{Tenant: "acme", Thread: "t", Before: 4, Time: at}, {Tenant: "globex", Before: 3, Time: at}}
	require.NoError(t, s.Delete(ctx, ds, bridge.Positions{"acme": 4}))
	require.NoError(t, s.Delete(ctx, ds, bridge.Positions{"acme": 4}), "applied again")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 7, "5 rows and 2 deletions, each once")
	assert.Equal(t, `{"deletion":{"tenant":"acme","thread":"t","before":4,"time":"2026-12-01T21:35:54.524506186Z"}}`, lines[5])
	assert.Equal(t, `{"deletion":{"tenant":"globex","thread":"","before":3,"time":"2026-12-01T21:35:54.524506186Z"}}`, lines[6])

	// Read passes over the deletion lines, ReadLines returns them in place.
	assert.Len(t, collectBuffer(t, &out), 5)
	var kinds []string
	for l, err := range jsonl.ReadLines(bytes.NewReader(out.Bytes())) {
		require.NoError(t, err)
		if l.Deletion != nil {
			kinds = append(kinds, "deletion of "+l.Deletion.Tenant)
			assert.Zero(t, l.Row.Ordinal)
		} else {
			kinds = append(kinds, "row of "+l.Row.Tenant)
		}
	}
	assert.Equal(t, []string{"row of acme", "row of acme", "row of acme", "row of globex", "row of globex",
		"deletion of acme", "deletion of globex"}, kinds)

	pos, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"acme": 4}, pos, "the deleted tenant has no position")

	// The deletions it wrote are kept beside the positions file: a new
	// writer does not write them again.
	side := filepath.Join(filepath.Dir(posPath), "pos.deletions.jsonl")
	assert.Equal(t, side, jsonl.WriterDeletionsPath(posPath))
	recorded, err := bridge.ReadDeletionFile(side)
	require.NoError(t, err)
	assert.Len(t, recorded, 2)
	again, err := jsonl.NewWriter(&out, posPath)
	require.NoError(t, err)
	require.NoError(t, again.Delete(ctx, ds, nil))
	assert.Len(t, strings.Split(strings.TrimSpace(out.String()), "\n"), 7)
}

func TestWriterDeletionsPath(t *testing.T) {
	assert.Equal(t, filepath.Join("data", "bridge", "jsonl-stdout-positions.deletions.jsonl"),
		jsonl.WriterDeletionsPath(filepath.Join("data", "bridge", "jsonl-stdout-positions.json")))
	assert.Equal(t, "pos.deletions.jsonl", jsonl.WriterDeletionsPath("pos"))
}

// A writer whose stream refuses the deletion line records nothing and
// saves no position: the retry writes the line.
func TestWriterRecoversFromAFailedDeletion(t *testing.T) {
	var out bytes.Buffer
	w := &failingWriter{Writer: &out}
	posPath := filepath.Join(t.TempDir(), "pos.json")
	s, err := jsonl.NewWriter(w, posPath)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, rows("acme", 1, 2), bridge.Positions{"acme": 2}))
	d := bridge.Deletion{Tenant: "acme", Thread: "t", Before: 3}
	w.fail = true
	require.ErrorContains(t, s.Delete(ctx, []bridge.Deletion{d}, bridge.Positions{"acme": 3}), "disk full")
	pos, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"acme": 2}, pos)
	recorded, err := bridge.ReadDeletionFile(jsonl.WriterDeletionsPath(posPath))
	require.NoError(t, err)
	assert.Empty(t, recorded)

	w.fail = false
	require.NoError(t, s.Delete(ctx, []bridge.Deletion{d}, bridge.Positions{"acme": 3}))
	assert.Equal(t, 1, strings.Count(out.String(), `{"deletion":`))
	pos, err = s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"acme": 3}, pos)
}

func TestFilesRecordDeletions(t *testing.T) {
	dir := t.TempDir()
	s, err := jsonl.NewFiles(dir)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, jsonl.DeletionsFile))
	require.NoError(t, err, "the deletions file exists from the start, for readers")
	assert.Empty(t, b)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, rows("acme", 1, 3), bridge.Positions{"acme": 3}))
	at := time.Date(2026, 12, 1, 21, 35, 54, 524506186, time.UTC)
	require.NoError(t, s.Delete(ctx, []bridge.Deletion{{Tenant: "acme", Thread: "t", Before: 4, Time: at}}, bridge.Positions{"acme": 4}))
	b, err = os.ReadFile(filepath.Join(dir, jsonl.DeletionsFile))
	require.NoError(t, err)
	assert.Equal(t, `{"tenant":"acme","thread":"t","before":4,"time":"2026-12-01T21:35:54.524506186Z"}`+"\n", string(b))
	assert.Len(t, collect(t, jsonl.ReadFiles(dir)), 3, "lines already written stay; readers leave them out")
	ds, err := jsonl.ReadDeletions(dir)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, s.Close(ctx))
	require.ErrorIs(t, s.Delete(ctx, ds, nil), jsonl.ErrClosed)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Delete(cancelled, ds, nil), context.Canceled)
}

// TestDuckDBLeavesOutDeletedLines runs the README's query over a folder of
// JSON lines with the duckdb command, when it is installed.
func TestDuckDBLeavesOutDeletedLines(t *testing.T) {
	duckdb, err := exec.LookPath("duckdb")
	if err != nil {
		t.Skip("duckdb is not on PATH; skipping the DuckDB deletion query test")
	}
	dir := t.TempDir()
	s, err := jsonl.NewFiles(dir)
	require.NoError(t, err)
	ctx := context.Background()
	batch := append(rows("acme", 1, 3), rows("globex", 1, 2)...)
	batch[1].Thread = "u"
	require.NoError(t, s.Write(ctx, batch, bridge.Positions{"acme": 3, "globex": 2}))
	require.NoError(t, s.Delete(ctx, []bridge.Deletion{{Tenant: "acme", Thread: "t", Before: 4}, {Tenant: "globex", Before: 3}},
		bridge.Positions{"acme": 4}))
	require.NoError(t, s.Write(ctx, rows("acme", 5, 1), bridge.Positions{"acme": 5}))
	require.NoError(t, s.Close(ctx))
	query := fmt.Sprintf(`SELECT e.tenant, e.thread, e.ordinal
FROM read_json('%[1]s/events-*.jsonl', format = 'newline_delimited') AS e
WHERE NOT EXISTS (
  SELECT 1
  FROM read_json('%[1]s/deletions.jsonl', format = 'newline_delimited',
                 columns = {'tenant': 'VARCHAR', 'thread': 'VARCHAR', 'before': 'UBIGINT', 'time': 'TIMESTAMPTZ'}) AS d
  WHERE d.tenant = e.tenant AND (d.thread = '' OR d.thread = e.thread) AND e.ordinal < d.before)
ORDER BY ALL;`, filepath.ToSlash(dir))
	out, err := exec.Command(duckdb, "-csv", "-noheader", "-c", query).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "acme,t,5\nacme,u,2\n", string(out))
}
