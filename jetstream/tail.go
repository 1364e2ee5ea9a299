package jetstream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

var _ sessionlog.Tailer = (*Log)(nil)

// Tail implements sessionlog.Tailer with an ordered, ephemeral push
// consumer on the thread's subject (flow control and idle heartbeats, no
// acknowledgements, memory storage, one replica). A push consumer needs no
// pull requests, so none can be lost on the way to a consumer placed on
// another node. On a gap, a missed heartbeat, a deleted consumer or a
// reconnect the tail recreates the consumer after the last ordinal it
// yielded; when it stops, it deletes its consumer.
func (l *Log) Tail(ctx context.Context, key sessionlog.ThreadKey, cursor uint64) iter.Seq2[sessionlog.Record, error] {
	return func(yield func(sessionlog.Record, error) bool) {
		if err := sessionlog.ValidateKey(key); err != nil {
			yield(sessionlog.Record{}, err)
			return
		}
		token := subjects.EncodeThread(key.Thread)
		t := &tail{
			l:      l,
			stream: l.cfg.scheme.Stream(key.Tenant),
			filter: l.cfg.scheme.Subject(key.Tenant, key.Thread),
		}
		t.run(ctx, cursor, func(m *served) bool {
			rec, cerr := decodeEvent(key, token, m)
			if cerr != nil {
				return yield(rec, cerr)
			}
			return yield(rec, nil)
		}, func(err error) { yield(sessionlog.Record{}, err) })
	}
}

// TailTenant implements sessionlog.Tailer, like Tail on the tenant's
// subject filter: one consumer follows every thread.
func (l *Log) TailTenant(ctx context.Context, tenant string, cursor uint64, opts ...sessionlog.ReadOption) iter.Seq2[sessionlog.TenantRecord, error] {
	o := sessionlog.ResolveReadOptions(opts)
	return func(yield func(sessionlog.TenantRecord, error) bool) {
		if err := sessionlog.ValidateTenant(tenant); err != nil {
			yield(sessionlog.TenantRecord{}, err)
			return
		}
		t := &tail{
			l:      l,
			stream: l.cfg.scheme.Stream(tenant),
			filter: l.cfg.scheme.TenantFilter(tenant),
		}
		t.run(ctx, cursor, func(m *served) bool {
			rec, cerr, skip := l.decodeTenantItem(tenant, m, o.Deletions)
			switch {
			case skip:
				return true
			case cerr != nil:
				return yield(rec, cerr)
			}
			return yield(rec, nil)
		}, func(err error) { yield(sessionlog.TenantRecord{}, err) })
	}
}

// Tail tuning: the server sends a heartbeat after tailHeartbeat of silence;
// tailSilence without any message means the consumer is gone.
const (
	tailHeartbeat         = 500 * time.Millisecond
	tailSilence           = 3 * tailHeartbeat
	tailInactiveThreshold = 30 * time.Second
)

// tail follows a subject filter of a stream with a chain of consumers.
type tail struct {
	l      *Log
	stream string
	filter string
}

// errRestart asks run to recreate the consumer after the last ordinal.
var errRestart = errors.New("restart the tail consumer")

// run follows the filter from cursor, calling deliver for each message in
// order, until deliver returns false; fail reports an unrecoverable error
// to the caller.
func (t *tail) run(ctx context.Context, cursor uint64, deliver func(*served) bool, fail func(error)) {
	if cursor == math.MaxUint64 {
		<-ctx.Done() // nothing can follow
		return
	}
	backoff := newBackoff()
	missing := 250 * time.Millisecond // wait for a stream to appear: 250ms doubling to 2s
	last := cursor
	existed := false // a consumer was created: the stream existed
	for ctx.Err() == nil {
		err := t.follow(ctx, &last, deliver, &existed)
		switch {
		case err == nil, ctx.Err() != nil:
			return
		case errors.Is(err, errRestart):
			backoff = newBackoff()
			continue
		case errors.Is(err, errStreamMissing) && existed:
			fail(fmt.Errorf("%w: the stream %s of the tail is gone", sessionlog.ErrTenantDeleted, t.stream))
			return
		case errors.Is(err, errStreamMissing):
			if ctxtime.Sleep(ctx, missing) != nil {
				return
			}
			missing = min(2*missing, 2*time.Second)
		case isTransient(err), errors.Is(err, nats.ErrConnectionReconnecting):
			// The server is restarting or a leader is being elected.
			if backoff.wait(ctx) != nil {
				return
			}
		default:
			fail(err)
			return
		}
	}
}

var errStreamMissing = errors.New("stream does not exist")

