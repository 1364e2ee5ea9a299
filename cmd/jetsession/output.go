package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/sessionlog"
)

// timeLayout is RFC 3339 with milliseconds: enough to order a burst of
// events by eye, short enough for a terminal.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// maxPayload is how much of an event's payload a human line shows.
const maxPayload = 100

// What human output shows at most of the names and types a foreign writer
// may have stored beyond the protocol's limits, in characters after
// escaping: the limits themselves (sessionlog.MaxTenantBytes, ...). Longer
// ones are cut with a marker; --json prints them whole, escaped.
const (
	maxTenantShown = sessionlog.MaxTenantBytes
	maxThreadShown = sessionlog.MaxThreadBytes
	maxTypeShown   = sessionlog.MaxTypeBytes
)

// field renders a name, a type or an ID read from the server for a human:
// escaped (clean), and cut with a marker at max characters.
func field(s string, max int) string { return truncate(clean(s), max) }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

// newEncoder writes one JSON object per line, leaving '<', '>' and '&' in
// payloads readable, and escaping what could rewrite a terminal.
func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(&terminalSafe{w: w})
	enc.SetEscapeHTML(false)
	return enc
}

// terminalSafe passes JSON through, writing every rune that unsafeRune
// refuses and that JSON encoders leave as is (DEL, C1 controls,
// bidirectional overrides, U+FFFD) as a \uXXXX escape. Such runes can only
// stand inside JSON strings, where the escape means the same: the JSON is
// unchanged for a parser, and harmless in a terminal. Encoders escape the
// C0 controls themselves; the newline ending each line is kept.
type terminalSafe struct {
	w    io.Writer
	part []byte // an incomplete rune held from the last write
}

func (t *terminalSafe) Write(p []byte) (int, error) {
	b := append(t.part, p...)
	t.part = nil
	var out []byte
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			if b[i] == 0x7f {
				out = append(out, `\u007f`...)
			} else {
				out = append(out, b[i])
			}
			i++
			continue
		}
		if !utf8.FullRune(b[i:]) {
			t.part = append([]byte(nil), b[i:]...)
			break
		}
		r, size := utf8.DecodeRune(b[i:])
		if unsafeRune(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// recordPrinter prints the records of a load or a tail, as a table or as
// JSON lines. withThread adds the thread column of tenant-wide tails. The
// JSON lines are the records the bridge's JSON-lines sink writes
// (bridge.Row's JSON encoding), so nothing is lost: the payload as JSON when
// it is JSON, in base64 as data_raw otherwise.
type recordPrinter struct {
	w          io.Writer
	enc        *bridge.JSONEncoder // nil for the human table
	tenant     string
	withThread bool
	headed     bool
}

func newRecordPrinter(w io.Writer, asJSON bool, tenant string, withThread bool) *recordPrinter {
	p := &recordPrinter{w: w, tenant: tenant, withThread: withThread}
	if asJSON {
		p.enc = bridge.NewJSONEncoder(&terminalSafe{w: w})
	}
	return p
}

// Fixed column widths, not a tabwriter: a tail prints each line as it
// arrives and cannot wait to measure the columns.
func (p *recordPrinter) print(thread string, rec sessionlog.Record) error {
	if p.enc != nil {
		return p.enc.Encode(&bridge.Row{Tenant: p.tenant, Thread: thread, Ordinal: rec.Ordinal, ID: rec.ID,
			Type: rec.Type, Time: rec.Time, Data: rec.Data, Meta: rec.Meta})
	}
	if !p.headed {
		p.headed = true
		if p.withThread {
			fmt.Fprintf(p.w, "%8s  %-24s  %-16s  %-16s  %s\n", "ORDINAL", "TIME", "THREAD", "TYPE", "DATA")
		} else {
			fmt.Fprintf(p.w, "%8s  %-24s  %-16s  %s\n", "ORDINAL", "TIME", "TYPE", "DATA")
		}
	}
	var line string
	if p.withThread {
		line = fmt.Sprintf("%8d  %-24s  %-16s  %-16s  %s", rec.Ordinal, formatTime(rec.Time), field(thread, maxThreadShown), field(rec.Type, maxTypeShown), summarize(rec.Data, maxPayload))
	} else {
		line = fmt.Sprintf("%8d  %-24s  %-16s  %s", rec.Ordinal, formatTime(rec.Time), field(rec.Type, maxTypeShown), summarize(rec.Data, maxPayload))
	}
	_, err := fmt.Fprintln(p.w, strings.TrimRight(line, " "))
	return err
}

// summarize renders a payload on one line of at most max characters:
// compact JSON, or the text, or a byte count for binary data.
func summarize(data []byte, max int) string {
	if len(data) == 0 {
		return ""
	}
	var s string
	switch {
	case json.Valid(data):
		var buf bytes.Buffer
		_ = json.Compact(&buf, data) // valid JSON always compacts
		s = buf.String()
	case utf8.Valid(data):
		s = string(data)
	default:
		return fmt.Sprintf("<%d bytes of binary data; --json shows them in base64>", len(data))
	}
	return truncate(clean(s), max)
}

// clean escapes control and bidirectional-override characters: payloads
// come from agents, and must not move the cursor, recolour or reorder an
// operator's terminal.
func clean(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}

func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// humanBytes prints sizes the way operators compare them.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
