package sessionlog

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleRecords() []ColdRecord {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return []ColdRecord{
		{Record: Record{Ordinal: 3, Event: Event{ID: "a", Type: "user_message", Time: at, Data: []byte(`{"x":1}`), Meta: map[string]string{"k": "v", "a": "b"}}}, Stored: at},
		{Record: Record{Ordinal: 7}, Stored: at.Add(time.Second), Corrupt: &CorruptEventError{Ordinal: 7, Reason: "no header", Time: at, Data: []byte("junk")}},
		{Record: Record{Ordinal: 9, Event: Event{ID: "b", Type: "tool_call", Time: at, TTL: 5 * time.Second}}, Stored: at.Add(2 * time.Second)},
	}
}

func TestSegmentRoundTrip(t *testing.T) {
	recs := sampleRecords()
	got, err := decodeSegment(encodeSegment(recs), 3, 9)
	require.NoError(t, err)
	require.Equal(t, recs, got)
}

func TestSegmentDecodeRefusesWhatDoesNotFitItsName(t *testing.T) {
	data := encodeSegment(sampleRecords())
	for _, r := range [][2]uint64{{4, 9}, {3, 8}, {1, 5}, {10, 20}} {
		_, err := decodeSegment(data, r[0], r[1])
		require.Error(t, err, "range %v", r)
	}
	disordered := sampleRecords()
	disordered[0].Ordinal, disordered[2].Ordinal = 9, 3
	_, err := decodeSegment(encodeSegment(disordered), 3, 9)
	require.ErrorContains(t, err, "does not follow")
	dup := sampleRecords()
	dup[1].Ordinal = 3
	_, err = decodeSegment(encodeSegment(dup), 3, 9)
	require.Error(t, err)
	for i := range len(data) - 1 {
		_, err := decodeSegment(data[:i], 3, 9)
		require.Error(t, err, "truncated at %d", i)
	}
}

// FuzzDecodeSegment checks that no input makes the decoder panic, and that
// whatever it accepts is strictly increasing, inside the range, valid, and
// encodes back to what decodes the same.
func FuzzDecodeSegment(f *testing.F) {
	good := encodeSegment(sampleRecords())
	f.Add(good, uint64(3), uint64(9))
	f.Add(good[:len(good)/2], uint64(3), uint64(9))
	f.Add([]byte("JSCS\x01\x00"), uint64(1), uint64(1))
	f.Add([]byte("JSCS\x01\xff\xff\xff\xff\x0f"), uint64(1), uint64(1))
	f.Add(append([]byte("JSCS\x01\x05"), zstdEnc().EncodeAll([]byte{1, 1, 0, 0, 0}, nil)...), uint64(1), uint64(1))
	f.Add(append([]byte("JSCS\x01\x03"), zstdEnc().EncodeAll([]byte{0xff, 0xff, 0x01}, nil)...), uint64(0), uint64(^uint64(0)))
	f.Fuzz(func(t *testing.T, data []byte, first, last uint64) {
		recs, err := decodeSegment(data, first, last)
		if err != nil {
			return
		}
		require.NotEmpty(t, recs)
		for i := range recs {
			require.GreaterOrEqual(t, recs[i].Ordinal, first)
			require.LessOrEqual(t, recs[i].Ordinal, last)
			if i > 0 {
				require.Greater(t, recs[i].Ordinal, recs[i-1].Ordinal)
			}
			if recs[i].Corrupt == nil {
				require.NoError(t, ValidateEvent(&recs[i].Event))
			}
		}
		again, err := decodeSegment(encodeSegment(recs), first, last)
		require.NoError(t, err)
		require.Equal(t, recs, again)
	})
}

func TestSegmentNamesSortByOrdinalAndParseBack(t *testing.T) {
	a := makeSegmentName("t", sampleRecords()[:1])
	b := makeSegmentName("t", sampleRecords()[1:])
	require.Less(t, a.name, b.name)
	p, ok := parseSegmentName(b.name, threadPrefix("t"))
	require.True(t, ok)
	require.Equal(t, b, p)
	for _, bad := range []string{"x", threadPrefix("t") + "1-2-3-4", threadPrefix("t") + strings.Repeat("0", 20) + "-" + strings.Repeat("0", 20) + "-0000000000000000-0000000000000000"} {
		_, ok := parseSegmentName(bad, threadPrefix("t"))
		require.False(t, ok, bad)
	}
	require.NotEqual(t, threadToken("Thread"), threadToken("thread"))
	require.Equal(t, strings.ToLower(threadToken("Thread")), threadToken("Thread"))
}

