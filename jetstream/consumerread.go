package jetstream

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Long reads of a single-replica stream go through a push consumer: the
// server sends a stored message to a consumer as it is, its sequences and
// time in the ack subject, where a batched direct get adds six headers to
// every message. cmd/bench measured a consumer 15-45% faster for 1,000 to
// 10,000 events, creation and deletion included; for a few events the one
// round trip of a direct get wins. So a read starts with a direct get of
// at most firstReadBatch events, whose last reply says how many follow;
// from consumerReadMin on, the rest comes through a consumer (created
// after the first batch, so it holds every append acknowledged before the
// read began) and the consumer is deleted as soon as the read ends.
//
// Replicated streams keep direct gets: a consumer of one replica lives on
// any caught-up peer, not necessarily the leader, so it could miss an
// acknowledged append.
const (
	firstReadBatch = 128
	// consumerChunk is how many records a consumer read hands over at a
	// time.
	consumerChunk = 1024
)

// errConsumerLost ends a consumer read that cannot go on (a message lost
// on the way, the consumer gone, silence, an idle heartbeat before the
// end): the reader goes on with direct gets after the last ordinal it
// returned.
var errConsumerLost = errors.New("jetstream: read consumer lost")

// consumerRead is one read's consumer.
type consumerRead struct {
	t         *tail
	name      string
	sub       *nats.Subscription
	delivered uint64 // consumer sequence of the last delivery
}

// startConsumerRead creates a consumer of the thread from start on. It
// returns nil, and the read goes on with direct gets, when the consumer
// cannot be made; a refusal of the rights to make one turns consumer reads
// off for the Log.
func (r *reader) startConsumerRead(ctx context.Context, start uint64) *consumerRead {
	l := r.l
	sub, err := l.nc.SubscribeSync(l.nc.NewInbox())
	if err != nil {
		return nil
	}
	if err := sub.SetPendingLimits(-1, l.cfg.tailBuffer); err != nil {
		_ = sub.Unsubscribe()
		return nil
	}
	c := &consumerRead{t: &tail{l: l, stream: r.stream, filter: r.subject}, name: "jsread_" + nuid.Next(), sub: sub}
	cctx, cancel := context.WithTimeout(ctx, min(time.Second, l.cfg.requestTimeout))
	pending, err := c.t.createConsumer(cctx, c.name, sub.Subject, start)
	cancel()
	if errors.Is(err, ErrPermissionDenied) {
		l.noReadConsumers.Store(true)
		_ = sub.Unsubscribe()
		return nil
	}
	if err != nil || pending == 0 {
		// Nothing to deliver (archived meanwhile): direct gets find out.
		c.close() // a creation that timed out may still happen
		return nil
	}
	return c
}

// next reads the next chunk: done when the consumer has delivered the
// thread's last message, errConsumerLost when it cannot go on.
func (c *consumerRead) next(ctx context.Context, r *reader) (*chunk, bool, error) {
	ch := &chunk{}
	for len(ch.recs)+len(ch.corrupt) < consumerChunk {
		wctx, cancel := context.WithTimeout(ctx, tailSilence)
		m, err := c.sub.NextMsgWithContext(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ch, true, ctx.Err()
		case err != nil:
			// Silence (not even a heartbeat), or deliveries the client
			// dropped because the reader fell too far behind.
			return ch, false, errConsumerLost
		}
		// As in tails: a stored message comes with the ack subject as its
		// reply, the consumer's status messages never do.
		if !strings.HasPrefix(m.Reply, ackPrefix) {
			if err := c.t.control(m, c.delivered); err != nil {
				return ch, false, errConsumerLost
			}
			if isIdleHeartbeat(m) {
				// The consumer has sent nothing for a while though the
				// last delivery said more follow: what it had to send
				// was removed meanwhile (archived, deleted), or it is
				// stuck. A direct get tells which.
				return ch, false, errConsumerLost
			}
			continue
		}
		meta, err := m.Metadata()
		if err != nil {
			return ch, false, errConsumerLost
		}
		if meta.Stream != r.stream || meta.Consumer != c.name {
			continue // another consumer aimed at our inbox: not ours
		}
		if meta.Sequence.Consumer != c.delivered+1 || m.Subject != r.subject {
			return ch, false, errConsumerLost
		}
		c.delivered = meta.Sequence.Consumer
		if meta.Sequence.Stream <= r.cursor {
			continue
		}
		sm := &served{seq: meta.Sequence.Stream, subject: m.Subject, time: meta.Timestamp, header: m.Header, data: m.Data}
		if m.Header == nil && rawHeaderLen(m) > 0 {
			sm.headerErr = nats.ErrBadHeaderMsg
		}
		ch.addMsg(r.key, r.token, sm, r.keepTimes)
		r.cursor = sm.seq
		if meta.NumPending == 0 {
			return ch, true, nil
		}
	}
	return ch, false, nil
}

// isIdleHeartbeat reports whether a consumer status message is an idle
// heartbeat: the consumer had nothing to send for a heartbeat interval
// (not a flow control request, nor the heartbeat of a consumer stalled
// waiting for one's answer).
func isIdleHeartbeat(m *nats.Msg) bool {
	return m.Header.Get(headerStatus) == "100" && m.Reply == "" && m.Header.Get("Nats-Consumer-Stalled") == ""
}

// close deletes the consumer, in the background: the read has what it
// needs, and the server removes a consumer it could not delete once it is
// inactive.
func (c *consumerRead) close() {
	_ = c.sub.Unsubscribe()
	go c.t.deleteConsumer(c.name)
}
