package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// retryBudget bounds how long Append keeps retrying transient conditions
// (a stream leader election, the server's cap on open atomic batches) when
// the caller's context has no deadline.
const retryBudget = 30 * time.Second

// Append implements sessionlog.Log.
//
// One event is one publish with a deduplication ID; several are one atomic
// batch. ExpectLast becomes the expected-last-subject-sequence header of the
// first message. The tenant's stream is created on its first append.
// Transient failures (no answer within the request timeout, a stream leader
// election, the server's cap on open batches) are retried with the same
// event IDs, which is safe, until ctx ends (or for 30 seconds when it has no
// deadline).
func (l *Log) Append(ctx context.Context, key sessionlog.ThreadKey, events []sessionlog.Event, opts ...sessionlog.AppendOption) (uint64, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := sessionlog.PrepareAppend(key, events, l.cfg.limits, time.Now()); err != nil {
		return 0, err
	}
	o := sessionlog.ResolveAppendOptions(opts)
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	if len(events) == 0 {
		last, err := l.lastOrdinal(ctx, stream, subject)
		if err != nil {
			return 0, fmt.Errorf("jetstream: reading the head of %s: %w", subject, err)
		}
		return last, nil
	}

	token := subjects.EncodeThread(key.Thread)
	maxPayload := int(l.nc.MaxPayload())
	msgs := make([]*nats.Msg, len(events))
	for i := range events {
		msgs[i] = encodeEvent(subject, token, &events[i])
		if size := msgSize(msgs[i]); maxPayload > 0 && size > maxPayload {
			return 0, fmt.Errorf("%w: event %d encodes to %d bytes, the server takes at most %d", sessionlog.ErrEventTooLarge, i, size, maxPayload)
		}
	}
	if o.HasExpectLast {
		msgs[0].Header[headerExpectedLastSubjSeq] = []string{strconv.FormatUint(o.ExpectLast, 10)}
	}

	// The retry budget's context is made only once a retry is needed: the
	// first attempt is the hot path.
	var backoff *backoff
	ensured := false
	noResponders := 0
	for {
		last, err := l.send(ctx, msgs)
		if err == nil {
			l.markKnown(stream)
			return last, nil
		}
		lastErr := err
		code := errCode(err)
		switch {
		case errors.Is(err, ErrPermissionDenied):
			return 0, translate(err, key, nil)
		case errors.Is(err, nats.ErrNoResponders):
			// No stream leader listens on the subject. A stream this Log
			// has seen is between leaders: wait out the election, which
			// never needs the meta leader. Otherwise ask whether it exists
			// (its members answer while it has no leader) and create it
			// only when it does not.
			if noResponders++; l.isKnown(stream) && noResponders%20 == 0 {
				// Still no leader after a while: make sure the stream
				// was not deleted meanwhile.
				if _, exists, lerr := l.quickStreamState(ctx, stream); lerr == nil && !exists {
					l.known.Delete(stream)
				}
			}
			if !ensured && !l.isKnown(stream) {
				_, exists, lerr := l.quickStreamState(ctx, stream)
				switch {
				case lerr != nil && l.cfg.createStreams:
					// No answer (a meta leader is being elected): creating
					// is idempotent, and answers for an existing stream too.
					if err := l.EnsureTenant(ctx, key.Tenant); err != nil {
						return 0, err
					}
					ensured = true
					continue
				case lerr != nil:
					// Unknown yet: try again.
				case exists:
					l.markKnown(stream)
				case !l.cfg.createStreams:
					return 0, fmt.Errorf("%w: tenant %q (stream %s)", ErrTenantNotProvisioned, key.Tenant, stream)
				default:
					if err := l.EnsureTenant(ctx, key.Tenant); err != nil {
						return 0, err
					}
					ensured = true
					continue
				}
			}
		case code == codeBatchTooManyInflight, code == codeBatchIncomplete, code == codeDuplicateInProcess:
			// Transient: too many open batches on the server, a batch the
			// server abandoned, or the same IDs being stored right now.
			// Nothing of this attempt was stored; try again.
		case ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
			// No answer within the request timeout (a stream leader being
			// elected, a busy server): the outcome is unknown, and sending
			// the same event IDs again is safe, so try again until ctx ends.
		case ctx.Err() == nil && isDisconnect(err):
			// The connection dropped with the append in flight (the
			// client reconnects by itself, buffering what is sent
			// meanwhile): the outcome is unknown, the same event IDs are
			// safe to send again.
		case code == codeBatchDuplicate:
			last, rerr := l.resolveDuplicates(ctx, key, stream, msgs)
			if rerr == nil || ctx.Err() != nil || !isTransient(rerr) {
				return last, rerr
			}
			// The probes lost their connection or their answer: send the
			// batch again, which is refused as a duplicate again (or
			// stored, if the first attempt was not), and resolve anew.
			lastErr = rerr
		case (code == codeWrongLastSequence || code == codeWrongLastSequenceConst) && o.HasExpectLast:
			// A retry of an append that already succeeded fails its
			// condition on a single server, which checks it before
			// duplicates: find out whether our events are the ones there.
			if last, ok, rerr := l.alreadyAppended(ctx, key, o.ExpectLast, events); rerr != nil {
				return 0, rerr
			} else if ok {
				return last, nil
			}
			return 0, fmt.Errorf("%w: expected last ordinal %d: %w", sessionlog.ErrConflict, o.ExpectLast, err)
		default:
			return 0, translate(err, key, func() bool { return l.quotaRefused(ctx, stream, msgs) })
		}
		if backoff == nil {
			var cancel context.CancelFunc
			ctx, cancel = withRetryBudget(ctx)
			defer cancel()
			backoff = newBackoff()
		}
		if err := backoff.wait(ctx); err != nil {
			return 0, fmt.Errorf("jetstream: appending to %s: %w (last error: %v)", subject, err, lastErr)
		}
	}
}

