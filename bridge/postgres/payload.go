package postgres

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
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
// (json.Valid), it must be something PostgreSQL accepts, or the whole batch
// would fail again on every redelivery: valid UTF-8, no \u0000 escape, no
// unpaired UTF-16 surrogate escape and no number beyond numeric's range.
func isJSONB(data []byte) bool {
	if len(data) == 0 || !utf8.Valid(data) || !json.Valid(data) {
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

// metaJSON encodes metadata as a JSON object, or nil when there is none.
// NUL characters become U+FFFD because jsonb cannot hold them.
func metaJSON(meta map[string]string) ([]byte, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	clean := meta
	for k, v := range meta {
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			clean = make(map[string]string, len(meta))
			for k, v := range meta {
				clean[strings.ReplaceAll(k, "\x00", "\uFFFD")] = strings.ReplaceAll(v, "\x00", "\uFFFD")
			}
			break
		}
	}
	// json.Marshal turns invalid UTF-8 into U+FFFD and escapes the rest.
	return json.Marshal(clean)
}
