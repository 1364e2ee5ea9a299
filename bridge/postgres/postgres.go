// Package postgres is a bridge sink that stores events in a PostgreSQL
// table, one row per event, and the bridge's positions in a second table,
// both written in one transaction. Rows are keyed by (tenant, thread,
// ordinal), so redelivered rows are no-ops and the table holds every event
// exactly once.
//
// Payloads that are JSON (bridge.IsJSON) go to the jsonb column data, which
// PostgreSQL normalizes (white space, key order, duplicate keys, the
// spelling of numbers: the JSON value stays the same); other payloads go
// byte for byte to data_raw. So do JSON payloads that jsonb cannot hold
// (a \u0000 escape, an unpaired surrogate escape, a number beyond numeric's
// range), which would otherwise fail their batch on every redelivery.
// Metadata goes to the jsonb column meta; jsonb cannot hold a NUL
// character either, so when a value has one, meta holds it as U+FFFD (the
// other entries stay queryable) and the json column meta_raw holds the
// metadata exactly. Times are stored with microsecond precision, the
// precision of timestamptz (the nanoseconds are truncated).
//
// A deletion (see bridge.Sink.Delete) takes the rows it covers out of the
// events table, records itself in a third table, and advances the
// positions (dropping a deleted tenant's), all in one transaction: once it
// is committed no row of the deleted thread or tenant below its ordinal is
// left, and the deletions table says what was deleted and when.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jetsession/jetsession/bridge"
)

// ErrClosed is returned by Positions and Write after Close.
var ErrClosed = errors.New("postgres: sink is closed")

// DefaultTable is the events table unless WithTable says otherwise.
const DefaultTable = "jetsession_events"

// Schema is the DDL New runs for the default table names. WithTable
// replaces jetsession_events with its name in the three tables. An events
// table created before meta_raw existed gets the column added, and a
// database of a version without deletions the deletions table (see New).
const Schema = `CREATE TABLE IF NOT EXISTS jetsession_events (
  tenant      text        NOT NULL,
  thread      text        NOT NULL,
  ordinal     bigint      NOT NULL,
  event_id    text        NOT NULL,
  type        text        NOT NULL,
  time        timestamptz NOT NULL,
  data        jsonb,       -- the payload when it is JSON
  data_raw    bytea,       -- the payload when it is not (data is then NULL)
  meta        jsonb,       -- metadata object, NULL when empty
  ingested_at timestamptz NOT NULL DEFAULT now(),
  meta_raw    json,        -- the exact metadata when meta cannot hold it (a NUL), else NULL
  PRIMARY KEY (tenant, thread, ordinal)
);
CREATE TABLE IF NOT EXISTS jetsession_events_positions (
  tenant     text        PRIMARY KEY,
  ordinal    bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS jetsession_events_deletions (
  tenant         text        NOT NULL,
  thread         text        NOT NULL,  -- '' for the whole tenant
  before_ordinal bigint      NOT NULL,  -- every row below it was deleted
  deleted_at     timestamptz NOT NULL,  -- when the log deleted it
  applied_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, thread, before_ordinal)
);
`

// maxTableLen leaves room for the "_positions" and "_deletions" suffixes
// within PostgreSQL's 63-byte identifiers (PostgreSQL shortens the names
// it makes up for constraints, such as <table>_deletions_pkey, itself).
const maxTableLen = 50

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Option configures New.
type Option func(*config)

type config struct {
	table string
}

// WithTable sets the events table: a lowercase SQL identifier of at most
// 50 characters ([a-z_][a-z0-9_]*), optionally qualified by an existing
// schema ("analytics.events"). The positions and deletions tables are the
// same name with "_positions" and "_deletions" appended.
func WithTable(name string) Option {
	return func(c *config) { c.table = name }
}

// Sink writes rows to PostgreSQL. It is safe for concurrent use; calls are
// serialized over one connection, which is reopened when it breaks.
type Sink struct {
	connConfig *pgx.ConnConfig
	events     pgx.Identifier
	ident      string // events table, for error messages
	ddl        string
	upgradeSQL string
	lockKey    string
	insertSQL  string
	upsertSQL  string
	selectSQL  string

	recordSQL       string // a deletion into the deletions table
	deleteThreadSQL string
	deleteTenantSQL string
	dropPosSQL      string

	mu     sync.Mutex
	conn   *pgx.Conn
	closed bool
	cols   columns
}

var _ bridge.Sink = (*Sink)(nil)

