package sinktest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/sinktest"
)

// store is the storage of memSink: what survives a crash.
type store struct {
	mu        sync.Mutex
	rows      []bridge.Row
	pos       bridge.Positions
	deletions []bridge.Deletion
	gone      map[[2]string]bool // deleted threads, for one flaw
	broken    bool
}

var errRefused = errors.New("commits refused")

// memSink is a reference sink keeping rows in memory: it buffers them until
// Flush, like the Parquet sink, records deletions at once and drops the
// buffered rows they cover, and may be given one flaw, to show that the
// suite catches it.
type memSink struct {
	st      *store
	flaw    string
	buf     []bridge.Row
	pending bridge.Positions  // committed merged with every Write and Delete
	dels    []bridge.Deletion // deletions not yet recorded, for one flaw
}

func (s *memSink) Name() string { return "memory" }

func (s *memSink) Positions(context.Context) (bridge.Positions, error) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return maps.Clone(s.st.pos), nil
}

func (s *memSink) Write(_ context.Context, rows []bridge.Row, pos bridge.Positions) error {
	for _, r := range rows {
		if r.Ordinal <= s.pending[r.Tenant] && s.flaw != "stores rows delivered again" {
			continue
		}
		s.st.mu.Lock()
		gone := s.st.gone[[2]string{r.Tenant, r.Thread}]
		s.st.mu.Unlock()
		if gone {
			continue
		}
		if s.flaw != "keeps the caller's rows" {
			r.Data = bytes.Clone(r.Data)
			r.Meta = maps.Clone(r.Meta)
		}
		switch s.flaw {
		case "keeps times to the millisecond":
			r.Time = r.Time.Truncate(time.Millisecond)
		case "replaces invalid UTF-8":
			r.Data = bytes.ToValidUTF8(r.Data, []byte("\uFFFD"))
		case "drops NUL characters from metadata":
			for k, v := range r.Meta {
				r.Meta[k] = strings.ReplaceAll(v, "\x00", "")
			}
		}
		s.buf = append(s.buf, r)
	}
	if s.flaw == "moves positions back" {
		maps.Copy(s.pending, pos)
	} else {
		s.pending = s.pending.Merge(pos)
	}
	if s.flaw == "commits positions before rows" {
		s.st.mu.Lock()
		s.st.pos = s.st.pos.Merge(pos)
		s.st.mu.Unlock()
	}
	return nil
}

func (s *memSink) Delete(_ context.Context, ds []bridge.Deletion, pos bridge.Positions) error {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	for _, d := range ds {
		if d.Thread != "" && s.flaw == "ignores thread deletions" {
			continue
		}
		s.buf = slices.DeleteFunc(s.buf, func(r bridge.Row) bool { return d.Covers(&r) })
		switch s.flaw {
		case "deletes the thread in every tenant":
			s.st.rows = slices.DeleteFunc(s.st.rows, func(r bridge.Row) bool {
				return d.Thread != "" && r.Thread == d.Thread && r.Ordinal < d.Before
			})
		case "refuses the thread's next life":
			if d.Thread != "" {
				s.st.gone[[2]string{d.Tenant, d.Thread}] = true
			}
		}
		recorded := slices.ContainsFunc(slices.Concat(s.st.deletions, s.dels), func(r bridge.Deletion) bool {
			return r.Tenant == d.Tenant && r.Thread == d.Thread && r.Before == d.Before
		})
		switch {
		case recorded && s.flaw != "records a deletion applied again":
		case s.flaw == "commits a deletion's positions before it is durable":
			s.dels = append(s.dels, d) // recorded by the next Flush
		default:
			s.st.deletions = append(s.st.deletions, d)
		}
		if o, ok := s.pending[d.Tenant]; ok && d.Thread == "" && s.flaw != "keeps a deleted tenant's position" &&
			(o < d.Before || s.flaw == "removes a tenant's position whenever its deletion is applied again") {
			delete(s.pending, d.Tenant)
		}
	}
	s.pending = s.pending.Merge(pos)
	if s.flaw == "commits a deletion's positions before it is durable" {
		s.st.pos = maps.Clone(s.pending)
	}
	return nil
}

func (s *memSink) Flush(context.Context) error {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.rows = append(s.st.rows, s.buf...)
	s.buf = nil
	s.st.deletions = append(s.st.deletions, s.dels...)
	s.dels = nil
	if s.st.broken {
		if s.flaw == "ignores a failed commit" {
			return nil
		}
		return errRefused
	}
	switch s.flaw {
	case "moves positions back":
		maps.Copy(s.st.pos, s.pending)
	default:
		// pending starts from the committed positions: a tenant deletion
		// is the one way a position goes.
		s.st.pos = maps.Clone(s.pending)
	}
	return nil
}

