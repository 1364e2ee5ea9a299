package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// A direct get reply carries the stored message's own headers first and the
// server's (Nats-Stream, Nats-Subject, Nats-Sequence, Nats-Time-Stamp and,
// in a batch, Nats-Num-Pending and Nats-Last-Sequence) appended after them,
// and the server stores whatever header bytes a writer sends. So a writer
// can store any of those names, a Status header, or even a blank line that
// hides the server's headers from the client's parser. A reply is trusted
// only when it is provably the server's:
//
//   - a status reply (end of batch, no message) must be exactly the bytes
//     the server writes for its parsed values: a writer cannot store a
//     status line (the server strips it), so an imitation needs header
//     lines and hidden bytes, and is longer;
//   - a message reply must carry the server's names as the last values of
//     their keys, with the stream asked, a subject in the filter asked, a
//     sequence after the previous one, and in a batch a Nats-Last-Sequence
//     equal to the previous reply's sequence (the server chains them); and
//     its raw header must be no longer than its parsed lines written out,
//     which it is whenever the parser stopped early at a stored blank line
//     (the hidden server lines are longer than anything the bounded number
//     of stored lines could save by terse formatting).
//
// A reply that fails is not guessed at: the read stops there and reads the
// next message through the stream leader's message get, whose JSON reply
// keeps stored headers apart from the server's fields.

// maxVerifiedHeaderValues bounds the header values a message reply may
// have and still be checked by length: terse formatting saves at most two
// bytes a value, far less than the server lines a stored blank line hides.
const maxVerifiedHeaderValues = 40

var (
	// errUnverified reports a reply that is not provably the server's; the
	// replies before it were handed over and checked.
	errUnverified = errors.New("jetstream: direct get reply not verifiably from the server")
	// errDirectUnavailable reports a direct get no replica answered.
	errDirectUnavailable = errors.New("jetstream: no replica serves direct gets")
)

// directGet sends a batched direct get (req.Batch > 0, or multi_last) and
// hands each verified message to each, in order. It returns the number of
// matching messages after the last one sent, from the verified end of
// batch (0 when none matched). It returns errUnverified, after handing over
// what came before, when a reply is not provably the server's.
func (l *Log) directGet(ctx context.Context, stream, filter string, req msgGetRequest, each func(*served) error) (pending uint64, err error) {
	return l.directGetMulti(ctx, stream, filter, req, each, nil)
}

