// Package subjects maps tenants and threads onto NATS names: one JetStream
// stream per tenant and one subject per thread.
//
// The layout, for the default Scheme:
//
//	stream name:  jetsession-<tenant name token>
//	subject:      jetsession.<tenant token>.<thread token>
//	tenant filter: jetsession.<tenant token>.*
//
// Tokens come from an escape encoding that is injective and reversible:
//
//   - a tenant name token (streams) keeps the bytes a-z, 0-9 and '-' and
//     writes every other byte as '_' followed by two lowercase hex digits,
//     so "Acme.EU" becomes "_41cme_2e_45_55". Stream names hold no
//     upper-case letters, so two tenants never map to names that differ only
//     in case (the server keeps a folder per stream, and file systems may
//     ignore case).
//   - a thread token (subjects) also keeps A-Z, so "Thread.1" becomes
//     "Thread_2e1". The tenant part of a subject uses the tenant name token.
//
// Tokens never contain '.', '*', '>', white space or control characters, so
// every output is a valid single subject token and stream name part.
package subjects

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jetsession/jetsession/sessionlog"
)

// Defaults for Scheme.
const (
	DefaultSubjectPrefix = "jetsession"
	DefaultStreamPrefix  = "jetsession-"

	// MaxStreamName is the longest stream name the NATS server accepts.
	MaxStreamName = 255
	// MaxTenantBytes and MaxThreadBytes are sessionlog's key limits; an
	// encoded tenant is at most 3*MaxTenantBytes long.
	MaxTenantBytes = sessionlog.MaxTenantBytes
	MaxThreadBytes = sessionlog.MaxThreadBytes
)

// ErrInvalidName is returned when a stream name or subject does not belong
// to the scheme or does not decode.
var ErrInvalidName = errors.New("subjects: not a jetsession name")

// Scheme holds the prefixes that place tenant streams and thread subjects in
// a NATS account. Two schemes with different prefixes never share streams or
// subjects.
type Scheme struct {
	// SubjectPrefix is one or more subject tokens put before the tenant
	// token, for example "jetsession" or "prod.sessions".
	SubjectPrefix string
	// StreamPrefix is put before the tenant name token to form the stream
	// name, for example "jetsession-".
	StreamPrefix string
}

// Default returns the default scheme.
func Default() Scheme {
	return Scheme{SubjectPrefix: DefaultSubjectPrefix, StreamPrefix: DefaultStreamPrefix}
}

// Validate reports prefixes that would produce invalid or ambiguous names.
func (s Scheme) Validate() error {
	if s.SubjectPrefix == "" {
		return errors.New("subjects: subject prefix is empty")
	}
	for _, tok := range strings.Split(s.SubjectPrefix, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsFunc(tok, badSubjectRune) {
			return fmt.Errorf("subjects: subject prefix %q is not a literal NATS subject", s.SubjectPrefix)
		}
	}
	if strings.HasPrefix(s.SubjectPrefix, "$") || strings.HasPrefix(s.SubjectPrefix, "_INBOX") {
		return fmt.Errorf("subjects: subject prefix %q is reserved by NATS", s.SubjectPrefix)
	}
	if s.StreamPrefix == "" {
		return errors.New("subjects: stream prefix is empty")
	}
	if strings.ContainsFunc(s.StreamPrefix, badStreamRune) {
		return fmt.Errorf("subjects: stream prefix %q may only hold letters, digits, '-' and '_'", s.StreamPrefix)
	}
	// The longest stream name is a snapshot stream's (SnapshotStream).
	if len(s.StreamPrefix)+len(snapshotStreamMarker)+3*MaxTenantBytes > MaxStreamName {
		return fmt.Errorf("subjects: stream prefix %q is longer than %d bytes", s.StreamPrefix,
			MaxStreamName-len(snapshotStreamMarker)-3*MaxTenantBytes)
	}
	return nil
}

func badSubjectRune(r rune) bool {
	return r <= ' ' || r == 0x7f || r == '*' || r == '>'
}

func badStreamRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

// Stream returns the name of the tenant's stream.
func (s Scheme) Stream(tenant string) string { return s.StreamPrefix + EncodeTenant(tenant) }

// Subject returns the subject of one thread.
func (s Scheme) Subject(tenant, thread string) string {
	return s.SubjectPrefix + "." + EncodeTenant(tenant) + "." + EncodeThread(thread)
}

// TenantFilter returns the subject filter matching every thread of the
// tenant; it is the tenant stream's only subject.
func (s Scheme) TenantFilter(tenant string) string {
	return s.SubjectPrefix + "." + EncodeTenant(tenant) + ".*"
}

// AllTenantsFilter matches every thread subject of every tenant.
func (s Scheme) AllTenantsFilter() string { return s.SubjectPrefix + ".*.*" }

// DeletionToken is the last token of the subject on which a tenant's
// thread deletions are recorded, in the tenant's stream. No thread token
// is ever "$deleted" ('$' is always escaped), so no thread maps to it.
const DeletionToken = "$deleted"