func (s *memSink) Close(ctx context.Context) error {
	if s.flaw == "loses buffered rows on Close" {
		return nil
	}
	return s.Flush(ctx)
}

func memHarness(flaw string) func(t *testing.T) sinktest.Harness {
	return func(t *testing.T) sinktest.Harness {
		st := &store{pos: bridge.Positions{}, gone: map[[2]string]bool{}}
		return sinktest.Harness{
			Open: func(t *testing.T) bridge.Sink {
				st.mu.Lock()
				defer st.mu.Unlock()
				pending := maps.Clone(st.pos)
				if flaw == "forgets tenants not written again" {
					pending = bridge.Positions{}
				}
				return &memSink{st: st, flaw: flaw, pending: pending}
			},
			Stored: func(t *testing.T) []bridge.Row {
				st.mu.Lock()
				defer st.mu.Unlock()
				return slices.Clone(st.rows)
			},
			Deletions: func(t *testing.T) []bridge.Deletion {
				st.mu.Lock()
				defer st.mu.Unlock()
				return slices.Clone(st.deletions)
			},
			BreakCommits: func(t *testing.T) func() {
				st.mu.Lock()
				defer st.mu.Unlock()
				st.broken = true
				return func() {
					st.mu.Lock()
					defer st.mu.Unlock()
					st.broken = false
				}
			},
		}
	}
}

func TestMemorySinkConforms(t *testing.T) {
	sinktest.Run(t, memHarness(""))
}

// TestFlawed runs the suite on a flawed sink; TestSuiteCatchesFlaws runs it
// in a child process and reads which rules failed.
func TestFlawed(t *testing.T) {
	flaw := os.Getenv("SINKTEST_FLAW")
	if flaw == "" {
		t.Skip("run by TestSuiteCatchesFlaws")
	}
	sinktest.Run(t, memHarness(flaw))
}

func TestSuiteCatchesFlaws(t *testing.T) {
	if os.Getenv("SINKTEST_FLAW") != "" {
		t.Skip("in the child process")
	}
	for flaw, rule := range map[string]string{
		"commits positions before rows":      "after a crash, committed positions cover only stored rows and keep what was flushed",
		"stores rows delivered again":        "a batch delivered again after its commit is not stored twice",
		"loses buffered rows on Close":       "Close flushes: a reopened sink has every row and position written before",
		"moves positions back":               "positions never move back",
		"forgets tenants not written again":  "positions after a restart equal the committed positions",
		"ignores a failed commit":            "a failed commit leaves positions behind their rows, is reported, and a retried batch completes it",
		"keeps times to the millisecond":     "times from year 1 to 9999 round-trip at the sink's precision",
		"replaces invalid UTF-8":             "other payloads round-trip byte for byte: binary, invalid UTF-8, text, empty, 1 MiB",
		"drops NUL characters from metadata": "metadata at the engine's limits round-trips exactly",
		"keeps the caller's rows":            "rows handed to Write may be reused by the caller once it returns",

		"ignores thread deletions":                                           "a thread deletion removes or records the thread's rows below its ordinal, and later rows of the thread stay",
		"refuses the thread's next life":                                     "a thread deletion removes or records the thread's rows below its ordinal, and later rows of the thread stay",
		"keeps a deleted tenant's position":                                  "a tenant deletion removes or records every row of the tenant and its position",
		"records a deletion applied again":                                   "a deletion applied again changes nothing and is not recorded twice",
		"removes a tenant's position whenever its deletion is applied again": "a deletion applied again changes nothing and is not recorded twice",
		"commits a deletion's positions before it is durable":                "a deletion's positions are committed with it, never before it is durable",
		"deletes the thread in every tenant":                                 "rows of other threads and tenants are untouched by a deletion",
	} {
		t.Run(flaw, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestFlawed$", "-test.v")
			cmd.Env = append(os.Environ(), "SINKTEST_FLAW="+flaw)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a sink that %s:\n%s", flaw, out)
			}
			failed := failedSubtests(out)
			if !failed["TestFlawed/"+strings.ReplaceAll(rule, " ", "_")] {
				t.Errorf("the rule %q did not fail for a sink that %s; failed: %v", rule, flaw, slices.Sorted(maps.Keys(failed)))
			}
		})
	}
}

func failedSubtests(out []byte) map[string]bool {
	failed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "--- FAIL: "); ok {
			name, _, _ = strings.Cut(name, " (")
			failed[name] = true
		}
	}
	return failed
}
