// Package jsstore keeps a cold tier (sessionlog.ColdStore) in JetStream
// itself, with no infrastructure beyond NATS: one segment stream per
// tenant, one subject per object.
//
// Layout, for the default prefixes:
//
//	stream:  jetsession_cold-<tenant name token>
//	subject: jetsession_cold.<tenant name token>.<part token>[.<part token>...]
//
// where the tenant token is subjects.EncodeTenant's and the object's name
// is split at '/' into parts, each escaped like a thread token (a-z, A-Z,
// 0-9 and '-' kept, any other byte as '_' and two lowercase hex digits).
// The stream keeps one message per subject (a Put replaces the object).
// Lists are answered by the stream leader; Gets by a direct get that any
// replica may serve, asked again of the leader when the replica does not
// have the object yet, so that a Put is visible to every later Get and
// List on a replicated stream too. (Objects are never changed in place:
// a cold tier names each segment by its content's range and times.) Objects are single messages: Put refuses data
// larger than the server's maximum payload (MaxObjectBytes), and a cold
// tier bounds its segments to fit.
package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Defaults for the prefixes. They differ from the tenant streams' and
// subjects' (subjects.Default) in their first token, so cold streams are
// never taken for tenant streams.
const (
	DefaultStreamPrefix  = "jetsession_cold-"
	DefaultSubjectPrefix = "jetsession_cold"
)

// Store is a cold store on JetStream.
type Store struct {
	nc            *nats.Conn
	js            natsjs.JetStream
	streamPrefix  string
	subjectPrefix string
	replicas      int
	storage       natsjs.StorageType
}

var _ sessionlog.ColdStore = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithPrefixes sets the stream name and subject prefixes (defaults
// DefaultStreamPrefix and DefaultSubjectPrefix); stores with different
// prefixes never share objects. Keep them apart from the log's own.
func WithPrefixes(stream, subject string) Option {
	return func(s *Store) { s.streamPrefix, s.subjectPrefix = stream, subject }
}

// WithReplicas sets how many servers keep each segment stream (default 1).
func WithReplicas(n int) Option { return func(s *Store) { s.replicas = n } }

// WithMemoryStorage keeps segment streams in server memory (tests only).
func WithMemoryStorage() Option { return func(s *Store) { s.storage = natsjs.MemoryStorage } }

// New returns a store using nc.
func New(nc *nats.Conn, opts ...Option) (*Store, error) {
	if nc == nil {
		return nil, errors.New("jsstore: nil NATS connection")
	}
	s := &Store{nc: nc, streamPrefix: DefaultStreamPrefix, subjectPrefix: DefaultSubjectPrefix, replicas: 1, storage: natsjs.FileStorage}
	for _, opt := range opts {
		opt(s)
	}
	if s.replicas < 1 || s.replicas > 5 {
		return nil, fmt.Errorf("jsstore: replicas must be 1 to 5, got %d", s.replicas)
	}
	if err := (subjects.Scheme{SubjectPrefix: s.subjectPrefix, StreamPrefix: s.streamPrefix}).Validate(); err != nil {
		return nil, fmt.Errorf("jsstore: %w", err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jsstore: %w", err)
	}
	s.js = js
	return s, nil
}

// MaxObjectBytes is the largest object Put accepts: the server's maximum
// payload, less room for the message's headers. A cold tier bounds its
// segments by it.
func (s *Store) MaxObjectBytes() int { return max(0, int(s.nc.MaxPayload())-1024) }

func (s *Store) stream(tenant string) string { return s.streamPrefix + subjects.EncodeTenant(tenant) }

func (s *Store) base(tenant string) string {
	return s.subjectPrefix + "." + subjects.EncodeTenant(tenant)
}

func (s *Store) subject(tenant, name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return "", fmt.Errorf("jsstore: invalid object name %q", name)
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = encodePart(p)
	}
	return s.base(tenant) + "." + strings.Join(parts, "."), nil
}

func (s *Store) name(tenant, subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, s.base(tenant)+".")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, ".")
	for i, p := range parts {
		d, ok := decodePart(p)
		if !ok {
			return "", false
		}
		parts[i] = d
	}
	return strings.Join(parts, "/"), true
}

func (s *Store) config(tenant string) natsjs.StreamConfig {
	return natsjs.StreamConfig{
		Name:              s.stream(tenant),
		Description:       "jetsession cold tier",
		Subjects:          []string{s.base(tenant) + ".>"},
		Retention:         natsjs.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Storage:           s.storage,
		Replicas:          s.replicas,
		Discard:           natsjs.DiscardOld, // per subject: a Put replaces the object
		AllowDirect:       true,              // Get falls back to the leader when a replica lacks an object
	}
}