// send publishes msgs as one event or one atomic batch and returns the
// last sequence.
func (l *Log) send(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 1 {
		ack, err := l.publish(ctx, msgs[0])
		if err != nil {
			return 0, err
		}
		return ack.Seq, nil
	}
	select {
	case l.batchSlots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-l.batchSlots }()
	bctx, cancel := l.withTimeout(ctx)
	defer cancel()
	gctx, check := l.guard(bctx, msgs[0].Subject)
	last, err := l.publishBatch(gctx, msgs)
	if err = check(err); err != nil {
		return 0, err
	}
	return last, nil
}

// publishBatch sends msgs as one atomic batch (Nats-Batch-Id,
// Nats-Batch-Sequence, Nats-Batch-Commit on the last) and returns the
// sequence of the last. The first message is acknowledged before the rest
// is sent, so a refusal (no stream, a limit, a full store) comes back at
// once; every wait honours ctx, so a permission refusal the watcher hears
// ends the call.
func (l *Log) publishBatch(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	id := nuid.Next()
	for i, m := range msgs {
		m.Reply = ""
		m.Header.Del(jetstreamext.BatchCommitHeader)
		m.Header.Set(jetstreamext.BatchIDHeader, id)
		m.Header.Set(jetstreamext.BatchSeqHeader, strconv.Itoa(i+1))
	}
	first, commit := msgs[0], msgs[len(msgs)-1]
	commit.Header.Set(jetstreamext.BatchCommitHeader, "1")
	reply, err := l.nc.RequestMsgWithContext(ctx, first)
	if err != nil {
		return 0, err
	}
	if len(reply.Data) > 0 {
		var resp struct {
			Error *natsjs.APIError `json:"error,omitempty"`
		}
		if err := json.Unmarshal(reply.Data, &resp); err == nil && resp.Error != nil {
			return 0, resp.Error
		}
	}
	for _, m := range msgs[1 : len(msgs)-1] {
		if err := l.nc.PublishMsg(m); err != nil {
			return 0, fmt.Errorf("publishing a message of the batch: %w", err)
		}
	}
	reply, err = l.nc.RequestMsgWithContext(ctx, commit)
	if err != nil {
		return 0, err
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return 0, fmt.Errorf("decoding the batch acknowledgement: %w", err)
	}
	switch {
	case ack.Error != nil:
		return 0, ack.Error
	case ack.Batch != id || ack.BatchSize != uint64(len(msgs)) || ack.Seq == 0:
		return 0, fmt.Errorf("jetstream: batch acknowledgement of %d messages for batch %q reads %d for %q at %d",
			len(msgs), id, ack.BatchSize, ack.Batch, ack.Seq)
	}
	return ack.Seq, nil
}

// resolveDuplicates handles a batch the server refused because some of its
// IDs were already stored. Each event is probed with a publish the server
// either answers as a duplicate, with the original sequence, or refuses
// because of a condition that can never hold, so a probe never stores
// anything. The condition must be one the server checks after duplicates
// and before storing: on clustered JetStream that is the expected last
// stream sequence (checked before the message is proposed), on a single
// server the expected last message ID.
func (l *Log) resolveDuplicates(ctx context.Context, key sessionlog.ThreadKey, stream string, msgs []*nats.Msg) (uint64, error) {
	st, ok, err := l.streamState(ctx, stream)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("jetstream: stream %s vanished while resolving a duplicate batch", stream)
	}
	condition, refusal := headerExpectedLastMsgID, codeWrongLastMsgID
	never := nuid.Next()
	if st.clustered {
		condition, refusal = headerExpectedLastSeq, codeWrongLastSequence
		never = strconv.FormatUint(math.MaxUint64, 10)
	}
	type result struct {
		seq uint64
		err error
	}
	results := make([]result, len(msgs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, m := range msgs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			probe := &nats.Msg{Subject: m.Subject, Header: nats.Header{
				HeaderMsgID: m.Header[HeaderMsgID],
				condition:   []string{never},
			}}
			ack, err := l.publish(ctx, probe)
			switch {
			case err == nil && ack.Duplicate:
				results[i].seq = ack.Seq
			case err == nil:
				results[i].err = fmt.Errorf("jetstream: duplicate probe of event %d was stored as %d", i, ack.Seq)
			case errCode(err) == refusal:
			default:
				results[i].err = err
			}
		}()
	}
	wg.Wait()
	var last uint64
	dups := 0
	for i, r := range results {
		if r.err != nil {
			return 0, fmt.Errorf("jetstream: resolving the retry of event %d: %w", i, translate(r.err, key, nil))
		}
		if r.seq > 0 {
			dups++
			last = max(last, r.seq)
		}
	}
	switch dups {
	case len(msgs):
		return last, nil
	case 0:
		// The IDs left the duplicate window between the refusal and the
		// probes: the caller may simply retry.
		return 0, fmt.Errorf("jetstream: batch refused as a duplicate, but no event is one any more; retry")
	default:
		return 0, fmt.Errorf("%w: %d of %d events", sessionlog.ErrPartialRetry, dups, len(msgs))
	}
}

