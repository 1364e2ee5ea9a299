package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/bridge/postgres"
	"github.com/jetsession/jetsession/bridge/sinktest"
	"github.com/jetsession/jetsession/internal/pgtest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		dsn := pgtest.StartShared(t)
		conn := connect(t, dsn)
		return sinktest.Harness{
			Open: func(t *testing.T) bridge.Sink {
				s, err := postgres.New(context.Background(), dsn)
				require.NoError(t, err)
				return s
			},
			Stored: func(t *testing.T) []bridge.Row {
				return storedRows(t, conn, postgres.DefaultTable)
			},
			Deletions: func(t *testing.T) []bridge.Deletion {
				return storedDeletions(t, conn, postgres.DefaultTable+"_deletions")
			},
			Removes: true,
			// A trigger refuses writes to the positions table.
			BreakCommits: func(t *testing.T) func() {
				ctx := context.Background()
				_, err := conn.Exec(ctx, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
					$$ BEGIN RAISE EXCEPTION 'positions refused by the test'; END $$`)
				require.NoError(t, err)
				_, err = conn.Exec(ctx, `CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON jetsession_events_positions
					FOR EACH STATEMENT EXECUTE FUNCTION refuse()`)
				require.NoError(t, err)
				return func() {
					_, err := conn.Exec(ctx, `DROP TRIGGER refuse ON jetsession_events_positions; DROP FUNCTION refuse()`)
					require.NoError(t, err)
				}
			},
			Unique:        true,
			TimePrecision: time.Microsecond,
		}
	})
}

// storedRows reads the events table back into rows: the payload from data
// (jsonb as text) or data_raw, the metadata from meta_raw when set, else
// from meta.
func storedRows(t *testing.T, conn *pgx.Conn, table string) []bridge.Row {
	t.Helper()
	ctx := context.Background()
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
	if !exists {
		return nil // the sink creates its table on open
	}
	rows, err := conn.Query(ctx, `SELECT tenant, thread, ordinal, event_id, type, time,
		data::text, data_raw, meta, meta_raw::text FROM `+table)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bridge.Row, error) {
		var row bridge.Row
		var ordinal int64
		var data, metaRaw *string
		var raw []byte
		if err := r.Scan(&row.Tenant, &row.Thread, &ordinal, &row.ID, &row.Type, &row.Time,
			&data, &raw, &row.Meta, &metaRaw); err != nil {
			return row, err
		}
		row.Ordinal = uint64(ordinal)
		row.Data = raw
		if data != nil {
			row.Data = []byte(*data)
		}
		if metaRaw != nil {
			row.Meta = nil
			if err := json.Unmarshal([]byte(*metaRaw), &row.Meta); err != nil {
				return row, err
			}
		}
		return row, nil
	})
	require.NoError(t, err)
	return out
}

// storedDeletions reads the deletions table back.
func storedDeletions(t *testing.T, conn *pgx.Conn, table string) []bridge.Deletion {
	t.Helper()
	ctx := context.Background()
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
	if !exists {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT tenant, thread, before_ordinal, deleted_at FROM `+table)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bridge.Deletion, error) {
		var d bridge.Deletion
		var before int64
		err := r.Scan(&d.Tenant, &d.Thread, &before, &d.Time)
		d.Before = uint64(before)
		return d, err
	})
	require.NoError(t, err)
	return out
}

// stored is a row as read back from the events table.
type stored struct {
	Tenant, Thread string
	Ordinal        int64
	EventID, Type  string
	Time           time.Time
	Data           *string // jsonb as text
	DataRaw        []byte
	Meta           map[string]string
	MetaRaw        *string // json as text
	IngestedAt     time.Time
}