// Put implements sessionlog.ColdStore, creating the tenant's stream on
// first use.
func (s *Store) Put(ctx context.Context, tenant, name string, data []byte) error {
	subj, err := s.subject(tenant, name)
	if err != nil {
		return err
	}
	if max := s.MaxObjectBytes(); max > 0 && len(data) > max {
		return fmt.Errorf("jsstore: object %q is %d bytes, the server takes at most %d", name, len(data), max)
	}
	created := false
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := s.js.Publish(actx, subj, data, natsjs.WithExpectStream(s.stream(tenant)))
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case transient(err) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, natsjs.ErrNoStreamResponse):
			// No answer: a Put replaces the object, so sending it again
			// is safe.
			if err := ctxtime.Sleep(ctx, 50*time.Millisecond); err != nil {
				return err
			}
			continue
		case errors.Is(err, natsjs.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
			if !created {
				cerr := s.retry(ctx, func(ctx context.Context) error {
					_, err := s.js.CreateStream(ctx, s.config(tenant))
					return err
				})
				if cerr != nil && !errors.Is(cerr, natsjs.ErrStreamNameAlreadyInUse) {
					return fmt.Errorf("jsstore: creating the segment stream of tenant %q: %w", tenant, cerr)
				}
				created = true
				continue
			}
			// A stream just created may take a moment to be served
			// everywhere in a cluster.
			if attempt < 50 {
				if err := ctxtime.Sleep(ctx, 50*time.Millisecond); err != nil {
					return err
				}
				continue
			}
		}
		return fmt.Errorf("jsstore: storing %q of tenant %q: %w", name, tenant, err)
	}
}

// Get implements sessionlog.ColdStore with one direct get, which any
// replica may serve. An object is never changed once written (a cold
// tier's segment names are unique to their content), so a replica that
// has it answers what the leader would; one that does not have it yet, a
// stream made without direct gets (by an earlier version of this
// package) or a reply that is not the object asked for is asked of the
// stream leader instead, so a Put is seen by every later Get.
func (s *Store) Get(ctx context.Context, tenant, name string) ([]byte, error) {
	subj, err := s.subject(tenant, name)
	if err != nil {
		return nil, err
	}
	stream := s.stream(tenant)
	var data []byte
	found := false
	err = s.retry(ctx, func(ctx context.Context) error {
		m, err := s.nc.RequestWithContext(ctx, apiPrefix+"DIRECT.GET."+stream+"."+subj, nil)
		if errors.Is(err, nats.ErrNoResponders) {
			return nil // no direct gets (or no stream): the leader decides
		}
		if err != nil {
			return err
		}
		if isServedObject(m, stream, subj) {
			data, found = m.Data, true
		}
		return nil
	})
	if err == nil && !found {
		data, err = s.leaderGet(ctx, stream, subj)
	}
	switch {
	case errors.Is(err, sessionlog.ErrNotFound):
		return nil, fmt.Errorf("jsstore: %q of tenant %q: %w", name, tenant, err)
	case err != nil:
		return nil, fmt.Errorf("jsstore: reading %q of tenant %q: %w", name, tenant, err)
	}
	return data, nil
}

// isServedObject reports whether a direct-get reply is the stored message
// of subj in stream: a message, not a status, with the server's headers
// naming them. The server appends its headers after the stored ones, so
// the last values are its own.
func isServedObject(m *nats.Msg, stream, subj string) bool {
	if m.Header == nil || len(m.Header.Values("Status")) > 0 && len(m.Data) == 0 {
		return false
	}
	last := func(key string) string {
		v := m.Header.Values(key)
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1]
	}
	return last(natsjs.StreamHeader) == stream && last(natsjs.SubjectHeader) == subj
}

// leaderGet reads the last message of subj through the stream leader.
func (s *Store) leaderGet(ctx context.Context, stream, subj string) ([]byte, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error   *natsjs.APIError `json:"error"`
		Message *struct {
			Subject string `json:"subject"`
			Data    []byte `json:"data"`
		} `json:"message"`
	}
	err = s.retry(ctx, func(ctx context.Context) error {
		resp.Error, resp.Message = nil, nil
		return s.request(ctx, "STREAM.MSG.GET."+stream, req, &resp, &resp.Error)
	})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		switch resp.Error.ErrorCode {
		case natsjs.JSErrCodeMessageNotFound, natsjs.JSErrCodeStreamNotFound:
			return nil, sessionlog.ErrNotFound
		}
		return nil, resp.Error
	}
	if resp.Message == nil || resp.Message.Subject != subj {
		return nil, fmt.Errorf("the stream leader answered for another subject than %q", subj)
	}
	return resp.Message.Data, nil
}

