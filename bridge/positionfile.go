package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PositionFile keeps positions in a JSON file for sinks that store files.
// Save replaces it atomically (write, fsync, rename, fsync of the folder),
// so after a crash it holds either the old or the new positions.
type PositionFile struct {
	Path string
}

// Load returns the saved positions, or none when the file does not exist.
func (f PositionFile) Load() (Positions, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Positions{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: reading positions: %w", err)
	}
	pos := Positions{}
	if err := json.Unmarshal(b, &pos); err != nil {
		return nil, fmt.Errorf("bridge: positions file %s is damaged: %w", f.Path, err)
	}
	return pos, nil
}

// Save atomically replaces the file with pos.
func (f PositionFile) Save(pos Positions) error {
	b, err := json.MarshalIndent(pos, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bridge: saving positions: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".positions-*")
	if err != nil {
		return fmt.Errorf("bridge: saving positions: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("bridge: saving positions: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("bridge: saving positions: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bridge: saving positions: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("bridge: saving positions: %w", err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a folder so that renames and new files in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Merge returns a copy of pos with the later positions of next applied.
func (pos Positions) Merge(next Positions) Positions {
	out := make(Positions, len(pos)+len(next))
	for t, o := range pos {
		out[t] = o
	}
	for t, o := range next {
		if o > out[t] {
			out[t] = o
		}
	}
	return out
}
