package sinktest

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetsession/jetsession/bridge"
)

// gen makes ordinary rows: each tenant's ordinals increase, with gaps as a
// tenant's threads share its sequence, and every field differs from row to
// row so that a row stored in another's place is noticed.
type gen struct {
	last map[string]uint64
}

func newGen() *gen { return &gen{last: map[string]uint64{}} }

var base = time.Date(2026, 11, 25, 22, 55, 10, 123456789, time.UTC)

// rows returns n new rows of tenant.
func (g *gen) rows(tenant string, n int) []bridge.Row {
	out := make([]bridge.Row, n)
	for i := range out {
		o := g.last[tenant] + 1 + uint64(i%2) // not dense
		g.last[tenant] = o
		r := bridge.Row{
			Tenant:  tenant,
			Thread:  fmt.Sprintf("support/%d", o%3),
			Ordinal: o,
			ID:      fmt.Sprintf("ev-%s-%d", tenant, o),
			Type:    []string{"user_message", "tool_call", "tool_result"}[o%3],
			Time:    base.Add(time.Duration(o) * 1001 * time.Millisecond),
			Data:    fmt.Appendf(nil, `{"tenant":%q,"ordinal":%d,"text":"hello <world> & all"}`, tenant, o),
		}
		if o%2 == 0 {
			r.Meta = map[string]string{"model": "m1", "ordinal": fmt.Sprint(o)}
		}
		out[i] = r
	}
	return out
}

// threadRows returns a new row of tenant for each thread, in order.
func (g *gen) threadRows(tenant string, threads ...string) []bridge.Row {
	out := make([]bridge.Row, len(threads))
	for i, th := range threads {
		r := g.rows(tenant, 1)[0]
		r.Thread = th
		out[i] = r
	}
	return out
}

// deleteThread deletes a thread as the log does: the deletion takes the
// tenant's next ordinal, and every row of the thread below it goes.
func (g *gen) deleteThread(tenant, thread string) bridge.Deletion {
	g.last[tenant]++
	o := g.last[tenant]
	return bridge.Deletion{Tenant: tenant, Thread: thread, Before: o, Time: deletionTime(o)}
}

// deleteTenant deletes a tenant as the log does: every row up to its last
// ordinal goes, and the tenant created again continues from the next one.
func (g *gen) deleteTenant(tenant string) bridge.Deletion {
	o := g.last[tenant] + 1
	return bridge.Deletion{Tenant: tenant, Before: o, Time: deletionTime(o)}
}

// deletionTime is a time with nanoseconds, different for each ordinal.
func deletionTime(o uint64) time.Time {
	return base.Add(time.Duration(o)*1003*time.Millisecond + 987*time.Nanosecond)
}

// skip moves a tenant's sequence on, as events the sink never sees would.
func (g *gen) skip(tenant string, to uint64) { g.last[tenant] = max(g.last[tenant], to) }

// positionsOf returns the positions rows reach.
func positionsOf(rows []bridge.Row) bridge.Positions {
	pos := bridge.Positions{}
	for _, r := range rows {
		pos[r.Tenant] = max(pos[r.Tenant], r.Ordinal)
	}
	return pos
}

