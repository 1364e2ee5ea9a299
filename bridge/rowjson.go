package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// jsonRow is the JSON record of a Row. Field order and names are the ones
// of every sink: tenant, thread, ordinal, event_id, type, time, data,
// data_raw, meta.
type jsonRow struct {
	Tenant  string            `json:"tenant"`
	Thread  string            `json:"thread"`
	Ordinal uint64            `json:"ordinal"`
	EventID string            `json:"event_id"`
	Type    string            `json:"type"`
	Time    time.Time         `json:"time"`
	Data    json.RawMessage   `json:"data,omitempty"`
	DataRaw []byte            `json:"data_raw,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// MaxJSONDepth is the deepest nesting of arrays and objects in a payload
// that sinks store as JSON. Deeper payloads are stored as bytes, so that
// every common JSON reader can read the records that embed them: Go's
// encoding/json stops at 10,000 levels, Python's json module near 1,000.
const MaxJSONDepth = 512

// IsJSON reports whether a payload is stored as JSON (the data field or
// column of every sink) rather than as bytes (data_raw): it is valid JSON,
// valid UTF-8, and nested at most MaxJSONDepth levels deep. Other payloads,
// the empty one included, are not.
func IsJSON(data []byte) bool {
	// json.Valid accepts invalid UTF-8 inside strings, which a JSON reader
	// would replace by U+FFFD.
	return len(data) > 0 && utf8.Valid(data) && json.Valid(data) && depth(data) <= MaxJSONDepth
}

// depth returns how deeply valid JSON nests arrays and objects.
func depth(data []byte) int {
	d, deepest := 0, 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			switch c {
			case '\\':
				i++ // the escaped byte cannot end the string
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			d++
			deepest = max(deepest, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return deepest
}

func (r *Row) jsonRow() jsonRow {
	j := jsonRow{Tenant: r.Tenant, Thread: r.Thread, Ordinal: r.Ordinal, EventID: r.ID, Type: r.Type,
		Time: r.Time.UTC(), Meta: r.Meta}
	switch {
	case len(r.Data) == 0:
	case IsJSON(r.Data):
		j.Data = r.Data
	default:
		j.DataRaw = r.Data
	}
	return j
}

// MarshalJSON encodes the row as its JSON record, the form the JSON-lines
// sink writes and `jetsession --json` prints:
//
//	{"tenant":"acme","thread":"support/4711","ordinal":3,"event_id":"01a2...",
//	 "type":"tool_result","time":"2026-11-25T22:55:10.792162075Z",
//	 "data":{"ok":true},"meta":{"model":"gpt-x"}}
//
// time is RFC 3339 in UTC with nanoseconds (trailing zeros dropped). A
// payload that IsJSON is embedded as data (compacted: white space between
// tokens is dropped, the JSON value is unchanged); any other non-empty
// payload is data_raw, in standard base64 with padding. An empty payload
// has neither, and empty metadata no meta. '<', '>' and '&' are not
// escaped (json.Marshal escapes them again in what it returns, unless given
// an Encoder with SetEscapeHTML(false)). Ordinals can exceed 2^53, beyond what a float64 holds exactly.
func (r Row) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := NewJSONEncoder(&buf).Encode(&r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON decodes a JSON record as MarshalJSON writes it. Data holds
// the data field as it appears in the record, or the decoded bytes of
// data_raw.
func (r *Row) UnmarshalJSON(b []byte) error {
	var j jsonRow
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Data != nil && j.DataRaw != nil {
		return errors.New("bridge: a JSON record has both data and data_raw")
	}
	*r = Row{Tenant: j.Tenant, Thread: j.Thread, Ordinal: j.Ordinal, ID: j.EventID, Type: j.Type, Time: j.Time, Meta: j.Meta}
	switch {
	case j.Data != nil:
		r.Data = []byte(j.Data)
	case j.DataRaw != nil:
		r.Data = j.DataRaw
	}
	return nil
}

// JSONEncoder writes rows as JSON records (see Row.MarshalJSON), one per
// line.
type JSONEncoder struct {
	enc *json.Encoder
}

// NewJSONEncoder returns an encoder writing to w.
func NewJSONEncoder(w io.Writer) *JSONEncoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSONEncoder{enc: enc}
}

// Encode writes the JSON record of r and a newline.
func (e *JSONEncoder) Encode(r *Row) error {
	j := r.jsonRow()
	if err := e.enc.Encode(&j); err != nil {
		return fmt.Errorf("bridge: encoding the event at ordinal %d of %q: %w", r.Ordinal, r.Tenant, err)
	}
	return nil
}
