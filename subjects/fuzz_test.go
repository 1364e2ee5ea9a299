package subjects_test

import (
	"strings"
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
)

// validStreamName mirrors the server's rules for stream names (no white
// space, '.', '*', '>' or path separators, at most 255 bytes) and adds what
// we promise on top: printable ASCII only.
func validStreamName(name string) bool {
	if name == "" || len(name) > server.JSMaxNameLen || strings.ContainsAny(name, " \t\r\n\f.*>\\/") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return false
		}
	}
	return true
}

func seedNames(f *testing.F) {
	for _, s := range []string{"a", "A", "a.b", "a_b", "_", "_2e", "a b", "*", ">", "café", "日本語", strings.Repeat("x", 64), "\x00", "\xff"} {
		f.Add(s, strings.ToUpper(s))
	}
}

// FuzzRoundTrip: every tenant and thread decodes back to itself, from the
// token and from the full stream name and subject, and every output is a
// valid NATS name.
func FuzzRoundTrip(f *testing.F) {
	seedNames(f)
	s := subjects.Default()
	f.Fuzz(func(t *testing.T, tenant, thread string) {
		if tenant == "" || thread == "" {
			return
		}
		validTenant := sessionlog.ValidateTenant(tenant) == nil
		validThread := sessionlog.ValidateKey(sessionlog.ThreadKey{Tenant: "t", Thread: thread}) == nil
		// An invalid name encodes (the encoding is total) but never decodes
		// back: decoders yield only valid names.
		if got, err := subjects.DecodeTenant(subjects.EncodeTenant(tenant)); validTenant != (err == nil) || validTenant && got != tenant {
			t.Fatalf("tenant %q (valid %v) round trips to %q, %v", tenant, validTenant, got, err)
		}
		if got, err := subjects.DecodeThread(subjects.EncodeThread(thread)); validThread != (err == nil) || validThread && got != thread {
			t.Fatalf("thread %q (valid %v) round trips to %q, %v", thread, validThread, got, err)
		}
		if !validTenant || !validThread {
			return
		}
		if subjects.EncodeThread(thread) == subjects.DeletionToken {
			t.Fatalf("thread %q encodes to the deletion token", thread)
		}
		subj := s.Subject(tenant, thread)
		if !server.IsValidLiteralSubject(subj) || strings.Count(subj, ".") != 2 {
			t.Fatalf("subject %q of (%q, %q) is not a 3-token literal subject", subj, tenant, thread)
		}
		if snap := s.SnapshotStream(tenant); len(snap) > subjects.MaxStreamName {
			t.Fatalf("snapshot stream %q of %q is longer than %d", snap, tenant, subjects.MaxStreamName)
		}
		if got, ok := s.IsSnapshotStream(s.SnapshotStream(tenant)); !ok || got != tenant {
			t.Fatalf("snapshot stream of %q parses to %q, %v", tenant, got, ok)
		}
		if _, err := s.ParseStream(s.SnapshotStream(tenant)); err == nil {
			t.Fatalf("snapshot stream %q parses as a tenant stream", s.SnapshotStream(tenant))
		}
		if snap := s.SnapshotSubject(tenant, thread); !server.IsValidLiteralSubject(snap) || strings.Count(snap, ".") != 3 ||
			!server.SubjectMatchesFilter(snap, s.SnapshotFilter(tenant)) {
			t.Fatalf("snapshot subject %q of (%q, %q) is not a 4-token subject in the snapshot filter", snap, tenant, thread)
		}
		// The server refuses a stream whose subjects collide with another
		// stream's (server/stream.go uses SubjectsCollide).
		if f := s.SnapshotFilter(tenant); server.SubjectsCollide(f, s.TenantFilter(tenant)) ||
			server.SubjectsCollide(f, s.AllTenantsFilter()) || server.SubjectsCollide(f, s.SystemFilter()) {
			t.Fatalf("the snapshot filter of %q collides with a tenant, bridge or system filter", tenant)
		}
		gotTenant, gotThread, err := s.ParseSubject(subj)
		if err != nil || gotTenant != tenant || gotThread != thread {
			t.Fatalf("subject %q parses to (%q, %q), %v", subj, gotTenant, gotThread, err)
		}
		if len(tenant) <= subjects.MaxTenantBytes {
			name := s.Stream(tenant)
			if !validStreamName(name) {
				t.Fatalf("stream name %q of %q is not valid", name, tenant)
			}
			if enc := name[len(s.StreamPrefix):]; enc != strings.ToLower(enc) {
				t.Fatalf("stream name %q holds upper case after its prefix", name)
			}
			if got, err := s.ParseStream(name); err != nil || got != tenant {
				t.Fatalf("stream %q parses to %q, %v", name, got, err)
			}
		}
	})
}

