package jetstream

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
)

// Wire format of one event: a message on the thread's subject whose payload
// is Event.Data, unchanged, with these headers. PROTOCOL.md documents it for
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
	// HeaderTTL is the server's per-message time to live, which carries
	// Event.TTL in whole seconds ("60s"). Optional.
	HeaderTTL = "Nats-TTL"

	headerExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	headerExpectedLastMsgID   = "Nats-Expected-Last-Msg-Id"
	headerExpectedLastSeq     = "Nats-Expected-Last-Sequence"
	headerStream              = "Nats-Stream"
	headerSequence            = "Nats-Sequence"
	headerSubject             = "Nats-Subject"
	headerTimeStamp           = "Nats-Time-Stamp"
	headerNumPending          = "Nats-Num-Pending"
	headerLastSequence        = "Nats-Last-Sequence"
	headerUpToSequence        = "Nats-UpTo-Sequence"
	headerStatus              = "Status"
	headerDescription         = "Description"
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
	if e.TTL > 0 {
		h[HeaderTTL] = []string{strconv.FormatInt(int64(e.TTL/time.Second), 10) + "s"}
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

// strictRFC3339 reports whether v is the strict form of a time header: Go's
// parser also takes forms other languages refuse ("T1:00:00", a comma
// before the fraction, an offset of +24:00), and every reader must agree on
// what is corrupt. It matches exactly what the regular expression
//
//	^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$
//
// matches (FuzzStrictRFC3339 checks it), without the regular expression's
// cost on every event read.
func strictRFC3339(v string) bool {
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(v) < len("2006-01-02T15:04:05Z") ||
		!digits(v[0:4]) || v[4] != '-' || !digits(v[5:7]) || v[7] != '-' || !digits(v[8:10]) || v[10] != 'T' ||
		!digits(v[11:13]) || v[13] != ':' || !digits(v[14:16]) || v[16] != ':' || !digits(v[17:19]) {
		return false
	}
	rest := v[19:]
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		rest = rest[i:]
	}
	if rest == "Z" {
		return true
	}
	if len(rest) != 6 || rest[0] != '+' && rest[0] != '-' || rest[3] != ':' || !digits(rest[1:3]) || !digits(rest[4:6]) {
		return false
	}
	hourOK := rest[1] <= '1' || rest[1] == '2' && rest[2] <= '3'
	return hourOK && rest[4] <= '5'
}

// served is one stored message as the server vouches for it: sequence,
// subject and time come from the server (never from a header a writer could
// have stored); header and data are what the writer stored, untrusted.
type served struct {
	seq     uint64
	subject string
	time    time.Time
	header  nats.Header
	data    []byte
	// headerErr is set when the stored headers could not be parsed at all.
	headerErr error
	// serverKeys lists the header keys whose last value the server added
	// (direct get replies), left out of a corrupt event's stored headers.
	serverKeys []string
}

// storedHeader returns a copy of the headers the writer stored, without the
// values the server appended.
func (m *served) storedHeader() map[string][]string {
	if len(m.header) == 0 {
		return nil
	}
	out := make(map[string][]string, len(m.header))
	for k, vs := range m.header {
		out[k] = vs
	}
	for _, k := range m.serverKeys {
		if vs := out[k]; len(vs) > 0 {
			out[k] = vs[:len(vs)-1]
			if len(out[k]) == 0 {
				delete(out, k)
			}
		}
	}
	return out
}

// corrupt reports m as a message that is not a valid event of key.
func (m *served) corrupt(key sessionlog.ThreadKey, format string, args ...any) *sessionlog.CorruptEventError {
	return &sessionlog.CorruptEventError{
		Key: key, Ordinal: m.seq, Subject: m.subject, Reason: fmt.Sprintf(format, args...),
		Time: m.time, Header: m.storedHeader(), Data: m.data,
	}
}

