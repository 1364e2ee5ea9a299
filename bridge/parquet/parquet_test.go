package parquet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	pq "github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
	pqsink "github.com/jetsession/jetsession/bridge/parquet"
	"github.com/jetsession/jetsession/bridge/sinktest"
	"github.com/jetsession/jetsession/subjects"
)

var ctx = context.Background()

// file is one data file read back, with the partition its path names.
type file struct {
	rel       string
	tenantKey string
	date      string
	rows      []pqsink.Record
}

// readFiles reads every data file under dir, failing on anything that is
// neither a data file nor the positions or deletions file (such as a
// leftover temporary).
func readFiles(t *testing.T, dir string) []file {
	t.Helper()
	var files []file
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		require.NoError(t, err)
		if rel == pqsink.PositionsFile || rel == pqsink.DeletionsFile {
			return nil
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		require.Len(t, parts, 3, "unexpected file %s", rel)
		require.True(t, strings.HasPrefix(parts[2], "part-") && strings.HasSuffix(parts[2], ".parquet"), "unexpected file %s", rel)
		key, ok := strings.CutPrefix(parts[0], "tenant_key=")
		require.True(t, ok, rel)
		date, ok := strings.CutPrefix(parts[1], "date=")
		require.True(t, ok, rel)
		rows, err := pq.ReadFile[pqsink.Record](path)
		require.NoError(t, err, rel)
		files = append(files, file{rel: rel, tenantKey: key, date: date, rows: rows})
		return nil
	})
	require.NoError(t, err)
	return files
}

func allRows(files []file) []pqsink.Record {
	var out []pqsink.Record
	for _, f := range files {
		out = append(out, f.rows...)
	}
	return out
}

// want is the record a row should be stored as, derived independently of
// the sink's own conversion.
func want(r bridge.Row) pqsink.Record {
	rec := pqsink.Record{
		Tenant:  r.Tenant,
		Thread:  r.Thread,
		Ordinal: int64(r.Ordinal),
		EventID: r.ID,
		Type:    r.Type,
		Time:    r.Time.UnixMicro(),
		Meta:    r.Meta,
	}
	switch {
	case len(r.Data) == 0:
	case json.Valid(r.Data) && utf8.Valid(r.Data):
		d := string(r.Data)
		rec.Data = &d
	default:
		rec.DataRaw = r.Data
	}
	return rec
}

// normalize makes records read back comparable: empty maps and slices as
// nil.
func normalize(recs []pqsink.Record) []pqsink.Record {
	out := slices.Clone(recs)
	for i := range out {
		if len(out[i].Meta) == 0 {
			out[i].Meta = nil
		}
		if len(out[i].DataRaw) == 0 {
			out[i].DataRaw = nil
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Ordinal < out[j].Ordinal
	})
	return out
}

func wantAll(rows []bridge.Row) []pqsink.Record {
	out := make([]pqsink.Record, len(rows))
	for i, r := range rows {
		out[i] = want(r)
	}
	return normalize(out)
}

// makeRows returns n rows per tenant with ordinals from first, one hour
// apart, so that they span several dates.
func makeRows(tenants []string, first uint64, n int) ([]bridge.Row, bridge.Positions) {
	base := time.Date(2025, 3, 30, 21, 0, 0, 123456789, time.UTC)
	var rows []bridge.Row
	pos := bridge.Positions{}
	for _, tn := range tenants {
		for i := range n {
			o := first + uint64(i)
			r := bridge.Row{
				Tenant:  tn,
				Thread:  fmt.Sprintf("thread-%d", i%3),
				Ordinal: o,
				ID:      fmt.Sprintf("%s-ev-%d", tn, o),
				Type:    []string{"message", "tool_call", "tool_result"}[i%3],
				// Another zone, to check that partitions use the UTC date.
				Time: base.Add(time.Duration(o) * time.Hour).In(time.FixedZone("X", -5*3600)),
				Data: fmt.Appendf(nil, `{"tenant":%q,"n":%d}`, tn, o),
			}
			if i%2 == 0 {
				r.Meta = map[string]string{"source": "test", "i": fmt.Sprint(i)}
			}
			rows = append(rows, r)
			pos[tn] = o
		}
	}
	return rows, pos
}

