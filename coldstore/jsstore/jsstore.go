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
// The stream keeps one message per subject (a Put replaces the object),
// is not served by direct gets, and every read goes through the stream
// leader, so that a Put is visible to every later Get and List on a
// replicated stream too. Objects are single messages: Put refuses data
// larger than the server's maximum payload (MaxObjectBytes), and a cold
// tier bounds its segments to fit.
package jsstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

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
		AllowDirect:       false,             // reads go through the leader
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
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
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
				if err := sleep(ctx, 50*time.Millisecond); err != nil {
					return err
				}
				continue
			}
		}
		return fmt.Errorf("jsstore: storing %q of tenant %q: %w", name, tenant, err)
	}
}

// Get implements sessionlog.ColdStore.
func (s *Store) Get(ctx context.Context, tenant, name string) ([]byte, error) {
	subj, err := s.subject(tenant, name)
	if err != nil {
		return nil, err
	}
	var m *natsjs.RawStreamMsg
	errDirect := errors.New("direct")
	err = s.retry(ctx, func(ctx context.Context) error {
		st, err := s.js.Stream(ctx, s.stream(tenant))
		if err != nil {
			return err
		}
		if st.CachedInfo().Config.AllowDirect {
			return errDirect
		}
		m, err = st.GetLastMsgForSubject(ctx, subj)
		return err
	})
	if errors.Is(err, errDirect) {
		return nil, fmt.Errorf("jsstore: stream %s serves direct gets, which may be stale; it was not made by this package", s.stream(tenant))
	}
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		return nil, fmt.Errorf("jsstore: %q of tenant %q: %w", name, tenant, sessionlog.ErrNotFound)
	}
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return nil, fmt.Errorf("jsstore: %q of tenant %q: %w", name, tenant, sessionlog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("jsstore: reading %q of tenant %q: %w", name, tenant, err)
	}
	if m.Subject != subj {
		return nil, fmt.Errorf("jsstore: reading %q of tenant %q: the server answered for %q", name, tenant, m.Subject)
	}
	return m.Data, nil
}

// List implements sessionlog.ColdStore with one stream info request
// (paged by the server) filtered to the prefix's complete parts.
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
		var info *natsjs.StreamInfo
		err := s.retry(ctx, func(ctx context.Context) error {
			st, err := s.js.Stream(ctx, s.stream(tenant))
			if err != nil {
				return err
			}
			info, err = st.Info(ctx, natsjs.WithSubjectFilter(filter))
			return err
		})
		if errors.Is(err, natsjs.ErrStreamNotFound) {
			return
		}
		if err != nil {
			yield("", fmt.Errorf("jsstore: listing tenant %q: %w", tenant, err))
			return
		}
		var names []string
		for subj, n := range info.State.Subjects {
			if n == 0 {
				continue
			}
			if name, ok := s.name(tenant, subj); ok && strings.HasPrefix(name, prefix) {
				names = append(names, name)
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
		if serr := sleep(ctx, wait); serr != nil {
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

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
