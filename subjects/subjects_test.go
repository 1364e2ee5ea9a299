package subjects_test

import (
	"strings"
	"testing"

	"github.com/jetsession/jetsession/subjects"
	"github.com/stretchr/testify/require"
)

func TestDefaultLayout(t *testing.T) {
	s := subjects.Default()
	require.NoError(t, s.Validate())
	require.Equal(t, "jetsession-acme", s.Stream("acme"))
	require.Equal(t, "jetsession-_41cme_2e_45_55", s.Stream("Acme.EU"))
	require.Equal(t, "jetsession.acme.Thread_2e1", s.Subject("acme", "Thread.1"))
	require.Equal(t, "jetsession.acme.*", s.TenantFilter("acme"))
	require.Equal(t, "jetsession.*.*", s.AllTenantsFilter())
	require.Equal(t, "caf_c3_a9", subjects.EncodeTenant("café"))
	require.Equal(t, "a_20b_2a_3e", subjects.EncodeThread("a b*>"))
	require.Equal(t, "_5f", subjects.EncodeThread("_"))
	require.Equal(t, "jetsession-_s-acme", s.SnapshotStream("acme"))
	require.Equal(t, "jetsession.acme.$snapshot.Thread_2e1", s.SnapshotSubject("acme", "Thread.1"))
	require.Equal(t, "jetsession.acme.$snapshot.*", s.SnapshotFilter("acme"))
	require.NotEqual(t, s.SystemStream(), s.SnapshotStream("ystem"))
	require.LessOrEqual(t, len(s.SnapshotStream(strings.Repeat("\xff", 64))), subjects.MaxStreamName)
	require.Error(t, subjects.Scheme{SubjectPrefix: "p", StreamPrefix: strings.Repeat("p", 61)}.Validate(),
		"a snapshot stream name would be too long")
	require.NoError(t, subjects.Scheme{SubjectPrefix: "p", StreamPrefix: strings.Repeat("p", 60)}.Validate())
}

func TestParseReversesNames(t *testing.T) {
	s := subjects.Scheme{SubjectPrefix: "prod.sessions", StreamPrefix: "PROD_"}
	require.NoError(t, s.Validate())
	for _, tenant := range []string{"acme", "ACME", "a.b", "日本", "a_b", strings.Repeat("Z", 64)} {
		for _, thread := range []string{"t", "T.1", "a b", ">", "*", "_2e"} {
			gotTenant, gotThread, err := s.ParseSubject(s.Subject(tenant, thread))
			require.NoError(t, err)
			require.Equal(t, tenant, gotTenant)
			require.Equal(t, thread, gotThread)
		}
		got, err := s.ParseStream(s.Stream(tenant))
		require.NoError(t, err)
		require.Equal(t, tenant, got)
		require.LessOrEqual(t, len(s.Stream(tenant)), subjects.MaxStreamName)
	}
}

func TestParseRefusesForeignNames(t *testing.T) {
	s := subjects.Default()
	for _, subj := range []string{
		"other.acme.t", "jetsession.acme", "jetsession.acme.t.x", "jetsession..t", "jetsession.acme.",
		"jetsession.ACME.t",    // upper case is escaped in tenant tokens
		"jetsession.acme.a_2",  // truncated escape
		"jetsession.acme.a_41", // escape of a kept byte: not canonical
		"jetsession.acme.a_4G", "jetsession.acme.a_4A", "jetsession.acme.a%b",
		// Canonical escapes of names no key may have.
		"jetsession.acme._00", "jetsession.acme.a_0ab", "jetsession.acme._ff", "jetsession.acme._c3",
		"jetsession.acme._7f", "jetsession.acme._c2_85", "jetsession._00.t",
		"jetsession.acme." + strings.Repeat("y", 257), "jetsession." + strings.Repeat("x", 65) + ".t",
	} {
		_, _, err := s.ParseSubject(subj)
		require.ErrorIs(t, err, subjects.ErrInvalidName, subj)
	}
	for _, name := range []string{"other-acme", "jetsession-", "jetsession-Acme", "jetsession-a_6"} {
		_, err := s.ParseStream(name)
		require.ErrorIs(t, err, subjects.ErrInvalidName, name)
	}
}

func TestValidateRefusesBadPrefixes(t *testing.T) {
	for _, s := range []subjects.Scheme{
		{SubjectPrefix: "", StreamPrefix: "x"},
		{SubjectPrefix: "a..b", StreamPrefix: "x"},
		{SubjectPrefix: "a.*", StreamPrefix: "x"},
		{SubjectPrefix: "a.>", StreamPrefix: "x"},
		{SubjectPrefix: "a b", StreamPrefix: "x"},
		{SubjectPrefix: "$JS.x", StreamPrefix: "x"},
		{SubjectPrefix: "a", StreamPrefix: ""},
		{SubjectPrefix: "a", StreamPrefix: "a.b"},
		{SubjectPrefix: "a", StreamPrefix: "a/b"},
		{SubjectPrefix: "a", StreamPrefix: strings.Repeat("p", 64)},
	} {
		require.Error(t, s.Validate(), "%+v", s)
	}
}

func TestControlNamesBelongToNoTenantOrThread(t *testing.T) {
	s := subjects.Default()
	_, err := s.ParseStream(s.SystemStream())
	require.ErrorIs(t, err, subjects.ErrInvalidName, "the system stream is no tenant's")
	for _, tenant := range []string{"acme", "_system", "$deleted", "a.b"} {
		require.NotEqual(t, strings.ToLower(s.Stream(tenant)), strings.ToLower(s.SystemStream()))
		subj := s.DeletionSubject(tenant)
		_, _, err := s.ParseSubject(subj)
		require.ErrorIs(t, err, subjects.ErrInvalidName, "the deletion subject is no thread's")
		got, ok := s.IsDeletionSubject(subj)
		require.True(t, ok)
		require.Equal(t, tenant, got)
		_, ok = s.IsDeletionSubject(s.Subject(tenant, "$deleted"))
		require.False(t, ok, "a thread named $deleted is a thread")
		require.True(t, strings.HasPrefix(subj, strings.TrimSuffix(s.TenantFilter(tenant), "*")), "deletions are in the tenant's stream")
	}
}