// alreadyAppended reports whether the live events right after expectLast
// are exactly events (same IDs, same order), as after a retried conditional
// append that had succeeded, and returns the last one's ordinal.
func (l *Log) alreadyAppended(ctx context.Context, key sessionlog.ThreadKey, expectLast uint64, events []sessionlog.Event) (uint64, bool, error) {
	i := 0
	var last uint64
	for rec, err := range l.Scan(ctx, key, expectLast) {
		if errors.Is(err, sessionlog.ErrCorruptEvent) {
			return 0, false, nil // not one of ours
		}
		if err != nil {
			return 0, false, err
		}
		if rec.ID != events[i].ID {
			return 0, false, nil
		}
		last = rec.Ordinal
		if i++; i == len(events) {
			return last, true, nil
		}
	}
	return 0, false, nil
}

// translate maps server errors onto sessionlog's sentinels and wraps the
// rest with context; the server's error stays reachable with errors.As.
// quota reports whether a store failure was the stream's own limit.
func translate(err error, key sessionlog.ThreadKey, quota func() bool) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("tenant %q thread %q", key.Tenant, key.Thread)
	switch errCode(err) {
	case codeWrongLastSequence, codeWrongLastSequenceConst:
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrConflict, where, err)
	case codeMsgExceedsMaximum, codeHeaderExceedsMaximum:
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrEventTooLarge, where, err)
	case codeBatchTooLarge:
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrBatchTooLarge, where, err)
	case codeTTLInvalid:
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrInvalidEvent, where, err)
	case codeTTLDisabled:
		return fmt.Errorf("%w: %s: the tenant's stream does not allow per-event TTLs (it was created without allow_msg_ttl): %w",
			sessionlog.ErrInvalidEvent, where, err)
	case codeInsufficientResources, codeStorageExceeded, codeMemoryExceeded:
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrStorageFull, where, err)
	case codeAccountExceeded:
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrQuotaExceeded, where, err)
	case codeStoreFailed:
		if quota != nil && quota() {
			return fmt.Errorf("%w: %s: %w", sessionlog.ErrQuotaExceeded, where, err)
		}
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: %s: %w", sessionlog.ErrEventTooLarge, where, err)
	}
	return fmt.Errorf("jetstream: %s: %w", where, err)
}

// quotaRefused reports whether msgs do not fit the limits of the stream
// (the tenant's quota, discard-new): what the server refuses as a store
// failure when a stream limit is reached. It asks the stream for its
// limits and state, on the failure path only.
func (l *Log) quotaRefused(ctx context.Context, stream string, msgs []*nats.Msg) bool {
	var info natsjs.StreamInfo
	if err := l.apiRequest(ctx, apiStreamInfo+"."+stream, nil, &info); err != nil {
		return false
	}
	c, st := info.Config, info.State
	var size uint64
	for _, m := range msgs {
		size += uint64(msgSize(m)) + storeOverhead
	}
	n := uint64(len(msgs))
	return c.Discard == natsjs.DiscardNew &&
		(c.MaxBytes > 0 && st.Bytes+size > uint64(c.MaxBytes) || c.MaxMsgs > 0 && st.Msgs+n > uint64(c.MaxMsgs))
}

// storeOverhead is about what the server's file store adds to a message's
// subject, headers and payload.
const storeOverhead = 64

func withRetryBudget(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, retryBudget)
}

// backoff waits between retries: jittered, doubling from its first wait
// up to its longest.
type backoff struct{ next, longest time.Duration }

// newBackoff retries quickly: 1 ms doubling to 100 ms.
func newBackoff() *backoff { return &backoff{next: time.Millisecond, longest: 100 * time.Millisecond} }

// newSlowBackoff is for a system that said it is unavailable: 250 ms
// doubling to 2 s, so that many callers do not storm it.
func newSlowBackoff() *backoff {
	return &backoff{next: 250 * time.Millisecond, longest: 2 * time.Second}
}

func (b *backoff) wait(ctx context.Context) error {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, b.longest)
	return ctxtime.Sleep(ctx, d)
}
