package bridge

import (
	"context"
	"errors"
	"strings"
)

// Multi delivers to several sinks. Its position for a tenant is the lowest
// of its sinks' positions, so a restart replays to every sink whatever any
// of them had not stored yet (rows that a sink already has are delivered to
// it again: at least once).
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

// Positions implements Sink.
func (m Multi) Positions(ctx context.Context) (Positions, error) {
	var out Positions
	for i, s := range m {
		pos, err := s.Positions(ctx)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			out = pos
			continue
		}
		for t, o := range out {
			if p, ok := pos[t]; !ok || p < o {
				out[t] = p // a tenant unknown to one sink starts from 0
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
			return err
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