func newSink(t *testing.T, dir string, opts ...pqsink.Option) *pqsink.Sink {
	t.Helper()
	s, err := pqsink.New(dir, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close(ctx) })
	return s
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
	require.NoError(t, os.RemoveAll(path))
	require.NoError(t, os.MkdirAll(filepath.Join(path, "in-the-way"), 0o755))
	return func() {
		require.NoError(t, os.RemoveAll(path))
		if saved != nil {
			require.NoError(t, os.WriteFile(path, saved, 0o644))
		}
	}
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		dir := t.TempDir()
		return sinktest.Harness{
			// No age flush during a test: a crashed sink must stay silent.
			Open: func(t *testing.T) bridge.Sink { return newSink(t, dir, pqsink.WithMaxAge(time.Hour)) },
			Stored: func(t *testing.T) []bridge.Row {
				rows, err := pqsink.ReadDir(dir)
				require.NoError(t, err)
				return rows
			},
			Deletions: func(t *testing.T) []bridge.Deletion {
				ds, err := pqsink.ReadDeletions(dir)
				require.NoError(t, err)
				return ds
			},
			BreakCommits: func(t *testing.T) func() {
				return breakPositions(t, filepath.Join(dir, pqsink.PositionsFile))
			},
			TimePrecision: time.Microsecond,
		}
	})
}

// The schema of the files is the one documented on Record and in the
// README.
func TestSchema(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir)
	rows, pos := makeRows([]string{"a"}, 1, 1)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.NoError(t, s.Close(ctx))
	files, err := filepath.Glob(filepath.Join(dir, "*", "*", "*.parquet"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	f, err := os.Open(files[0])
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	pf, err := pq.OpenFile(f, st.Size())
	require.NoError(t, err)
	assert.Equal(t, `message Record {
	required binary tenant (STRING);
	required binary thread (STRING);
	required int64 ordinal (INT(64,true));
	required binary event_id (STRING);
	required binary type (STRING);
	required int64 time (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	optional binary data (STRING);
	optional binary data_raw;
	required group meta (MAP) {
		repeated group key_value {
			required binary key (STRING);
			required binary value (STRING);
		}
	}
}`, pf.Schema().String())
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir)
	assert.Equal(t, "parquet", s.Name())
	tenants := []string{"acme", "globex", "initech Ltd."}
	rows, pos := makeRows(tenants, 1, 30)
	// Edge cases of the payload: none, empty, and not UTF-8.
	rows[0].Data = nil
	rows[1].Data = []byte{}
	rows[2].Data = []byte{0xff, 0xfe, 'x'}
	require.NoError(t, s.Write(ctx, rows[:40], bridge.Positions{"acme": 30, "globex": 10}))
	require.NoError(t, s.Write(ctx, rows[40:], pos))
	require.NoError(t, s.Flush(ctx))

	files := readFiles(t, dir)
	// Every row lands in the folder of its tenant and UTC date.
	for _, f := range files {
		tenant, err := subjects.DecodeTenant(f.tenantKey)
		require.NoError(t, err)
		for _, r := range f.rows {
			assert.Equal(t, tenant, r.Tenant, f.rel)
			assert.Equal(t, time.UnixMicro(r.Time).UTC().Format(time.DateOnly), f.date, f.rel)
		}
	}
	// 30 hourly rows from 22:00 UTC span three dates for each of three
	// tenants, each partition written as one file.
	assert.Equal(t, 9, len(files))

	got := normalize(allRows(files))
	assert.Equal(t, wantAll(rows), got)
	// The edge cases of the payload, spelled out: no payload and an empty
	// one are both NULL, and bytes go to data_raw.
	assert.Equal(t, []*string{nil, nil, nil}, []*string{got[0].Data, got[1].Data, got[2].Data})
	assert.Equal(t, [][]byte{nil, nil, {0xff, 0xfe, 'x'}}, [][]byte{got[0].DataRaw, got[1].DataRaw, got[2].DataRaw})

	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, pos, saved)
}

