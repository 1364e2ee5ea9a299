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
//
// Lines once written stay: a deletion (see bridge.Sink.Delete) is
// recorded, and readers leave out the rows it covers (bridge.Deletion's
// Covers). Rotating files record deletions in dir/deletions.jsonl, one
// bridge.Deletion record per line, fsynced before the positions that
// follow them are saved:
//
//	{"tenant":"acme","thread":"support/4711","before":1234,"time":"2026-12-01T21:35:54.524506186Z"}
//
// (thread "" for a whole tenant). A writer, whose readers see only its
// stream, writes each deletion there as a line of its own, which no row
// can be mistaken for since a row has no "deletion" key:
//
//	{"deletion":{"tenant":"acme","thread":"support/4711","before":1234,"time":"2026-12-01T21:35:54.524506186Z"}}
//
// and records it in a deletions file beside its positions file (see
// WriterDeletionsPath) only to know what it wrote already. ReadLines reads
// both kinds of line, and ReadDeletions the deletions file of a folder.
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
	"strings"
	"sync"
	"time"

	"github.com/jetsession/jetsession/bridge"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("jsonl: sink is closed")

// PositionsFile is the name of the positions file in the folder of a
// rotating files sink.
const PositionsFile = "_positions.json"

// DeletionsFile is the name of the deletions file in the folder of a
// rotating files sink. Data readers match events-*.jsonl, which it does not.
const DeletionsFile = "deletions.jsonl"

// WriterDeletionsPath returns where a writer whose positions are kept in
// positionsPath records the deletions it wrote: beside it, with the
// positions file's extension replaced by .deletions.jsonl
// ("state/positions.json" gives "state/positions.deletions.jsonl"), so
// that writers keeping their positions in one folder keep apart their
// deletions too.
func WriterDeletionsPath(positionsPath string) string {
	return strings.TrimSuffix(positionsPath, filepath.Ext(positionsPath)) + ".deletions.jsonl"
}

// Sink writes JSON lines. It is safe for concurrent use.
type Sink struct {
	mu        sync.Mutex
	out       io.Writer
	buf       *bufio.Writer
	enc       *bridge.JSONEncoder
	positions bridge.PositionFile
	committed bridge.Positions // saved in the positions file
	written   bridge.Positions // committed, and those of every write since
	deletions *bridge.DeletionFile
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
// its positions in positionsPath, and the deletions it wrote beside it (see
// WriterDeletionsPath). A line counts as stored once it is written to w;
// the sink does not close w.
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
	if err := s.loadPositions(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(positionsPath), 0o755); err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	return s, s.loadDeletions(WriterDeletionsPath(positionsPath))
}

// Option configures a rotating files sink.
type Option func(*Sink)

// WithMaxFileBytes rotates to a new file past this size (default 64 MiB).
func WithMaxFileBytes(n int64) Option { return func(s *Sink) { s.maxBytes = n } }

// WithMaxFileAge rotates to a new file past this age (default 1 hour).
func WithMaxFileAge(d time.Duration) Option { return func(s *Sink) { s.maxAge = d } }

// NewFiles returns a sink writing to rotating files
// dir/events-<UTC time>-<n>.jsonl, with its positions in
// dir/_positions.json and its deletions in dir/deletions.jsonl (created
// empty, so that readers always find it). Each write is fsynced before
// positions advance. A
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
	if err := s.loadPositions(); err != nil {
		return nil, err
	}
	return s, s.loadDeletions(filepath.Join(dir, DeletionsFile))
}

func (s *Sink) loadPositions() error {
	pos, err := s.positions.Load()
	if err != nil {
		return err
	}
	s.committed, s.written = pos, pos
	return nil
}