func readRows(t *testing.T, conn *pgx.Conn, table string) []stored {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT tenant, thread, ordinal, event_id, type, time,
		data::text, data_raw, meta, meta_raw::text, ingested_at FROM `+table+` ORDER BY tenant, thread, ordinal`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
		var s stored
		err := r.Scan(&s.Tenant, &s.Thread, &s.Ordinal, &s.EventID, &s.Type, &s.Time,
			&s.Data, &s.DataRaw, &s.Meta, &s.MetaRaw, &s.IngestedAt)
		return s, err
	})
	require.NoError(t, err)
	return out
}

func count(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func positions(t *testing.T, s *postgres.Sink) bridge.Positions {
	t.Helper()
	pos, err := s.Positions(context.Background())
	require.NoError(t, err)
	return pos
}

// someRows returns n rows of one thread with JSON payloads, from ordinal
// first on.
func someRows(tenant, thread string, first uint64, n int) []bridge.Row {
	rows := make([]bridge.Row, n)
	for i := range rows {
		o := first + uint64(i)
		rows[i] = bridge.Row{
			Tenant: tenant, Thread: thread, Ordinal: o,
			ID: "id-" + tenant + "-" + thread + "-" + strings.Repeat("x", int(o%3)), Type: "note",
			Time: time.Unix(1700000000+int64(o), 0).UTC(),
			Data: []byte(`{"n":1}`),
		}
	}
	return rows
}

func TestWriteAndReadBack(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	require.Equal(t, "postgres", s.Name())
	require.Empty(t, positions(t, s))

	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 3600))
	rows := []bridge.Row{
		{Tenant: "acme", Thread: "t1", Ordinal: 1, ID: "e1", Type: "json",
			Time: at, Data: []byte(`{"b": [1, 2.5, "ü"],  "a": {"nested": true}}`),
			Meta: map[string]string{"user": "ada", "trace": "ab-12"}},
		{Tenant: "acme", Thread: "t1", Ordinal: 2, ID: "e2", Type: "binary",
			Time: at.Add(time.Second), Data: []byte{0x00, 0xff, 0xfe, '{', 0x80}},
		{Tenant: "acme", Thread: "t2", Ordinal: 3, ID: "e3", Type: "empty",
			Time: at.Add(2 * time.Second)},
		{Tenant: "acme", Thread: "t2", Ordinal: 4, ID: "e4", Type: "text",
			Time: at.Add(3 * time.Second), Data: []byte("plain text, not JSON")},
		{Tenant: "ünïcødé", Thread: "スレッド", Ordinal: 1, ID: "идентификатор", Type: "類型 🚀",
			Time: at.Add(4 * time.Second), Data: []byte(`"emoji 😀 \ud83d\ude00"`),
			Meta: map[string]string{"ключ": "значение 🚀"}},
		{Tenant: "ünïcødé", Thread: "スレッド", Ordinal: 2, ID: "e6", Type: "scalar",
			Time: at.Add(5 * time.Second), Data: []byte(`42`), Meta: map[string]string{}},
	}
	before := time.Now().Add(-time.Minute)
	require.NoError(t, s.Write(ctx, rows, bridge.Positions{"acme": 4, "ünïcødé": 2}))

	got := readRows(t, conn, "jetsession_events")
	require.Len(t, got, len(rows))
	byKey := map[string]stored{}
	for _, g := range got {
		byKey[g.EventID] = g
	}
	for _, r := range rows {
		g, ok := byKey[r.ID]
		require.True(t, ok, r.ID)
		assert.Equal(t, r.Tenant, g.Tenant)
		assert.Equal(t, r.Thread, g.Thread)
		assert.Equal(t, int64(r.Ordinal), g.Ordinal)
		assert.Equal(t, r.Type, g.Type)
		assert.True(t, r.Time.Truncate(time.Microsecond).Equal(g.Time), "time %v, stored %v", r.Time, g.Time)
		assert.True(t, g.IngestedAt.After(before), "ingested_at %v", g.IngestedAt)
		if len(r.Meta) == 0 {
			assert.Nil(t, g.Meta, r.ID)
		} else {
			assert.Equal(t, r.Meta, g.Meta, r.ID)
		}
	}
	require.NotNil(t, byKey["e1"].Data)
	assert.JSONEq(t, string(rows[0].Data), *byKey["e1"].Data)
	assert.Nil(t, byKey["e1"].DataRaw)
	assert.Nil(t, byKey["e2"].Data)
	assert.Equal(t, rows[1].Data, byKey["e2"].DataRaw)
	assert.Nil(t, byKey["e3"].Data, "empty payload")
	assert.Nil(t, byKey["e3"].DataRaw, "empty payload")
	assert.Nil(t, byKey["e4"].Data)
	assert.Equal(t, "plain text, not JSON", string(byKey["e4"].DataRaw))
	require.NotNil(t, byKey["идентификатор"].Data)
	assert.Equal(t, `"emoji 😀 😀"`, *byKey["идентификатор"].Data)
	require.NotNil(t, byKey["e6"].Data)
	assert.Equal(t, "42", *byKey["e6"].Data)

	assert.Equal(t, bridge.Positions{"acme": 4, "ünïcødé": 2}, positions(t, s))
}

func TestRedeliveryIsNoOp(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()

	rows := append(someRows("a", "x", 1, 50), someRows("b", "y", 1, 50)...)
	require.NoError(t, s.Write(ctx, rows, bridge.Positions{"a": 50, "b": 50}))
	first := readRows(t, conn, "jetsession_events")
	require.Len(t, first, 100)

	// The same rows again, with other payloads, and older positions.
	again := append([]bridge.Row(nil), rows...)
	for i := range again {
		again[i].Data = []byte(`{"changed":true}`)
	}
	require.NoError(t, s.Write(ctx, again, bridge.Positions{"a": 10, "b": 49}))
	assert.Equal(t, first, readRows(t, conn, "jetsession_events"), "redelivered rows must not change anything")
	assert.Equal(t, bridge.Positions{"a": 50, "b": 50}, positions(t, s), "positions never move back")

	// An overlapping batch adds only what is new.
	require.NoError(t, s.Write(ctx, someRows("a", "x", 41, 20), bridge.Positions{"a": 60}))
	assert.Equal(t, 110, count(t, conn, "jetsession_events"))
	assert.Equal(t, bridge.Positions{"a": 60, "b": 50}, positions(t, s))

	// Duplicates within one batch are fine too.
	dup := append(someRows("c", "z", 1, 3), someRows("c", "z", 1, 3)...)
	require.NoError(t, s.Write(ctx, dup, bridge.Positions{"c": 3}))
	assert.Equal(t, 113, count(t, conn, "jetsession_events"))
}

func TestPositionsOnly(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()

	require.NoError(t, s.Write(ctx, nil, bridge.Positions{"a": 7, "b": 1}))
	assert.Equal(t, bridge.Positions{"a": 7, "b": 1}, positions(t, s))
	require.NoError(t, s.Write(ctx, []bridge.Row{}, bridge.Positions{"a": 3, "b": 2}))
	assert.Equal(t, bridge.Positions{"a": 7, "b": 2}, positions(t, s))
	require.NoError(t, s.Write(ctx, nil, nil), "nothing to write")
	assert.Equal(t, 0, count(t, conn, "jetsession_events"))
	require.NoError(t, s.Flush(ctx))
}

func TestFailedWriteCommitsNothing(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, someRows("a", "x", 1, 5), bridge.Positions{"a": 5}))

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Write(cctx, someRows("a", "x", 6, 100), bridge.Positions{"a": 105})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 5, count(t, conn, "jetsession_events"))
		assert.Equal(t, bridge.Positions{"a": 5}, positions(t, s))
	})

	t.Run("failure after the rows are in", func(t *testing.T) {
		// The positions upsert fails after the insert has run in the
		// same transaction.
		_, err := conn.Exec(ctx, `ALTER TABLE jetsession_events_positions ADD CONSTRAINT small CHECK (ordinal < 1000)`)
		require.NoError(t, err)
		err = s.Write(ctx, someRows("a", "x", 6, 100), bridge.Positions{"a": 1005})
		require.ErrorContains(t, err, "saving positions")
		assert.Equal(t, 5, count(t, conn, "jetsession_events"))
		assert.Equal(t, bridge.Positions{"a": 5}, positions(t, s))
		_, err = conn.Exec(ctx, `ALTER TABLE jetsession_events_positions DROP CONSTRAINT small`)
		require.NoError(t, err)
	})

	t.Run("ordinal beyond bigint", func(t *testing.T) {
		rows := someRows("a", "x", 6, 3)
		rows[2].Ordinal = math.MaxInt64 + 1
		require.ErrorContains(t, s.Write(ctx, rows, bridge.Positions{"a": 8}), "does not fit in bigint")
		require.ErrorContains(t, s.Write(ctx, someRows("a", "x", 6, 3), bridge.Positions{"a": math.MaxUint64}), "does not fit in bigint")
		assert.Equal(t, 5, count(t, conn, "jetsession_events"))
		assert.Equal(t, bridge.Positions{"a": 5}, positions(t, s))
	})

	// The sink carries on after failures.
	require.NoError(t, s.Write(ctx, someRows("a", "x", 6, 100), bridge.Positions{"a": 105}))
	assert.Equal(t, 105, count(t, conn, "jetsession_events"))
	assert.Equal(t, bridge.Positions{"a": 105}, positions(t, s))
	rows := someRows("a", "x", math.MaxInt64, 1)
	require.NoError(t, s.Write(ctx, rows, bridge.Positions{"a": math.MaxInt64}), "the largest bigint is fine")
	assert.Equal(t, bridge.Positions{"a": math.MaxInt64}, positions(t, s))
}

func TestReconnects(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, someRows("a", "x", 1, 5), bridge.Positions{"a": 5}))

	_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	require.NoError(t, err)
	// The first call may still find the dead connection; the next one
	// must succeed on a new one.
	if err := s.Write(ctx, someRows("a", "x", 6, 5), bridge.Positions{"a": 10}); err != nil {
		require.NoError(t, s.Write(ctx, someRows("a", "x", 6, 5), bridge.Positions{"a": 10}))
	}
	assert.Equal(t, 10, count(t, conn, "jetsession_events"))
	assert.Equal(t, bridge.Positions{"a": 10}, positions(t, s))
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		tenant := string(rune('a' + w))
		wg.Go(func() {
			for i := range 10 {
				first := uint64(i*10 + 1)
				assert.NoError(t, s.Write(ctx, someRows(tenant, "x", first, 10), bridge.Positions{tenant: first + 9}))
				_, err := s.Positions(ctx)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 400, count(t, conn, "jetsession_events"))
	assert.Equal(t, bridge.Positions{"a": 100, "b": 100, "c": 100, "d": 100}, positions(t, s))
}

func TestJSONThatJSONBRejects(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	payloads := []string{
		`"nul \u0000 escape"`,
		`{"lone high": "\ud800"}`,
		`["lone low \udc00"]`,
		`"reversed \udc00\ud800"`,
		`1e1000000`,
		`[1e-20000]`,
		`{"s": "invalid UTF-8 ` + "\xff" + `"}`,
	}
	rows := someRows("a", "x", 1, len(payloads))
	for i, p := range payloads {
		rows[i].Data = []byte(p)
	}
	require.NoError(t, s.Write(context.Background(), rows, bridge.Positions{"a": uint64(len(rows))}))
	got := readRows(t, conn, "jetsession_events")
	require.Len(t, got, len(payloads))
	for i, g := range got {
		assert.Nil(t, g.Data, payloads[i])
		assert.Equal(t, payloads[i], string(g.DataRaw))
	}
}

func TestMetaWithNUL(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	rows := someRows("a", "x", 1, 1)
	rows[0].Meta = map[string]string{"k": "a\x00b", "ok": "<&>"}
	rows = append(rows, someRows("a", "x", 2, 1)...)
	rows[1].Meta = map[string]string{"k": "no NUL"}
	require.NoError(t, s.Write(context.Background(), rows, nil))
	got := readRows(t, conn, "jetsession_events")
	require.Len(t, got, 2)
	// meta stays queryable; meta_raw has the exact metadata.
	assert.Equal(t, map[string]string{"k": "a\uFFFDb", "ok": "<&>"}, got[0].Meta)
	require.NotNil(t, got[0].MetaRaw)
	assert.Equal(t, `{"k":"a\u0000b","ok":"<&>"}`, *got[0].MetaRaw)
	assert.Equal(t, map[string]string{"k": "no NUL"}, got[1].Meta)
	assert.Nil(t, got[1].MetaRaw, "meta_raw only when meta cannot hold the metadata")
}

// A table created before meta_raw existed gets the column, and keeps its
// rows.
func TestNewAddsMetaRawToAnOlderTable(t *testing.T) {
	t.Parallel()
	dsn := pgtest.StartShared(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	older := strings.Replace(postgres.Schema, "  meta_raw    json,        -- the exact metadata when meta cannot hold it (a NUL), else NULL\n", "", 1)
	require.NotEqual(t, postgres.Schema, older)
	_, err := conn.Exec(ctx, older)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO jetsession_events (tenant, thread, ordinal, event_id, type, time) VALUES ('a', 'x', 1, 'e', 'note', now())`)
	require.NoError(t, err)

	s, err := postgres.New(ctx, dsn)
	require.NoError(t, err)
	defer s.Close(ctx)
	rows := someRows("a", "x", 2, 1)
	rows[0].Meta = map[string]string{"k": "\x00"}
	require.NoError(t, s.Write(ctx, rows, bridge.Positions{"a": 2}))
	got := readRows(t, conn, "jetsession_events")
	require.Len(t, got, 2)
	require.NotNil(t, got[1].MetaRaw)
	assert.Equal(t, `{"k":"\u0000"}`, *got[1].MetaRaw)
}