func TestPositionsOnlyAfterFlush(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir)
	rows, pos := makeRows([]string{"a", "b"}, 1, 5)
	require.NoError(t, s.Write(ctx, rows, pos))

	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Empty(t, saved, "positions before the data is durable")
	assert.Empty(t, readFiles(t, dir))

	require.NoError(t, s.Flush(ctx))
	saved, err = s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"a": 5, "b": 5}, saved)
	require.NoError(t, s.Close(ctx))

	// A new sink resumes from the saved positions and keeps those of
	// tenants it gets no rows for.
	s2 := newSink(t, dir)
	saved, err = s2.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"a": 5, "b": 5}, saved)
	more, morePos := makeRows([]string{"a"}, 6, 3)
	require.NoError(t, s2.Write(ctx, more, morePos))
	require.NoError(t, s2.Flush(ctx))
	saved, err = s2.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"a": 8, "b": 5}, saved)
	assert.Len(t, allRows(readFiles(t, dir)), 13)
}

func TestMaxRowsFlush(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxRows(10), pqsink.WithMaxAge(time.Hour))
	rows, _ := makeRows([]string{"a"}, 1, 10)
	require.NoError(t, s.Write(ctx, rows[:9], bridge.Positions{"a": 9}))
	assert.Empty(t, readFiles(t, dir))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Empty(t, saved)

	require.NoError(t, s.Write(ctx, rows[9:], bridge.Positions{"a": 10}))
	assert.Len(t, allRows(readFiles(t, dir)), 10)
	saved, err = s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"a": 10}, saved)
}

func TestMaxBytesFlush(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxBytes(64<<10), pqsink.WithMaxAge(time.Hour))
	payload := []byte(`"` + strings.Repeat("x", 10<<10) + `"`)
	row := func(o uint64) []bridge.Row {
		return []bridge.Row{{Tenant: "a", Thread: "t", Ordinal: o, ID: fmt.Sprint(o), Type: "m", Time: time.Unix(1e9, 0), Data: payload}}
	}
	o := uint64(0)
	for ; o < 5; o++ {
		require.NoError(t, s.Write(ctx, row(o+1), bridge.Positions{"a": o + 1}))
	}
	assert.Empty(t, readFiles(t, dir), "50 KiB buffered is under the limit")
	for ; o < 7; o++ {
		require.NoError(t, s.Write(ctx, row(o+1), bridge.Positions{"a": o + 1}))
	}
	assert.Len(t, allRows(readFiles(t, dir)), 7, "70 KiB buffered is over the limit")
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"a": 7}, saved)
}

func TestMaxAgeFlush(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxAge(20*time.Millisecond))
	rows, pos := makeRows([]string{"a", "b"}, 1, 3)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.Eventually(t, func() bool {
		saved, err := s.Positions(ctx)
		return err == nil && len(saved) == 2
	}, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, wantAll(rows), normalize(allRows(readFiles(t, dir))))

	// The age limit keeps working for rows buffered after a flush.
	more, morePos := makeRows([]string{"a"}, 4, 1)
	require.NoError(t, s.Write(ctx, more, morePos))
	require.Eventually(t, func() bool {
		saved, err := s.Positions(ctx)
		return err == nil && saved["a"] == 4
	}, 10*time.Second, 5*time.Millisecond)
	assert.Len(t, allRows(readFiles(t, dir)), 7)
}

func TestCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	s, err := pqsink.New(dir)
	require.NoError(t, err)
	rows, pos := makeRows([]string{"a", "b"}, 1, 4)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.NoError(t, s.Close(ctx))
	assert.Equal(t, wantAll(rows), normalize(allRows(readFiles(t, dir))))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, pos, saved)

	require.NoError(t, s.Close(ctx), "closing twice")
	assert.ErrorIs(t, s.Write(ctx, rows, pos), pqsink.ErrClosed)
	assert.ErrorIs(t, s.Flush(ctx), pqsink.ErrClosed)
}

func TestHostileTenants(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir)
	// Every valid tenant name is safe; the engine never hands the sink an
	// invalid one (bridge.ValidateRow).
	tenants := []string{".", "..", "A/B", "a/b", "A", "a", "../../etc", `C:\x`, "日本語", "ü", "tenant_key=x", "date=2020-01-01", "_2e", "a b", "%00", "*", ">"}
	rows, pos := makeRows(tenants, 1, 1)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.NoError(t, s.Flush(ctx))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	folders := map[string]string{}
	for _, e := range entries {
		if e.Name() == pqsink.PositionsFile || e.Name() == pqsink.DeletionsFile {
			continue
		}
		require.True(t, e.IsDir(), e.Name())
		key, ok := strings.CutPrefix(e.Name(), "tenant_key=")
		require.True(t, ok, e.Name())
		// Only characters that are safe in folder names on every system.
		assert.Equal(t, -1, strings.IndexFunc(key, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}), "folder %q", e.Name())
		tenant, err := subjects.DecodeTenant(key)
		require.NoError(t, err)
		folders[tenant] = e.Name()
	}
	assert.Len(t, folders, len(tenants), "one folder per tenant")
	for _, f := range readFiles(t, dir) {
		require.Len(t, f.rows, 1)
		assert.Equal(t, folders[f.rows[0].Tenant], "tenant_key="+f.tenantKey)
	}
}

