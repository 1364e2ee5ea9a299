package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/internal/pgtest"
)

// TestIsJSONB checks the classification against the server: whatever
// isJSONB accepts, jsonb must accept too, and ordinary JSON must pass.
func TestIsJSONB(t *testing.T) {
	t.Parallel()
	ok := []string{
		`{}`, `[]`, `null`, `true`, `0`, `-0.5e-3`, `"x"`,
		`{"a":[1,2,{"b":null}],"c":"\"\\\/\b\f\n\r\t"}`,
		`"\u00e9 \u20ac \ud83d\ude00 \uD83D\uDE00 \u0001"`,
		`"ü 😀"`, ` { "spaced" : 1 } `,
		`1e16000`, `1e-16000`, `123456789012345678901234567890.123456789e-10`,
		fmt.Sprintf(`[%s]`, strings.Repeat("[", 500)+strings.Repeat("]", 500)),
	}
	notOK := []string{
		``, `{`, `plain`, `{"a":1}x`, "\xff", `"` + "\xc3\x28" + `"`,
		`"\u0000"`, `"a\u0000b"`, `"\ud800"`, `"\udfff"`, `"\ud800x"`, `"\ud800\u0041"`,
		`"\udc00\ud800"`, `1e1000000`, `-1e-1000000`, `1e131072`, `1e-16384`,
		`0.` + strings.Repeat("0", 20000) + `1`, `1e99999999999999999999`,
	}
	dsn := pgtest.StartShared(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	serverAccepts := func(s string) bool {
		_, err := conn.Exec(context.Background(), "SELECT $1::text::jsonb", s)
		return err == nil
	}
	for _, s := range ok {
		assert.True(t, isJSONB([]byte(s)), "%.60s", s)
		assert.True(t, serverAccepts(s), "%.60s", s)
	}
	for _, s := range notOK {
		assert.False(t, isJSONB([]byte(s)), "%.60s", s)
	}
	// Numbers on both sides of the limits: isJSONB may refuse what the
	// server would take, never the reverse.
	for _, n := range []string{"1e131000", "1e131071", "1e-16283", "1e-16383", "12.5e131000", "0.5e-16300"} {
		if isJSONB([]byte(n)) {
			assert.True(t, serverAccepts(n), n)
		}
	}
}

func TestMetaJSON(t *testing.T) {
	t.Parallel()
	meta, raw, err := metaJSON(nil)
	require.NoError(t, err)
	assert.Nil(t, meta)
	assert.Nil(t, raw)
	meta, raw, err = metaJSON(map[string]string{"d": "<e>", "n": `\u0000 is not a NUL`})
	require.NoError(t, err)
	assert.Equal(t, `{"d":"<e>","n":"\\u0000 is not a NUL"}`, string(meta))
	assert.Nil(t, raw)
	in := map[string]string{"a\x00": "b\x00c", "d": "e"}
	meta, raw, err = metaJSON(in)
	require.NoError(t, err)
	var m map[string]string
	require.NoError(t, json.Unmarshal(meta, &m))
	assert.Equal(t, map[string]string{"a\uFFFD": "b\uFFFDc", "d": "e"}, m)
	var exact map[string]string
	require.NoError(t, json.Unmarshal(raw, &exact))
	assert.Equal(t, in, exact)
}

func TestSchemaIsTheDefaultDDL(t *testing.T) {
	t.Parallel()
	assert.Equal(t, Schema, ddl("jetsession_events", "jetsession_events_positions", "jetsession_events_deletions"))
	d := ddl(`"x"`, `"x_positions"`, `"x_deletions"`)
	assert.Contains(t, d, `CREATE TABLE IF NOT EXISTS "x_positions" (`)
	assert.Contains(t, d, `CREATE TABLE IF NOT EXISTS "x_deletions" (`)
	assert.NotContains(t, d, "jetsession")
}
