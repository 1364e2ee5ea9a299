package sessionlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
)

// HotThread is what a backend lends a ColdTier to archive one of its
// threads: a way to read the thread's live messages with their store
// times, and to purge them.
type HotThread interface {
	// ScanStored yields the thread's live messages with ordinal > after,
	// in ordinal order, with the times they were stored; a message that
	// is not a valid event comes with Corrupt set. Any other error is the
	// last element.
	ScanStored(ctx context.Context, key ThreadKey, after uint64) iter.Seq2[ColdRecord, error]
	// Purge removes the thread's live messages with ordinal <= through
	// from the hot log and returns how many it removed.
	Purge(ctx context.Context, key ThreadKey, through uint64) (int, error)
}

// ColdTierOptions configures a ColdTier.
type ColdTierOptions struct {
	// MaxAge is the log's maximum event age (0: none): archived events
	// expire like hot ones, counted from when the hot log stored them.
	MaxAge time.Duration
	// Now replaces time.Now, for tests of expiry.
	Now func() time.Time
	// SegmentBytes bounds the encoded records of one segment before
	// compression (default DefaultSegmentBytes); a segment always holds at
	// least one record.
	SegmentBytes int
}

// DefaultSegmentBytes is the default bound of a segment's records before
// compression.
const DefaultSegmentBytes = 4 << 20

// segmentSlack is what a segment may take beyond its records' size bound.
const segmentSlack = 16 << 10

// ColdTier moves archived events of a log into a ColdStore and reads them
// back. It is the one engine every backend uses (the memory log and the
// JetStream log), so that they behave the same.
//
// A thread's cold part is a sequence of segments, each a compressed run
// of consecutive archived messages of the thread, named by their first
// and last ordinals so that the store lists them in ordinal order. Every
// segment is untrusted input when read back: one that does not decode, or
// whose records are out of order or outside its name's range, is reported
// as a *CorruptEventError (at the segment's last ordinal) and stepped
// over, never a panic, a rewind or a duplicate. Names the tier cannot
// have written are ignored.
//
// Unlike a tenant stream, which agents write to, the cold store must be
// writable only by the log's archivers: a segment orders a read by the
// ordinals it claims, so a forged one could hide the hot events up to the
// last ordinal it claims (never reorder or repeat them).
type ColdTier struct {
	store        ColdStore
	maxAge       time.Duration
	now          func() time.Time
	segmentBytes int
}

// NewColdTier returns a tier keeping its segments in store.
func NewColdTier(store ColdStore, o ColdTierOptions) *ColdTier {
	t := &ColdTier{store: store, maxAge: o.MaxAge, now: o.Now, segmentBytes: o.SegmentBytes}
	if t.now == nil {
		t.now = time.Now
	}
	if t.segmentBytes <= 0 {
		t.segmentBytes = DefaultSegmentBytes
	}
	if l, ok := store.(ObjectLimiter); ok && l.MaxObjectBytes() > 0 {
		// Leave room for the record framing and the segment header: a
		// segment always fits, even one of the largest event alone.
		t.segmentBytes = max(1, min(t.segmentBytes, l.MaxObjectBytes()-segmentSlack))
	}
	return t
}

// Store returns the tier's store.
func (t *ColdTier) Store() ColdStore { return t.store }

func threadPrefix(thread string) string { return threadToken(thread) + "/" }

// segments lists the thread's segments in ordinal order.
func (t *ColdTier) segments(ctx context.Context, key ThreadKey) ([]segmentName, error) {
	prefix := threadPrefix(key.Thread)
	var out []segmentName
	for name, err := range t.store.List(ctx, key.Tenant, prefix) {
		if err != nil {
			return nil, fmt.Errorf("sessionlog: listing the cold segments of %q/%q: %w", key.Tenant, key.Thread, err)
		}
		if s, ok := parseSegmentName(name, prefix); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b segmentName) int {
		return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.last, b.last))
	})
	return out, nil
}