func TestFailedFlushKeepsPositions(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxAge(time.Hour))
	// A file where the tenant's folder belongs makes its partition fail.
	blocker := filepath.Join(dir, "tenant_key=blocked")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	rows, pos := makeRows([]string{"aaa", "blocked", "zzz"}, 1, 2)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.Error(t, s.Flush(ctx))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Empty(t, saved, "positions saved while data is missing")

	require.NoError(t, os.Remove(blocker))
	require.NoError(t, s.Flush(ctx))
	saved, err = s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, pos, saved)
	// The partition written before the failure is not written again.
	assert.Equal(t, wantAll(rows), normalize(allRows(readFiles(t, dir))))
}

func TestWriteRefusedWhileFullAndFailing(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxRows(2), pqsink.WithMaxAge(time.Hour))
	blocker := filepath.Join(dir, "tenant_key=b")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	rows, _ := makeRows([]string{"b"}, 1, 3)
	// Reaching the limit flushes; the failure keeps the taken rows buffered.
	require.NoError(t, s.Write(ctx, rows[:2], bridge.Positions{"b": 2}))
	// The buffer is full and cannot be flushed: the next batch is refused
	// whole, so a retry of it duplicates nothing.
	require.Error(t, s.Write(ctx, rows[2:], bridge.Positions{"b": 3}))
	require.Error(t, s.Write(ctx, rows[2:], bridge.Positions{"b": 3}))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Empty(t, saved)

	require.NoError(t, os.Remove(blocker))
	require.NoError(t, s.Write(ctx, rows[2:], bridge.Positions{"b": 3}))
	require.NoError(t, s.Flush(ctx))
	assert.Equal(t, wantAll(rows), normalize(allRows(readFiles(t, dir))))
	saved, err = s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"b": 3}, saved)
}

func TestConcurrentFlushes(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxAge(time.Millisecond), pqsink.WithMaxRows(50))
	var all []bridge.Row
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				assert.NoError(t, s.Flush(ctx))
			}
		}
	})
	for i := range 30 {
		rows, pos := makeRows([]string{"a", "b", "c"}, uint64(i*7+1), 7)
		all = append(all, rows...)
		require.NoError(t, s.Write(ctx, rows, pos))
	}
	close(stop)
	wg.Wait()
	require.NoError(t, s.Close(ctx))
	assert.Equal(t, wantAll(all), normalize(allRows(readFiles(t, dir))))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"a": 210, "b": 210, "c": 210}, saved)
}

func TestInvalidUTF8Strings(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir)
	// The engine never hands a sink such strings (bridge.ValidateRow); a
	// caller writing to the sink directly still gets valid UTF-8 columns.
	bad := "x\xffy"
	rows := []bridge.Row{{Tenant: "acme", Thread: bad, Ordinal: 1, ID: bad, Type: bad, Time: time.Unix(0, 0), Meta: map[string]string{bad: bad}}}
	require.NoError(t, s.Write(ctx, rows, bridge.Positions{"acme": 1}))
	require.NoError(t, s.Flush(ctx))
	files := readFiles(t, dir)
	require.Len(t, files, 1)
	tenant, err := subjects.DecodeTenant(files[0].tenantKey)
	require.NoError(t, err)
	assert.Equal(t, "acme", tenant)
	fixed := "x\uFFFDy"
	r := files[0].rows[0]
	assert.Equal(t, []string{"acme", fixed, fixed, fixed}, []string{r.Tenant, r.Thread, r.EventID, r.Type})
	assert.Equal(t, map[string]string{fixed: fixed}, r.Meta)
	assert.Equal(t, "1970-01-01", files[0].date)
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir)
	err := s.Write(ctx, []bridge.Row{{Tenant: "a", Ordinal: 1 << 63}}, bridge.Positions{"a": 1 << 63})
	assert.ErrorContains(t, err, "does not fit")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	rows, pos := makeRows([]string{"a"}, 1, 1)
	assert.ErrorIs(t, s.Write(cancelled, rows, pos), context.Canceled)
	require.NoError(t, s.Flush(ctx))
	assert.Empty(t, readFiles(t, dir))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Empty(t, saved)
}