// New connects to the database at dsn (a URL or key=value string as libpq
// accepts) and creates the tables if they do not exist, adding the meta_raw
// column to an events table that lacks it (taking a brief exclusive lock on
// the table, only then). ctx bounds the connection and the DDL; add
// connect_timeout to the DSN to bound the reconnections of later calls
// otherwise than by their contexts.
func New(ctx context.Context, dsn string, opts ...Option) (*Sink, error) {
	cfg := config{table: DefaultTable}
	for _, opt := range opts {
		opt(&cfg)
	}
	events, err := parseTable(cfg.table)
	if err != nil {
		return nil, err
	}
	positions := append(pgx.Identifier{}, events...)
	positions[len(positions)-1] += "_positions"
	deletions := append(pgx.Identifier{}, events...)
	deletions[len(deletions)-1] += "_deletions"

	connConfig, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN: %w", err)
	}
	s := &Sink{
		connConfig: connConfig,
		events:     events,
		ident:      cfg.table,
		ddl:        ddl(events.Sanitize(), positions.Sanitize(), deletions.Sanitize()),
		upgradeSQL: "ALTER TABLE " + events.Sanitize() + " ADD COLUMN IF NOT EXISTS meta_raw json",
		lockKey:    "jetsession bridge " + cfg.table,
		insertSQL:  insertSQL(events.Sanitize()),
		upsertSQL:  upsertSQL(positions.Sanitize()),
		selectSQL:  "SELECT tenant, ordinal FROM " + positions.Sanitize(),

		recordSQL: "INSERT INTO " + deletions.Sanitize() + ` (tenant, thread, before_ordinal, deleted_at)
VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, thread, before_ordinal) DO NOTHING`,
		deleteThreadSQL: "DELETE FROM " + events.Sanitize() + " WHERE tenant = $1 AND thread = $2 AND ordinal < $3",
		deleteTenantSQL: "DELETE FROM " + events.Sanitize() + " WHERE tenant = $1 AND ordinal < $2",
		dropPosSQL:      "DELETE FROM " + positions.Sanitize() + " WHERE tenant = $1 AND ordinal < $2",
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	conn, err := s.connLocked(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.createTables(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return s, nil
}

func parseTable(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("postgres: invalid table name %q: at most one schema qualifier", name)
	}
	table := parts[len(parts)-1]
	if !identRE.MatchString(table) || len(table) > maxTableLen {
		return nil, fmt.Errorf("postgres: invalid table name %q: want a lowercase identifier ([a-z_][a-z0-9_]*) of at most %d characters", name, maxTableLen)
	}
	if table == stageTable {
		// The temporary table would hide it from unqualified names.
		return nil, fmt.Errorf("postgres: invalid table name %q: reserved for the sink's staging table", name)
	}
	if len(parts) == 2 && (!identRE.MatchString(parts[0]) || len(parts[0]) > 63) {
		return nil, fmt.Errorf("postgres: invalid schema in table name %q: want a lowercase identifier ([a-z_][a-z0-9_]*) of at most 63 characters", name)
	}
	return pgx.Identifier(parts), nil
}

func ddl(events, positions, deletions string) string {
	return strings.NewReplacer(
		"jetsession_events_positions", positions,
		"jetsession_events_deletions", deletions,
		"jetsession_events", events,
	).Replace(Schema)
}

// createTables serializes concurrent creators, since CREATE TABLE IF NOT
// EXISTS can still fail when two sessions race.
func (s *Sink) createTables(ctx context.Context, conn *pgx.Conn) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", s.lockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.ddl); err != nil {
			return err
		}
		// Tables of earlier versions lack meta_raw. The ALTER is skipped
		// when the column exists, since it would wait for every query on
		// the table and hold up every later one meanwhile.
		var has bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
			WHERE attrelid = $1::regclass AND attname = 'meta_raw' AND NOT attisdropped)`,
			s.events.Sanitize()).Scan(&has); err != nil {
			return err
		}
		if !has {
			_, err := tx.Exec(ctx, s.upgradeSQL)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: creating table %s: %w", s.ident, err)
	}
	return nil
}

// connLocked returns the open connection, reconnecting after a failure
// (a cancelled query closes it, for instance).
func (s *Sink) connLocked(ctx context.Context) (*pgx.Conn, error) {
	if s.closed {
		return nil, ErrClosed
	}
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn, nil
	}
	conn, err := pgx.ConnectConfig(ctx, s.connConfig)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	s.conn = conn
	return conn, nil
}

// Name returns "postgres".
func (s *Sink) Name() string { return "postgres" }

// Positions returns the positions committed in the positions table.
func (s *Sink) Positions(ctx context.Context) (bridge.Positions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conn, err := s.connLocked(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, s.selectSQL)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading positions: %w", err)
	}
	pos := bridge.Positions{}
	var tenant string
	var ordinal int64
	_, err = pgx.ForEachRow(rows, []any{&tenant, &ordinal}, func() error {
		pos[tenant] = uint64(ordinal)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: reading positions: %w", err)
	}
	return pos, nil
}

// Write stores rows and advances positions in one transaction. Rows whose
// key is already stored are skipped, and a position never moves back.
func (s *Sink) Write(ctx context.Context, rows []bridge.Row, pos bridge.Positions) error {
	if len(rows) == 0 && len(pos) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.cols.release()
	if err := s.cols.fill(rows, pos); err != nil {
		return err
	}
	conn, err := s.connLocked(ctx)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if len(rows) > 0 {
			if err := s.insertRows(ctx, tx, len(rows)); err != nil {
				return err
			}
		}
		if len(pos) > 0 {
			if _, err := tx.Exec(ctx, s.upsertSQL, s.cols.posTenant, s.cols.posOrdinal); err != nil {
				return fmt.Errorf("saving positions: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: write to %s: %w", s.ident, err)
	}
	return nil
}

// insertRows stores the filled columns. New rows, the common case, are
// copied straight into the events table, under a savepoint; when some row
// is already there (a redelivery after a crash) the copy fails on the
// primary key, is rolled back to the savepoint, and the rows go through a
// staging table and INSERT ... ON CONFLICT DO NOTHING instead. The direct
// copy halves the server's work for a backlog.
func (s *Sink) insertRows(ctx context.Context, tx pgx.Tx, n int) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	_, err = sp.CopyFrom(ctx, s.events, rowColumns, &copySource{c: &s.cols, row: -1})
	if err == nil {
		return sp.Commit(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" { // unique_violation
		return fmt.Errorf("copying %d rows: %w", n, err)
	}
	if err := sp.Rollback(ctx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, createStageSQL); err != nil {
		return fmt.Errorf("creating the staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", stageTable}, rowColumns, &copySource{c: &s.cols, row: -1}); err != nil {
		return fmt.Errorf("copying %d rows: %w", n, err)
	}
	if _, err := tx.Exec(ctx, s.insertSQL); err != nil {
		return fmt.Errorf("inserting %d rows: %w", n, err)
	}
	return nil
}

// Delete carries out deletions in one transaction: for each, in order, it
// records the deletion in the deletions table (a deletion already there is
// left as it is, applied_at included), deletes the rows of the thread, or
// of the whole tenant, with an ordinal below Before, and for a tenant
// deletion deletes the tenant's position when below Before; then it
// advances the positions in pos as Write does. Applied again, a deletion
// finds nothing to delete and is not recorded twice. Ordinals and
// positions must fit in a bigint.
func (s *Sink) Delete(ctx context.Context, ds []bridge.Deletion, pos bridge.Positions) error {
	if len(ds) == 0 && len(pos) == 0 {
		return nil
	}
	for i := range ds {
		if ds[i].Before > math.MaxInt64 {
			return fmt.Errorf("postgres: deletion of %q/%q: ordinal %d does not fit in bigint", ds[i].Tenant, ds[i].Thread, ds[i].Before)
		}
	}
	tenants := make([]string, 0, len(pos))
	ordinals := make([]int64, 0, len(pos))
	for tenant, ordinal := range pos {
		if ordinal > math.MaxInt64 {
			return fmt.Errorf("postgres: position of tenant %s: ordinal %d does not fit in bigint", tenant, ordinal)
		}
		tenants = append(tenants, tenant)
		ordinals = append(ordinals, int64(ordinal))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	conn, err := s.connLocked(ctx)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// One round trip for the whole call: the statements run in order.
		b := &pgx.Batch{}
		for i := range ds {
			d := &ds[i]
			before := int64(d.Before)
			b.Queue(s.recordSQL, d.Tenant, d.Thread, before, d.Time)
			if d.Thread == "" {
				b.Queue(s.deleteTenantSQL, d.Tenant, before)
				b.Queue(s.dropPosSQL, d.Tenant, before)
			} else {
				b.Queue(s.deleteThreadSQL, d.Tenant, d.Thread, before)
			}
		}
		if len(tenants) > 0 {
			b.Queue(s.upsertSQL, tenants, ordinals)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: deleting from %s: %w", s.ident, err)
	}
	return nil
}

// Flush does nothing: Write commits before it returns.
func (s *Sink) Flush(ctx context.Context) error { return nil }

// Close closes the connection. Later calls of Positions and Write fail with
// ErrClosed.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}

// Redelivered rows are copied into a temporary table and inserted from
// there, since COPY is the fastest way in and ON CONFLICT needs an INSERT.
// This measured about a third faster than one INSERT of unnest()ed column
// arrays.
const stageTable = "jetsession_bridge_stage"

const createStageSQL = `CREATE TEMP TABLE ` + stageTable + ` (
  tenant text, thread text, ordinal bigint, event_id text, type text,
  time timestamptz, data jsonb, data_raw bytea, meta jsonb, meta_raw json
) ON COMMIT DROP`

var rowColumns = []string{"tenant", "thread", "ordinal", "event_id", "type", "time", "data", "data_raw", "meta", "meta_raw"}

func insertSQL(table string) string {
	cols := strings.Join(rowColumns, ", ")
	return `INSERT INTO ` + table + ` (` + cols + `)
