package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
)

// staleRetries bounds how often a read retries a replica that is behind
// the stream leader before reading the rest through the leader.
const staleRetries = 8

// LoadSince implements sessionlog.Log, reading like Scan. The first chunk
// read becomes the result as is, so a thread read in one chunk is not
// copied again.
func (l *Log) LoadSince(ctx context.Context, key sessionlog.ThreadKey, cursor uint64) ([]sessionlog.Record, error) {
	var out []sessionlog.Record
	err := l.read(ctx, key, cursor, func(recs []sessionlog.Record) bool {
		if out == nil {
			out = recs
		} else {
			out = append(out, recs...)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Scan implements sessionlog.Log.
//
// Reads use batched direct gets, the fastest way to read one subject. On a
// single-replica stream the one server answering is always current. On a
// replicated stream any replica may answer and a follower can lag behind an
// acknowledged write, so the read also asks the stream leader, in parallel,
// for the thread's first live event after the cursor and its last event,
// drops what the leader no longer has and keeps reading until it reaches
// the leader's last event, falling back to leader-served gets if replicas
// stay behind.
func (l *Log) Scan(ctx context.Context, key sessionlog.ThreadKey, cursor uint64) iter.Seq2[sessionlog.Record, error] {
	return func(yield func(sessionlog.Record, error) bool) {
		err := l.read(ctx, key, cursor, func(recs []sessionlog.Record) bool {
			for _, rec := range recs {
				if !yield(rec, nil) {
					return false
				}
			}
			return true
		})
		if err != nil {
			yield(sessionlog.Record{}, err)
		}
	}
}

// read hands the thread's records after cursor to each, one chunk at a
// time, until the thread's end or each returns false. Records before an
// error are handed over before it is returned.
func (l *Log) read(ctx context.Context, key sessionlog.ThreadKey, cursor uint64, each func([]sessionlog.Record) bool) error {
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
		l:       l,
		key:     key,
		stream:  l.cfg.scheme.Stream(key.Tenant),
		subject: l.cfg.scheme.Subject(key.Tenant, key.Thread),
		token:   subjects.EncodeThread(key.Thread),
		cursor:  cursor,
	}
	for {
		recs, done, err := r.next(ctx)
		if len(recs) > 0 && !each(recs) {
			return nil
		}
		if err != nil || done {
			return err
		}
	}
}

// reader reads one thread in chunks from cursor on.
type reader struct {
	l               *Log
	key             sessionlog.ThreadKey
	stream, subject string
	token           string
	cursor          uint64 // last ordinal returned

	started  bool
	replicas int
	head     uint64 // leader's last ordinal at the start, replicated streams only
	stale    int    // consecutive reads that made no progress
}

func (r *reader) next(ctx context.Context) ([]sessionlog.Record, bool, error) {
	if !r.started {
		r.started = true
		st, ok, err := r.l.streamState(ctx, r.stream)
		if err != nil || !ok {
			return nil, true, err
		}
		r.replicas = st.replicas
		if st.replicas > 1 {
			return r.firstReplicated(ctx)
		}
	}
	if r.replicas == 1 {
		if r.stale > 0 {
			return r.fromLeader(ctx)
		}
		recs, pending, err := r.direct(ctx, r.cursor+1)
		if errors.Is(err, errDirectUnavailable) {
			// The stream exists but does not serve direct gets yet (it is
			// starting up): read through the leader.
			r.stale, r.head = staleRetries, math.MaxUint64
			return nil, false, nil
		}
		r.advance(recs)
		return recs, err != nil || pending == 0 || len(recs) == 0, err
	}
	return r.nextReplicated(ctx)
}

func (r *reader) advance(recs []sessionlog.Record) {
	if len(recs) > 0 {
		r.cursor = recs[len(recs)-1].Ordinal
	}
}

// firstReplicated starts a read of a replicated stream: the leader's first
// live event after the cursor and last event, and a direct get, at once.
func (r *reader) firstReplicated(ctx context.Context) ([]sessionlog.Record, bool, error) {
	type leaderReply struct {
		msg *storedMsg
		err error
	}
	firstCh := make(chan leaderReply, 1)
	lastCh := make(chan leaderReply, 1)
	go func() {
		m, err := r.l.leaderGet(ctx, r.stream, msgGetRequest{Seq: r.cursor + 1, NextFor: r.subject})
		firstCh <- leaderReply{m, err}
	}()
	go func() {
		m, err := r.l.leaderGet(ctx, r.stream, msgGetRequest{LastFor: r.subject})
		lastCh <- leaderReply{m, err}
	}()
	recs, _, derr := r.direct(ctx, r.cursor+1)
	if errors.Is(derr, errDirectUnavailable) {
		recs, derr = nil, nil // as if every replica lagged
	}
	first, last := <-firstCh, <-lastCh
	switch {
	case first.err != nil:
		return nil, true, fmt.Errorf("jetstream: reading %s from the stream leader: %w", r.subject, first.err)
	case last.err != nil:
		return nil, true, fmt.Errorf("jetstream: reading %s from the stream leader: %w", r.subject, last.err)
	case derr != nil:
		return nil, true, derr
	case first.msg == nil:
		// The leader has nothing live after the cursor.
		return nil, true, nil
	}
	r.head = first.msg.Seq
	if last.msg != nil {
		r.head = max(r.head, last.msg.Seq)
	}
	// Drop what a lagging replica still has but the leader archived.
	i := 0
	for i < len(recs) && recs[i].Ordinal < first.msg.Seq {
		i++
	}
	recs = recs[i:]
	if len(recs) == 0 {
		rec, err := r.decodeStored(first.msg)
		if err != nil {
			return nil, true, err
		}
		recs = []sessionlog.Record{rec}
	}
	r.advance(recs)
	return recs, r.cursor >= r.head, nil
}

// nextReplicated continues a replicated read until the leader's head.
func (r *reader) nextReplicated(ctx context.Context) ([]sessionlog.Record, bool, error) {
	if r.stale >= staleRetries {
		return r.fromLeader(ctx)
	}
	recs, _, err := r.direct(ctx, r.cursor+1)
	if errors.Is(err, errDirectUnavailable) {
		recs, err = nil, nil
	}
	if err != nil {
		return recs, true, err
	}
	if len(recs) == 0 {
		r.stale++
		if err := sleepCtx(ctx, time.Duration(r.stale)*time.Millisecond); err != nil {
			return nil, true, err
		}
		return nil, false, nil
	}
	r.stale = 0
	r.advance(recs)
	return recs, r.cursor >= r.head, nil
}

// fromLeader reads the next event through the stream leader: slow, but
// always current.
func (r *reader) fromLeader(ctx context.Context) ([]sessionlog.Record, bool, error) {
	m, err := r.l.leaderGet(ctx, r.stream, msgGetRequest{Seq: r.cursor + 1, NextFor: r.subject})
	if err != nil {
		return nil, true, fmt.Errorf("jetstream: reading %s from the stream leader: %w", r.subject, err)
	}
	if m == nil {
		return nil, true, nil
	}
	rec, err := r.decodeStored(m)
	if err != nil {
		return nil, true, err
	}
	r.cursor = rec.Ordinal
	r.stale = 0
	return []sessionlog.Record{rec}, r.cursor >= r.head, nil
}

func (r *reader) decodeStored(m *storedMsg) (sessionlog.Record, error) {
	var h nats.Header
	if len(m.Header) > 0 {
		var err error
		if h, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return sessionlog.Record{}, &sessionlog.CorruptEventError{Key: r.key, Ordinal: m.Seq, Reason: "unreadable headers: " + err.Error()}
		}
	}
	return decodeEvent(r.key, r.token, m.Seq, h, m.Data, m.Time)
}

// direct reads up to a read batch of events from seq on with one batched direct
// get, from whichever replica answers, and returns them with the number of
// the thread's events after the last one, as that replica sees it.
func (r *reader) direct(ctx context.Context, seq uint64) ([]sessionlog.Record, uint64, error) {
	var recs []sessionlog.Record
	pending, err := r.l.directGet(ctx, r.stream, msgGetRequest{Seq: seq, NextFor: r.subject, Batch: r.l.cfg.readEvents, MaxBytes: r.l.cfg.readBytes},
		func(m *nats.Msg) error {
			ord, ok := parseUint(m.Header.Get(headerSequence))
			if !ok {
				return fmt.Errorf("jetstream: direct get reply without a sequence on %s", r.subject)
			}
			ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(headerTimeStamp))
			rec, err := decodeEvent(r.key, r.token, ord, m.Header, m.Data, ts)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
			return nil
		})
	if err != nil {
		return recs, 0, err
	}
	return recs, pending, nil
}

// directGet sends a direct get (batched when req.Batch > 0) and hands each
// message to each. It returns the number of matching messages after the
// last one sent (0 when none matched, or for a single get).
func (l *Log) directGet(ctx context.Context, stream string, req msgGetRequest, each func(*nats.Msg) error) (pending uint64, err error) {
	ctx, cancel := l.withTimeout(ctx)
	defer cancel()
	subject := l.cfg.apiPrefix + ".DIRECT.GET." + stream
	ctx, check := l.guard(ctx, subject)
	defer func() {
		if err != nil && !errors.Is(err, errDirectUnavailable) {
			err = check(err)
		} else {
			check(nil)
		}
	}()
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("jetstream: direct get of %s: %w", stream, err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return 0, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	if err := l.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: body}); err != nil {
		return 0, fmt.Errorf("jetstream: direct get of %s: %w", stream, err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, errDirectUnavailable
		}
		if err != nil {
			return 0, fmt.Errorf("jetstream: direct get of %s: %w", stream, err)
		}
		switch status := m.Header.Get(headerStatus); status {
		case "":
			if err := each(m); err != nil {
				return 0, err
			}
			if req.Batch == 0 {
				return 0, nil // a single get has no end-of-batch marker
			}
		case "204": // end of batch
			pending, _ := parseUint(m.Header.Get(headerNumPending))
			return pending, nil
		case "404": // nothing matches
			return 0, nil
		case "503":
			return 0, errDirectUnavailable
		default:
			return 0, fmt.Errorf("jetstream: direct get of %s: status %s %s", stream, status, m.Header.Get("Description"))
		}
	}
}

