// Package jsonl is a bridge sink writing one JSON object per event, to a
// stream such as standard output or to rotating files:
//
//	{"tenant":"acme","thread":"t1","ordinal":42,"id":"...","type":"tool_call",
//	 "time":"2026-01-02T03:04:05.123456789Z","data":{...},"meta":{"k":"v"}}
//
// A payload that is valid JSON is embedded as "data"; any other payload is
// written base64-encoded as "data_base64". Positions are kept in a JSON file
// saved after each write is flushed (and, for files, fsynced), so delivery
// is at least once: after a crash, lines after the saved positions are
// written again, and consumers deduplicate on (tenant, thread, ordinal).
package jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jetsession/jetsession/bridge"
)

// Sink writes JSON lines.
type Sink struct {
	mu        sync.Mutex
	out       io.Writer
	buf       *bufio.Writer
	positions bridge.PositionFile
	committed bridge.Positions

	// Rotating files mode.
	dir          string
	maxBytes     int64
	maxAge       time.Duration
	file         *os.File
	fileBytes    int64
	fileOpened   time.Time
	fileSequence int
	now          func() time.Time
}

var _ bridge.Sink = (*Sink)(nil)

// NewWriter returns a sink writing to w (for example os.Stdout) and keeping
// its positions in positionsPath.
func NewWriter(w io.Writer, positionsPath string) (*Sink, error) {
	if w == nil {
		return nil, errors.New("jsonl: nil writer")
	}
	if positionsPath == "" {
		return nil, errors.New("jsonl: a positions file is required")
	}
	s := &Sink{out: w, positions: bridge.PositionFile{Path: positionsPath}, now: time.Now}
	s.buf = bufio.NewWriterSize(w, 1<<20)
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
// dir/_positions.json. Each write is fsynced before positions advance.
func NewFiles(dir string, opts ...Option) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("jsonl: a folder is required")
	}
	s := &Sink{dir: dir, maxBytes: 64 << 20, maxAge: time.Hour, now: time.Now,
		positions: bridge.PositionFile{Path: filepath.Join(dir, "_positions.json")}}
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
	s.committed = pos
	return nil
}

// Name implements bridge.Sink.
func (s *Sink) Name() string { return "jsonl" }

// Positions implements bridge.Sink.
func (s *Sink) Positions(context.Context) (bridge.Positions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed.Merge(nil), nil
}

// line is the JSON form of a row.
type line struct {
	Tenant     string            `json:"tenant"`
	Thread     string            `json:"thread"`
	Ordinal    uint64            `json:"ordinal"`
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Time       time.Time         `json:"time"`
	Data       json.RawMessage   `json:"data,omitempty"`
	DataBase64 []byte            `json:"data_base64,omitempty"`
	Meta       map[string]string `json:"meta,omitempty"`
}

// Write implements bridge.Sink: the lines are written and flushed (and
// fsynced for files) before the positions are saved.
func (s *Sink) Write(ctx context.Context, rows []bridge.Row, pos bridge.Positions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		if err := s.rotateIfNeeded(); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(s.buf)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := &rows[i]
		l := line{Tenant: r.Tenant, Thread: r.Thread, Ordinal: r.Ordinal, ID: r.ID, Type: r.Type, Time: r.Time, Meta: r.Meta}
		if len(r.Data) > 0 {
			if json.Valid(r.Data) {
				l.Data = r.Data
			} else {
				l.DataBase64 = r.Data
			}
		}
		if err := enc.Encode(&l); err != nil {
			return fmt.Errorf("jsonl: encoding the event at ordinal %d of %q: %w", r.Ordinal, r.Tenant, err)
		}
	}
	n := s.buf.Buffered()
	if err := s.buf.Flush(); err != nil {
		return fmt.Errorf("jsonl: writing: %w", err)
	}
	if s.file != nil {
		s.fileBytes += int64(n)
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("jsonl: syncing %s: %w", s.file.Name(), err)
		}
	}
	if len(pos) == 0 {
		return nil
	}
	next := s.committed.Merge(pos)
	if err := s.positions.Save(next); err != nil {
		return err
	}
	s.committed = next
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
	}
	s.fileSequence++
	name := filepath.Join(s.dir, fmt.Sprintf("events-%s-%d.jsonl", now.UTC().Format("20060102T150405Z"), s.fileSequence))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	if err := bridge.SyncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("jsonl: %w", err)
	}
	s.file, s.fileBytes, s.fileOpened = f, 0, now
	s.buf = bufio.NewWriterSize(f, 1<<20)
	return nil
}

// Flush implements bridge.Sink; every Write is already flushed.
func (s *Sink) Flush(context.Context) error { return nil }

// Close implements bridge.Sink.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return nil
}
