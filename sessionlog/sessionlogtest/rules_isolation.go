package sessionlogtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// HostileNames are valid tenant and thread names chosen to break naive
// encodings: NATS subject syntax, path and escape characters, case
// variants, unicode, the longest allowed, and pairs that collide under a
// plain escape or a case-insensitive file system.
func HostileNames(maxBytes int) []string {
	return []string{
		"a", "A", "b", "a.b", "a_b", "a-b", "a..b", ".", "..", ".a", "a.", "*", "a.*", "a.>", ">",
		"a b", " a", "a ", "a/b", `a\b`, "a%2Eb", "a%2eb", "a_2Eb", "a_2eb", "a_2e_b", "a=b",
		"_", "__", "_2e", "_5f", "%", "a$b", "$JS", "$SYS", "a,b", "a:b", "a|b",
		"acme", "ACME", "Acme", "café", "cafe\u0301", "日本語", "😀", "\u00a0", "\u200b",
		"a\u2028b", strings.Repeat("x", maxBytes), strings.Repeat("é", maxBytes/2), strings.Repeat(".", maxBytes),
	}
}

var isolationRules = []rule{
	{"hostile thread names never share storage", func(t *testing.T, log sessionlog.Log) {
		names := HostileNames(sessionlog.MaxThreadBytes)
		for i, name := range names {
			mustAppend(t, log, sessionlog.ThreadKey{Tenant: "acme", Thread: name}, []sessionlog.Event{ev("t", i)})
		}
		for i, name := range names {
			requireThread(t, log, sessionlog.ThreadKey{Tenant: "acme", Thread: name}, []string{fmt.Sprintf(`{"n":%d}`, i)})
		}
	}},
	{"hostile tenant names never share storage", func(t *testing.T, log sessionlog.Log) {
		names := HostileNames(sessionlog.MaxTenantBytes)
		for i, name := range names {
			for _, thread := range []string{"t", name} {
				mustAppend(t, log, sessionlog.ThreadKey{Tenant: name, Thread: thread}, []sessionlog.Event{ev("t", i)})
			}
		}
		for i, name := range names {
			for _, thread := range []string{"t", name} {
				requireThread(t, log, sessionlog.ThreadKey{Tenant: name, Thread: thread}, []string{fmt.Sprintf(`{"n":%d}`, i)})
			}
		}
	}},
	{"tenants differing only in case are distinct", func(t *testing.T, log sessionlog.Log) {
		lower := sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}
		upper := sessionlog.ThreadKey{Tenant: "ACME", Thread: "t"}
		mustAppend(t, log, lower, evs(0, 1))
		mustAppend(t, log, upper, evs(1, 2))
		require.Equal(t, 3, mustArchive(t, log, lower, ^uint64(0))+mustArchive(t, log, upper, ^uint64(0)))
		mustAppend(t, log, upper, evs(5, 1), sessionlog.ExpectLast(0))
		requireThread(t, log, lower, nil)
		requireThread(t, log, upper, eventPayloads(evs(5, 1)))
	}},
	{"one tenant's thread is invisible to another tenant with the same thread name", func(t *testing.T, log sessionlog.Log) {
		mustAppend(t, log, keyA, evs(0, 2))
		requireThread(t, log, keyX, nil)
		require.Equal(t, sessionlog.Head{}, mustHead(t, log, keyX))
		require.Equal(t, 0, mustArchive(t, log, keyX, ^uint64(0)))
		requireThread(t, log, keyA, eventPayloads(evs(0, 2)))
	}},
}
