package jetstream

import (
	"regexp"
	"testing"
)

// strictRFC3339 is the rule isStrictRFC3339 follows, as an expression.
var strictRFC3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$`)

var rfc3339Seeds = []string{
	"2026-05-06T07:08:09Z", "2026-05-06T07:08:09.00000001Z", "2026-05-06T07:08:09+23:59", "2026-05-06T07:08:09-00:00",
	"2026-05-06T07:08:09+24:00", "2026-05-06T07:08:09+19:60", "2026-05-06T07:08:09.Z", "2026-05-06T07:08:09,5Z",
	"2026-05-06T1:08:09Z", "2026-05-06t07:08:09Z", "2026-05-06T07:08:09z", "2026-05-06T07:08:09Z\n", "",
	"2026-05-06T07:08:09", "2026-05-06T07:08:09+0100", "٢٠٢٦-05-06T07:08:09Z", "2026-05-06T07:08:09.1234567890123+01:30",
}

func TestStrictRFC3339MatchesItsExpression(t *testing.T) {
	for _, v := range rfc3339Seeds {
		if got, want := isStrictRFC3339(v), strictRFC3339.MatchString(v); got != want {
			t.Errorf("isStrictRFC3339(%q) = %v, the expression says %v", v, got, want)
		}
	}
}

func FuzzStrictRFC3339MatchesItsExpression(f *testing.F) {
	for _, v := range rfc3339Seeds {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := isStrictRFC3339(v), strictRFC3339.MatchString(v); got != want {
			t.Errorf("isStrictRFC3339(%q) = %v, the expression says %v", v, got, want)
		}
	})
}
