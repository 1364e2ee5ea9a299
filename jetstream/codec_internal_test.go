package jetstream

import (
	"regexp"
	"testing"
)

// strictRFC3339Regexp is the definition strictRFC3339 implements by hand.
var strictRFC3339Regexp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$`)

func FuzzStrictRFC3339(f *testing.F) {
	for _, s := range []string{
		"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05+23:59",
		"2026-01-02T03:04:05-24:00", "2026-01-02T03:04:05+19:60", "2026-01-02T03:04:05.Z",
		"2026-01-02T03:04:05,1Z", "2026-01-02T3:04:05Z", "2026-01-02t03:04:05Z", "2026-01-02T03:04:05z",
		"2026-01-02T03:04:05+0100", "2026-01-02T03:04:05.1+01:00", "2026-01-02T03:04:05Z\n", "",
		"2026-01-02T03:04:05", "2026-01-02T03:04:05.", "2026-01-02T03:04:05+01:0a", "2026-01-02T03:04:05+2a:00",
		"٢٠٢٦-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00Z", "12026-01-02T03:04:05Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := strictRFC3339(s), strictRFC3339Regexp.MatchString(s); got != want {
			t.Fatalf("strictRFC3339(%q) = %v, the regular expression says %v", s, got, want)
		}
	})
}
