package sinktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/bridge"
)

// key identifies a row.
type key struct {
	tenant, thread string
	ordinal        uint64
}

func keyOf(r *bridge.Row) key { return key{r.Tenant, r.Thread, r.Ordinal} }

func (k key) String() string { return fmt.Sprintf("%q/%q/%d", k.tenant, k.thread, k.ordinal) }

// env runs one rule: it opens sinks through the harness, remembers every row
// and position handed to them, and checks what the storage holds against
// that history.
type env struct {
	t   *testing.T
	h   Harness
	ctx context.Context

	written map[key]bridge.Row // every row handed to Write
	// handed are the positions the sink must end up with: every position
	// handed to Write and Delete, merged, without those that tenant
	// deletions removed.
	handed bridge.Positions
	// ceiling is every position handed, merged: no position may go beyond.
	ceiling   bridge.Positions
	deletions []bridge.Deletion // every deletion handed to Delete, once, in order
}

func newEnv(t *testing.T, h Harness) *env {
	return &env{t: t, h: h, ctx: t.Context(), written: map[key]bridge.Row{}, handed: bridge.Positions{}, ceiling: bridge.Positions{}}
}

// sink is an open sink, and whether the suite closed it.
type sink struct {
	bridge.Sink
	closed bool
}

// open opens a sink. One the suite does not close (a crash) is closed at
// the end of the subtest, after the checks.
func (e *env) open() *sink {
	e.t.Helper()
	s := &sink{Sink: e.h.Open(e.t)}
	e.t.Cleanup(func() {
		if !s.closed {
			s.closed = true
			if err := s.Close(context.Background()); err != nil {
				e.t.Logf("sinktest: closing a crashed sink at the end of the test: %v", err)
			}
		}
	})
	return s
}

// crash abandons s without Flush or Close, as a killed process would: the
// suite does not use it again.
func (e *env) crash(s *sink) {}

func (e *env) record(rows []bridge.Row, pos bridge.Positions) {
	for _, r := range rows {
		e.written[keyOf(&r)] = cloneRow(r)
	}
	e.handed = e.handed.Merge(pos)
	e.ceiling = e.ceiling.Merge(pos)
}

// dkey identifies a deletion.
type dkey struct {
	tenant, thread string
	before         uint64
}

func dkeyOf(d *bridge.Deletion) dkey { return dkey{d.Tenant, d.Thread, d.Before} }

func (k dkey) String() string {
	if k.thread == "" {
		return fmt.Sprintf("tenant %q below %d", k.tenant, k.before)
	}
	return fmt.Sprintf("thread %q/%q below %d", k.tenant, k.thread, k.before)
}

// recordDeletions follows the contract of Delete: a tenant deletion
// removes its tenant's position when below Before, then pos is merged.
func (e *env) recordDeletions(ds []bridge.Deletion, pos bridge.Positions) {
	for _, d := range ds {
		if !slices.ContainsFunc(e.deletions, func(h bridge.Deletion) bool { return dkeyOf(&h) == dkeyOf(&d) }) {
			e.deletions = append(e.deletions, d)
		}
		if o, ok := e.handed[d.Tenant]; ok && d.Thread == "" && o < d.Before {
			e.handed = maps.Clone(e.handed)
			delete(e.handed, d.Tenant)
		}
	}
	e.handed = e.handed.Merge(pos)
	e.ceiling = e.ceiling.Merge(pos)
}

// delete hands deletions and pos to s and fails the test on an error.
func (e *env) delete(s *sink, ds []bridge.Deletion, pos bridge.Positions) {
	e.t.Helper()
	if err := e.tryDelete(s, ds, pos); err != nil {
		e.t.Fatalf("Delete of %d deletions with positions %v: %v", len(ds), pos, err)
	}
}

// tryDelete hands deletions and pos to s, which may fail: the deletions
// may have been carried out anyway, so they count as handed.
func (e *env) tryDelete(s *sink, ds []bridge.Deletion, pos bridge.Positions) error {
	e.recordDeletions(ds, pos)
	return s.Delete(e.ctx, slices.Clone(ds), pos)
}

