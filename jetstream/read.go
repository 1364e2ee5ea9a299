package jetstream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// staleRetries bounds how often a read retries a replica that is behind
// the stream leader before reading the rest through the leader.
const staleRetries = 8

// replicaWaits are the pauses between the direct gets a replicated read
// retries while a replica lags (staleRetries-1 of them, 10 ms in all):
// replicas seen behind an acknowledged write caught up within 5.3 ms.
// Before, the pauses grew by a millisecond a retry, 28 ms in all.
var replicaWaits = [staleRetries - 1]time.Duration{
	500 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, time.Millisecond,
	2 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond,
}

// leaderProbeEvery is how many events a read takes from the stream leader,
// once replicas stayed behind, between two batched direct gets that check
// whether a replica caught up. The leader serves one message a request, so
// a read stuck on it costs a round trip an event, but never the backoff of
// staleRetries again.
const leaderProbeEvery = 32

// LoadSince implements sessionlog.Log, reading like Scan. Every valid
// record is returned; messages that are not valid events are reported
// beside them, joined in the error. The first chunk read becomes the result
// as is, so a thread read in one chunk is not copied again.
//
// With sessionlog.IncludeArchived and a cold store (WithColdStore) it
// reads through the cold tier like Scan.
func (l *Log) LoadSince(ctx context.Context, key sessionlog.ThreadKey, cursor uint64, opts ...sessionlog.ReadOption) ([]sessionlog.Record, error) {
	if l.cold != nil && sessionlog.ResolveReadOptions(opts).Archived {
		return sessionlog.CollectRecords(l.Scan(ctx, key, cursor, opts...))
	}
	var out []sessionlog.Record
	var corrupt []error
	err := l.read(ctx, key, cursor, func(c *chunk) bool {
		if out == nil {
			out = c.recs
		} else {
			out = append(out, c.recs...)
		}
		for _, ce := range c.corrupt {
			corrupt = append(corrupt, ce)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		out = nil
	}
	return out, errors.Join(corrupt...)
}

// Scan implements sessionlog.Log.
//
// Reads use batched direct gets and trust a reply only when it is provably
// the server's (see directGet); the next message after a reply that is not
// is read through the stream leader. On a single-replica stream the one
// server answering is always current, and a read with many events left
// after its first batch reads the rest through a consumer, faster for long
// threads (see consumerread.go and WithConsumerReads). On a replicated
// stream any replica may answer and a follower can
// lag behind an acknowledged write, so the read also asks the stream
// leader, in parallel, for the thread's first live event after the cursor
// and its last event, drops what the leader no longer has and keeps reading
// until it reaches the leader's last event, falling back to leader-served
// gets if replicas stay behind.
//
// With sessionlog.IncludeArchived and a cold store (WithColdStore) it
// yields the thread's archived events from the cold tier first, then the
// hot ones read as above, without a gap or a duplicate even while an
// archive runs (see sessionlog.ColdTier.Read).
func (l *Log) Scan(ctx context.Context, key sessionlog.ThreadKey, cursor uint64, opts ...sessionlog.ReadOption) iter.Seq2[sessionlog.Record, error] {
	if l.cold != nil && sessionlog.ResolveReadOptions(opts).Archived {
		return func(yield func(sessionlog.Record, error) bool) {
			if err := sessionlog.ValidateKey(key); err != nil {
				yield(sessionlog.Record{}, err)
				return
			}
			for rec, err := range l.cold.Read(ctx, key, cursor, func(ctx context.Context, cursor uint64) iter.Seq2[sessionlog.Record, error] {
				return l.Scan(ctx, key, cursor)
			}) {
				if !yield(rec, err) {
					return
				}
			}
		}
	}
	return func(yield func(sessionlog.Record, error) bool) {
		err := l.read(ctx, key, cursor, func(c *chunk) bool { return c.yield(yield) })
		if err != nil {
			yield(sessionlog.Record{}, err)
		}
	}
}

// chunk is what one read request returned: valid records and corrupt
// messages, each in ordinal order.
type chunk struct {
	recs    []sessionlog.Record
	corrupt []*sessionlog.CorruptEventError
	// stored holds when each of recs was stored, for archiving only.
	stored []time.Time
}

func (c *chunk) add(rec sessionlog.Record, cerr *sessionlog.CorruptEventError) {
	if cerr != nil {
		c.corrupt = append(c.corrupt, cerr)
		return
	}
	c.recs = append(c.recs, rec)
}

// addMsg decodes m into the chunk, keeping its store time when asked.
func (c *chunk) addMsg(key sessionlog.ThreadKey, token string, m *served, keepTimes bool) {
	rec, cerr := decodeEvent(key, token, m)
	c.add(rec, cerr)
	if keepTimes && cerr == nil {
		c.stored = append(c.stored, m.time)
	}
}

func (c *chunk) empty() bool { return len(c.recs) == 0 && len(c.corrupt) == 0 }

// lastOrdinal is the chunk's highest ordinal, 0 for an empty chunk.
func (c *chunk) lastOrdinal() uint64 {
	var last uint64
	if n := len(c.recs); n > 0 {
		last = c.recs[n-1].Ordinal
	}
	if n := len(c.corrupt); n > 0 {
		last = max(last, c.corrupt[n-1].Ordinal)
	}
	return last
}

// dropBefore removes what has an ordinal below first.
func (c *chunk) dropBefore(first uint64) {
	i := 0
	for i < len(c.recs) && c.recs[i].Ordinal < first {
		i++
	}
	c.recs = c.recs[i:]
	if len(c.stored) > 0 {
		c.stored = c.stored[i:]
	}
	j := 0
	for j < len(c.corrupt) && c.corrupt[j].Ordinal < first {
		j++
	}
	c.corrupt = c.corrupt[j:]
}

// yield hands the chunk's records and corrupt messages over in ordinal
// order, and reports whether the caller wants more.
func (c *chunk) yield(yield func(sessionlog.Record, error) bool) bool {
	i, j := 0, 0
	for i < len(c.recs) || j < len(c.corrupt) {
		if j == len(c.corrupt) || i < len(c.recs) && c.recs[i].Ordinal < c.corrupt[j].Ordinal {
			if !yield(c.recs[i], nil) {
				return false
			}
			i++
			continue
		}
		if !yield(sessionlog.Record{Ordinal: c.corrupt[j].Ordinal}, c.corrupt[j]) {
			return false
		}
		j++
	}
	return true
}

// read hands the thread's records after cursor to each, one chunk at a
// time, until the thread's end or each returns false. Chunks before an
// error are handed over before it is returned.
func (l *Log) read(ctx context.Context, key sessionlog.ThreadKey, cursor uint64, each func(*chunk) bool) error {
	return l.readTimes(ctx, key, cursor, false, each)
}

// readTimes is read, keeping store times in the chunks when keepTimes is
// set.
func (l *Log) readTimes(ctx context.Context, key sessionlog.ThreadKey, cursor uint64, keepTimes bool, each func(*chunk) bool) error {
	if err := sessionlog.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if cursor == math.MaxUint64 {
		return nil // nothing can follow, and cursor+1 would wrap
	}
	r := &reader{
		l:         l,
		key:       key,
		stream:    l.cfg.scheme.Stream(key.Tenant),
		subject:   l.cfg.scheme.Subject(key.Tenant, key.Thread),
		token:     subjects.EncodeThread(key.Thread),
		cursor:    cursor,
		keepTimes: keepTimes,
	}
	defer r.closeConsumer()
	for {
		c, done, err := r.next(ctx)
		if !c.empty() && !each(c) {
			return nil
		}
		if err != nil || done {
			return err
		}
	}
}

// reader reads one thread in chunks from cursor on. Its cursor only moves
// forward, to ordinals the server gave, so a read always ends.
type reader struct {
	l               *Log
	key             sessionlog.ThreadKey
	stream, subject string
	token           string
	cursor          uint64 // last ordinal returned
	keepTimes       bool   // keep store times in chunks (archiving)

	started  bool
	replicas int
	head     uint64 // leader's last ordinal at the start, replicated streams only
	stale    int    // consecutive reads that made no progress
	// leaderNext makes the next read go through the leader: the last
	// direct get ended at a reply that is not provably the server's.
	leaderNext bool
	// fromLeaderRun counts the events read through the leader since
	// replicas last made progress; while it is not 0 the read stays on the
	// leader, trying a direct get every leaderProbeEvery events.
	fromLeaderRun int
	// firstDone is set once the first direct get of a single-replica
	// stream returned; cons is the consumer reading the rest, if any (see
	// consumerread.go).
	firstDone bool
	cons      *consumerRead
}

// onLeader reports whether the next read goes through the leader, and
// clears a one-off leaderNext.
func (r *reader) onLeader() bool {
	switch {
	case r.leaderNext:
		r.leaderNext = false
		return true
	case r.fromLeaderRun > 0:
		return r.fromLeaderRun%leaderProbeEvery != 0
	case r.stale >= staleRetries:
		return true
	}
	return false
}

func (r *reader) next(ctx context.Context) (*chunk, bool, error) {
	if !r.started {
		r.started = true
		st, ok, err := r.l.streamState(ctx, r.stream)
		if err != nil || !ok {
			return &chunk{}, true, err
		}
		r.replicas = st.replicas
		if st.replicas > 1 {
			return r.firstReplicated(ctx)
		}
	}
	if r.replicas > 1 {
		return r.nextReplicated(ctx)
	}
	if r.onLeader() {
		c, found, err := r.fromLeader(ctx)
		return c, !found || err != nil, err
	}
	if r.cons != nil {
		c, done, err := r.cons.next(ctx, r)
		if errors.Is(err, errConsumerLost) {
			r.closeConsumer() // the rest with direct gets, after r.cursor
			return c, false, nil
		}
		return c, done, err
	}
	batch := r.l.cfg.readEvents
	if !r.firstDone && r.l.consumerReads() {
		batch = min(batch, firstReadBatch)
	}
	c, pending, err := r.direct(ctx, r.cursor+1, batch)
	switch {
	case errors.Is(err, errUnverified):
		r.leaderNext = true
		return c, false, nil
	case errors.Is(err, errDirectUnavailable):
		// The stream exists but does not serve direct gets yet (it is
		// starting up): read through the leader meanwhile, trying direct
		// gets again now and then.
		r.stale++
		r.fromLeaderRun++
		return c, false, nil
	case err != nil:
		return c, true, err
	}
	r.stale, r.fromLeaderRun = 0, 0
	done := pending == 0 || c.empty()
	if !r.firstDone {
		r.firstDone = true
		if !done && r.l.consumerReads() && pending >= uint64(r.l.cfg.consumerReadMin) {
			r.cons = r.startConsumerRead(ctx, r.cursor+1)
		}
	}
	return c, done, nil
}

// closeConsumer ends the read's consumer, if any.
func (r *reader) closeConsumer() {
	if r.cons != nil {
		r.cons.close()
		r.cons = nil
	}
}

// firstReplicated starts a read of a replicated stream: the leader's first
// live event after the cursor and last event, and a direct get, at once.
//
// The direct get is also a second opinion on the leader. A replica only
// ever holds what the leader committed, so a replica that holds a later
// message of the thread than the leader reports means either that the
// leader archived it (the replica lags behind the purge) or that the node
// answering as leader is not the leader any more: a leader that was paused
// answers from its stale store until it hears of the new term. The
// stream's last sequence tells them apart (a purge never lowers it); a
// stale leader is asked again after a moment.
func (r *reader) firstReplicated(ctx context.Context) (*chunk, bool, error) {
	start := r.cursor
	for attempt := 0; ; attempt++ {
		c, done, stale, err := r.firstReplicatedOnce(ctx, start)
		if err != nil || !stale || attempt >= staleRetries {
			return c, done, err
		}
		r.cursor, r.leaderNext = start, false
		if err := ctxtime.Sleep(ctx, time.Duration(attempt+1)*25*time.Millisecond); err != nil {
			return &chunk{}, true, err
		}
	}
}

func (r *reader) firstReplicatedOnce(ctx context.Context, start uint64) (c *chunk, done, stale bool, err error) {
	type leaderReply struct {
		msg *storedMsg
		err error
	}
	firstCh := make(chan leaderReply, 1)
	lastCh := make(chan leaderReply, 1)
	go func() {
		m, err := r.l.leaderGet(ctx, r.stream, msgGetRequest{Seq: start + 1, NextFor: r.subject})
		firstCh <- leaderReply{m, err}
	}()
	go func() {
		m, err := r.l.leaderGet(ctx, r.stream, msgGetRequest{LastFor: r.subject})
		lastCh <- leaderReply{m, err}
	}()
	c, _, derr := r.direct(ctx, start+1, r.l.cfg.readEvents)
	if errors.Is(derr, errUnverified) {
		r.leaderNext, derr = true, nil
	}
	if errors.Is(derr, errDirectUnavailable) {
		derr = nil // as if every replica lagged
	}
	first, last := <-firstCh, <-lastCh
	switch {
	case first.err != nil:
		return &chunk{}, true, false, fmt.Errorf("jetstream: reading %s from the stream leader: %w", r.subject, first.err)
	case last.err != nil:
		return &chunk{}, true, false, fmt.Errorf("jetstream: reading %s from the stream leader: %w", r.subject, last.err)
	case derr != nil:
		return &chunk{}, true, false, derr
	}
	var leaderLast uint64
	if first.msg != nil && first.msg.Seq > start {
		leaderLast = first.msg.Seq
	}
	if last.msg != nil {
		leaderLast = max(leaderLast, last.msg.Seq)
	}
	if seen := c.lastOrdinal(); seen > leaderLast {
		if behind, err := r.leaderBehind(ctx, seen); err != nil {
			return &chunk{}, true, false, err
		} else if behind {
			return &chunk{}, false, true, nil
		}
	}
	if first.msg == nil || first.msg.Seq <= start {
		// The leader has nothing live after the cursor.
		return &chunk{}, true, false, nil
	}
	r.head = leaderLast
	// Drop what a lagging replica still has but the leader archived.
	c.dropBefore(first.msg.Seq)
	if c.empty() {
		r.leaderNext = false
		c.addMsg(r.key, r.token, leaderServed(first.msg), r.keepTimes)
	}
	r.cursor = c.lastOrdinal()
	return c, r.cursor >= r.head, false, nil
}

// leaderBehind reports whether the node answering as the stream's leader
// has not stored seq, which a replica has: then it is a leader that lost
// its leadership without knowing it yet.
func (r *reader) leaderBehind(ctx context.Context, seq uint64) (bool, error) {
	var info natsjs.StreamInfo
	if err := r.l.apiRequest(ctx, apiStreamInfo+"."+r.stream, nil, &info); err != nil {
		return false, fmt.Errorf("jetstream: checking the stream leader of %s: %w", r.stream, err)
	}
	return info.State.LastSeq < seq, nil
}

// nextReplicated continues a replicated read until the leader's head.
func (r *reader) nextReplicated(ctx context.Context) (*chunk, bool, error) {
	if r.onLeader() {
		c, found, err := r.fromLeader(ctx)
		return c, !found || err != nil || r.cursor >= r.head, err
	}
	c, _, err := r.direct(ctx, r.cursor+1, r.l.cfg.readEvents)
	switch {
	case errors.Is(err, errUnverified):
		r.leaderNext = true
	case errors.Is(err, errDirectUnavailable):
	case err != nil:
		return c, true, err
	}
	if c.empty() && !r.leaderNext {
		if r.fromLeaderRun > 0 {
			// A probe while reading from the leader: the replicas are
			// still behind, so carry on there without backing off again.
			r.fromLeaderRun++
			return c, false, nil
		}
		r.stale++
		if r.stale >= staleRetries {
			return c, false, nil
		}
		if err := ctxtime.Sleep(ctx, replicaWaits[r.stale-1]); err != nil {
			return c, true, err
		}
		return c, false, nil
	}
	r.stale, r.fromLeaderRun = 0, 0
	return c, r.cursor >= r.head, nil
}

// fromLeader reads the next message through the stream leader: slow, but
// always current and never spoofed. found is false when the thread has no
// message after the cursor.
func (r *reader) fromLeader(ctx context.Context) (c *chunk, found bool, err error) {
	c = &chunk{}
	m, err := r.l.leaderGet(ctx, r.stream, msgGetRequest{Seq: r.cursor + 1, NextFor: r.subject})
	if err != nil {
		return c, false, fmt.Errorf("jetstream: reading %s from the stream leader: %w", r.subject, err)
	}
	if m == nil || m.Seq <= r.cursor || m.Subject != r.subject {
		return c, false, nil
	}
	c.addMsg(r.key, r.token, leaderServed(m), r.keepTimes)
	r.cursor = m.Seq
	if r.stale >= staleRetries || r.fromLeaderRun > 0 {
		// Replicas stayed behind: the read stays on the leader.
		r.fromLeaderRun++
	}
	r.stale = 0
	return c, true, nil
}

// direct reads up to a read batch of the thread's messages from seq on
// with one batched direct get, from whichever replica answers, and returns
// them with the number of the thread's messages after the last one, as
// that replica sees it. It advances the cursor over what it returns.
func (r *reader) direct(ctx context.Context, seq uint64, batch int) (*chunk, uint64, error) {
	c := &chunk{}
	pending, err := r.l.directGet(ctx, r.stream, r.subject,
		msgGetRequest{Seq: seq, NextFor: r.subject, Batch: batch, MaxBytes: r.l.cfg.readBytes},
		func(m *served) error {
			if c.recs == nil {
				// The first reply says how many of the thread's messages
				// follow it: a capacity hint only, bounded by the batch.
				if n, ok := lastUint(m.header, headerNumPending); ok {
					c.recs = make([]sessionlog.Record, 0, min(n, uint64(batch))+1)
				}
			}
			c.addMsg(r.key, r.token, m, r.keepTimes)
			r.cursor = m.seq
			return nil
		})
	return c, pending, err
}

// lastOrdinal returns the thread's last live ordinal, 0 if it has none (or
// the stream does not exist). It asks the stream leader, whose reply keeps
// the server's sequence apart from stored headers.
func (l *Log) lastOrdinal(ctx context.Context, stream, subject string) (uint64, error) {
	m, err := l.leaderGet(ctx, stream, msgGetRequest{LastFor: subject})
	if err != nil || m == nil {
		return 0, err
	}
	return m.Seq, nil
}

// Head implements sessionlog.Log. It asks the stream leader, so it reflects
// every acknowledged append and archive. With a cold store it reads the
// thread's cold segments too, for the Archived fields.
func (l *Log) Head(ctx context.Context, key sessionlog.ThreadKey) (sessionlog.Head, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return sessionlog.Head{}, err
	}
	if err := ctx.Err(); err != nil {
		return sessionlog.Head{}, err
	}
	if l.cold == nil {
		return l.hotHead(ctx, key)
	}
	ch, err := l.cold.Head(ctx, key)
	if err != nil {
		return sessionlog.Head{}, err
	}
	h, err := l.hotHead(ctx, key)
	if err != nil {
		return sessionlog.Head{}, err
	}
	h.ArchivedFirst, h.ArchivedLast, h.ArchivedCount = ch.First, ch.Last, ch.Count
	return h, nil
}

func (l *Log) hotHead(ctx context.Context, key sessionlog.ThreadKey) (sessionlog.Head, error) {
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	var info natsjs.StreamInfo
	err := l.apiRequest(ctx, apiStreamInfo+"."+stream, streamInfoRequest{SubjectsFilter: subject}, &info)
	if errCode(err) == codeStreamNotFound {
		return sessionlog.Head{}, nil
	}
	if err != nil {
		return sessionlog.Head{}, fmt.Errorf("jetstream: head of %s: %w", subject, err)
	}
	count := info.State.Subjects[subject]
	if count == 0 {
		return sessionlog.Head{}, nil
	}
	first, err := l.leaderGet(ctx, stream, msgGetRequest{Seq: 1, NextFor: subject})
	if err != nil {
		return sessionlog.Head{}, fmt.Errorf("jetstream: head of %s: %w", subject, err)
	}
	last, err := l.leaderGet(ctx, stream, msgGetRequest{LastFor: subject})
	if err != nil {
		return sessionlog.Head{}, fmt.Errorf("jetstream: head of %s: %w", subject, err)
	}
	if first == nil || last == nil {
		return sessionlog.Head{}, nil
	}
	return sessionlog.Head{First: first.Seq, Last: last.Seq, Count: count}, nil
}