// interleave merges batches row by row, keeping each tenant's order.
func interleave(batches ...[]bridge.Row) []bridge.Row {
	var out []bridge.Row
	for i := 0; ; i++ {
		added := false
		for _, b := range batches {
			if i < len(b) {
				out = append(out, b[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// after returns the rows after pos, as the bridge resumes.
func after(rows []bridge.Row, pos bridge.Positions) []bridge.Row {
	var out []bridge.Row
	for _, r := range rows {
		if r.Ordinal > pos[r.Tenant] {
			out = append(out, r)
		}
	}
	return out
}

// fit returns exactly n bytes of valid UTF-8 made of pattern repeated, cut
// at a rune boundary and padded with 'x'.
func fit(pattern string, n int) string {
	s := strings.Repeat(pattern, n/len(pattern)+1)
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + strings.Repeat("x", n-len(s))
}

// Key parts at the limits: any UTF-8 without control characters, including
// the characters with a meaning in NATS subjects, paths, URLs and SQL, white
// space at the ends, invisible and bidirectional formatting characters.
const keyPattern = " Acme.EU */>% ü世😀\u2028\u202e\ufeff\ufffd'\";--\\_-~ "

// labelPattern is for IDs and types, which the library writes in headers.
const labelPattern = "id.*>/% é世😀\u202e'\";\\{}"

func edgeKeyRows() []bridge.Row {
	tenant := fit(keyPattern, 64)
	thread := fit(keyPattern, 256)
	id := fit(labelPattern, 128)
	typ := fit("tool_call.v2 "+labelPattern, 128)
	rows := []bridge.Row{
		{Tenant: tenant, Thread: thread, Ordinal: 1, ID: id, Type: typ},
		{Tenant: tenant, Thread: "a", Ordinal: 2, ID: "a", Type: "a"},
		{Tenant: tenant, Thread: fit(keyPattern, 255) + "y", Ordinal: 3, ID: fit(labelPattern, 127) + "y", Type: fit(labelPattern, 127) + "y"},
		{Tenant: "a", Thread: thread, Ordinal: 1, ID: "", Type: ""},
		{Tenant: "*", Thread: ">", Ordinal: 1, ID: ">", Type: "*"},
		{Tenant: ">", Thread: "*", Ordinal: 1, ID: "*", Type: ">"},
		{Tenant: "a.b", Thread: "c.d", Ordinal: 1, ID: "e.f", Type: "g.h"},
		{Tenant: "a b", Thread: "../../etc/passwd", Ordinal: 1, ID: "%2e%2e%2f", Type: "%s%n"},
		{Tenant: "_2e", Thread: "_41", Ordinal: 1, ID: "x", Type: "x"}, // looks like an escape
		{Tenant: "Ünïcødé 租户 🙂", Thread: "スレッド/𝄞", Ordinal: 1, ID: "イベント", Type: "тип"},
		{Tenant: "'; DROP TABLE x; --", Thread: `"\`, Ordinal: 1, ID: "$1", Type: "NULL"},
		{Tenant: "tenant_key=x", Thread: "date=2026-01-01", Ordinal: 1, ID: "_positions.json", Type: "part-1.parquet"},
	}
	for i := range rows {
		rows[i].Time = base.Add(time.Duration(i) * time.Second)
		rows[i].Data = []byte(`{"ok":true}`)
	}
	return rows
}

// caseRows are three tenants whose names differ only in case, each with
// its own position.
func caseRows() []bridge.Row {
	g := newGen()
	return interleave(g.rows("acme", 2), g.rows("ACME", 4), g.rows("Acme", 6))
}

// edgeMeta returns metadata at the limits: 64 entries of 4096 bytes in all,
// keys without control characters, values of any UTF-8 with NUL, new lines
// and every other control character among them.
func edgeMeta() map[string]string {
	special := map[string]string{
		"nul":                  "\x00",
		"nul inside":           "a\x00b\x00",
		"new lines":            "line 1\nline 2\r\nline 3\r",
		"controls":             "\t\x01\x1b[31m\x7f\u0085\u009f",
		"empty":                "",
		"json":                 `{"not":"parsed"}`,
		"quotes \" and \\":     `"\"'\\`,
		"a.b*c>d e/f%g":        "key with subject, path and URL characters",
		"ü世😀":                  "ü世😀\u2028\u2029\u202e\ufeff\ufffd",
		"<&>":                  "<&>",
		"=":                    "a=b=c",
		" padded ":             " padded ",
		"\u2028line separator": "in a key",
	}
	m := maps.Clone(special)
	for i := len(m); i < 64; i++ {
		m[fmt.Sprintf("k%02d", i)] = ""
	}
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
	}
	// Spread the rest of the 4096 bytes over the padding entries.
	rest, n := 4096-size, 64-len(special)
	for i := len(special); i < 64; i++ {
		k := fmt.Sprintf("k%02d", i)
		share := rest / n
		if i == 63 {
			share = rest - share*(n-1)
		}
		m[k] = fit("välue\x00\n", share)
	}
	return m
}

func metaRows() []bridge.Row {
	empty := map[string]string{}
	meta := edgeMeta()
	rows := []bridge.Row{
		{Ordinal: 1, Meta: meta},
		{Ordinal: 2, Meta: nil},
		{Ordinal: 3, Meta: empty},
		{Ordinal: 4, Meta: map[string]string{"only": "\x00"}},
		{Ordinal: 5, Meta: map[string]string{fit("k", 4096-1): "v"}}, // one entry of 4096 bytes
		{Ordinal: 6, Meta: map[string]string{"k": fit("v\x00", 4096-1)}},
	}
	for i := range rows {
		rows[i].Tenant, rows[i].Thread, rows[i].ID, rows[i].Type = "meta", "t", fmt.Sprint("ev-", i), "note"
		rows[i].Time = base
		rows[i].Data = []byte(`{}`)
	}
	return rows
}

// edgeTimes are times from the first instant of year 1 to the last
// nanosecond of year 9999 UTC, around the limits of a Unix time in
// nanoseconds (1677 and 2262), before 1970 with a fraction (where
// truncation and division toward zero differ), in other zones, and one whose
// local year is 10000.
func edgeTimes() []time.Time {
	plus1 := time.FixedZone("+01:00", 3600)
	return []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 999, time.UTC),
		time.Date(1, 1, 1, 12, 34, 56, 123456789, time.FixedZone("-12:00", -12*3600)),
		time.Date(1677, 9, 21, 0, 12, 43, 145224191, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Unix(0, 0).UTC(),
		time.Unix(0, 1).UTC(),
		time.Date(2024, 2, 29, 23, 59, 59, 500000000, time.FixedZone("+14:00", 14*3600)),
		time.Date(2262, 4, 11, 23, 47, 16, 854775808, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 59, 59, 999999999, plus1), // 9999-12-31T23:59:59.999999999Z
	}
}

func timeRows() []bridge.Row {
	var rows []bridge.Row
	for i, t := range edgeTimes() {
		rows = append(rows, bridge.Row{Tenant: "times", Thread: "t", Ordinal: uint64(i + 1),
			ID: fmt.Sprint("ev-", i), Type: "note", Time: t, Data: []byte(`{}`)})
	}
	return rows
}

func ordinalRows() []bridge.Row {
	rows := []bridge.Row{
		{Tenant: "first", Ordinal: 1},
		{Tenant: "float64", Ordinal: 1<<53 - 1},
		{Tenant: "float64", Ordinal: 1 << 53},
		{Tenant: "float64", Ordinal: 1<<53 + 1},
		{Tenant: "int32", Ordinal: math.MaxInt32},
		{Tenant: "int32", Ordinal: math.MaxInt32 + 1},
		{Tenant: "uint32", Ordinal: math.MaxUint32 + 1},
		{Tenant: "last", Ordinal: math.MaxInt64 - 1},
		{Tenant: "last", Ordinal: math.MaxInt64},
	}
	for i := range rows {
		rows[i].Thread, rows[i].ID, rows[i].Type = "t", fmt.Sprint("ev-", i), "note"
		rows[i].Time = base
		rows[i].Data = fmt.Appendf(nil, `{"ordinal":%d}`, rows[i].Ordinal)
	}
	return rows
}

// mib is the largest payload the suite writes, above the engine's limit of
// about 1 MB.
const mib = 1 << 20

// jsonPayloadList are payloads that bridge.IsJSON, with what makes each
// interesting.
func jsonPayloadList() [][]byte {
	big := make([]byte, 0, mib)
	big = append(big, `{"text":"`...)
	big = append(big, strings.Repeat("0123456789abcdé\\n", (mib-len(big)-2)/18)...)
	big = append(big, `"}`...)
	depth := bridge.MaxJSONDepth
	return [][]byte{
		[]byte(`{}`),
		[]byte(`[]`),
		[]byte(`null`),
		[]byte(`true`),
		[]byte(`0`),
		[]byte(`-0`),
		[]byte(`""`),
		[]byte(`"a string"`),
		[]byte(`{"nul":"\u0000","in":"a\u0000b"}`), // jsonb cannot hold \u0000
		[]byte(`"\u0000"`),
		[]byte("{\n  \"pretty\": [1, 2, 3],\n  \"nested\": {\"a\": null}\n}\n"),
		[]byte(" \t\r\n{\"surrounded\":\"by white space\"} \n"),
		[]byte(`{"a":1,"a":2}`),
		[]byte(`{"b":1,"a":2,"c":{"z":1,"y":2}}`),
		[]byte(`{"escapes":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","raw":"é😀 <&> ` + "\u2028\u2029\u202e" + `"}`),
		[]byte(`"\ud800"`), // unpaired surrogates: valid JSON, not text
		[]byte(`["\udc00","x\ud83d"]`),
		[]byte(`1e400`),
		[]byte(`[123456789012345678901234567890,-1.5E-300,1E+2,0.1000000000000000055511151231257827021181583404541015625]`),
		[]byte(`{"big":9223372036854775807,"bigger":18446744073709551616}`),
		[]byte(strings.Repeat("[", depth) + strings.Repeat("]", depth)),
		big,
	}
}

// otherPayloadList are payloads that are not JSON, or not UTF-8: they must
// come back byte for byte.
func otherPayloadList() [][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	binary := make([]byte, mib)
	for i := range binary {
		binary[i] = byte(rng.Uint32())
	}
	text := []byte(strings.Repeat("plain text, not JSON: é世😀\n", mib/32))
	nest := func(depth int) []byte { return []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth)) }
	return [][]byte{
		nil,
		{},
		{0},
		{0xff, 0xfe, 0xfd},
		all,
		[]byte("\"\xff\""),                 // JSON syntax, invalid UTF-8 in the string
		[]byte("{\"a\":\"\xc3\"}"),         // a cut multi-byte sequence
		[]byte("{\"a\":\"\xed\xa0\x80\"}"), // an encoded surrogate
		[]byte("hello world"),
		[]byte("a\x00b"),
		[]byte(`{"a":`),
		[]byte(`{"a":1}{"b":2}`),
		[]byte(`NaN`),
		[]byte("\xef\xbb\xbf{}"),      // a byte order mark before JSON
		nest(bridge.MaxJSONDepth + 1), // JSON, but too deep to be stored as JSON
		nest(10000),                   // the deepest encoding/json accepts
		nest(10001),
		binary,
		text,
	}
}

func payloadRows(tenant string, payloads [][]byte) []bridge.Row {
	rows := make([]bridge.Row, len(payloads))
	for i, p := range payloads {
		rows[i] = bridge.Row{Tenant: tenant, Thread: "t", Ordinal: uint64(i + 1), ID: fmt.Sprint("ev-", i),
			Type: "payload", Time: base, Data: p}
	}
	return rows
}
