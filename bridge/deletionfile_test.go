package bridge_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
)

func TestDeletionCovers(t *testing.T) {
	thread := bridge.Deletion{Tenant: "acme", Thread: "t", Before: 10}
	tenant := bridge.Deletion{Tenant: "acme", Before: 10}
	for _, c := range []struct {
		row            bridge.Row
		byThread, byTn bool
	}{
		{bridge.Row{Tenant: "acme", Thread: "t", Ordinal: 9}, true, true},
		{bridge.Row{Tenant: "acme", Thread: "t", Ordinal: 1}, true, true},
		{bridge.Row{Tenant: "acme", Thread: "t", Ordinal: 10}, false, false}, // the next life
		{bridge.Row{Tenant: "acme", Thread: "u", Ordinal: 9}, false, true},
		{bridge.Row{Tenant: "acme", Thread: "T", Ordinal: 9}, false, true},
		{bridge.Row{Tenant: "ACME", Thread: "t", Ordinal: 9}, false, false},
		{bridge.Row{Tenant: "acme2", Thread: "t", Ordinal: 9}, false, false},
	} {
		assert.Equal(t, c.byThread, thread.Covers(&c.row), "thread deletion, row %+v", c.row)
		assert.Equal(t, c.byTn, tenant.Covers(&c.row), "tenant deletion, row %+v", c.row)
	}
}

func TestDeletionJSONRecord(t *testing.T) {
	d := bridge.Deletion{Tenant: "a<&>", Thread: "support/4711", Before: 1<<63 + 5,
		Time: time.Date(2026, 12, 1, 22, 35, 54, 524506186, time.FixedZone("CET", 3600))}
	b, err := json.Marshal(d)
	require.NoError(t, err)
	// json.Marshal escapes <, > and & again; the record itself does not.
	own, err := d.MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, `{"tenant":"a<&>","thread":"support/4711","before":9223372036854775813,"time":"2026-12-01T21:35:54.524506186Z"}`, string(own))
	var back bridge.Deletion
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, d.Tenant, back.Tenant)
	assert.Equal(t, d.Thread, back.Thread)
	assert.Equal(t, d.Before, back.Before, "ordinals beyond 2^53 are exact")
	assert.True(t, d.Time.Equal(back.Time))

	tenant, err := bridge.Deletion{Tenant: "acme", Before: 1}.MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, `{"tenant":"acme","thread":"","before":1,"time":"0001-01-01T00:00:00Z"}`, string(tenant),
		"a tenant deletion has thread \"\", so that readers compare it with ''")

	for _, bad := range []string{`{"thread":"t","before":1}`, `{"tenant":"a","thread":"t"}`, `[]`, `{"tenant":1,"before":1}`} {
		assert.Error(t, json.Unmarshal([]byte(bad), &back), bad)
	}
}

func TestDeletionFileRecordsEachDeletionOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deletions.jsonl")
	f, err := bridge.OpenDeletionFile(path)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err, "the file exists from the start, for readers")
	assert.Empty(t, b)

	at := time.Date(2026, 12, 1, 21, 35, 54, 1, time.UTC)
	d1 := bridge.Deletion{Tenant: "acme", Thread: "t1", Before: 5, Time: at}
	d2 := bridge.Deletion{Tenant: "acme", Before: 9, Time: at.Add(time.Second)}
	got, err := f.Record([]bridge.Deletion{d1, d1, d2})
	require.NoError(t, err)
	assert.Equal(t, []bridge.Deletion{d1, d2}, got, "twice in one call is recorded once")
	got, err = f.Record([]bridge.Deletion{d2, d1})
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.True(t, f.Recorded(&d1))
	other := d1
	other.Before = 6
	assert.False(t, f.Recorded(&other), "another Before is another deletion")
	other = d1
	other.Time = at.Add(time.Hour)
	assert.True(t, f.Recorded(&other), "the time does not tell deletions apart")

	want := `{"tenant":"acme","thread":"t1","before":5,"time":"2026-12-01T21:35:54.000000001Z"}` + "\n" +
		`{"tenant":"acme","thread":"","before":9,"time":"2026-12-01T21:35:55.000000001Z"}` + "\n"
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, want, string(b))

	// Opened again, it knows what it holds.
	f, err = bridge.OpenDeletionFile(path)
	require.NoError(t, err)
	got, err = f.Record([]bridge.Deletion{d1, d2})
	require.NoError(t, err)
	assert.Empty(t, got)
	all, err := bridge.ReadDeletionFile(path)
	require.NoError(t, err)
	assert.Len(t, all, 2)
	assert.Equal(t, "t1", all[0].Thread)
	assert.Equal(t, "", all[1].Thread)

	none, err := bridge.ReadDeletionFile(filepath.Join(dir, "missing.jsonl"))
	require.NoError(t, err)
	assert.Empty(t, none)
}

// A crash in the middle of a write leaves part of a line, which was never
// reported as recorded: readers leave it out, and opening the file cuts it
// off, so that the next deletion starts a line of its own.
func TestDeletionFileCutsAnUnfinishedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deletions.jsonl")
	whole := `{"tenant":"acme","thread":"t1","before":5,"time":"2026-12-01T21:35:54Z"}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(whole+`{"tenant":"acme","thr`), 0o644))
	ds, err := bridge.ReadDeletionFile(path)
	require.NoError(t, err)
	require.Len(t, ds, 1)

	f, err := bridge.OpenDeletionFile(path)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, whole, string(b))
	_, err = f.Record([]bridge.Deletion{{Tenant: "globex", Before: 3}})
	require.NoError(t, err)
	ds, err = bridge.ReadDeletionFile(path)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	assert.Equal(t, "globex", ds[1].Tenant)
}

func TestDeletionFileRefusesADamagedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deletions.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("{\"tenant\":\"a\",\"before\":1}\nnot json\n"), 0o644))
	_, err := bridge.OpenDeletionFile(path)
	require.ErrorContains(t, err, "damaged at line 2")
	_, err = bridge.ReadDeletionFile(path)
	require.ErrorContains(t, err, "damaged at line 2")

	_, err = bridge.OpenDeletionFile(filepath.Join(t.TempDir(), "missing", "deletions.jsonl"))
	require.Error(t, err, "the folder must exist")
}

// A deletion the file could not take does not count as recorded: the
// retry records it, once.
func TestDeletionFileFailedWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deletions.jsonl")
	f, err := bridge.OpenDeletionFile(path)
	require.NoError(t, err)
	// A folder in the file's place makes the write fail.
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Mkdir(path, 0o755))
	d := bridge.Deletion{Tenant: "acme", Thread: "t", Before: 2}
	_, err = f.Record([]bridge.Deletion{d})
	require.Error(t, err)
	assert.False(t, f.Recorded(&d))
	require.NoError(t, os.Remove(path))
	got, err := f.Record([]bridge.Deletion{d})
	require.NoError(t, err)
	assert.Len(t, got, 1)
	ds, err := bridge.ReadDeletionFile(path)
	require.NoError(t, err)
	assert.Len(t, ds, 1)
}