// directGetMulti is directGet that also reports, in upTo when it is not
// nil, the sequence up to which the answering replica looked: for a
// multi_last request without up_to_seq, its own last sequence.
//
// The request timeout bounds the wait for each reply, not the whole batch:
// a batch of thousands of events spread over millions of tenant messages
// may take the server longer than one request timeout to send, and stops
// only when it stops making progress.
func (l *Log) directGetMulti(ctx context.Context, stream, filter string, req msgGetRequest, each func(*served) error, upTo *uint64) (pending uint64, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(l.cfg.requestTimeout, func() { cancel(context.DeadlineExceeded) })
	defer idle.Stop()
	subject := l.apiSubject(apiDirectGet, stream)
	ctx, check := l.guard(ctx, subject)
	defer func() {
		if err != nil && !errors.Is(err, errDirectUnavailable) && !errors.Is(err, errUnverified) {
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
	var prev uint64 // the server chains replies: Nats-Last-Sequence is the previous one's sequence
	for {
		m, err := sub.NextMsgWithContext(ctx)
		idle.Reset(l.cfg.requestTimeout)
		if err != nil && context.Cause(ctx) == context.DeadlineExceeded && ctx.Err() != nil {
			err = context.DeadlineExceeded // no reply within the request timeout
		}
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, errDirectUnavailable
		}
		if err != nil {
			return 0, fmt.Errorf("jetstream: direct get of %s: %w", stream, err)
		}
		if code, ok := serverStatus(m); ok {
			switch code {
			case "204": // end of batch
				last, ok := lastUint(m.Header, headerLastSequence)
				if !ok || last != prev {
					return 0, errUnverified
				}
				pending, _ := lastUint(m.Header, headerNumPending)
				if upTo != nil {
					*upTo, _ = lastUint(m.Header, headerUpToSequence)
				}
				return pending, nil
			case "404": // nothing matches
				if prev != 0 {
					return 0, errUnverified
				}
				return 0, nil
			case "503":
				return 0, errDirectUnavailable
			default:
				return 0, fmt.Errorf("jetstream: direct get of %s: status %s %s", stream, code, m.Header.Get(headerDescription))
			}
		}
		sm, ok := serverMessage(m, stream, filter, prev)
		if !ok || sm.seq < req.Seq {
			return 0, errUnverified
		}
		if err := each(sm); err != nil {
			return 0, err
		}
		prev = sm.seq
	}
}

// serverStatus reports whether m is a status reply exactly as the server
// writes it, and its code. A writer cannot store a status line, so an
// imitation needs more header bytes than the real one.
func serverStatus(m *nats.Msg) (string, bool) {
	vs := m.Header[headerStatus]
	if len(vs) != 1 || len(m.Data) != 0 {
		return "", false
	}
	want := len("NATS/1.0 ") + len(vs[0])
	for k, vals := range m.Header {
		switch {
		case k == headerStatus:
		case k == headerDescription && len(vals) == 1:
			want += 1 + len(vals[0])
		case k == headerNumPending || k == headerLastSequence || k == headerUpToSequence:
			if len(vals) != 1 {
				return "", false
			}
			want += len(k) + 2 + len(vals[0]) + 2
		default:
			return "", false
		}
	}
	want += 2 + 2 // end of the status line, blank line
	return vs[0], rawHeaderLen(m) == want
}

// serverMessage verifies a message reply of a batch (see above), chained
// to the previous reply's sequence prev, and returns what the server says
// of it. filter is the subject, or a filter ending in ".*" or ".>", that
// the request asked for.
func serverMessage(m *nats.Msg, stream, filter string, prev uint64) (*served, bool) {
	sm, ok := serverReply(m, stream, filter)
	if !ok || sm.seq <= prev {
		return nil, false
	}
	if lseq, ok := lastUint(sm.header, headerLastSequence); !ok || lseq != prev {
		return nil, false
	}
	sm.serverKeys = directServerKeys
	return sm, true
}

// serverReply makes the checks of a message reply that do not depend on a
// batch: the header block is no longer than its parsed lines (nothing
// hidden), and the server's stream, subject (within filter), sequence and
// time are its last values. The reply's serverKeys name those four.
func serverReply(m *nats.Msg, stream, filter string) (*served, bool) {
	h := m.Header
	if h == nil {
		return nil, false
	}
	values := 0
	want := len("NATS/1.0\r\n") + 2
	for k, vs := range h {
		values += len(vs)
		for _, v := range vs {
			want += len(k) + 2 + len(v) + 2
		}
	}
	if values > maxVerifiedHeaderValues || rawHeaderLen(m) > want {
		return nil, false
	}
	if s, ok := last(h, headerStream); !ok || s != stream {
		return nil, false
	}
	subject, ok := last(h, headerSubject)
	if !ok || !inFilter(subject, filter) {
		return nil, false
	}
	seq, ok := lastUint(h, headerSequence)
	if !ok || seq == 0 {
		return nil, false
	}
	ts, ok := last(h, headerTimeStamp)
	if !ok {
		return nil, false
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, false
	}
	return &served{seq: seq, subject: subject, time: at, header: h, data: m.Data, serverKeys: replyServerKeys}, true
}

var (
	replyServerKeys  = []string{headerStream, headerSubject, headerSequence, headerTimeStamp}
	directServerKeys = []string{headerStream, headerSubject, headerSequence, headerTimeStamp, headerNumPending, headerLastSequence}
)

// rawHeaderLen is the length of m's header block as received: the client
// counts the whole payload in Size.
func rawHeaderLen(m *nats.Msg) int {
	return m.Size() - len(m.Subject) - len(m.Reply) - len(m.Data)
}

func inFilter(subject, filter string) bool {
	if prefix, ok := strings.CutSuffix(filter, ".>"); ok {
		rest, ok := strings.CutPrefix(subject, prefix+".")
		return ok && rest != ""
	}
	if prefix, ok := strings.CutSuffix(filter, ".*"); ok {
		rest, ok := strings.CutPrefix(subject, prefix+".")
		return ok && rest != "" && !strings.Contains(rest, ".")
	}
	return subject == filter
}

// last returns the last value of a header key: the server's, when it
// appended one.
func last(h nats.Header, key string) (string, bool) {
	vs := h[key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

func lastUint(h nats.Header, key string) (uint64, bool) {
	v, ok := last(h, key)
	if !ok {
		return 0, false
	}
	return parseUint(v)
}

func parseUint(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// leaderServed turns the leader's message get reply into a served message:
// its sequence, subject and time are fields of the server's JSON, apart
// from the stored header bytes.
func leaderServed(m *storedMsg) *served {
	s := &served{seq: m.Seq, subject: m.Subject, time: m.Time, data: m.Data}
	if len(m.Header) > 0 {
		s.header, s.headerErr = nats.DecodeHeadersMsg(m.Header)
	}
	return s
}
