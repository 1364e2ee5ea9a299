// Package jsonl is a bridge sink writing one JSON object per event, to a
// stream such as standard output or to rotating files, in the JSON record
// encoding of bridge.Row:
//
//	{"tenant":"acme","thread":"t1","ordinal":42,"event_id":"...","type":"tool_call",
//	 "time":"2026-01-02T03:04:05.123456789Z","data":{...},"meta":{"k":"v"}}
//
// A payload that bridge.IsJSON is embedded as "data"; any other payload is
// written base64-encoded as "data_raw". Times keep their nanoseconds.
//
// Positions are kept in a JSON file saved after each write is flushed (and,
// for files, fsynced), so delivery is at least once: rows at or below the
// saved positions are never written again, and after a crash the lines
// after them may be written a second time; consumers deduplicate on
// (tenant, thread, ordinal). Read and ReadFiles read the lines back.
package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jetsession/jetsession/bridge"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("jsonl: sink is closed")

// PositionsFile is the name of the positions file in the folder of a
// rotating files sink.
const PositionsFile = "_positions.json"

// Sink writes JSON lines. It is safe for concurrent use.
type Sink struct {
	mu        sync.Mutex
	out       io.Writer
	buf       *bufio.Writer
	enc       *bridge.JSONEncoder
	positions bridge.PositionFile
	committed bridge.Positions // saved in the positions file
	written   bridge.Positions // committed, and those of every write since
	closed    bool

	// Rotating files mode.
	dir          string
	maxBytes     int64
	maxAge       time.Duration
	file         *os.File
	count        *countingWriter // bytes written to file
	fileBytes    int64           // bytes of file known to be whole lines
	fileOpened   time.Time
	fileSequence int
	now          func() time.Time
}

var _ bridge.Sink = (*Sink)(nil)

// NewWriter returns a sink writing to w (for example os.Stdout) and keeping
// its positions in positionsPath. A line counts as stored once it is
// written to w; the sink does not close w.
func NewWriter(w io.Writer, positionsPath string) (*Sink, error) {
	if w == nil {
		return nil, errors.New("jsonl: nil writer")
	}
	if positionsPath == "" {
		return nil, errors.New("jsonl: a positions file is required")
	}
	s := &Sink{out: w, positions: bridge.PositionFile{Path: positionsPath}, now: time.Now}
	s.buf = bufio.NewWriterSize(w, 1<<20)
	s.enc = bridge.NewJSONEncoder(s.buf)
	return s, s.loadPositions()
}

// Option configures a rotating files sink.
type Option func(*Sink)

// WithMaxFileBytes rotates to a new file past this size (default 64 MiB).
func WithMaxFileBytes(n int64) Option { return func(s *Sink) { s.maxBytes = n } }

// WithMaxFileAge rotates to a new file past this age (default 1 hour).
func WithMaxFileAge(d time.Duration) Option { return func(s *Sink) { s.maxAge = d } }

// NewFiles returns a sink writing to rotating files
// dir/events-<UTC time>-<n>.jsonl, with its positions in
// dir/_positions.json. Each write is fsynced before positions advance. A
// sink only ever appends to files it created itself, and a write that fails
// is cut off its file, which is then left for a new one, so every file
// holds whole lines.
func NewFiles(dir string, opts ...Option) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("jsonl: a folder is required")
	}
	s := &Sink{dir: dir, maxBytes: 64 << 20, maxAge: time.Hour, now: time.Now,
		positions: bridge.PositionFile{Path: filepath.Join(dir, PositionsFile)}}
	for _, opt := range opts {
		opt(s)
	}
	if s.maxBytes <= 0 || s.maxAge <= 0 {
		return nil, fmt.Errorf("jsonl: file size and age limits must be positive, got %d bytes and %v", s.maxBytes, s.maxAge)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	return s, s.loadPositions()
}

func (s *Sink) loadPositions() error {
	pos, err := s.positions.Load()
	if err != nil {
		return err
	}
	s.committed, s.written = pos, pos
	return nil
}

// Name implements bridge.Sink.
func (s *Sink) Name() string { return "jsonl" }

// Positions implements bridge.Sink: the positions saved in the positions
// file.
func (s *Sink) Positions(context.Context) (bridge.Positions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed.Merge(nil), nil
}

// Write implements bridge.Sink: the lines are written and flushed (and
// fsynced for files) before the positions are saved. Rows at or below the
// position of their tenant are already written and skipped. When the
// positions cannot be saved, Write fails but the lines stay written, and the
// next Write or Flush saves the positions.
func (s *Sink) Write(ctx context.Context, rows []bridge.Row, pos bridge.Positions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	fresh := slices.ContainsFunc(rows, func(r bridge.Row) bool { return r.Ordinal > s.written[r.Tenant] })
	if fresh {
		if err := s.writeLines(rows); err != nil {
			return err
		}
	}
	s.written = s.written.Merge(pos)
	return s.saveLocked()
}