func TestNewErrors(t *testing.T) {
	_, err := pqsink.New("")
	assert.ErrorContains(t, err, "empty output folder")

	dir := t.TempDir()
	for _, o := range []pqsink.Option{pqsink.WithMaxRows(0), pqsink.WithMaxRows(-1), pqsink.WithMaxBytes(0), pqsink.WithMaxAge(0), pqsink.WithMaxAge(-time.Second)} {
		_, err := pqsink.New(dir, o)
		assert.ErrorContains(t, err, "must be positive")
	}

	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o644))
	_, err = pqsink.New(filepath.Join(notDir, "out"))
	assert.ErrorContains(t, err, "creating output folder")

	damaged := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(damaged, pqsink.PositionsFile), []byte("{"), 0o644))
	_, err = pqsink.New(damaged)
	assert.ErrorContains(t, err, "damaged")
}

// TestDuckDB reads the files with the duckdb command, when it is installed,
// to check that the layout and column types suit a real engine.
func TestDuckDB(t *testing.T) {
	duckdb, err := exec.LookPath("duckdb")
	if err != nil {
		t.Skip("duckdb is not on PATH; skipping the DuckDB read test")
	}
	dir := t.TempDir()
	s := newSink(t, dir)
	rows, pos := makeRows([]string{"acme", "A/B"}, 1, 30)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.NoError(t, s.Close(ctx))

	glob := filepath.ToSlash(filepath.Join(dir, "tenant_key=*/date=*/*.parquet"))
	query := fmt.Sprintf(`SELECT tenant, count(*), count(DISTINCT date), min(ordinal), max(ordinal),
		typeof(any_value(time)), count(meta['source'])
		FROM read_parquet('%s', hive_partitioning=true) GROUP BY ALL ORDER BY tenant;`, glob)
	out, err := exec.Command(duckdb, "-csv", "-noheader", "-c", query).CombinedOutput()
	require.NoError(t, err, string(out))
	// 30 hourly rows from 22:00 UTC span three dates; half have metadata.
	assert.Equal(t, "A/B,30,3,1,30,TIMESTAMP WITH TIME ZONE,15\nacme,30,3,1,30,TIMESTAMP WITH TIME ZONE,15\n", string(out))
}

// Rows still buffered when their thread or tenant is deleted are never
// written, and dropping them frees their room in the buffer.
func TestDeleteDropsBufferedRows(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxRows(10), pqsink.WithMaxAge(time.Hour))
	rows, pos := makeRows([]string{"acme", "globex"}, 1, 4) // 8 rows, buffered
	require.NoError(t, s.Write(ctx, rows, pos))
	require.Empty(t, readFiles(t, dir))
	dThread := bridge.Deletion{Tenant: "acme", Thread: "thread-0", Before: 5, Time: time.Unix(1700000000, 1).UTC()}
	dTenant := bridge.Deletion{Tenant: "globex", Before: 5, Time: time.Unix(1700000001, 2).UTC()}
	require.NoError(t, s.Delete(ctx, []bridge.Deletion{dThread, dTenant}, bridge.Positions{"acme": 5}))
	// 2 rows of acme are left: 7 more stay below the limit of 10 rows.
	more, _ := makeRows([]string{"acme"}, 6, 7)
	require.NoError(t, s.Write(ctx, more, bridge.Positions{"acme": 12}))
	assert.Empty(t, readFiles(t, dir), "the dropped rows still count against the buffer limit")
	last, _ := makeRows([]string{"acme"}, 13, 1)
	require.NoError(t, s.Write(ctx, last, bridge.Positions{"acme": 13}))
	files := readFiles(t, dir)
	require.NotEmpty(t, files, "10 rows reach the limit")

	var want []bridge.Row
	for _, r := range slices.Concat(rows, more, last) {
		if !dThread.Covers(&r) && !dTenant.Covers(&r) {
			want = append(want, r)
		}
	}
	require.Len(t, want, 10)
	assert.Equal(t, wantAll(want), normalize(allRows(files)), "no deleted row reaches a file")
	b, err := os.ReadFile(filepath.Join(dir, pqsink.DeletionsFile))
	require.NoError(t, err)
	assert.Equal(t, `{"tenant":"acme","thread":"thread-0","before":5,"time":"2023-11-14T22:13:20.000000001Z"}`+"\n"+
		`{"tenant":"globex","thread":"","before":5,"time":"2023-11-14T22:13:21.000000002Z"}`+"\n", string(b))
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"acme": 13}, saved, "the deleted tenant has no position")
}