// expired reports whether a record stored at stored, expiring by TTL at
// expires (zero: never), has expired at now.
func (t *ColdTier) expired(stored, expires, now time.Time) bool {
	return t.maxAge > 0 && stored.Before(now.Add(-t.maxAge)) || !expires.IsZero() && !expires.After(now)
}

// whollyExpired reports whether every record of the segment has expired.
func (t *ColdTier) wholyExpired(s segmentName, now time.Time) bool {
	if t.maxAge > 0 && time.Unix(0, s.newest).Before(now.Add(-t.maxAge)) {
		return true
	}
	return s.ttlEnd != ^uint64(0) && s.ttlEnd <= uint64(max(0, now.UnixNano()))
}

// Archive moves the thread's messages with ordinal <= watermark from hot
// into the cold tier and returns how many it purged from the hot log.
//
// It reads the thread's cold index first, writes the hot messages after
// the last cold ordinal up to the watermark as segments, and only then
// purges the hot log up to the last ordinal written. A crash between the
// two steps leaves the events in both tiers, which reads through the tier
// tell apart (no gap, no duplicate); calling Archive again finds them in
// the cold index, writes nothing more and purges them. It purges only
// ordinals it read, so events appended meanwhile are never purged
// unarchived, whatever the watermark. Wholly expired segments are removed
// on the way.
func (t *ColdTier) Archive(ctx context.Context, key ThreadKey, watermark uint64, hot HotThread) (int, error) {
	if watermark == 0 {
		return 0, nil
	}
	segs, err := t.segments(ctx, key)
	if err != nil {
		return 0, err
	}
	now := t.now()
	var lastCold uint64
	for _, s := range segs {
		if t.wholyExpired(s, now) {
			if err := t.store.Delete(ctx, key.Tenant, s.name); err != nil {
				return 0, fmt.Errorf("sessionlog: removing expired cold segment %s: %w", s.name, err)
			}
		}
		lastCold = max(lastCold, s.last)
	}
	through := min(watermark, lastCold) // a rerun purges what the cold tier holds
	if watermark > lastCold {
		var batch []ColdRecord
		size := 0
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			name := makeSegmentName(key.Thread, batch)
			if err := t.store.Put(ctx, key.Tenant, name.name, encodeSegment(batch)); err != nil {
				return fmt.Errorf("sessionlog: writing cold segment %s: %w", name.name, err)
			}
			through = name.last
			batch, size = nil, 0
			return nil
		}
		for rec, err := range hot.ScanStored(ctx, key, lastCold) {
			if err != nil {
				// What was written stays: the next Archive goes on from it.
				if ferr := flush(); ferr != nil {
					return 0, errors.Join(err, ferr)
				}
				return 0, err
			}
			if rec.Ordinal > watermark {
				break
			}
			if rec.Ordinal <= lastCold {
				continue
			}
			if rs := recordSize(&rec); len(batch) > 0 && size+rs > t.segmentBytes {
				if err := flush(); err != nil {
					return 0, err
				}
			}
			batch = append(batch, rec)
			size += recordSize(&rec)
		}
		if err := flush(); err != nil {
			return 0, err
		}
	}
	if through == 0 {
		return 0, nil
	}
	return hot.Purge(ctx, key, through)
}

// readSegment fetches and decodes one segment of the thread.
func (t *ColdTier) readSegment(ctx context.Context, key ThreadKey, s segmentName) ([]ColdRecord, error) {
	data, err := t.store.Get(ctx, key.Tenant, s.name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil // removed since it was listed: expired or deleted
	}
	if err != nil {
		return nil, fmt.Errorf("sessionlog: reading cold segment %s of %q/%q: %w", s.name, key.Tenant, key.Thread, err)
	}
	recs, err := decodeSegment(data, s.first, s.last)
	if err != nil {
		return nil, &CorruptEventError{Key: key, Ordinal: s.last,
			Reason: fmt.Sprintf("cold segment %s (ordinals %d to %d) is unreadable: %v", s.name, s.first, s.last, err)}
	}
	return recs, nil
}