// writeLines writes the rows after s.written and flushes them, fsyncing a
// file. After a failure nothing of them is left in a file.
func (s *Sink) writeLines(rows []bridge.Row) error {
	if s.dir != "" {
		if err := s.rotateIfNeeded(); err != nil {
			return err
		}
	}
	err := func() error {
		for i := range rows {
			if rows[i].Ordinal <= s.written[rows[i].Tenant] {
				continue
			}
			if err := s.enc.Encode(&rows[i]); err != nil {
				return fmt.Errorf("jsonl: %w", err)
			}
		}
		if err := s.buf.Flush(); err != nil {
			return fmt.Errorf("jsonl: writing: %w", err)
		}
		if s.file != nil {
			if err := s.file.Sync(); err != nil {
				return fmt.Errorf("jsonl: syncing %s: %w", s.file.Name(), err)
			}
		}
		return nil
	}()
	if err != nil {
		s.discardLocked()
		return err
	}
	if s.file != nil {
		s.fileBytes = s.count.n
	}
	return nil
}

// discardLocked drops what a failed write left: the buffer, and in files
// mode the part of the file after its last whole write, and the file.
func (s *Sink) discardLocked() {
	if s.file == nil {
		s.buf.Reset(s.out) // what reached the writer cannot be taken back
		return
	}
	// Best effort: if this fails too, the lines stay without positions.
	_ = s.file.Truncate(s.fileBytes)
	_ = s.file.Sync()
	_ = s.file.Close()
	s.file = nil
}

func (s *Sink) saveLocked() error {
	if maps.Equal(s.written, s.committed) {
		return nil
	}
	if err := s.positions.Save(s.written); err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	s.committed = s.written
	return nil
}

func (s *Sink) rotateIfNeeded() error {
	now := s.now()
	if s.file != nil && s.fileBytes < s.maxBytes && now.Sub(s.fileOpened) < s.maxAge {
		return nil
	}
	if s.file != nil {
		if err := s.file.Close(); err != nil {
			return fmt.Errorf("jsonl: closing %s: %w", s.file.Name(), err)
		}
		s.file = nil
	}
	var f *os.File
	for {
		s.fileSequence++
		name := filepath.Join(s.dir, fmt.Sprintf("events-%s-%d.jsonl", now.UTC().Format("20060102T150405Z"), s.fileSequence))
		var err error
		f, err = os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue // another run's file of the same second
		}
		if err != nil {
			return fmt.Errorf("jsonl: %w", err)
		}
		break
	}
	if err := bridge.SyncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("jsonl: %w", err)
	}
	s.file, s.fileBytes, s.fileOpened = f, 0, now
	s.count = &countingWriter{w: f}
	s.out = s.count
	s.buf = bufio.NewWriterSize(s.count, 1<<20)
	s.enc = bridge.NewJSONEncoder(s.buf)
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Flush implements bridge.Sink. Every Write is already flushed; Flush saves
// positions that a Write could not save.
func (s *Sink) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

// Close implements bridge.Sink: it saves positions a Write could not save
// and closes the current file. Later writes fail with ErrClosed.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.saveLocked()
	if s.file != nil {
		err = errors.Join(err, s.file.Close())
		s.file = nil
	}
	return err
}

// Read returns the rows of JSON lines read from r, as the sink writes them.
// A line that is not a JSON record ends the sequence with an error naming
// it.
func Read(r io.Reader) iter.Seq2[bridge.Row, error] {
	return func(yield func(bridge.Row, error) bool) {
		br := bufio.NewReaderSize(r, 1<<20)
		for n := 1; ; n++ {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				var row bridge.Row
				if jerr := json.Unmarshal(line, &row); jerr != nil {
					yield(bridge.Row{}, fmt.Errorf("jsonl: line %d: %w", n, jerr))
					return
				}
				if !yield(row, nil) {
					return
				}
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(bridge.Row{}, fmt.Errorf("jsonl: reading line %d: %w", n, err))
				return
			}
		}
	}
}

// ReadFiles returns the rows of every events-*.jsonl file in dir, in the
// order of the file names.
func ReadFiles(dir string) iter.Seq2[bridge.Row, error] {
	return func(yield func(bridge.Row, error) bool) {
		files, err := filepath.Glob(filepath.Join(dir, "events-*.jsonl"))
		if err != nil {
			yield(bridge.Row{}, fmt.Errorf("jsonl: %w", err))
			return
		}
		slices.Sort(files)
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				yield(bridge.Row{}, fmt.Errorf("jsonl: %w", err))
				return
			}
			for row, err := range Read(f) {
				if err != nil {
					err = fmt.Errorf("%s: %w", filepath.Base(name), err)
				}
				if !yield(row, err) || err != nil {
					f.Close()
					return
				}
			}
			f.Close()
		}
	}
}