// errDirectUnavailable reports a direct get no replica answered.
var errDirectUnavailable = errors.New("jetstream: no replica serves direct gets")

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lastOrdinal returns the thread's last live ordinal, 0 if it has none (or
// the stream does not exist). A single-replica stream answers a direct get
// coherently and faster; a replicated one is asked through its leader.
func (l *Log) lastOrdinal(ctx context.Context, stream, subject string) (uint64, error) {
	st, ok, err := l.streamState(ctx, stream)
	if err != nil || !ok {
		return 0, err
	}
	if st.replicas == 1 {
		var last uint64
		_, err := l.directGet(ctx, stream, msgGetRequest{LastFor: subject}, func(m *nats.Msg) error {
			seq, ok := parseUint(m.Header.Get(headerSequence))
			if !ok {
				return fmt.Errorf("jetstream: direct get reply without a sequence on %s", subject)
			}
			last = seq
			return nil
		})
		if !errors.Is(err, errDirectUnavailable) {
			return last, err
		}
	}
	m, err := l.leaderGet(ctx, stream, msgGetRequest{LastFor: subject})
	if err != nil || m == nil {
		return 0, err
	}
	return m.Seq, nil
}

// Head implements sessionlog.Log. It asks the stream leader, so it reflects
// every acknowledged append and archive.
func (l *Log) Head(ctx context.Context, key sessionlog.ThreadKey) (sessionlog.Head, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return sessionlog.Head{}, err
	}
	if err := ctx.Err(); err != nil {
		return sessionlog.Head{}, err
	}
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	var info struct {
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
	}
	err := l.apiRequest(ctx, "STREAM.INFO."+stream, map[string]string{"subjects_filter": subject}, &info)
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