// deletedBy returns the handed deletion that covers the row with key k.
func (e *env) deletedBy(k key) (bridge.Deletion, bool) {
	r := bridge.Row{Tenant: k.tenant, Thread: k.thread, Ordinal: k.ordinal}
	for _, d := range e.deletions {
		if d.Covers(&r) {
			return d, true
		}
	}
	return bridge.Deletion{}, false
}

// recorded reads back the deletions the storage records, and checks that
// each is a deletion handed to the sink, intact.
func (e *env) recorded() []bridge.Deletion {
	e.t.Helper()
	if e.h.Deletions == nil {
		return nil
	}
	ds := e.h.Deletions(e.t)
	for i := range ds {
		got := &ds[i]
		k := dkeyOf(got)
		j := slices.IndexFunc(e.deletions, func(h bridge.Deletion) bool { return dkeyOf(&h) == k })
		if j < 0 {
			e.t.Errorf("the storage records a deletion never handed to the sink: %s", k)
			continue
		}
		p := e.h.TimePrecision
		if want := e.deletions[j].Time; !got.Time.Truncate(p).Equal(want.Truncate(p)) {
			e.t.Errorf("the deletion of %s is recorded with the time %s, want %s (kept to %v)", k,
				got.Time.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano), p)
		}
	}
	return ds
}

// visible returns the rows a reader of the storage sees: the rows stored,
// checked as stored checks them, without those that a recorded deletion
// covers. With Harness.Removes, no deletion is needed for that.
func (e *env) visible() []bridge.Row {
	e.t.Helper()
	rows := e.stored()
	ds := e.recorded()
	return slices.DeleteFunc(rows, func(r bridge.Row) bool {
		return slices.ContainsFunc(ds, func(d bridge.Deletion) bool { return d.Covers(&r) })
	})
}