// apiPrefix is the JetStream API's subject prefix.
const apiPrefix = "$JS.API."

// request sends a JetStream API request and decodes its JSON reply into
// resp, whose error field is *apiErr; a reply that says 503 (JetStream
// briefly unavailable) is returned as that error, which retry asks again.
func (s *Store) request(ctx context.Context, api string, req []byte, resp any, apiErr **natsjs.APIError) error {
	m, err := s.nc.RequestWithContext(ctx, apiPrefix+api, req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(m.Data, resp); err != nil {
		return fmt.Errorf("decoding the reply to %s: %w", api, err)
	}
	if e := *apiErr; e != nil && e.Code == 503 {
		return e
	}
	return nil
}

// List implements sessionlog.ColdStore with stream info requests filtered
// to the prefix's complete parts, answered by the stream leader: one,
// unless the server pages a long listing.
func (s *Store) List(ctx context.Context, tenant, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		filter := s.base(tenant) + ".>"
		if i := strings.LastIndex(prefix, "/"); i > 0 {
			whole, err := s.subject(tenant, prefix[:i])
			if err != nil {
				yield("", err)
				return
			}
			filter = whole + ".>"
		}
		var names []string
		for offset := 0; ; {
			req, err := json.Marshal(struct {
				Filter string `json:"subjects_filter"`
				Offset int    `json:"offset,omitempty"`
			}{filter, offset})
			if err != nil {
				yield("", err)
				return
			}
			var resp struct {
				Error *natsjs.APIError `json:"error"`
				Total int              `json:"total"`
				State struct {
					Subjects map[string]uint64 `json:"subjects"`
				} `json:"state"`
			}
			err = s.retry(ctx, func(ctx context.Context) error {
				resp.Error, resp.State.Subjects = nil, nil
				return s.request(ctx, "STREAM.INFO."+s.stream(tenant), req, &resp, &resp.Error)
			})
			if err == nil && resp.Error != nil {
				if resp.Error.ErrorCode == natsjs.JSErrCodeStreamNotFound {
					return
				}
				err = resp.Error
			}
			if err != nil {
				yield("", fmt.Errorf("jsstore: listing tenant %q: %w", tenant, err))
				return
			}
			for subj, n := range resp.State.Subjects {
				if n == 0 {
					continue
				}
				if name, ok := s.name(tenant, subj); ok && strings.HasPrefix(name, prefix) {
					names = append(names, name)
				}
			}
			offset += len(resp.State.Subjects)
			if len(resp.State.Subjects) == 0 || offset >= resp.Total {
				break
			}
		}
		slices.Sort(names)
		for _, n := range names {
			if !yield(n, nil) {
				return
			}
		}
	}
}

// Delete implements sessionlog.ColdStore by purging the object's subject.
func (s *Store) Delete(ctx context.Context, tenant, name string) error {
	subj, err := s.subject(tenant, name)
	if err != nil {
		return err
	}
	err = s.retry(ctx, func(ctx context.Context) error {
		st, err := s.js.Stream(ctx, s.stream(tenant))
		if err != nil {
			return err
		}
		return st.Purge(ctx, natsjs.WithPurgeSubject(subj))
	})
	if err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
		return fmt.Errorf("jsstore: deleting %q of tenant %q: %w", name, tenant, err)
	}
	return nil
}

// DeleteTenant implements sessionlog.ColdStore by deleting the tenant's
// segment stream.
func (s *Store) DeleteTenant(ctx context.Context, tenant string) error {
	err := s.retry(ctx, func(ctx context.Context) error { return s.js.DeleteStream(ctx, s.stream(tenant)) })
	if err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
		return fmt.Errorf("jsstore: deleting the segment stream of tenant %q: %w", tenant, err)
	}
	return nil
}

// requestTimeout bounds one JetStream API request: one nobody answers (a
// stream being placed, a busy server) is asked again while the caller's
// context lasts, rather than waiting all of it out.
const requestTimeout = 5 * time.Second

// retry runs op, each attempt within requestTimeout, again after transient
// failures until ctx ends. Every op here is idempotent.
func (s *Store) retry(ctx context.Context, op func(ctx context.Context) error) error {
	wait := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		if serr := ctxtime.Sleep(ctx, wait); serr != nil {
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

// transient reports failures worth asking again: no answer in time, nobody
// listening yet, JetStream briefly unavailable, a connection coming back.
func transient(err error) bool {
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, natsjs.ErrNoStreamResponse) || errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

func keep(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

func encodePart(p string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; keep(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
	}
	return b.String()
}

func decodePart(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		if c != '_' || i+2 >= len(tok) {
			return "", false
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 || keep(byte(hi<<4|lo)) {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