// segmentLookahead is how many segments a read through fetches ahead of
// the one it decodes: the store's round trips overlap instead of adding
// up, and at most this many segments wait in memory.
const segmentLookahead = 3

// prefetch reads segs in the background, at most segmentLookahead ahead
// of the caller, and returns fetched(i), which waits for segs[i] (callers
// take them in order), and stop, which ends the fetching and waits for it.
func (t *ColdTier) prefetch(ctx context.Context, key ThreadKey, segs []segmentName) (fetched func(i int) ([]ColdRecord, error), stop func()) {
	type result struct {
		recs []ColdRecord
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	results := make([]chan result, len(segs))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	ahead := make(chan struct{}, segmentLookahead)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, s := range segs {
			select {
			case ahead <- struct{}{}:
			case <-ctx.Done():
				return
			}
			recs, err := t.readSegment(ctx, key, s)
			results[i] <- result{recs, err}
		}
	}()
	fetched = func(i int) ([]ColdRecord, error) {
		select {
		case r := <-results[i]:
			<-ahead
			return r.recs, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	stop = func() {
		cancel()
		<-done
	}
	return fetched, stop
}

// readBuffer is how many hot records a read through the tier holds before
// it checks that no archive ran meanwhile.
const readBuffer = 1024

// Read yields the thread's records with ordinal > cursor from the cold
// tier and then from hot (which reads the hot log after a cursor), as one
// sequence in strictly increasing ordinal order, skipping what has
// expired. Corrupt messages and unreadable segments are yielded in their
// place as *CorruptEventError and the sequence goes on; any other error
// is the last element.
//
// The first run of hot records (up to 1,024) is read while the cold index
// is listed and its segments fetched, from the cursor: a hot read skips
// what the hot log no longer holds, so it starts at the thread's first
// live message whatever the cold tier holds, and records the cold tier
// also holds are dropped. An archive running meanwhile cannot open a gap:
// it writes its segments before it purges, so the read lists the cold
// index again after each run of hot records is read, before it hands the
// run over (one more List per run of 1,024 and at the end), and reads any
// new segment first. Ordinals at or below the last one yielded are
// skipped, so a message in both tiers (after a crash between an archive's
// two steps) is yielded once.
func (t *ColdTier) Read(ctx context.Context, key ThreadKey, cursor uint64, hot func(ctx context.Context, cursor uint64) iter.Seq2[Record, error]) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		hctx, cancelHot := context.WithCancel(ctx)
		next, stopHot := iter.Pull2(hot(hctx, cursor))
		var run hotRun
		firstRun := make(chan struct{})
		go func() {
			defer close(firstRun)
			run.read(next)
		}()
		defer func() {
			cancelHot()
			<-firstRun // next is never called by two goroutines at once
			stopHot()
		}()

		pos := cursor // highest ordinal yielded or stepped over
		// cold yields the listed segments ending after pos; it returns
		// false when the caller stopped or an error ended the read.
		cold := func(segs []segmentName, err error) bool {
			if err != nil {
				yield(Record{}, err)
				return false
			}
			segs = slices.DeleteFunc(segs, func(s segmentName) bool { return s.last <= pos })
			fetched, stop := t.prefetch(ctx, key, segs)
			defer stop()
			for i, s := range segs {
				recs, err := fetched(i) // taken even when skipped: it frees its place ahead
				if s.last <= pos {
					continue
				}
				var ce *CorruptEventError
				switch {
				case errors.As(err, &ce):
					pos = s.last
					if !yield(Record{Ordinal: s.last}, err) {
						return false
					}
					continue
				case err != nil:
					yield(Record{}, err)
					return false
				}
				now := t.now()
				for i := range recs {
					r := &recs[i]
					if r.Ordinal <= pos {
						continue
					}
					pos = r.Ordinal
					if r.Corrupt != nil {
						ce := *r.Corrupt
						ce.Key = key
						if !yield(Record{Ordinal: r.Ordinal}, &ce) {
							return false
						}
						continue
					}
					if t.expired(r.Stored, r.expires(), now) {
						continue
					}
					if !yield(r.Record, nil) {
						return false
					}
				}
			}
			return true
		}
		if !cold(t.segments(ctx, key)) {
			return
		}
		<-firstRun
		for {
			// The run was read before this listing: a segment written by
			// an archive whose purge the run saw is listed by now, and
			// covers what the run skipped.
			if !cold(t.segments(ctx, key)) {
				return
			}
			for _, it := range run.items {
				if it.rec.Ordinal <= pos {
					continue
				}
				pos = it.rec.Ordinal
				if !yield(it.rec, it.err) {
					return
				}
			}
			if run.err != nil {
				yield(Record{}, run.err)
				return
			}
			if run.done {
				return
			}
			run.read(next)
		}
	}
}