// DeletionSubject returns the subject of the tenant's thread deletion
// records: inside the tenant filter, so in the tenant's stream and in
// order with its events, but not a thread's.
func (s Scheme) DeletionSubject(tenant string) string {
	return s.SubjectPrefix + "." + EncodeTenant(tenant) + "." + DeletionToken
}

// IsDeletionSubject reports whether subject is a tenant's deletion
// subject, and whose.
func (s Scheme) IsDeletionSubject(subject string) (tenant string, ok bool) {
	rest, ok := strings.CutPrefix(subject, s.SubjectPrefix+".")
	if !ok {
		return "", false
	}
	enc, found := strings.CutSuffix(rest, "."+DeletionToken)
	if !found || strings.Contains(enc, ".") {
		return "", false
	}
	tenant, err := DecodeTenant(enc)
	return tenant, err == nil
}

// SystemStream returns the name of the stream where tenant deletions are
// recorded. "_s" is no escape, so no tenant's stream has this name, on
// file systems that ignore case too.
func (s Scheme) SystemStream() string { return s.StreamPrefix + "_system" }

// SystemFilter returns the subjects of the system stream.
func (s Scheme) SystemFilter() string { return s.SubjectPrefix + "._system.>" }

// TenantDeletedSubject returns the subject of the record of a tenant's
// deletion, in the system stream: the last one says with which ordinal
// the tenant ended, so that a tenant created again numbers on after it.
func (s Scheme) TenantDeletedSubject(tenant string) string {
	return s.SubjectPrefix + "._system.tenant-deleted." + EncodeTenant(tenant)
}

// ParseStream returns the tenant whose stream is named name.
func (s Scheme) ParseStream(name string) (string, error) {
	enc, ok := strings.CutPrefix(name, s.StreamPrefix)
	if !ok {
		return "", fmt.Errorf("%w: stream %q lacks the prefix %q", ErrInvalidName, name, s.StreamPrefix)
	}
	tenant, err := DecodeTenant(enc)
	if err != nil {
		return "", fmt.Errorf("%w: stream %q: %v", ErrInvalidName, name, err)
	}
	return tenant, nil
}

// ParseSubject returns the tenant and thread of a thread subject.
func (s Scheme) ParseSubject(subject string) (tenant, thread string, err error) {
	rest, ok := strings.CutPrefix(subject, s.SubjectPrefix+".")
	if !ok {
		return "", "", fmt.Errorf("%w: subject %q lacks the prefix %q", ErrInvalidName, subject, s.SubjectPrefix)
	}
	encTenant, encThread, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(encThread, ".") {
		return "", "", fmt.Errorf("%w: subject %q is not <prefix>.<tenant>.<thread>", ErrInvalidName, subject)
	}
	if tenant, err = DecodeTenant(encTenant); err != nil {
		return "", "", fmt.Errorf("%w: subject %q: %v", ErrInvalidName, subject, err)
	}
	if thread, err = DecodeThread(encThread); err != nil {
		return "", "", fmt.Errorf("%w: subject %q: %v", ErrInvalidName, subject, err)
	}
	return tenant, thread, nil
}

const hexDigits = "0123456789abcdef"

// EncodeTenant returns the stream-name-safe token of a tenant: a-z, 0-9 and
// '-' are kept, every other byte becomes '_' and two lowercase hex digits.
func EncodeTenant(tenant string) string { return encode(tenant, false) }

// EncodeThread returns the subject token of a thread: like EncodeTenant but
// A-Z are kept too.
func EncodeThread(thread string) string { return encode(thread, true) }

// DecodeTenant reverses EncodeTenant. It refuses every string EncodeTenant
// cannot produce from a valid tenant (sessionlog.ValidateTenant), so
// decoding is injective and only ever yields valid names.
func DecodeTenant(token string) (string, error) {
	tenant, err := decode(token, false)
	if err != nil {
		return "", err
	}
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return "", fmt.Errorf("token %q decodes to an invalid tenant: %w", token, err)
	}
	return tenant, nil
}

// DecodeThread reverses EncodeThread, refusing what it cannot produce from
// a valid thread name.
func DecodeThread(token string) (string, error) {
	thread, err := decode(token, true)
	if err != nil {
		return "", err
	}
	if err := sessionlog.ValidateKey(sessionlog.ThreadKey{Tenant: "t", Thread: thread}); err != nil {
		return "", fmt.Errorf("token %q decodes to an invalid thread: %w", token, err)
	}
	return thread, nil
}

func keep(c byte, upper bool) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || upper && c >= 'A' && c <= 'Z'
}

func encode(s string, upper bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !keep(s[i], upper) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c, upper) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	return b.String()
}

func decode(tok string, upper bool) (string, error) {
	if tok == "" {
		return "", errors.New("empty token")
	}
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if keep(c, upper) {
			b.WriteByte(c)
			continue
		}
		if c != '_' || i+2 >= len(tok) {
			return "", fmt.Errorf("byte %q at %d is not allowed in a token", c, i)
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("bad escape %q at %d", tok[i:i+3], i)
		}
		v := byte(hi<<4 | lo)
		if keep(v, upper) {
			return "", fmt.Errorf("escape %q at %d stands for a byte kept as is", tok[i:i+3], i)
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

// unhex decodes one lowercase hex digit, or returns -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