func TestWithTable(t *testing.T) {
	t.Parallel()
	a, dsn := newSinkDSN(t, postgres.WithTable("events_a"))
	conn := connect(t, dsn)
	ctx := context.Background()
	_, err := conn.Exec(ctx, "CREATE SCHEMA analytics")
	require.NoError(t, err)
	b, err := postgres.New(ctx, dsn, postgres.WithTable("analytics.select"))
	require.NoError(t, err, "a reserved word is fine as a table name")
	defer b.Close(ctx)

	require.NoError(t, a.Write(ctx, someRows("t", "x", 1, 3), bridge.Positions{"t": 3}))
	require.NoError(t, b.Write(ctx, someRows("t", "x", 1, 7), bridge.Positions{"t": 7}))
	assert.Equal(t, 3, count(t, conn, "events_a"))
	assert.Equal(t, 7, count(t, conn, `analytics."select"`))
	assert.Equal(t, bridge.Positions{"t": 3}, positions(t, a))
	assert.Equal(t, bridge.Positions{"t": 7}, positions(t, b))
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM analytics.select_positions`).Scan(&n))
	assert.Equal(t, 1, n)

	_, err = postgres.New(ctx, dsn, postgres.WithTable("missing.events"))
	require.ErrorContains(t, err, "creating table missing.events")
}

func TestNewAgainKeepsData(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, someRows("a", "x", 1, 3), bridge.Positions{"a": 3}))
	require.NoError(t, s.Close(ctx))
	require.ErrorIs(t, s.Write(ctx, someRows("a", "x", 4, 1), nil), postgres.ErrClosed)
	_, err := s.Positions(ctx)
	require.ErrorIs(t, err, postgres.ErrClosed)
	require.NoError(t, s.Close(ctx), "closing twice")

	var wg sync.WaitGroup
	sinks := make([]*postgres.Sink, 4)
	for i := range sinks {
		wg.Go(func() {
			var err error
			sinks[i], err = postgres.New(ctx, dsn)
			assert.NoError(t, err, "concurrent creators")
		})
	}
	wg.Wait()
	for _, s := range sinks {
		if s != nil {
			assert.Equal(t, bridge.Positions{"a": 3}, positions(t, s))
			s.Close(ctx)
		}
	}
}

func TestInvalidTableName(t *testing.T) {
	t.Parallel()
	// No server listens there: the name must be refused before connecting.
	const dsn = "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"
	for _, name := range []string{
		"", "Events", "1events", "ev-ents", "ev ents", `ev"ents`, "events;drop",
		strings.Repeat("e", 51), "a.b.c", ".events", "schema.", "Schema.events",
		"jetsession_bridge_stage",
	} {
		_, err := postgres.New(context.Background(), dsn, postgres.WithTable(name))
		require.ErrorContains(t, err, "invalid", "table %q", name)
		require.NotContains(t, err.Error(), "connecting", "table %q", name)
	}
}

