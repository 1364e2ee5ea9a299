package acctest

import (
	"context"
	"maps"
	"sync"

	"github.com/jetsession/jetsession/bridge"
)

// MemorySink is a bridge.Sink that keeps rows in memory and carries out
// deletions, for tests that watch what a bridge delivers.
type MemorySink struct {
	mu        sync.Mutex
	rows      map[string][]bridge.Row // by tenant
	pos       bridge.Positions
	deletions []bridge.Deletion
}

var _ bridge.Sink = (*MemorySink)(nil)

// NewMemorySink returns an empty sink.
func NewMemorySink() *MemorySink {
	return &MemorySink{rows: map[string][]bridge.Row{}, pos: bridge.Positions{}}
}

// Name implements bridge.Sink.
func (s *MemorySink) Name() string { return "memory" }

// Positions implements bridge.Sink.
func (s *MemorySink) Positions(context.Context) (bridge.Positions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.pos), nil
}

// Write implements bridge.Sink.
func (s *MemorySink) Write(_ context.Context, rows []bridge.Row, pos bridge.Positions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		if r.Ordinal <= s.pos[r.Tenant] {
			continue
		}
		r.Data = append([]byte(nil), r.Data...)
		r.Meta = maps.Clone(r.Meta)
		s.rows[r.Tenant] = append(s.rows[r.Tenant], r)
	}
	for t, p := range pos {
		s.pos[t] = max(s.pos[t], p)
	}
	return nil
}

// Delete carries out deletions (the bridge's optional deleter).
func (s *MemorySink) Delete(_ context.Context, ds []bridge.Deletion, pos bridge.Positions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.deletions = append(s.deletions, d)
		kept := s.rows[d.Tenant][:0]
		for _, r := range s.rows[d.Tenant] {
			if r.Ordinal < d.Before && (d.Thread == "" || d.Thread == r.Thread) {
				continue
			}
			kept = append(kept, r)
		}
		s.rows[d.Tenant] = kept
	}
	for t, p := range pos {
		s.pos[t] = max(s.pos[t], p)
	}
	return nil
}

// Flush implements bridge.Sink.
func (s *MemorySink) Flush(context.Context) error { return nil }

// Close implements bridge.Sink.
func (s *MemorySink) Close(context.Context) error { return nil }

// Rows returns a copy of the tenant's rows.
func (s *MemorySink) Rows(tenant string) []bridge.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bridge.Row(nil), s.rows[tenant]...)
}

// Deletions returns the deletions carried out.
func (s *MemorySink) Deletions() []bridge.Deletion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bridge.Deletion(nil), s.deletions...)
}