// requireGone checks that rows hold no row that one of ds covers; with
// ds nil, no row that a deletion handed to the sink covers.
func (e *env) requireGone(rows []bridge.Row, ds []bridge.Deletion, what string) {
	e.t.Helper()
	if ds == nil {
		ds = e.deletions
	}
	var bad []string
	for i := range rows {
		for _, d := range ds {
			if d.Covers(&rows[i]) {
				bad = append(bad, fmt.Sprintf("%s (deleted: %s)", keyOf(&rows[i]), dkeyOf(&d)))
				break
			}
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		e.t.Errorf("%s holds %d deleted rows: %s", what, len(bad), cut(bad))
	}
}

// requireVisible checks that a reader sees every row written and not
// deleted, exactly once, and no deleted row; with Harness.Removes, that
// the storage holds no deleted row at all.
func (e *env) requireVisible(when string) {
	e.t.Helper()
	if e.h.Removes {
		e.requireGone(e.stored(), nil, "the storage "+when+" (the sink removes deleted rows)")
	}
	vis := e.visible()
	e.requireGone(vis, nil, "what a reader sees "+when)
	e.requireAll(vis)
	e.requireDuplicatesAfter(vis, nil, true)
}

// requireRecordedOnce checks that no deletion is recorded twice.
func (e *env) requireRecordedOnce(when string) {
	e.t.Helper()
	n := map[dkey]int{}
	for _, d := range e.recorded() {
		n[dkeyOf(&d)]++
	}
	var twice []string
	for k, c := range n {
		if c > 1 {
			twice = append(twice, fmt.Sprintf("%s (%d times)", k, c))
		}
	}
	if len(twice) > 0 {
		slices.Sort(twice)
		e.t.Errorf("deletions recorded more than once %s: %s", when, cut(twice))
	}
}

// write hands rows and pos to s and fails the test on an error.
func (e *env) write(s *sink, rows []bridge.Row, pos bridge.Positions) {
	e.t.Helper()
	if err := e.tryWrite(s, rows, pos); err != nil {
		e.t.Fatalf("Write of %d rows with positions %v: %v", len(rows), pos, err)
	}
}

// tryWrite hands rows and pos to s, which may fail: the rows may have been
// stored anyway, so they count as written.
func (e *env) tryWrite(s *sink, rows []bridge.Row, pos bridge.Positions) error {
	e.record(rows, pos)
	return s.Write(e.ctx, rows, pos)
}

func (e *env) flush(s *sink) {
	e.t.Helper()
	if err := s.Flush(e.ctx); err != nil {
		e.t.Fatalf("Flush: %v", err)
	}
}

func (e *env) close(s *sink) {
	e.t.Helper()
	s.closed = true
	if err := s.Close(e.ctx); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
}

// positions returns the sink's positions without zero entries, which mean
// the same as none.
func (e *env) positions(s *sink) bridge.Positions {
	e.t.Helper()
	pos, err := s.Positions(e.ctx)
	if err != nil {
		e.t.Fatalf("Positions: %v", err)
	}
	out := bridge.Positions{}
	for t, o := range pos {
		if o != 0 {
			out[t] = o
		}
	}
	return out
}

// stored reads back the storage and checks that every row it holds is a
// row written, intact.
func (e *env) stored() []bridge.Row {
	e.t.Helper()
	rows := e.h.Stored(e.t)
	for i := range rows {
		e.checkRow(&rows[i])
	}
	return rows
}

// checkRow reports a stored row that differs from the row written with its
// key, or that was never written.
func (e *env) checkRow(got *bridge.Row) {
	e.t.Helper()
	k := keyOf(got)
	want, ok := e.written[k]
	if !ok {
		e.t.Errorf("the storage holds a row that was never written: %s", k)
		return
	}
	var diffs []string
	if got.ID != want.ID {
		diffs = append(diffs, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.Type != want.Type {
		diffs = append(diffs, fmt.Sprintf("type %q, want %q", got.Type, want.Type))
	}
	if wt := want.Time.Truncate(e.h.TimePrecision); !got.Time.Equal(wt) {
		diffs = append(diffs, fmt.Sprintf("time %s, want %s (written as %s, kept to %v)",
			got.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"), wt.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"),
			want.Time.Format("2006-01-02T15:04:05.999999999Z07:00"), e.h.TimePrecision))
	}
	if !metaEqual(got.Meta, want.Meta) {
		diffs = append(diffs, fmt.Sprintf("metadata %s, want %s", showMeta(got.Meta), showMeta(want.Meta)))
	}
	if bridge.IsJSON(want.Data) {
		if !jsonEqual(got.Data, want.Data) {
			diffs = append(diffs, fmt.Sprintf("JSON payload %s is not the JSON value written, %s", show(got.Data), show(want.Data)))
		}
	} else if !bytes.Equal(got.Data, want.Data) {
		diffs = append(diffs, fmt.Sprintf("payload %s, want the bytes written, %s", show(got.Data), show(want.Data)))
	}
	if len(diffs) > 0 {
		e.t.Errorf("row %s read back differs from the row written:\n\t%s", k, strings.Join(diffs, "\n\t"))
	}
}

// requireAll checks that stored holds every row written that no deletion
// handed to the sink covers.
func (e *env) requireAll(stored []bridge.Row) {
	e.t.Helper()
	have := keys(stored)
	var missing []string
	live := 0
	for k := range e.written {
		if _, gone := e.deletedBy(k); gone {
			continue
		}
		live++
		if have[k] == 0 {
			missing = append(missing, k.String())
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		e.t.Fatalf("%d of %d rows written (and not deleted) are not stored: %s", len(missing), live, cut(missing))
	}
}

// requireOnce checks that stored holds every row written exactly once.
func (e *env) requireOnce(stored []bridge.Row) {
	e.t.Helper()
	e.requireAll(stored)
	e.requireDuplicatesAfter(stored, nil, true)
}

// requireDuplicatesAfter checks that a row is stored more than once only if
// the sink is not Unique and the row is after before[tenant], the position
// committed when it was delivered again; with never, no duplicate at all is
// allowed.
func (e *env) requireDuplicatesAfter(stored []bridge.Row, before bridge.Positions, never bool) {
	e.t.Helper()
	var bad []string
	for k, n := range keys(stored) {
		if n < 2 {
			continue
		}
		switch {
		case never:
			bad = append(bad, fmt.Sprintf("%s (%d times)", k, n))
		case e.h.Unique:
			bad = append(bad, fmt.Sprintf("%s (%d times, in a sink that deduplicates)", k, n))
		case k.ordinal <= before[k.tenant]:
			bad = append(bad, fmt.Sprintf("%s (%d times, at or below the committed position %d)", k, n, before[k.tenant]))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		e.t.Errorf("rows stored more than once: %s", cut(bad))
	}
}

// requireCovered checks the promise of positions: every row written at or
// below its tenant's position, and not deleted, is stored. It also checks
// that no position goes beyond what was handed to the sink.
func (e *env) requireCovered(stored []bridge.Row, pos bridge.Positions) {
	e.t.Helper()
	for t, o := range pos {
		if o > e.ceiling[t] {
			e.t.Errorf("position %d of tenant %q is past every position handed to the sink (%d)", o, t, e.ceiling[t])
		}
	}
	have := keys(stored)
	var missing []string
	for k := range e.written {
		if _, gone := e.deletedBy(k); gone {
			continue
		}
		if k.ordinal <= pos[k.tenant] && have[k] == 0 {
			missing = append(missing, k.String())
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		e.t.Errorf("positions %v cover %d rows that are not stored: %s", pos, len(missing), cut(missing))
	}
}

// requireAtLeast checks that every position of floor is kept by pos.
func (e *env) requireAtLeast(pos, floor bridge.Positions, what string) {
	e.t.Helper()
	for t, o := range floor {
		if pos[t] < o {
			e.t.Errorf("the position of tenant %q is %d, behind %d %s", t, pos[t], o, what)
		}
	}
}

// requirePositions checks that pos are the positions handed to the sink.
func (e *env) requirePositions(pos bridge.Positions, when string) {
	e.t.Helper()
	if !maps.Equal(pos, e.handed) {
		e.t.Errorf("positions %s are %v, want %v", when, pos, e.handed)
	}
}

// roundTrip writes rows (their positions follow), flushes, checks that each
// is stored once and intact, and that the positions survive a restart.
func (e *env) roundTrip(rows []bridge.Row) {
	e.t.Helper()
	s := e.open()
	e.write(s, rows, positionsOf(rows))
	e.flush(s)
	e.requireOnce(e.stored())
	e.close(s)
	s = e.open()
	e.requirePositions(e.positions(s), "after a restart")
	e.close(s)
}

func keys(rows []bridge.Row) map[key]int {
	m := make(map[key]int, len(rows))
	for i := range rows {
		m[keyOf(&rows[i])]++
	}
	return m
}

func cloneRow(r bridge.Row) bridge.Row {
	r.Data = bytes.Clone(r.Data)
	r.Meta = maps.Clone(r.Meta)
	return r
}

func metaEqual(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b) // nil and empty are equal
}

// jsonEqual reports whether a and b are the same JSON value. Numbers are
// compared as exact decimals, so 1E+2 equals 100 and 1.0 equals 1.
func jsonEqual(a, b []byte) bool {
	va, err := decodeJSON(a)
	if err != nil {
		return false
	}
	vb, err := decodeJSON(b)
	if err != nil {
		return false
	}
	return valueEqual(va, vb)
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

func valueEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !valueEqual(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !valueEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, oka := new(big.Rat).SetString(string(a))
		rb, okb := new(big.Rat).SetString(string(b))
		return oka && okb && ra.Cmp(rb) == 0
	default: // string, bool, nil
		return a == b
	}
}

// show prints a payload for a failure message, cut if long.
func show(b []byte) string {
	const max = 120
	if len(b) > max {
		return fmt.Sprintf("%q... (%d bytes)", b[:max], len(b))
	}
	if b == nil {
		return "none"
	}
	return fmt.Sprintf("%q", b)
}

func showMeta(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	s := fmt.Sprintf("%q", m)
	if len(s) > 300 {
		s = s[:300] + fmt.Sprintf("... (%d entries)", len(m))
	}
	return s
}

func cut(items []string) string {
	if len(items) > 10 {
		return strings.Join(items[:10], ", ") + fmt.Sprintf(" and %d more", len(items)-10)
	}
	return strings.Join(items, ", ")
}
