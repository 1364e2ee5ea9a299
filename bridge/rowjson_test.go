package bridge_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
)

func TestRowJSONRecord(t *testing.T) {
	row := bridge.Row{Tenant: "acme", Thread: "support/4711", Ordinal: 3, ID: "e1", Type: "tool_result",
		Time: time.Date(2026, 11, 25, 23, 55, 10, 792162075, time.FixedZone("CET", 3600)),
		Data: []byte("{\"ok\": true,\n \"html\": \"<b>&</b>\"}"), Meta: map[string]string{"model": "gpt-x"}}
	b, err := row.MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, `{"tenant":"acme","thread":"support/4711","ordinal":3,"event_id":"e1","type":"tool_result",`+
		`"time":"2026-11-25T22:55:10.792162075Z","data":{"ok":true,"html":"<b>&</b>"},"meta":{"model":"gpt-x"}}`, string(b))

	var buf bytes.Buffer
	enc := bridge.NewJSONEncoder(&buf)
	require.NoError(t, enc.Encode(&row))
	assert.Equal(t, string(b)+"\n", buf.String(), "the encoder writes what MarshalJSON returns, and a new line")

	var back bridge.Row
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, back.Time.Equal(row.Time))
	assert.JSONEq(t, string(row.Data), string(back.Data))
	back.Time, back.Data = row.Time, row.Data
	assert.Equal(t, row, back)
}

func TestRowJSONPayloads(t *testing.T) {
	tooDeep := []byte(strings.Repeat("[", bridge.MaxJSONDepth+1) + strings.Repeat("]", bridge.MaxJSONDepth+1))
	for _, tc := range []struct {
		name string
		data []byte
		want string // the record's payload fields
	}{
		{"none", nil, ``},
		{"empty", []byte{}, ``},
		{"JSON null", []byte(`null`), `,"data":null`},
		{"JSON with NUL escapes", []byte(`"\u0000"`), `,"data":"\u0000"`},
		{"binary", []byte{0xff, 0x00}, `,"data_raw":"/wA="`},
		{"text", []byte("hi"), `,"data_raw":"aGk="`},
		{"JSON syntax with invalid UTF-8", []byte("\"\xff\""), `,"data_raw":"Iv8i"`},
		{"JSON too deep", tooDeep, `,"data_raw":"` + base64.StdEncoding.EncodeToString(tooDeep) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := bridge.Row{Tenant: "a", Thread: "t", Ordinal: 1, ID: "e", Type: "x", Time: time.Unix(0, 0), Data: tc.data}
			b, err := json.Marshal(row)
			require.NoError(t, err)
			assert.Equal(t, `{"tenant":"a","thread":"t","ordinal":1,"event_id":"e","type":"x","time":"1970-01-01T00:00:00Z"`+tc.want+`}`, string(b))
			var back bridge.Row
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, string(tc.data), string(back.Data))
		})
	}
}

func TestIsJSON(t *testing.T) {
	deep := func(n int) []byte { return []byte(strings.Repeat(`{"a":[`, n/2) + strings.Repeat("]}", n/2)) }
	for data, want := range map[string]bool{
		``:                     false,
		` `:                    false,
		`{}`:                   true,
		` {"a" : 1} `:          true,
		`"\ud800"`:             true, // valid JSON, whatever a store makes of it
		"\"\xff\"":             false,
		`{"a":`:                false,
		`1 2`:                  false,
		`"[[[[\"]]"`:           true, // brackets inside a string do not nest
		string(deep(512)):      true,
		string(deep(514)):      false,
		`[` + `"\\"` + `,{}]`:  true,
		`["\"[",[["\\"]],{}]`:  true,
		"\xef\xbb\xbf{}":       false,
		`{"k":"v","k":"w"}`:    true,
		`123456789e999999999`:  true,
		"{\"a\":\"\u2028\"}":   true,
		"{\"a\":\"\x00\"}":     false, // a raw control character in a string
		`NaN`:                  false,
		`[1,]`:                 false,
		`{"nested":{"deeper"}`: false,
	} {
		assert.Equal(t, want, bridge.IsJSON([]byte(data)), "%q", data)
	}
}

func TestRowUnmarshalJSONRefusesBothPayloadFields(t *testing.T) {
	var r bridge.Row
	err := json.Unmarshal([]byte(`{"tenant":"a","data":{},"data_raw":"AA=="}`), &r)
	require.ErrorContains(t, err, "both data and data_raw")
}
