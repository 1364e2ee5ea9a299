package bridge_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/jsonl"
	"github.com/jetsession/jetsession/bridge/parquet"
	"github.com/jetsession/jetsession/bridge/sinktest"
)

// TestMultiConforms runs the suite on JSON line files and Parquet at once.
// The Multi stores a row when both sinks do: Stored returns the rows held by
// both, each as many times as the sink holding it most often does. It
// records a deletion when both sinks do, alike.
func TestMultiConforms(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		jsonlDir, parquetDir := t.TempDir(), t.TempDir()
		return sinktest.Harness{
			Open: func(t *testing.T) bridge.Sink {
				j, err := jsonl.NewFiles(jsonlDir)
				require.NoError(t, err)
				p, err := parquet.New(parquetDir, parquet.WithMaxAge(time.Hour))
				require.NoError(t, err)
				return bridge.Multi{j, p}
			},
			Stored: func(t *testing.T) []bridge.Row {
				var lines []bridge.Row
				for r, err := range jsonl.ReadFiles(jsonlDir) {
					require.NoError(t, err)
					lines = append(lines, r)
				}
				files, err := parquet.ReadDir(parquetDir)
				require.NoError(t, err)
				return storedByAll(lines, files)
			},
			Deletions: func(t *testing.T) []bridge.Deletion {
				a, err := jsonl.ReadDeletions(jsonlDir)
				require.NoError(t, err)
				b, err := parquet.ReadDeletions(parquetDir)
				require.NoError(t, err)
				return deletionsByAll(a, b)
			},
			// Only Parquet fails to commit: JSON lines are then ahead, and
			// get the retried batch again.
			BreakCommits: func(t *testing.T) func() {
				path := filepath.Join(parquetDir, parquet.PositionsFile)
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
			},
			TimePrecision: time.Microsecond, // Parquet's
		}
	})
}

type rowKey struct {
	tenant, thread string
	ordinal        uint64
}

// storedByAll returns the rows of the last set whose key every set holds,
// each as many times as the set holding it most often.
func storedByAll(sets ...[]bridge.Row) []bridge.Row {
	counts := make([]map[rowKey]int, len(sets))
	for i, set := range sets {
		counts[i] = map[rowKey]int{}
		for _, r := range set {
			counts[i][rowKey{r.Tenant, r.Thread, r.Ordinal}]++
		}
	}
	last := sets[len(sets)-1]
	var out []bridge.Row
	done := map[rowKey]bool{}
	for _, r := range last {
		k := rowKey{r.Tenant, r.Thread, r.Ordinal}
		if done[k] {
			continue
		}
		done[k] = true
		most := 0
		for _, c := range counts {
			if c[k] == 0 {
				most = 0
				break
			}
			most = max(most, c[k])
		}
		for range most {
			out = append(out, r)
		}
	}
	return out
}

// deletionsByAll returns the deletions of the last set that every set
// holds, each as many times as the set holding it most often.
func deletionsByAll(sets ...[]bridge.Deletion) []bridge.Deletion {
	type key struct {
		tenant, thread string
		before         uint64
	}
	counts := make([]map[key]int, len(sets))
	for i, set := range sets {
		counts[i] = map[key]int{}
		for _, d := range set {
			counts[i][key{d.Tenant, d.Thread, d.Before}]++
		}
	}
	var out []bridge.Deletion
	done := map[key]bool{}
	for _, d := range sets[len(sets)-1] {
		k := key{d.Tenant, d.Thread, d.Before}
		if done[k] {
			continue
		}
		done[k] = true
		most := 0
		for _, c := range counts {
			if c[k] == 0 {
				most = 0
				break
			}
			most = max(most, c[k])
		}
		for range most {
			out = append(out, d)
		}
	}
	return out
}

// ownPositions is a sink whose Positions returns its own map, as a sink
// keeping them in memory might.
type ownPositions struct {
	bridge.Sink
	pos bridge.Positions
}

func (s ownPositions) Positions(context.Context) (bridge.Positions, error) { return s.pos, nil }

func TestMultiPositionsAreTheLowest(t *testing.T) {
	ctx := context.Background()
	a, err := jsonl.NewFiles(t.TempDir())
	require.NoError(t, err)
	b, err := jsonl.NewFiles(t.TempDir())
	require.NoError(t, err)
	first := ownPositions{Sink: a, pos: bridge.Positions{"acme": 9, "globex": 3, "initech": 5}}
	require.NoError(t, b.Write(ctx, nil, bridge.Positions{"acme": 4, "globex": 7, "umbrella": 2}))
	m := bridge.Multi{first, b}
	require.Equal(t, "jsonl+jsonl", m.Name())
	pos, err := m.Positions(ctx)
	require.NoError(t, err)
	// A tenant that one sink lacks starts from the beginning.
	require.Equal(t, bridge.Positions{"acme": 4, "globex": 3, "initech": 0}, pos)
	require.Equal(t, bridge.Positions{"acme": 9, "globex": 3, "initech": 5}, first.pos, "the first sink's map is left alone")
	require.NoError(t, m.Close(ctx))
}
