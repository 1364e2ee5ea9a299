package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
)

// Multi delivers to several sinks. Its position for a tenant is the lowest
// of its sinks' positions, so a restart replays to every sink whatever any
// of them had not stored yet. Rows that a sink already has are delivered to
// it again, which the Sink contract makes harmless: at or below a sink's
// position, a sink does not store them twice. Write and Delete hand the
// rows or deletions to each sink in turn and stop at the first error; the
// bridge then retries the whole call, the sinks before the failing one
// included, which Delete being idempotent makes harmless too.
type Multi []Sink

var _ Sink = Multi(nil)

// Name implements Sink.
func (m Multi) Name() string {
	names := make([]string, len(m))
	for i, s := range m {
		names[i] = s.Name()
	}
	return strings.Join(names, "+")
}

// Positions implements Sink: for each tenant, the lowest position of the
// sinks, a tenant unknown to one of them having none.
func (m Multi) Positions(ctx context.Context) (Positions, error) {
	var out Positions
	for i, s := range m {
		pos, err := s.Positions(ctx)
		if err != nil {
			return nil, fmt.Errorf("bridge: positions of sink %s: %w", s.Name(), err)
		}
		if i == 0 {
			out = maps.Clone(pos) // the sink's own map may be its state
			continue
		}
		for t, o := range out {
			if p := pos[t]; p < o {
				out[t] = p
			}
		}
	}
	if out == nil {
		out = Positions{}
	}
	return out, nil
}

// Write implements Sink.
func (m Multi) Write(ctx context.Context, rows []Row, pos Positions) error {
	for _, s := range m {
		if err := s.Write(ctx, rows, pos); err != nil {
			return fmt.Errorf("bridge: writing to sink %s: %w", s.Name(), err)
		}
	}
	return nil
}

// Delete implements Sink: every sink carries out the deletions.
func (m Multi) Delete(ctx context.Context, d []Deletion, pos Positions) error {
	for _, s := range m {
		if err := s.Delete(ctx, d, pos); err != nil {
			return fmt.Errorf("bridge: deleting in sink %s: %w", s.Name(), err)
		}
	}
	return nil
}

// Flush implements Sink.
func (m Multi) Flush(ctx context.Context) error {
	var errs []error
	for _, s := range m {
		errs = append(errs, s.Flush(ctx))
	}
	return errors.Join(errs...)
}

// Close implements Sink.
func (m Multi) Close(ctx context.Context) error {
	var errs []error
	for _, s := range m {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}
