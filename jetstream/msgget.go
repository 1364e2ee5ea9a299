package jetstream

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// leaderGetLarge is leaderGet for replies carrying large payloads (a
// snapshot): encoding/json validates and scans a reply of 64 KiB of
// base64 several times, about a millisecond, so the reply is decoded in
// one pass by decodeMsgGetReply, which finds a string's end with one
// IndexByte. It falls back to encoding/json on anything it does not
// expect, so it never reads a reply differently.
func (l *Log) leaderGetLarge(ctx context.Context, stream string, req msgGetRequest) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := l.withTimeout(ctx)
	defer cancel()
	subject := l.apiSubject(apiStreamMsgGet, stream)
	gctx, check := l.guard(ctx, subject)
	reply, err := l.nc.RequestWithContext(gctx, subject, body)
	if err = check(err); err != nil {
		return nil, err
	}
	msg, apiErr, err := decodeMsgGetReply(reply.Data)
	if err != nil {
		// Not the shape expected: let encoding/json read it.
		var resp struct {
			Error   *natsjs.APIError `json:"error,omitempty"`
			Message *storedMsg       `json:"message"`
		}
		if jerr := json.Unmarshal(reply.Data, &resp); jerr != nil {
			return nil, fmt.Errorf("decoding JetStream API reply to %s: %w", subject, jerr)
		}
		msg, apiErr = resp.Message, resp.Error
	}
	if apiErr != nil {
		switch apiErr.ErrorCode {
		case codeNoMessageFound, codeStreamNotFound:
			return nil, nil
		}
		return nil, fmt.Errorf("JetStream API %s: %w", subject, apiErr)
	}
	if msg == nil {
		return nil, fmt.Errorf("JetStream API: empty message in reply from stream %s", stream)
	}
	return msg, nil
}

var errUnexpectedReply = errors.New("unexpected reply shape")

// decodeMsgGetReply decodes a STREAM.MSG.GET reply: an object with a
// "message" object (subject, seq, hdrs, data, time) or an "error" object,
// and other members it skips. It returns errUnexpectedReply for anything
// else, including strings with escapes where it needs their value.
func decodeMsgGetReply(b []byte) (*storedMsg, *natsjs.APIError, error) {
	p := &jsonScan{b: b}
	var msg *storedMsg
	var apiErr *natsjs.APIError
	seen := map[string]bool{}
	err := p.object(func(key []byte) error {
		if err := once(seen, key, "message", "error"); err != nil {
			return err
		}
		switch string(key) {
		case "message":
			msg = &storedMsg{}
			seenMsg := map[string]bool{}
			return p.object(func(key []byte) error {
				if err := once(seenMsg, key, "subject", "seq", "hdrs", "data", "time"); err != nil {
					return err
				}
				var err error
				switch string(key) {
				case "subject":
					var s []byte
					if s, err = p.plainString(); err == nil {
						msg.Subject = string(s)
					}
				case "seq":
					msg.Seq, err = p.uint()
				case "hdrs":
					msg.Header, err = p.base64()
				case "data":
					msg.Data, err = p.base64()
				case "time":
					var s []byte
					if s, err = p.plainString(); err == nil {
						// As encoding/json reads it (strict RFC 3339).
						err = msg.Time.UnmarshalJSON(b[p.i-len(s)-2 : p.i])
					}
				default:
					err = p.skip()
				}
				return err
			})
		case "error":
			start := p.i
			if err := p.skip(); err != nil {
				return err
			}
			apiErr = &natsjs.APIError{}
			return json.Unmarshal(b[start:p.i], apiErr)
		default:
			return p.skip()
		}
	})
	if err != nil {
		return nil, nil, err
	}
	p.ws()
	if p.i != len(b) {
		return nil, nil, errUnexpectedReply
	}
	return msg, apiErr, nil
}

// once refuses a key met twice and one encoding/json would take for a
// known key without being it (it matches keys ignoring case): such
// replies are left to encoding/json.
func once(seen map[string]bool, key []byte, known ...string) error {
	for _, c := range key {
		if c >= 0x80 {
			return errUnexpectedReply
		}
	}
	for _, k := range known {
		if bytes.EqualFold(key, []byte(k)) {
			if string(key) != k || seen[k] {
				return errUnexpectedReply
			}
			seen[k] = true
		}
	}
	return nil
}

// jsonScan reads JSON from b at i.
type jsonScan struct {
	b []byte
	i int
}

func (p *jsonScan) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonScan) want(c byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != c {
		return errUnexpectedReply
	}
	p.i++
	return nil
}