// decodeEvent turns a stored message of the thread key (whose subject
// token is threadToken) into a record, or reports why it is not a valid
// event. Decoding is strict about what the protocol requires (an ID scoped
// to the thread, a type, a well-formed time and metadata, every field
// within the limits Append enforces) and lenient only where the protocol
// allows: a missing time is the server's, missing metadata is none, and a
// header given twice counts by its first value.
func decodeEvent(key sessionlog.ThreadKey, threadToken string, m *served) (sessionlog.Record, *sessionlog.CorruptEventError) {
	rec := sessionlog.Record{Ordinal: m.seq}
	if m.headerErr != nil {
		return rec, m.corrupt(key, "unreadable headers: %v", m.headerErr)
	}
	h := m.header
	msgID := h.Get(HeaderMsgID)
	tok, id, ok := strings.Cut(msgID, ":")
	switch {
	case msgID == "":
		return rec, m.corrupt(key, "no %s header", HeaderMsgID)
	case !ok || tok != threadToken || id == "":
		return rec, m.corrupt(key, "%s %.200q does not name an event of this thread", HeaderMsgID, msgID)
	}
	rec.ID = id
	if rec.Type = h.Get(HeaderType); rec.Type == "" {
		return rec, m.corrupt(key, "no %s header", HeaderType)
	}
	if v := h.Get(HeaderTime); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || !strictRFC3339(v) {
			return rec, m.corrupt(key, "bad %s header %.100q (want RFC 3339, e.g. 2026-01-02T03:04:05.123456789Z)", HeaderTime, v)
		}
		rec.Time = t.UTC()
	} else {
		rec.Time = m.time.UTC()
	}
	if v := h.Get(HeaderMeta); v != "" {
		if err := json.Unmarshal([]byte(v), &rec.Meta); err != nil {
			return rec, m.corrupt(key, "bad %s header: %v", HeaderMeta, err)
		}
		if len(rec.Meta) == 0 {
			rec.Meta = nil
		}
	}
	if v := h.Get(HeaderTTL); v != "" {
		ttl, ok := parseTTL(v)
		if !ok {
			return rec, m.corrupt(key, "bad %s header %.100q", HeaderTTL, v)
		}
		rec.TTL = ttl
	}
	if err := sessionlog.ValidateEvent(&rec.Event); err != nil {
		return sessionlog.Record{Ordinal: m.seq}, m.corrupt(key, "%v", err)
	}
	if len(m.data) > 0 {
		rec.Data = m.data
	}
	return rec, nil
}

// parseTTL reads a Nats-TTL header as the server does: a Go duration or a
// number of seconds, at least one, counted in whole seconds; "never" is no
// TTL.
func parseTTL(v string) (time.Duration, bool) {
	if strings.EqualFold(v, "never") {
		return 0, true
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d.Truncate(time.Second), d >= time.Second
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > int64(math.MaxInt64/time.Second) {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// deletionRecord is the payload of a thread deletion record.
type deletionRecord struct {
	Thread string `json:"deleted_thread"`
}

// decodeTenantItem decodes a message read from a tenant's filter: a
// thread deletion record (skip unless deletions are asked for), or an
// event whose subject, which the server vouches for, names the thread.
func (l *Log) decodeTenantItem(tenant string, m *served, deletions bool) (rec sessionlog.TenantRecord, cerr *sessionlog.CorruptEventError, skip bool) {
	if _, ok := l.cfg.scheme.IsDeletionSubject(m.subject); ok {
		var d deletionRecord
		key := sessionlog.ThreadKey{Tenant: tenant}
		if err := json.Unmarshal(m.data, &d); err != nil || sessionlog.ValidateKey(sessionlog.ThreadKey{Tenant: tenant, Thread: d.Thread}) != nil {
			return sessionlog.TenantRecord{Record: sessionlog.Record{Ordinal: m.seq}}, m.corrupt(key, "a deletion record that names no valid thread"), false
		}
		if !deletions {
			return rec, nil, true
		}
		return sessionlog.TenantRecord{Thread: d.Thread, Record: sessionlog.Record{Ordinal: m.seq},
			Deletion: &sessionlog.Deletion{Tenant: tenant, Thread: d.Thread, Before: m.seq, Time: m.time}}, nil, false
	}
	rec, cerr = l.decodeTenantMsg(tenant, m)
	return rec, cerr, false
}

// decodeTenantMsg decodes an event read from a tenant's filter: its
// subject, which the server vouches for, names the thread.
func (l *Log) decodeTenantMsg(tenant string, m *served) (sessionlog.TenantRecord, *sessionlog.CorruptEventError) {
	t, thread, err := l.cfg.scheme.ParseSubject(m.subject)
	if err == nil && t != tenant {
		err = fmt.Errorf("subject %q belongs to tenant %q", m.subject, t)
	}
	if err != nil {
		key := sessionlog.ThreadKey{Tenant: tenant}
		return sessionlog.TenantRecord{Record: sessionlog.Record{Ordinal: m.seq}}, m.corrupt(key, "subject names no valid thread: %v", err)
	}
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: thread}
	rec, cerr := decodeEvent(key, subjects.EncodeThread(thread), m)
	return sessionlog.TenantRecord{Thread: thread, Record: rec}, cerr
}