func (s *Sink) loadDeletions(path string) error {
	d, err := bridge.OpenDeletionFile(path)
	if err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	s.deletions = d
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

// Delete implements bridge.Sink. The deletions not yet recorded are
// written first: a writer writes a deletion line for each to its stream
// and flushes it; then (in both modes) they are appended to the deletions
// file and fsynced. Only then are the positions saved, a tenant deletion
// dropping its tenant's when below Before. Lines already written stay
// where they are. When the positions cannot be saved, Delete fails but
// the deletions stay recorded; the retry does not record them again, and
// saves the positions. A writer that crashes between writing a deletion
// line and recording it, or fails to record it, writes the line again
// after the restart or on the retry, as it may rows after its positions:
// a reader may see a deletion line twice, never none.
func (s *Sink) Delete(ctx context.Context, ds []bridge.Deletion, pos bridge.Positions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	fresh := s.deletions.Fresh(ds)
	if s.dir == "" && len(fresh) > 0 {
		if err := s.writeDeletionLines(fresh); err != nil {
			return err
		}
	}
	if _, err := s.deletions.Record(fresh); err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	// The rule is idempotent, so a deletion recorded by a Delete whose
	// positions were not saved still drops its tenant's on the retry.
	written := s.written
	for i := range ds {
		if d := &ds[i]; d.Thread == "" {
			if o, ok := written[d.Tenant]; ok && o < d.Before {
				written = written.Merge(nil) // a copy: s.committed may share it
				delete(written, d.Tenant)
			}
		}
	}
	s.written = written.Merge(pos)
	return s.saveLocked()
}

// deletionLine is a deletion as a writer writes it to its stream.
type deletionLine struct {
	Deletion bridge.Deletion `json:"deletion"`
}

// writeDeletionLines writes a line per deletion to the stream and flushes
// it. After a failure nothing of them is left in the buffer.
func (s *Sink) writeDeletionLines(ds []bridge.Deletion) error {
	enc := json.NewEncoder(s.buf)
	enc.SetEscapeHTML(false) // as in rows
	for i := range ds {
		if err := enc.Encode(deletionLine{Deletion: ds[i]}); err != nil {
			s.discardLocked()
			return fmt.Errorf("jsonl: writing a deletion of %q: %w", ds[i].Tenant, err)
		}
	}
	if err := s.buf.Flush(); err != nil {
		s.discardLocked()
		return fmt.Errorf("jsonl: writing: %w", err)
	}
	return nil
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

// Line is one line the sink writes: a row, or (on a writer's stream) a
// deletion, when Deletion is set and Row is zero.
type Line struct {
	Row      bridge.Row
	Deletion *bridge.Deletion
}

// deletionPrefix starts every deletion line, and no row.
var deletionPrefix = []byte(`{"deletion":`)

// ReadLines returns the lines read from r, as the sink writes them: rows,
// and the deletion lines of a writer. A line that is neither ends the
// sequence with an error naming it.
func ReadLines(r io.Reader) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		br := bufio.NewReaderSize(r, 1<<20)
		for n := 1; ; n++ {
			line, err := br.ReadBytes('\n')
			if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
				var l Line
				var jerr error
				if bytes.HasPrefix(trimmed, deletionPrefix) {
					var d struct {
						Deletion *bridge.Deletion `json:"deletion"`
					}
					jerr = json.Unmarshal(trimmed, &d)
					l.Deletion = d.Deletion
				} else {
					jerr = json.Unmarshal(trimmed, &l.Row)
				}
				if jerr != nil {
					yield(Line{}, fmt.Errorf("jsonl: line %d: %w", n, jerr))
					return
				}
				if !yield(l, nil) {
					return
				}
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(Line{}, fmt.Errorf("jsonl: reading line %d: %w", n, err))
				return
			}
		}
	}
}

// Read returns the rows of JSON lines read from r, as the sink writes
// them, passing over a writer's deletion lines (ReadLines returns them
// too). A line that is not a JSON record ends the sequence with an error
// naming it.
func Read(r io.Reader) iter.Seq2[bridge.Row, error] {
	return func(yield func(bridge.Row, error) bool) {
		for l, err := range ReadLines(r) {
			if err != nil {
				yield(bridge.Row{}, err)
				return
			}
			if l.Deletion != nil {
				continue
			}
			if !yield(l.Row, nil) {
				return
			}
		}
	}
}

// ReadDeletions returns the deletions recorded in dir, the folder of a
// rotating files sink, in the order they were recorded.
func ReadDeletions(dir string) ([]bridge.Deletion, error) {
	ds, err := bridge.ReadDeletionFile(filepath.Join(dir, DeletionsFile))
	if err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	return ds, nil
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