// FuzzInjective: distinct tenants never share a stream, even where the file
// system ignores case, and distinct keys never share a subject.
func FuzzInjective(f *testing.F) {
	seedNames(f)
	s := subjects.Default()
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || a == "" || b == "" {
			return
		}
		if strings.EqualFold(s.SnapshotStream(a), s.Stream(b)) || strings.EqualFold(s.SnapshotStream(a), s.SnapshotStream(b)) ||
			strings.EqualFold(s.SnapshotStream(a), s.SystemStream()) {
			t.Fatalf("the snapshot stream %q of tenant %q shares a name with tenant %q's streams or the system stream", s.SnapshotStream(a), a, b)
		}
		if server.SubjectsCollide(s.SnapshotFilter(a), s.TenantFilter(b)) || server.SubjectsCollide(s.SnapshotFilter(a), s.SnapshotFilter(b)) {
			t.Fatalf("the snapshot filter of tenant %q collides with tenant %q's filters", a, b)
		}
		if strings.EqualFold(s.Stream(a), s.Stream(b)) {
			t.Fatalf("tenants %q and %q share the stream name %q/%q (ignoring case)", a, b, s.Stream(a), s.Stream(b))
		}
		if subjects.EncodeThread(a) == subjects.EncodeThread(b) {
			t.Fatalf("threads %q and %q share the token %q", a, b, subjects.EncodeThread(a))
		}
		// Splitting a string differently between tenant and thread must not
		// give the same subject either.
		if s.Subject(a, b) == s.Subject(b, a) {
			t.Fatalf("keys (%q, %q) and (%q, %q) share a subject", a, b, b, a)
		}
	})
}

// FuzzDecodeRefusesNonCanonical: anything that decodes is a valid key part
// and re-encodes to the same token, so decoding yields only what encoding
// a valid key could have produced, and two tokens never decode to the same
// name.
func FuzzDecodeRefusesNonCanonical(f *testing.F) {
	for _, s := range []string{"a", "_2e", "_41", "_4", "_zz", "A", "a_5f_", "caf_c3_a9", "_00", "a_0ab", "_ff", "_c3", "_7f", "_c2_85",
		strings.Repeat("x", 65), strings.Repeat("_2e", 64), strings.Repeat("y", 257)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if tenant, err := subjects.DecodeTenant(tok); err == nil {
			if subjects.EncodeTenant(tenant) != tok {
				t.Fatalf("tenant token %q decodes to %q which encodes to %q", tok, tenant, subjects.EncodeTenant(tenant))
			}
			if verr := sessionlog.ValidateTenant(tenant); verr != nil {
				t.Fatalf("tenant token %q decodes to an invalid tenant %q: %v", tok, tenant, verr)
			}
		}
		if thread, err := subjects.DecodeThread(tok); err == nil {
			if subjects.EncodeThread(thread) != tok {
				t.Fatalf("thread token %q decodes to %q which encodes to %q", tok, thread, subjects.EncodeThread(thread))
			}
			if verr := sessionlog.ValidateKey(sessionlog.ThreadKey{Tenant: "t", Thread: thread}); verr != nil {
				t.Fatalf("thread token %q decodes to an invalid thread %q: %v", tok, thread, verr)
			}
		}
	})
}