// hotRun is a run of records read from the hot log by a read through the
// tier.
type hotRun struct {
	items []hotItem
	done  bool  // the hot read ended
	err   error // what ended it, other than its end
}

type hotItem struct {
	rec Record
	err error // a corrupt message's
}

// read replaces the run with the next records of next, up to readBuffer.
func (r *hotRun) read(next func() (Record, error, bool)) {
	r.items = r.items[:0]
	for len(r.items) < readBuffer {
		rec, err, ok := next()
		if !ok {
			r.done = true
			return
		}
		if err != nil && !errors.Is(err, ErrCorruptEvent) {
			r.done, r.err = true, err
			return
		}
		r.items = append(r.items, hotItem{rec, err})
	}
}

// ColdHead describes a thread's cold part.
type ColdHead struct {
	First, Last, Count uint64
}

// Head reports the thread's live (unexpired) archived messages: the first
// and last ordinals and how many, counting corrupt messages as one each
// and unreadable segments as nothing. It reads every segment of the
// thread.
func (t *ColdTier) Head(ctx context.Context, key ThreadKey) (ColdHead, error) {
	segs, err := t.segments(ctx, key)
	if err != nil {
		return ColdHead{}, err
	}
	var h ColdHead
	var pos uint64
	now := t.now()
	for _, s := range segs {
		if s.last <= pos {
			continue
		}
		recs, err := t.readSegment(ctx, key, s)
		if errors.Is(err, ErrCorruptEvent) {
			pos = s.last
			continue
		}
		if err != nil {
			return ColdHead{}, err
		}
		for i := range recs {
			r := &recs[i]
			if r.Ordinal <= pos {
				continue
			}
			pos = r.Ordinal
			if r.Corrupt == nil && t.expired(r.Stored, r.expires(), now) {
				continue
			}
			if h.First == 0 {
				h.First = r.Ordinal
			}
			h.Last = r.Ordinal
			h.Count++
		}
	}
	return h, nil
}

// DeleteThread removes the thread's cold part.
func (t *ColdTier) DeleteThread(ctx context.Context, key ThreadKey) error {
	segs, err := t.segments(ctx, key)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if err := t.store.Delete(ctx, key.Tenant, s.name); err != nil {
			return fmt.Errorf("sessionlog: deleting cold segment %s: %w", s.name, err)
		}
	}
	return nil
}

// DeleteTenant removes the tenant's cold part.
func (t *ColdTier) DeleteTenant(ctx context.Context, tenant string) error {
	if err := t.store.DeleteTenant(ctx, tenant); err != nil {
		return fmt.Errorf("sessionlog: deleting the cold tier of tenant %q: %w", tenant, err)
	}
	return nil
}

// CollectRecords gathers a read (such as Scan's) the way LoadSince returns
// it: every valid record, and an error joining the corrupt-event errors
// beside them; any other error returns no records.
func CollectRecords(seq iter.Seq2[Record, error]) ([]Record, error) {
	var out []Record
	var corrupt []error
	for rec, err := range seq {
		if err != nil {
			if !errors.Is(err, ErrCorruptEvent) {
				return nil, err
			}
			corrupt = append(corrupt, err)
			continue
		}
		out = append(out, rec)
	}
	return out, errors.Join(corrupt...)
}
