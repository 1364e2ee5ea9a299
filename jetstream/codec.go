package jetstream

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
)

// Wire format of one event: a message on the thread's subject whose payload
// is Event.Data, unchanged, with these headers. The README documents it for
// clients in other languages.
const (
	// HeaderMsgID is the server's deduplication key:
	// "<thread token>:<event ID>", scoping IDs to their thread.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderType carries Event.Type. Required.
	HeaderType = "Jetsession-Type"
	// HeaderTime carries Event.Time in RFC 3339 with nanoseconds, UTC.
	// Optional: without it the server's timestamp is used.
	HeaderTime = "Jetsession-Time"
	// HeaderMeta carries Event.Meta as a JSON object of strings. Optional.
	HeaderMeta = "Jetsession-Meta"

	headerExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	headerExpectedLastMsgID   = "Nats-Expected-Last-Msg-Id"
	headerExpectedLastSeq     = "Nats-Expected-Last-Sequence"
	headerSequence            = "Nats-Sequence"
	headerSubject             = "Nats-Subject"
	headerTimeStamp           = "Nats-Time-Stamp"
	headerNumPending          = "Nats-Num-Pending"
	headerStatus              = "Status"
)

// MsgID returns the deduplication header value of an event of a thread.
func MsgID(thread, eventID string) string {
	return subjects.EncodeThread(thread) + ":" + eventID
}

// encodeEvent builds the message of one (prepared, valid) event.
func encodeEvent(subject, threadToken string, e *sessionlog.Event) *nats.Msg {
	h := make(nats.Header, 4)
	h[HeaderMsgID] = []string{threadToken + ":" + e.ID}
	h[HeaderType] = []string{e.Type}
	h[HeaderTime] = []string{e.Time.UTC().Format(time.RFC3339Nano)}
	if len(e.Meta) > 0 {
		// Valid metadata is UTF-8 strings, which always marshal.
		meta, _ := json.Marshal(e.Meta)
		h[HeaderMeta] = []string{string(meta)}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: e.Data}
}

// msgSize is what a message weighs against the server's maximum payload.
func msgSize(m *nats.Msg) int {
	n := len(m.Subject) + len(m.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// decodeEvent turns a stored message back into a record. ts is the
// server's timestamp, used when the message has no time header.
func decodeEvent(key sessionlog.ThreadKey, threadToken string, seq uint64, h nats.Header, data []byte, ts time.Time) (sessionlog.Record, error) {
	corrupt := func(format string, args ...any) error {
		return &sessionlog.CorruptEventError{Key: key, Ordinal: seq, Reason: fmt.Sprintf(format, args...)}
	}
	rec := sessionlog.Record{Ordinal: seq}
	msgID := h.Get(HeaderMsgID)
	tok, id, ok := strings.Cut(msgID, ":")
	switch {
	case msgID == "":
		return rec, corrupt("no %s header", HeaderMsgID)
	case !ok || tok != threadToken || id == "":
		return rec, corrupt("%s %q does not name an event of this thread", HeaderMsgID, msgID)
	}
	rec.ID = id
	if rec.Type = h.Get(HeaderType); rec.Type == "" {
		return rec, corrupt("no %s header", HeaderType)
	}
	if v := h.Get(HeaderTime); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return rec, corrupt("bad %s header %q", HeaderTime, v)
		}
		rec.Time = t.UTC()
	} else {
		rec.Time = ts.UTC()
	}
	if v := h.Get(HeaderMeta); v != "" {
		if err := json.Unmarshal([]byte(v), &rec.Meta); err != nil {
			return rec, corrupt("bad %s header: %v", HeaderMeta, err)
		}
		if len(rec.Meta) == 0 {
			rec.Meta = nil
		}
	}
	if len(data) > 0 {
		rec.Data = data
	}
	return rec, nil
}
