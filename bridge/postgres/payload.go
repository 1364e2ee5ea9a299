package postgres

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/jetsession/jetsession/bridge"
)

// Limits of PostgreSQL's numeric type, which jsonb stores numbers in:
// digits after the decimal point and before it. Numbers near them are kept
// out of jsonb with a margin, since an exact replica of the server's
// arithmetic is not worth the risk.
const (
	maxNumericScale  = 16383 - 100
	maxNumericDigits = 131072 - 100
)

// isJSONB reports whether data can be stored as jsonb. Besides being JSON
// as every sink defines it (bridge.IsJSON), it must be something PostgreSQL
// accepts, or the whole batch would fail again on every redelivery: no
// \u0000 escape, no unpaired UTF-16 surrogate escape and no number beyond
// numeric's range.
func isJSONB(data []byte) bool {
	if !bridge.IsJSON(data) {
		return false
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '"':
				inString = false
			case '\\':
				if data[i+1] != 'u' {
					i++
					continue
				}
				n, ok := unicodeEscape(data, i)
				if !ok {
					return false
				}
				i += n - 1
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '-' || '0' <= c && c <= '9':
			n, ok := number(data[i:])
			if !ok {
				return false
			}
			i += n - 1
		}
	}
	return true
}

// unicodeEscape checks the \uXXXX escape at data[i] (json.Valid has made
// sure it is well formed) and returns its length: 12 for a surrogate pair.
func unicodeEscape(data []byte, i int) (n int, ok bool) {
	r := hex4(data[i+2 : i+6])
	switch {
	case r == 0:
		return 0, false
	case 0xDC00 <= r && r <= 0xDFFF:
		return 0, false
	case 0xD800 <= r && r <= 0xDBFF:
		next := data[i+6:]
		if len(next) < 6 || next[0] != '\\' || next[1] != 'u' {
			return 0, false
		}
		if low := hex4(next[2:6]); low < 0xDC00 || low > 0xDFFF {
			return 0, false
		}
		return 12, true
	}
	return 6, true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// number measures the JSON number at the start of b and reports whether
// numeric can hold it as written.
func number(b []byte) (n int, ok bool) {
	if b[n] == '-' {
		n++
	}
	intDigits := 0
	for n < len(b) && '0' <= b[n] && b[n] <= '9' {
		n++
		intDigits++
	}
	fracDigits := 0
	if n < len(b) && b[n] == '.' {
		n++
		for n < len(b) && '0' <= b[n] && b[n] <= '9' {
			n++
			fracDigits++
		}
	}
	exp := 0
	if n < len(b) && (b[n] == 'e' || b[n] == 'E') {
		n++
		sign := 1
		if b[n] == '+' || b[n] == '-' {
			if b[n] == '-' {
				sign = -1
			}
			n++
		}
		start := n
		for n < len(b) && '0' <= b[n] && b[n] <= '9' {
			if n-start < 9 { // larger exponents fail the checks below anyway
				exp = exp*10 + int(b[n]-'0')
			}
			n++
		}
		if n-start >= 9 {
			exp = 1 << 30
		}
		exp *= sign
	}
	return n, fracDigits-exp <= maxNumericScale && intDigits+exp <= maxNumericDigits
}

// metaJSON encodes metadata as a JSON object for the jsonb column meta, or
// nil when there is none. jsonb cannot hold NUL characters, so they become
// U+FFFD there, and raw is then the exact object, for meta_raw; otherwise
// raw is nil. '<', '>' and '&' are not escaped.
func metaJSON(m map[string]string) (meta, raw []byte, err error) {
	if len(m) == 0 {
		return nil, nil, nil
	}
	exact, err := encodeMeta(m)
	if err != nil {
		return nil, nil, err
	}
	if !hasNUL(m) {
		return exact, nil, nil
	}
	clean := make(map[string]string, len(m))
	for k, v := range m {
		clean[strings.ReplaceAll(k, "\x00", "\uFFFD")] = strings.ReplaceAll(v, "\x00", "\uFFFD")
	}
	meta, err = encodeMeta(clean)
	return meta, exact, err
}

func hasNUL(m map[string]string) bool {
	for k, v := range m {
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			return true
		}
	}
	return false
}

// encodeMeta encodes a JSON object of strings. encoding/json writes
// invalid UTF-8 as U+FFFD and escapes control characters.
func encodeMeta(m map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