// follow creates one consumer starting after *last and delivers from it
// until the caller stops (nil), the consumer must be replaced (errRestart)
// or an error.
func (t *tail) follow(ctx context.Context, last *uint64, deliver func(*served) bool, existed *bool) error {
	nc := t.l.nc
	inbox := nc.NewInbox()
	// The client library queues what the server pushes (bounded by flow
	// control) and hands it over one message at a time, in order.
	msgs := make(chan *nats.Msg)
	done := make(chan struct{})
	defer close(done)
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case msgs <- m:
		case <-done:
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, t.l.cfg.tailBuffer); err != nil {
		return err
	}
	name := "jstail_" + nuid.Next()
	if _, err := t.createConsumer(ctx, name, inbox, *last+1); err != nil {
		// A creation that timed out may still happen: delete it, in the
		// background (the server also removes it once it is inactive).
		go t.deleteConsumer(name)
		return err
	}
	*existed = true
	defer t.deleteConsumer(name)

	var delivered uint64 // consumer sequence of the last message
	silence := time.NewTimer(tailSilence)
	defer silence.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-silence.C:
			// Nothing at all, not even a heartbeat: the consumer is gone,
			// or the server refuses us its deliveries or our replies.
			if err := t.l.denied(context.DeadlineExceeded, inbox, flowControlPrefix, t.l.apiSubject(apiConsumers)+"."); errors.Is(err, ErrPermissionDenied) {
				return err
			}
			return errRestart
		case m := <-msgs:
			silence.Reset(tailSilence)
			// A stored message arrives with the ack subject, where the
			// server writes its sequences and time, as its reply; the
			// consumer's own status messages never do. So a stored Status
			// header is only data.
			if !strings.HasPrefix(m.Reply, ackPrefix) {
				if err := t.control(m, delivered); err != nil {
					return err
				}
				continue
			}
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("jetstream: tail of %s: %w", t.filter, err)
			}
			if meta.Stream != t.stream || meta.Consumer != name {
				// The server writes the stream and consumer of a delivery
				// into its ack subject: this one comes from a consumer
				// someone else created and aimed at our inbox (a deliver
				// subject is any subject its creator names). Not ours.
				continue
			}
			if meta.Sequence.Consumer != delivered+1 {
				return errRestart // a message was lost on the way
			}
			delivered = meta.Sequence.Consumer
			if meta.Sequence.Stream <= *last {
				continue // already yielded
			}
			sm := &served{seq: meta.Sequence.Stream, subject: m.Subject, time: meta.Timestamp, header: m.Header, data: m.Data}
			if m.Header == nil && rawHeaderLen(m) > 0 {
				sm.headerErr = nats.ErrBadHeaderMsg
			}
			*last = meta.Sequence.Stream
			if !deliver(sm) {
				return nil
			}
		}
	}
}

// control handles the consumer's status messages: flow control requests,
// idle heartbeats (which also reveal lost messages) and deletion.
func (t *tail) control(m *nats.Msg, delivered uint64) error {
	status := m.Header.Get(headerStatus)
	switch status {
	case "100":
		if m.Reply != "" { // flow control request: we have read up to here
			return m.Respond(nil)
		}
		if stalled := m.Header.Get("Nats-Consumer-Stalled"); stalled != "" {
			if err := t.l.nc.Publish(stalled, nil); err != nil {
				return err
			}
		}
		if v := m.Header.Get("Nats-Last-Consumer"); v != "" {
			if n, ok := parseUint(v); ok && n != delivered {
				return errRestart
			}
		}
		return nil
	case "409", "404", "503":
		return errRestart
	default:
		return nil // not from the consumer
	}
}

// createConsumer creates the consumer and returns how many messages it
// has to deliver, as the server counted them when it made it.
func (t *tail) createConsumer(ctx context.Context, name, inbox string, start uint64) (uint64, error) {
	req := struct {
		Stream string                `json:"stream_name"`
		Config natsjs.ConsumerConfig `json:"config"`
		Action string                `json:"action"`
	}{
		Stream: t.stream,
		Action: "create",
		Config: natsjs.ConsumerConfig{
			Name:              name,
			DeliverSubject:    inbox,
			DeliverPolicy:     natsjs.DeliverByStartSequencePolicy,
			OptStartSeq:       start,
			AckPolicy:         natsjs.AckNonePolicy,
			ReplayPolicy:      natsjs.ReplayInstantPolicy,
			FilterSubject:     t.filter,
			FlowControl:       true,
			IdleHeartbeat:     tailHeartbeat,
			MemoryStorage:     true,
			Replicas:          1,
			InactiveThreshold: tailInactiveThreshold,
		},
	}
	// The same name makes a repeated creation idempotent, so an attempt
	// that gets no answer (the meta leader is being elected) is resent
	// soon: 1 s at first, doubling up to the request timeout.
	attempt := min(time.Second, t.l.cfg.requestTimeout)
	for {
		var info struct {
			NumPending uint64 `json:"num_pending"`
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := t.l.apiRequest(actx, apiConsumerCreate+"."+t.stream+"."+name+"."+t.filter, req, &info)
		cancel()
		switch {
		case err == nil:
			return info.NumPending, nil
		case errCode(err) == codeStreamNotFound:
			return 0, errStreamMissing
		case ctx.Err() == nil && attempt < t.l.cfg.requestTimeout && !errors.Is(err, ErrPermissionDenied) &&
			(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
			attempt = min(2*attempt, t.l.cfg.requestTimeout)
		default:
			return 0, fmt.Errorf("jetstream: creating a consumer on %s: %w", t.stream, err)
		}
	}
}

// deleteConsumer releases the consumer; it uses its own short deadline, as
// the caller's context has usually ended by now. A consumer that cannot be
// deleted (the server is down) is removed by the server once inactive.
func (t *tail) deleteConsumer(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = t.l.apiRequest(ctx, apiConsumerDelete+"."+t.stream+"."+name, nil, nil)
}