// listStore is a minimal in-package ColdStore (the real ones live in
// packages that import this one).
type listStore struct {
	mu   sync.Mutex
	objs map[string][]byte
	puts int
	// failAfterPut makes the n-th Put (1-based) store the object and then
	// fail, as if the process died after the write.
	failAfterPut int
}

func newListStore() *listStore { return &listStore{objs: map[string][]byte{}} }

var errCrash = errors.New("crash after the segment write")

func (s *listStore) Put(_ context.Context, tenant, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[tenant+"|"+name] = bytes.Clone(data)
	s.puts++
	if s.puts == s.failAfterPut {
		return errCrash
	}
	return nil
}

func (s *listStore) Get(_ context.Context, tenant, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.objs[tenant+"|"+name]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(d), nil
}

func (s *listStore) List(_ context.Context, tenant, prefix string) iter.Seq2[string, error] {
	s.mu.Lock()
	var names []string
	for k := range s.objs {
		if n, ok := strings.CutPrefix(k, tenant+"|"); ok && strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	slices.Sort(names)
	return func(yield func(string, error) bool) {
		for _, n := range names {
			if !yield(n, nil) {
				return
			}
		}
	}
}

func (s *listStore) Delete(_ context.Context, tenant, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, tenant+"|"+name)
	return nil
}

func (s *listStore) DeleteTenant(_ context.Context, tenant string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.objs {
		if strings.HasPrefix(k, tenant+"|") {
			delete(s.objs, k)
		}
	}
	return nil
}

