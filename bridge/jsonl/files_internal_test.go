package jsonl

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
)

// A run that crashed mid-write can leave a file ending in part of a line; a
// later run of the same second must not append to it.
func TestFilesNeverAppendToAnotherRunsFile(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 25, 22, 55, 10, 0, time.UTC)
	leftover := filepath.Join(dir, "events-20261125T225510Z-1.jsonl")
	require.NoError(t, os.WriteFile(leftover, []byte(`{"tenant":"a","thr`), 0o644))

	s, err := NewFiles(dir)
	require.NoError(t, err)
	s.now = func() time.Time { return at }
	row := bridge.Row{Tenant: "a", Thread: "t", Ordinal: 1, ID: "e", Type: "x", Time: at, Data: []byte(`{}`)}
	require.NoError(t, s.Write(context.Background(), []bridge.Row{row}, bridge.Positions{"a": 1}))
	require.NoError(t, s.Close(context.Background()))

	b, err := os.ReadFile(leftover)
	require.NoError(t, err)
	require.Equal(t, `{"tenant":"a","thr`, string(b), "the other run's file is untouched")
	b, err = os.ReadFile(filepath.Join(dir, "events-20261125T225510Z-2.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"event_id":"e"`)
}