func TestBadDSN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := postgres.New(ctx, "postgres://user:secret@host:notaport/db")
	require.ErrorContains(t, err, "postgres: invalid DSN")
	require.NotContains(t, err.Error(), "secret", "the password stays out of errors")

	_, err = postgres.New(ctx, "postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
	require.ErrorContains(t, err, "postgres: connecting")
}

// deletionRow is a row of the deletions table.
type deletionRow struct {
	Tenant, Thread string
	Before         int64
	DeletedAt      time.Time
	AppliedAt      time.Time
}

func readDeletions(t *testing.T, conn *pgx.Conn, table string) []deletionRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT tenant, thread, before_ordinal, deleted_at, applied_at
		FROM `+table+` ORDER BY tenant, thread, before_ordinal`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deletionRow, error) {
		var d deletionRow
		err := r.Scan(&d.Tenant, &d.Thread, &d.Before, &d.DeletedAt, &d.AppliedAt)
		return d, err
	})
	require.NoError(t, err)
	return out
}

func TestDeleteRemovesRowsAndRecordsTheDeletion(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	rows := slices.Concat(someRows("a", "x", 1, 5), someRows("a", "y", 6, 5), someRows("b", "x", 1, 5), someRows("b2", "x", 1, 2))
	require.NoError(t, s.Write(ctx, rows, bridge.Positions{"a": 10, "b": 5, "b2": 2}))

	at := time.Date(2026, 12, 1, 21, 35, 54, 524506186, time.UTC)
	start := time.Now().Add(-time.Minute)
	ds := []bridge.Deletion{{Tenant: "a", Thread: "x", Before: 11, Time: at}, {Tenant: "b", Before: 6, Time: at.Add(time.Second)}}
	require.NoError(t, s.Delete(ctx, ds, bridge.Positions{"a": 11}))
	got := readRows(t, conn, "jetsession_events")
	var left []string
	for _, r := range got {
		left = append(left, fmt.Sprintf("%s/%s/%d", r.Tenant, r.Thread, r.Ordinal))
	}
	assert.Equal(t, []string{"a/y/6", "a/y/7", "a/y/8", "a/y/9", "a/y/10", "b2/x/1", "b2/x/2"}, left)
	assert.Equal(t, bridge.Positions{"a": 11, "b2": 2}, positions(t, s), "the deleted tenant has no position")
	recorded := readDeletions(t, conn, "jetsession_events_deletions")
	require.Len(t, recorded, 2)
	assert.Equal(t, []any{"a", "x", int64(11)}, []any{recorded[0].Tenant, recorded[0].Thread, recorded[0].Before})
	assert.Equal(t, []any{"b", "", int64(6)}, []any{recorded[1].Tenant, recorded[1].Thread, recorded[1].Before})
	assert.True(t, recorded[0].DeletedAt.Equal(at.Truncate(time.Microsecond)), "deleted_at %v", recorded[0].DeletedAt)
	assert.True(t, recorded[0].AppliedAt.After(start), "applied_at %v", recorded[0].AppliedAt)

	// The thread and the tenant live again; applying the deletions again
	// leaves their new rows, their new position and the records alone.
	require.NoError(t, s.Write(ctx, slices.Concat(someRows("a", "x", 12, 2), someRows("b", "x", 6, 2)), bridge.Positions{"a": 13, "b": 7}))
	require.NoError(t, s.Delete(ctx, ds, bridge.Positions{"a": 11}))
	assert.Equal(t, 11, count(t, conn, "jetsession_events"))
	assert.Equal(t, bridge.Positions{"a": 13, "b": 7, "b2": 2}, positions(t, s))
	assert.Equal(t, recorded, readDeletions(t, conn, "jetsession_events_deletions"), "applied_at included")

	require.NoError(t, s.Delete(ctx, nil, nil), "nothing to do")
	require.NoError(t, s.Delete(ctx, nil, bridge.Positions{"c": 4}), "positions only")
	assert.Equal(t, uint64(4), positions(t, s)["c"])
}

// The deletions, the rows and the positions are one transaction: when the
// positions cannot be saved, no row is deleted and nothing is recorded.
func TestFailedDeleteCommitsNothing(t *testing.T) {
	t.Parallel()
	s, dsn := newSinkDSN(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, slices.Concat(someRows("a", "x", 1, 5), someRows("b", "x", 1, 5)), bridge.Positions{"a": 5, "b": 5}))
	ds := []bridge.Deletion{{Tenant: "a", Thread: "x", Before: 6, Time: time.Now()}, {Tenant: "b", Before: 6, Time: time.Now()}}

	_, err := conn.Exec(ctx, `ALTER TABLE jetsession_events_positions ADD CONSTRAINT small CHECK (ordinal < 6)`)
	require.NoError(t, err)
	require.Error(t, s.Delete(ctx, ds, bridge.Positions{"a": 6}))
	assert.Equal(t, 10, count(t, conn, "jetsession_events"))
	assert.Equal(t, 0, count(t, conn, "jetsession_events_deletions"))
	assert.Equal(t, bridge.Positions{"a": 5, "b": 5}, positions(t, s))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Delete(cctx, ds, nil), context.Canceled)
	assert.Equal(t, 10, count(t, conn, "jetsession_events"))

	d := ds[0]
	d.Before = math.MaxInt64 + 1
	require.ErrorContains(t, s.Delete(ctx, []bridge.Deletion{d}, nil), "does not fit in bigint")
	require.ErrorContains(t, s.Delete(ctx, nil, bridge.Positions{"a": math.MaxUint64}), "does not fit in bigint")

	_, err = conn.Exec(ctx, `ALTER TABLE jetsession_events_positions DROP CONSTRAINT small`)
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, ds, bridge.Positions{"a": 6}), "the retry")
	assert.Equal(t, 0, count(t, conn, "jetsession_events"))
	assert.Equal(t, 2, count(t, conn, "jetsession_events_deletions"))
	assert.Equal(t, bridge.Positions{"a": 6}, positions(t, s))
}

// Tables named by WithTable get their deletions table too, the longest
// name included.
func TestDeleteWithTable(t *testing.T) {
	t.Parallel()
	dsn := pgtest.StartShared(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	_, err := conn.Exec(ctx, "CREATE SCHEMA analytics")
	require.NoError(t, err)
	for _, name := range []string{"analytics.select", strings.Repeat("e", 50)} {
		s, err := postgres.New(ctx, dsn, postgres.WithTable(name))
		require.NoError(t, err, name)
		require.NoError(t, s.Write(ctx, someRows("t", "x", 1, 3), bridge.Positions{"t": 3}), name)
		require.NoError(t, s.Delete(ctx, []bridge.Deletion{{Tenant: "t", Thread: "x", Before: 3, Time: time.Now()}}, bridge.Positions{"t": 4}), name)
		s.Close(ctx)
		table, deletions := pgx.Identifier(strings.Split(name, ".")), pgx.Identifier(strings.Split(name+"_deletions", "."))
		assert.Equal(t, 1, count(t, conn, table.Sanitize()), name)
		assert.Equal(t, 1, count(t, conn, deletions.Sanitize()), name)
	}
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass('jetsession_events_deletions') IS NOT NULL").Scan(&exists))
	assert.False(t, exists, "no table of the default name is made")
}

// A database made by a version without deletions gets the deletions
// table, and keeps its rows.
func TestNewAddsTheDeletionsTableToAnOlderDatabase(t *testing.T) {
	t.Parallel()
	dsn := pgtest.StartShared(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	older, _, ok := strings.Cut(postgres.Schema, "CREATE TABLE IF NOT EXISTS jetsession_events_deletions")
	require.True(t, ok)
	_, err := conn.Exec(ctx, older)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO jetsession_events (tenant, thread, ordinal, event_id, type, time) VALUES ('a', 'x', 1, 'e', 'note', now()), ('a', 'y', 2, 'e', 'note', now())`)
	require.NoError(t, err)

	s, err := postgres.New(ctx, dsn)
	require.NoError(t, err)
	defer s.Close(ctx)
	require.NoError(t, s.Delete(ctx, []bridge.Deletion{{Tenant: "a", Thread: "x", Before: 3, Time: time.Now()}}, bridge.Positions{"a": 3}))
	assert.Equal(t, 1, count(t, conn, "jetsession_events"))
	assert.Equal(t, 1, count(t, conn, "jetsession_events_deletions"))
}
