// Package memstore is an in-memory sessionlog.ColdStore, for tests and
// single-process tools: nothing survives the process.
package memstore

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/jetsession/jetsession/sessionlog"
)

// Store is an in-memory cold store. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	tenants map[string]map[string][]byte
}

var _ sessionlog.ColdStore = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{tenants: map[string]map[string][]byte{}} }

// Put implements sessionlog.ColdStore.
func (s *Store) Put(ctx context.Context, tenant, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenant]
	if t == nil {
		t = map[string][]byte{}
		s.tenants[tenant] = t
	}
	t[name] = slices.Clone(data)
	return nil
}

// Get implements sessionlog.ColdStore.
func (s *Store) Get(ctx context.Context, tenant, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.tenants[tenant][name]
	if !ok {
		return nil, fmt.Errorf("memstore: %q of tenant %q: %w", name, tenant, sessionlog.ErrNotFound)
	}
	return slices.Clone(data), nil
}

// List implements sessionlog.ColdStore.
func (s *Store) List(ctx context.Context, tenant, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		s.mu.Lock()
		var names []string
		for name := range s.tenants[tenant] {
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
		}
		s.mu.Unlock()
		slices.Sort(names)
		for _, name := range names {
			if !yield(name, nil) {
				return
			}
		}
	}
}

// Delete implements sessionlog.ColdStore.
func (s *Store) Delete(ctx context.Context, tenant, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tenants[tenant], name)
	return nil
}

// DeleteTenant implements sessionlog.ColdStore.
func (s *Store) DeleteTenant(ctx context.Context, tenant string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tenants, tenant)
	return nil
}