// object reads an object, calling member with each key, positioned at the
// member's value, which member must read.
func (p *jsonScan) object(member func(key []byte) error) error {
	if err := p.want('{'); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.plainString()
		if err != nil {
			return err
		}
		if err := p.want(':'); err != nil {
			return err
		}
		p.ws()
		if err := member(key); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return errUnexpectedReply
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case '}':
			p.i++
			return nil
		default:
			return errUnexpectedReply
		}
	}
}

// rawString reads a string and returns its bytes between the quotes, and
// whether they hold an escape.
func (p *jsonScan) rawString() ([]byte, bool, error) {
	if err := p.want('"'); err != nil {
		return nil, false, err
	}
	start := p.i
	escaped := false
	for {
		j := bytes.IndexByte(p.b[p.i:], '"')
		if j < 0 {
			return nil, false, errUnexpectedReply
		}
		end := p.i + j
		// The quote ends the string unless an odd number of backslashes
		// precede it.
		n := 0
		for k := end - 1; k >= start && p.b[k] == '\\'; k-- {
			n++
		}
		if bytes.IndexByte(p.b[p.i:end], '\\') >= 0 || n > 0 {
			escaped = true
		}
		p.i = end + 1
		if n%2 == 0 {
			s := p.b[start:end]
			for _, c := range s {
				if c < 0x20 {
					return nil, false, errUnexpectedReply
				}
			}
			return s, escaped, nil
		}
	}
}

// plainString reads a string without escapes.
func (p *jsonScan) plainString() ([]byte, error) {
	s, escaped, err := p.rawString()
	if err != nil || escaped || !utf8.Valid(s) {
		return nil, errUnexpectedReply
	}
	return s, nil
}

func (p *jsonScan) base64() ([]byte, error) {
	s, err := p.plainString()
	if err != nil {
		return nil, err
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		return nil, errUnexpectedReply
	}
	return out[:n], nil
}

func (p *jsonScan) uint() (uint64, error) {
	p.ws()
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	v, err := strconv.ParseUint(string(p.b[start:p.i]), 10, 64)
	if err != nil {
		return 0, errUnexpectedReply
	}
	return v, nil
}

// skip reads any value, checking it with encoding/json unless it is a
// string.
func (p *jsonScan) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return errUnexpectedReply
	}
	start := p.i
	switch p.b[p.i] {
	case '"':
		_, escaped, err := p.rawString()
		if err == nil && escaped && !json.Valid(p.b[start:p.i]) {
			return errUnexpectedReply
		}
		return err
	case '{':
		return p.object(func([]byte) error { return p.skip() })
	case '[':
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return nil
		}
		for {
			if err := p.skip(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.b) {
				return errUnexpectedReply
			}
			switch p.b[p.i] {
			case ',':
				p.i++
			case ']':
				p.i++
				return nil
			default:
				return errUnexpectedReply
			}
		}
	default:
		// A number, true, false or null.
		for p.i < len(p.b) && bytes.IndexByte([]byte(",}] \t\r\n"), p.b[p.i]) < 0 {
			p.i++
		}
		if !json.Valid(p.b[start:p.i]) {
			return errUnexpectedReply
		}
		return nil
	}
}

// directGetLast reads the last message on subject with one direct get
// (last_by_subj) and returns it only when the reply is provably the
// server's (serverReply: the checks of serverMessage but the batch's
// chain, which a single reply does not carry). It returns nil, nil when no message
// matches, errDirectUnavailable when nobody serves direct gets, and
// errUnverified when the reply is not provably the server's.
func (l *Log) directGetLast(ctx context.Context, stream, subject string) (*served, error) {
	body, err := json.Marshal(msgGetRequest{LastFor: subject})
	if err != nil {
		return nil, err
	}
	ctx, cancel := l.withTimeout(ctx)
	defer cancel()
	api := l.apiSubject(apiDirectGet, stream)
	gctx, check := l.guard(ctx, api)
	m, err := l.nc.RequestWithContext(gctx, api, body)
	if errors.Is(err, nats.ErrNoResponders) {
		check(nil)
		return nil, errDirectUnavailable
	}
	if err = check(err); err != nil {
		return nil, fmt.Errorf("jetstream: direct get of %s: %w", stream, err)
	}
	if code, ok := serverStatus(m); ok {
		switch code {
		case "404":
			return nil, nil
		case "503":
			return nil, errDirectUnavailable
		}
		return nil, errUnverified
	}
	sm, ok := serverReply(m, stream, subject)
	if !ok {
		return nil, errUnverified
	}
	return sm, nil
}