// The deletions are durable when Delete returns; the positions follow at
// the next flush, as those of Write do.
func TestDeleteRecordsAtOnceAndSavesPositionsOnFlush(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, pqsink.WithMaxAge(time.Hour))
	rows, pos := makeRows([]string{"acme"}, 1, 4)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.NoError(t, s.Flush(ctx))
	more, _ := makeRows([]string{"acme"}, 5, 2)
	require.NoError(t, s.Write(ctx, more, bridge.Positions{"acme": 6}))
	d := bridge.Deletion{Tenant: "acme", Thread: "thread-1", Before: 7, Time: time.Now()}
	require.NoError(t, s.Delete(ctx, []bridge.Deletion{d}, bridge.Positions{"acme": 7}))
	ds, err := pqsink.ReadDeletions(dir)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, d.Before, ds[0].Before)
	saved, err := s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"acme": 4}, saved, "the buffered rows are not durable yet")
	require.NoError(t, s.Flush(ctx))
	saved, err = s.Positions(ctx)
	require.NoError(t, err)
	assert.Equal(t, bridge.Positions{"acme": 7}, saved)

	require.NoError(t, s.Close(ctx))
	assert.ErrorIs(t, s.Delete(ctx, []bridge.Deletion{d}, nil), pqsink.ErrClosed)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, newSink(t, dir).Delete(cancelled, []bridge.Deletion{d}, nil), context.Canceled)
}

// TestDuckDBLeavesOutDeletedRows runs the README's query with the duckdb
// command, when it is installed.
func TestDuckDBLeavesOutDeletedRows(t *testing.T) {
	duckdb, err := exec.LookPath("duckdb")
	if err != nil {
		t.Skip("duckdb is not on PATH; skipping the DuckDB deletion query test")
	}
	dir := t.TempDir()
	s := newSink(t, dir)
	query := fmt.Sprintf(`SELECT e.tenant, e.thread, count(*)
FROM read_parquet('%[1]s/tenant_key=*/date=*/*.parquet', hive_partitioning = true) AS e
WHERE NOT EXISTS (
  SELECT 1
  FROM read_json('%[1]s/_deletions.jsonl', format = 'newline_delimited',
                 columns = {'tenant': 'VARCHAR', 'thread': 'VARCHAR', 'before': 'UBIGINT', 'time': 'TIMESTAMPTZ'}) AS d
  WHERE d.tenant = e.tenant AND (d.thread = '' OR d.thread = e.thread) AND e.ordinal < d.before)
GROUP BY ALL ORDER BY ALL;`, filepath.ToSlash(dir))
	rows, pos := makeRows([]string{"acme", "globex"}, 1, 6)
	require.NoError(t, s.Write(ctx, rows, pos))
	require.NoError(t, s.Flush(ctx))
	out, err := exec.Command(duckdb, "-csv", "-noheader", "-c", query).CombinedOutput()
	require.NoError(t, err, "the query runs on an empty deletions file: %s", out)
	assert.Equal(t, "acme,thread-0,2\nacme,thread-1,2\nacme,thread-2,2\nglobex,thread-0,2\nglobex,thread-1,2\nglobex,thread-2,2\n", string(out))

	require.NoError(t, s.Delete(ctx, []bridge.Deletion{
		{Tenant: "acme", Thread: "thread-1", Before: 7, Time: time.Now()},
		{Tenant: "globex", Before: 7, Time: time.Now()},
	}, bridge.Positions{"acme": 7}))
	more, _ := makeRows([]string{"acme"}, 8, 2) // thread-0 and thread-1 live on
	require.NoError(t, s.Write(ctx, more, bridge.Positions{"acme": 9}))
	require.NoError(t, s.Close(ctx))
	out, err = exec.Command(duckdb, "-csv", "-noheader", "-c", query).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "acme,thread-0,3\nacme,thread-1,1\nacme,thread-2,2\n", string(out))
}