func (s *listStore) names(tenant string) []string {
	var out []string
	for n, err := range s.List(context.Background(), tenant, "") {
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

var tk = ThreadKey{Tenant: "acme", Thread: "t"}

func appendN(t *testing.T, m *Memory, n int) {
	t.Helper()
	for i := range n {
		_, err := m.Append(context.Background(), tk, []Event{{Type: "t", Data: bytes.Repeat([]byte{byte('a' + i%26)}, 100)}})
		require.NoError(t, err)
	}
}

func loadThrough(t *testing.T, m *Memory) []uint64 {
	t.Helper()
	recs, err := m.LoadSince(context.Background(), tk, 0, IncludeArchived())
	require.NoError(t, err)
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Ordinal
	}
	return out
}

func TestLargeArchivesAreSplitIntoBoundedSegments(t *testing.T) {
	store := newListStore()
	m := NewMemory(WithMemoryColdStore(store))
	m.cold = NewColdTier(store, ColdTierOptions{SegmentBytes: 1000})
	appendN(t, m, 50)
	want := loadThrough(t, m)
	n, err := m.ArchiveBefore(context.Background(), tk, ^uint64(0))
	require.NoError(t, err)
	require.Equal(t, 50, n)
	names := store.names("acme")
	require.Greater(t, len(names), 5, "50 events of about 170 bytes in segments of 1000")
	for _, name := range names {
		require.Less(t, len(store.objs["acme|"+name]), 1000+segmentSlack)
	}
	require.Equal(t, want, loadThrough(t, m))
}

func TestCrashBetweenSegmentWriteAndPurgeLeavesNoGapOrDuplicate(t *testing.T) {
	for _, failAt := range []int{1, 2, 3} {
		store := newListStore()
		m := NewMemory(WithMemoryColdStore(store))
		m.cold = NewColdTier(store, ColdTierOptions{SegmentBytes: 1000})
		appendN(t, m, 20) // about 4 segments
		want := loadThrough(t, m)
		store.failAfterPut = failAt
		_, err := m.ArchiveBefore(context.Background(), tk, want[15])
		require.ErrorIs(t, err, errCrash)
		require.Len(t, store.names("acme"), failAt, "the segments written before the crash stay")
		h, err := m.Head(context.Background(), tk)
		require.NoError(t, err)
		require.Equal(t, uint64(20), h.Count, "nothing was purged")
		require.Equal(t, want, loadThrough(t, m), "crash at put %d: no duplicate", failAt)
		n, err := m.ArchiveBefore(context.Background(), tk, want[15])
		require.NoError(t, err)
		require.Equal(t, 16, n, "the rerun finishes the job")
		require.Equal(t, want, loadThrough(t, m), "crash at put %d: no gap after the rerun", failAt)
		h, err = m.Head(context.Background(), tk)
		require.NoError(t, err)
		require.Equal(t, Head{First: want[16], Last: want[19], Count: 4, ArchivedFirst: want[0], ArchivedLast: want[15], ArchivedCount: 16}, h)
		n, err = m.ArchiveBefore(context.Background(), tk, want[15])
		require.NoError(t, err)
		require.Zero(t, n)
	}
}

func TestWhollyExpiredSegmentsAreRemovedByTheNextArchive(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	store := newListStore()
	m := NewMemory(WithMemoryColdStore(store), WithMemoryMaxAge(time.Hour), WithMemoryClock(func() time.Time { return now }))
	appendN(t, m, 3)
	_, err := m.ArchiveBefore(context.Background(), tk, ^uint64(0))
	require.NoError(t, err)
	now = now.Add(30 * time.Minute)
	appendN(t, m, 2)
	_, err = m.ArchiveBefore(context.Background(), tk, ^uint64(0))
	require.NoError(t, err)
	require.Len(t, store.names("acme"), 2)
	require.Len(t, loadThrough(t, m), 5)
	now = now.Add(45 * time.Minute) // the first segment is past the maximum age
	require.Len(t, loadThrough(t, m), 2, "reads skip what has expired")
	h, err := m.Head(context.Background(), tk)
	require.NoError(t, err)
	require.Equal(t, uint64(2), h.ArchivedCount)
	appendN(t, m, 1)
	_, err = m.ArchiveBefore(context.Background(), tk, ^uint64(0))
	require.NoError(t, err)
	require.Len(t, store.names("acme"), 2, "the expired segment went, the new one came")
	require.Len(t, loadThrough(t, m), 3)
}

func TestAnUnreadableSegmentIsReportedAndSteppedOver(t *testing.T) {
	store := newListStore()
	m := NewMemory(WithMemoryColdStore(store))
	appendN(t, m, 2)
	ords := loadThrough(t, m)
	_, err := m.ArchiveBefore(context.Background(), tk, ords[0])
	require.NoError(t, err)
	_, err = m.ArchiveBefore(context.Background(), tk, ords[1])
	require.NoError(t, err)
	appendN(t, m, 1)
	names := store.names("acme")
	require.Len(t, names, 2)
	// A foreign writer replaces the first segment with one claiming
	// ordinals outside its name, and adds an object the tier cannot have
	// written.
	other := encodeSegment([]ColdRecord{{Record: Record{Ordinal: ords[1] + 100, Event: Event{ID: "x", Type: "t", Time: time.Now()}}, Stored: time.Now()}})
	store.objs["acme|"+names[0]] = other
	store.objs["acme|"+threadPrefix("t")+"garbage"] = []byte("garbage")
	var got []uint64
	var corrupt []*CorruptEventError
	for rec, err := range m.Scan(context.Background(), tk, 0, IncludeArchived()) {
		if err != nil {
			var ce *CorruptEventError
			require.ErrorAs(t, err, &ce)
			corrupt = append(corrupt, ce)
		}
		got = append(got, rec.Ordinal)
	}
	require.Len(t, corrupt, 1)
	require.Equal(t, ords[0], corrupt[0].Ordinal)
	require.Contains(t, corrupt[0].Reason, "outside the segment's range")
	require.Len(t, got, 3)
	require.Equal(t, ords, got[:2])
	require.Greater(t, got[2], ords[1])
}

// TestAReadThroughManySegmentsMayStopAnywhere: segments are fetched ahead
// of the reader; a reader that stops early, after any number of records,
// ends the fetching and returns, and a later read sees every record.
func TestAReadThroughManySegmentsMayStopAnywhere(t *testing.T) {
	store := newListStore()
	m := NewMemory(WithMemoryColdStore(store))
	m.cold = NewColdTier(store, ColdTierOptions{SegmentBytes: 1000})
	appendN(t, m, 50)
	want := loadThrough(t, m)
	_, err := m.ArchiveBefore(context.Background(), tk, want[39])
	require.NoError(t, err)
	require.Greater(t, len(store.names("acme")), segmentLookahead+1, "more segments than are fetched ahead")
	for stopAt := range len(want) {
		var got []uint64
		for rec, err := range m.Scan(context.Background(), tk, 0, IncludeArchived()) {
			require.NoError(t, err)
			got = append(got, rec.Ordinal)
			if len(got) == stopAt+1 {
				break
			}
		}
		require.Equal(t, want[:stopAt+1], got)
	}
	require.Equal(t, want, loadThrough(t, m))
}