SELECT ` + cols + ` FROM pg_temp.` + stageTable + `
ON CONFLICT (tenant, thread, ordinal) DO NOTHING`
}

func upsertSQL(table string) string {
	return `INSERT INTO ` + table + ` AS p (tenant, ordinal)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (tenant) DO UPDATE SET ordinal = GREATEST(p.ordinal, EXCLUDED.ordinal), updated_at = now()`
}

// columns holds a batch by column, reused from write to write.
type columns struct {
	tenant, thread, id, typ  []string
	ordinal                  []int64
	time                     []time.Time
	data, raw, meta, metaRaw [][]byte

	posTenant  []string
	posOrdinal []int64
}

func (c *columns) fill(rows []bridge.Row, pos bridge.Positions) error {
	for i := range rows {
		r := &rows[i]
		if r.Ordinal > math.MaxInt64 {
			return fmt.Errorf("postgres: row %s/%s: ordinal %d does not fit in bigint", r.Tenant, r.Thread, r.Ordinal)
		}
		meta, metaRaw, err := metaJSON(r.Meta)
		if err != nil {
			return fmt.Errorf("postgres: row %s/%s/%d: encoding metadata: %w", r.Tenant, r.Thread, r.Ordinal, err)
		}
		var data, raw []byte
		switch {
		case len(r.Data) == 0:
		case isJSONB(r.Data):
			data = r.Data
		default:
			raw = r.Data
		}
		c.tenant = append(c.tenant, r.Tenant)
		c.thread = append(c.thread, r.Thread)
		c.ordinal = append(c.ordinal, int64(r.Ordinal))
		c.id = append(c.id, r.ID)
		c.typ = append(c.typ, r.Type)
		c.time = append(c.time, r.Time)
		c.data = append(c.data, data)
		c.raw = append(c.raw, raw)
		c.meta = append(c.meta, meta)
		c.metaRaw = append(c.metaRaw, metaRaw)
	}
	for tenant, ordinal := range pos {
		if ordinal > math.MaxInt64 {
			return fmt.Errorf("postgres: position of tenant %s: ordinal %d does not fit in bigint", tenant, ordinal)
		}
		c.posTenant = append(c.posTenant, tenant)
		c.posOrdinal = append(c.posOrdinal, int64(ordinal))
	}
	return nil
}

// release empties the columns but keeps their capacity, dropping the
// references to payloads so that the caller's memory can be freed.
func (c *columns) release() {
	clear(c.tenant)
	clear(c.thread)
	clear(c.id)
	clear(c.typ)
	clear(c.data)
	clear(c.raw)
	clear(c.meta)
	clear(c.metaRaw)
	clear(c.posTenant)
	c.tenant, c.thread, c.id, c.typ = c.tenant[:0], c.thread[:0], c.id[:0], c.typ[:0]
	c.ordinal, c.time = c.ordinal[:0], c.time[:0]
	c.data, c.raw, c.meta, c.metaRaw = c.data[:0], c.raw[:0], c.meta[:0], c.metaRaw[:0]
	c.posTenant, c.posOrdinal = c.posTenant[:0], c.posOrdinal[:0]
}

// copySource feeds the columns to CopyFrom, which encodes each row before
// asking for the next, so one slice of values serves every row.
type copySource struct {
	c      *columns
	row    int
	values [10]any
}

func (s *copySource) Next() bool {
	s.row++
	return s.row < len(s.c.tenant)
}

func (s *copySource) Values() ([]any, error) {
	c, i := s.c, s.row
	s.values = [10]any{c.tenant[i], c.thread[i], c.ordinal[i], c.id[i], c.typ[i], c.time[i], c.data[i], c.raw[i], c.meta[i], c.metaRaw[i]}
	return s.values[:], nil
}

func (s *copySource) Err() error { return nil }
