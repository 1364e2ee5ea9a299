// Package parquet is a bridge sink that stores events as Parquet files,
// partitioned by tenant and date in Hive style so that DuckDB, ClickHouse,
// Spark and similar engines read the folder tree as one table:
//
//	<dir>/tenant_key=<encoded tenant>/date=<YYYY-MM-DD>/part-<UTC time>-<random>.parquet
//	<dir>/_positions.json
//	<dir>/_deletions.jsonl
//
// The partition key is named tenant_key rather than tenant because Hive
// partitioning adds every key as a column, and a tenant key would clash with
// the tenant column inside the files. tenant_key is the tenant encoded by
// subjects.EncodeTenant (injective and safe as a folder name), while the
// tenant column holds the real name. The date is the UTC date of the event
// time. The leading underscores of _positions.json and _deletions.jsonl
// keep readers from taking them for data, and temporary files start with a
// dot and do not end in .parquet, so the globs below never match them.
//
// The columns are described by Record. An example DuckDB query:
//
//	SELECT tenant, type, count(*)
//	FROM read_parquet('out/tenant_key=*/date=*/*.parquet', hive_partitioning=true)
//	GROUP BY ALL;
//
// With hive_partitioning the folder keys become the columns tenant_key and
// date, so filters such as date >= DATE '2025-01-01' or
// tenant_key = 'acme' skip whole folders. DuckDB guesses the type of a
// partition key from its values; add hive_types={'tenant_key': VARCHAR} if
// every tenant key looks like a number.
//
// Delivery is at least once. Rows are buffered in memory and written on
// size and age limits or Flush, and positions are saved only after every
// buffered file is durable, so after a crash the rows after the saved
// positions are delivered again and may appear in two files. Queries that
// must count each event once can deduplicate on (tenant, thread, ordinal):
//
//	SELECT * FROM read_parquet('out/tenant_key=*/date=*/*.parquet', hive_partitioning=true)
//	QUALIFY row_number() OVER (PARTITION BY tenant, thread, ordinal) = 1;
//
// Files once written stay: a deletion (see bridge.Sink.Delete) drops the
// rows it covers from the buffer, so that they are never written, and is
// recorded in _deletions.jsonl, one bridge.Deletion record per line
// (tenant, thread, before, time; thread "" for a whole tenant), fsynced
// before the positions that follow it are saved. Readers leave out the
// rows of the files that a recorded deletion covers:
//
//	SELECT e.* FROM read_parquet('out/tenant_key=*/date=*/*.parquet', hive_partitioning=true) AS e
//	WHERE NOT EXISTS (
//	  SELECT 1 FROM read_json('out/_deletions.jsonl', format='newline_delimited',
//	    columns={'tenant': 'VARCHAR', 'thread': 'VARCHAR', 'before': 'UBIGINT', 'time': 'TIMESTAMPTZ'}) AS d
//	  WHERE d.tenant = e.tenant AND (d.thread = '' OR d.thread = e.thread) AND e.ordinal < d.before);
//
// The deletions file is JSON lines rather than Parquet because deletions
// are few and come one at a time: appending a line and fsyncing it is one
// write, where Parquet would take a whole file (a footer, a folder entry)
// per deletion, which is costly for readers once there are thousands. It
// is also the format of the JSON-lines sink's deletions file, and it is
// created empty by New, so that the query above always finds it.
package parquet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/subjects"
)

// Defaults of the buffer limits.
const (
	DefaultMaxRows  = 100_000
	DefaultMaxBytes = 64 << 20
	DefaultMaxAge   = time.Minute
)

// PositionsFile is the name of the positions file in the output folder.
const PositionsFile = "_positions.json"

// DeletionsFile is the name of the deletions file in the output folder.
const DeletionsFile = "_deletions.jsonl"

// ErrClosed is returned by Write and Flush after Close.
var ErrClosed = errors.New("parquet: sink is closed")

// Record is one row of the Parquet files, and documents their schema:
//
//	column    Parquet type                               meaning
//	tenant    BYTE_ARRAY STRING, dictionary              the tenant
//	thread    BYTE_ARRAY STRING                          the thread
//	ordinal   INT64, delta                               the event's ordinal, its tenant's sequence number
//	event_id  BYTE_ARRAY STRING                          the event ID (idempotency key)
//	type      BYTE_ARRAY STRING, dictionary              the event type
//	time      INT64 TIMESTAMP(MICROS, adjusted to UTC)   the event time
//	data      optional BYTE_ARRAY STRING                 the payload when it is JSON (bridge.IsJSON)
//	data_raw  optional BYTE_ARRAY                        the payload when it is not
//	meta      MAP<STRING, STRING>                        the metadata, empty when none
//
// Time is microseconds since 1970-01-01 UTC: DuckDB reads it as TIMESTAMP
// WITH TIME ZONE, Spark as TIMESTAMP; microseconds rather than nanoseconds
// because every common engine reads them and they span years 1 to 9999, so
// the nanoseconds of event times are truncated. It is an int64 here rather
// than a time.Time because parquet-go reads timestamps into a time.Time
// through nanoseconds, which overflow before 1677 and after 2262. Ordinal is
// signed because Spark and others lack unsigned 64-bit integers.
//
// Parquet strings must be UTF-8, and readers such as DuckDB refuse files
// that break this. Data holds the payload when it is JSON (which implies
// UTF-8), kept byte for byte, and DataRaw holds any other payload, the other
// one being NULL; both are NULL when the event has no payload. Invalid UTF-8
// in the other string columns (which the bridge never delivers) is replaced
// by U+FFFD; the tenant_key folder still encodes the exact tenant.
type Record struct {
	Tenant  string            `parquet:"tenant,dict"`
	Thread  string            `parquet:"thread"`
	Ordinal int64             `parquet:"ordinal,delta"`
	EventID string            `parquet:"event_id"`
	Type    string            `parquet:"type,dict"`
	Time    int64             `parquet:"time,timestamp(microsecond:utc)"`
	Data    *string           `parquet:"data,optional"`
	DataRaw []byte            `parquet:"data_raw,optional"`
	Meta    map[string]string `parquet:"meta"`
}

// Row returns the row a record stores, its time in UTC.
func (r *Record) Row() bridge.Row {
	row := bridge.Row{Tenant: r.Tenant, Thread: r.Thread, Ordinal: uint64(r.Ordinal), ID: r.EventID, Type: r.Type,
		Time: time.UnixMicro(r.Time).UTC(), Data: r.DataRaw, Meta: r.Meta}
	if r.Data != nil {
		row.Data = []byte(*r.Data)
	}
	if len(row.Meta) == 0 {
		row.Meta = nil
	}
	return row
}

// ReadFile returns the rows of one Parquet file the sink wrote.
func ReadFile(path string) ([]bridge.Row, error) {
	recs, err := pq.ReadFile[Record](path)
	if err != nil {
		return nil, fmt.Errorf("parquet: reading %s: %w", path, err)
	}
	rows := make([]bridge.Row, len(recs))
	for i := range recs {
		rows[i] = recs[i].Row()
	}
	return rows, nil
}

// ReadDeletions returns the deletions recorded in dir, the output folder of
// a sink, in the order they were recorded.
func ReadDeletions(dir string) ([]bridge.Deletion, error) {
	ds, err := bridge.ReadDeletionFile(filepath.Join(dir, DeletionsFile))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return ds, nil
}

// ReadDir returns the rows of every data file under dir, the output folder
// of a sink (tenant_key=*/date=*/*.parquet), in the order of the paths, the
// rows of recorded deletions included (see ReadDeletions).
func ReadDir(dir string) ([]bridge.Row, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tenant_key=*", "date=*", "*.parquet"))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	slices.Sort(files)
	var rows []bridge.Row
	for _, f := range files {
		r, err := ReadFile(f)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// Option configures a Sink.
type Option func(*config)

type config struct {
	maxRows  int
	maxBytes int64
	maxAge   time.Duration
}

// WithMaxRows flushes once this many rows are buffered (default 100,000).
func WithMaxRows(n int) Option { return func(c *config) { c.maxRows = n } }

// WithMaxBytes flushes once the buffered rows take about this many bytes of
// memory (default 64 MiB). The estimate counts the rows as held in memory,
// not their size on disk. With the garbage collector's default headroom the
// heap of the process peaks at about two to three times this.
func WithMaxBytes(b int64) Option { return func(c *config) { c.maxBytes = b } }

// WithMaxAge flushes rows at the latest this long after they were buffered
// (default 1 minute).
func WithMaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// Sink writes rows to Parquet files. It is safe for concurrent use.
type Sink struct {
	dir string
	cfg config
	pf  bridge.PositionFile

	// mu guards everything below. It is held while files are written, which
	// serializes flushes: a later flush can then never save its positions
	// before an earlier one's files are durable.
	mu      sync.Mutex
	parts   map[partKey]*partition
	rows    int
	bytes   int64
	oldest  time.Time        // when the oldest buffered row was taken; zero when none
	pending bridge.Positions // saved positions merged with those of every Write
	dirty   bool             // pending differs from the positions file
	dirs    map[string]bool  // partition folders known to exist durably
	dels    *bridge.DeletionFile
	closed  bool

	kick    chan struct{} // wakes the age loop when the buffer stops being empty
	done    chan struct{} // closed by Close to stop the age loop
	stopped chan struct{} // closed when the age loop has returned
}

var _ bridge.Sink = (*Sink)(nil)

// codec is shared because it pools its encoders, which are costly to make.
// It uses the fastest level because compressing is most of a flush, which
// holds up Write; in BenchmarkWrite the files came out no larger than with
// the default level.
var codec = &zstd.Codec{Level: zstd.SpeedFastest}

// partKey identifies a partition by the civil date rather than its string,
// so that buffering a row allocates nothing for its key.
type partKey struct {
	tenant string
	year   int
	month  time.Month
	day    int
}

type partition struct {
	rows  []Record
	bytes int64
}

// Approximate memory of a buffered row beyond the bytes of its strings and
// payload: the Record with the slack of its slice, and a metadata map, which
// takes a whole group of slots even for one entry. They make WithMaxBytes
// bound real memory rather than payload bytes.
const (
	rowOverhead   = 224
	mapOverhead   = 320
	entryOverhead = 32
)

// maxKnownDirs bounds the cache of partition folders known to exist.
const maxKnownDirs = 10_000

// New returns a sink writing under dir, creating the folder if needed and
// loading the positions and deletions recorded there (creating an empty
// deletions file).
func New(dir string, opts ...Option) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("parquet: empty output folder")
	}
	cfg := config{maxRows: DefaultMaxRows, maxBytes: DefaultMaxBytes, maxAge: DefaultMaxAge}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxRows <= 0 {
		return nil, fmt.Errorf("parquet: max rows must be positive, got %d", cfg.maxRows)
	}
	if cfg.maxBytes <= 0 {
		return nil, fmt.Errorf("parquet: max bytes must be positive, got %d", cfg.maxBytes)
	}
	if cfg.maxAge <= 0 {
		return nil, fmt.Errorf("parquet: max age must be positive, got %v", cfg.maxAge)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("parquet: creating output folder: %w", err)
	}
	pf := bridge.PositionFile{Path: filepath.Join(dir, PositionsFile)}
	// The saved positions seed the pending ones, so that a save after this
	// restart keeps the tenants that do not receive rows again.
	saved, err := pf.Load()
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	dels, err := bridge.OpenDeletionFile(filepath.Join(dir, DeletionsFile))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	s := &Sink{
		dir:     dir,
		cfg:     cfg,
		pf:      pf,
		parts:   map[partKey]*partition{},
		pending: saved,
		dirs:    map[string]bool{},
		dels:    dels,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.ageLoop()
	return s, nil
}

// Name returns "parquet".
func (s *Sink) Name() string { return "parquet" }

// Positions returns the positions saved in the output folder.
func (s *Sink) Positions(ctx context.Context) (bridge.Positions, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.pf.Load()
}

// Write buffers rows and remembers pos, flushing when a size limit is
// reached. Rows at or below a position it already has for their tenant
// (buffered or saved) are already held and skipped. An error means that none of the rows were taken, so the caller may
// retry the same batch without duplicating it: when the buffer is already
// full and cannot be flushed, Write refuses the rows, which also keeps
// memory bounded. A flush that fails after the rows were taken is not
// reported here; the rows stay buffered, and the next Write, Flush, Close
// or age flush retries it.
func (s *Sink) Write(ctx context.Context, rows []bridge.Row, pos bridge.Positions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range rows {
		if rows[i].Ordinal > math.MaxInt64 {
			return fmt.Errorf("parquet: ordinal %d of tenant %q does not fit the int64 column", rows[i].Ordinal, rows[i].Tenant)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.full() {
		if err := s.flushLocked(ctx); err != nil {
			return err
		}
	}
	wasEmpty := s.rows == 0
	taken := 0
	for i := range rows {
		r := &rows[i]
		if r.Ordinal <= s.pending[r.Tenant] {
			continue
		}
		taken++
		t := r.Time.UTC()
		y, m, d := t.Date()
		k := partKey{tenant: r.Tenant, year: y, month: m, day: d}
		p := s.parts[k]
		if p == nil {
			p = &partition{}
			s.parts[k] = p
		}
		rec := toRecord(r, t)
		n := recordSize(&rec)
		p.rows = append(p.rows, rec)
		p.bytes += n
		s.bytes += n
	}
	s.rows += taken
	if len(pos) > 0 {
		s.pending = s.pending.Merge(pos)
		s.dirty = true
	}
	if wasEmpty && s.rows > 0 {
		s.oldest = time.Now()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	if s.full() {
		// The rows are taken; a failure is retried later (see above).
		_ = s.flushLocked(ctx)
	}
	return nil
}

// Delete drops the buffered rows the deletions cover, so that they are
// never written, records the deletions not yet recorded in the deletions
// file (fsynced), and remembers pos, saved with the next flush as the
// positions of Write are, a tenant deletion dropping its tenant's position
// when below Before. Rows in files already written stay; readers leave
// them out (see the package documentation). When the deletions cannot be
// recorded, Delete fails and changes no position; its retry records them.
func (s *Sink) Delete(ctx context.Context, ds []bridge.Deletion, pos bridge.Positions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.dropCovered(ds)
	if _, err := s.dels.Record(ds); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	// The rule is idempotent, so a retry after a crash, when the deletions
	// were recorded but the positions not saved, drops them still.
	for i := range ds {
		if d := &ds[i]; d.Thread == "" {
			if o, ok := s.pending[d.Tenant]; ok && o < d.Before {
				delete(s.pending, d.Tenant)
				s.dirty = true
			}
		}
	}
	if len(pos) > 0 {
		s.pending = s.pending.Merge(pos)
		s.dirty = true
	}
	return nil
}

// dropCovered removes from the buffer the rows that a deletion covers.
func (s *Sink) dropCovered(ds []bridge.Deletion) {
	if len(ds) == 0 || s.rows == 0 {
		return
	}
	for k, p := range s.parts {
		kept := p.rows[:0]
		for i := range p.rows {
			rec := &p.rows[i]
			if covered(ds, k.tenant, rec) {
				n := recordSize(rec)
				p.bytes -= n
				s.bytes -= n
				s.rows--
				continue
			}
			kept = append(kept, *rec)
		}
		clear(p.rows[len(kept):]) // drop the references to what was removed
		p.rows = kept
		if len(p.rows) == 0 {
			delete(s.parts, k)
		}
	}
	if s.rows == 0 {
		s.oldest = time.Time{}
	}
}

// covered reports whether a deletion covers a buffered record of tenant
// (the partition's, exact even where the record's column is not).
func covered(ds []bridge.Deletion, tenant string, rec *Record) bool {
	for i := range ds {
		d := &ds[i]
		if d.Tenant == tenant && (d.Thread == "" || d.Thread == rec.Thread) && uint64(rec.Ordinal) < d.Before {
			return true
		}
	}
	return false
}

// Flush writes every buffered partition to its own file, makes the files
// durable, and then saves the positions. If it fails, the partitions
// already written are durable and dropped from the buffer, the others stay
// buffered, and no positions are saved until a later flush succeeds.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.flushLocked(ctx)
}

// Close flushes and stops the age limit. Once the flush is attempted the
// sink is released even if it failed: the positions were then not saved,
// so the rows are delivered again after a restart.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.flushLocked(ctx)
	s.closed = true
	s.parts = nil
	s.mu.Unlock()
	close(s.done)
	<-s.stopped
	return err
}

func (s *Sink) full() bool {
	return s.rows >= s.cfg.maxRows || s.bytes >= s.cfg.maxBytes
}

func (s *Sink) flushLocked(ctx context.Context) error {
	// Sorted for a deterministic order of files and errors.
	keys := make([]partKey, 0, len(s.parts))
	for k := range s.parts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partKey) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), cmp.Compare(a.year, b.year),
			cmp.Compare(a.month, b.month), cmp.Compare(a.day, b.day))
	})
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := s.parts[k]
		if err := s.writePartition(k, p.rows); err != nil {
			return err
		}
		// Durable now, so dropping the rows keeps a retry from writing them
		// twice; positions wait until every partition is durable.
		delete(s.parts, k)
		s.rows -= len(p.rows)
		s.bytes -= p.bytes
	}
	s.oldest = time.Time{}
	if s.dirty {
		if err := s.pf.Save(s.pending); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		s.dirty = false
	}
	return nil
}

// writePartition writes rows to a temporary file in the partition folder,
// fsyncs it, renames it to its final name and fsyncs the folder.
func (s *Sink) writePartition(k partKey, rows []Record) error {
	dir, err := s.partitionDir(k)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".part-*.tmp")
	if err != nil {
		return fmt.Errorf("parquet: creating file: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := pq.NewGenericWriter[Record](tmp, pq.Compression(codec))
	if _, err := w.Write(rows); err != nil {
		return fmt.Errorf("parquet: writing %s: %w", tmp.Name(), err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("parquet: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("parquet: syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("parquet: closing %s: %w", tmp.Name(), err)
	}
	// The UTC time sorts files by when they were written; the random part
	// keeps names unique across flushes in the same nanosecond and restarts.
	name := fmt.Sprintf("part-%s-%016x.parquet", time.Now().UTC().Format("20060102T150405.000000000Z"), rand.Uint64())
	final := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("parquet: renaming %s: %w", tmp.Name(), err)
	}
	committed = true
	if err := bridge.SyncDir(dir); err != nil {
		return fmt.Errorf("parquet: syncing folder %s: %w", dir, err)
	}
	return nil
}

// partitionDir returns the folder of a partition, creating it and its
// tenant folder if needed and fsyncing their parents, so that the entries
// leading to a durable file are durable too.
func (s *Sink) partitionDir(k partKey) (string, error) {
	tenantDir := filepath.Join(s.dir, "tenant_key="+subjects.EncodeTenant(k.tenant))
	dir := filepath.Join(tenantDir, fmt.Sprintf("date=%04d-%02d-%02d", k.year, int(k.month), k.day))
	if s.dirs[dir] {
		return dir, nil
	}
	for _, d := range []string{tenantDir, dir} {
		err := os.Mkdir(d, 0o755)
		if errors.Is(err, os.ErrExist) {
			if fi, serr := os.Stat(d); serr == nil && fi.IsDir() {
				continue
			}
		}
		if err != nil {
			return "", fmt.Errorf("parquet: creating partition folder: %w", err)
		}
		if err := bridge.SyncDir(filepath.Dir(d)); err != nil {
			return "", fmt.Errorf("parquet: syncing folder %s: %w", filepath.Dir(d), err)
		}
	}
	// The cache only saves system calls, so it is cleared rather than left
	// to grow with every tenant and day ever seen.
	if len(s.dirs) >= maxKnownDirs {
		clear(s.dirs)
	}
	s.dirs[dir] = true
	return dir, nil
}

// ageLoop flushes the buffer once its oldest row is maxAge old. After a
// failed flush it waits maxAge before trying again rather than spinning.
func (s *Sink) ageLoop() {
	defer close(s.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var retryAt time.Time
	for {
		s.mu.Lock()
		oldest := s.oldest
		s.mu.Unlock()
		var due <-chan time.Time
		if !oldest.IsZero() {
			wait := max(time.Until(oldest.Add(s.cfg.maxAge)), time.Until(retryAt))
			if wait <= 0 {
				if err := s.flushIfOld(); err != nil {
					retryAt = time.Now().Add(s.cfg.maxAge)
				}
				continue
			}
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-s.done:
			timer.Stop()
			return
		case <-s.kick:
			timer.Stop()
		case <-due:
		}
	}
}

func (s *Sink) flushIfOld() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.oldest.IsZero() || time.Since(s.oldest) < s.cfg.maxAge {
		return nil
	}
	return s.flushLocked(context.Background())
}

// toRecord converts a row. Strings are copied out of the row's byte
// slices, as the caller may reuse them.
func toRecord(r *bridge.Row, t time.Time) Record {
	rec := Record{
		Tenant:  validUTF8(r.Tenant),
		Thread:  validUTF8(r.Thread),
		Ordinal: int64(r.Ordinal),
		EventID: validUTF8(r.ID),
		Type:    validUTF8(r.Type),
		Time:    t.UnixMicro(),
	}
	switch {
	case len(r.Data) == 0:
	case bridge.IsJSON(r.Data):
		d := string(r.Data)
		rec.Data = &d
	default:
		rec.DataRaw = slices.Clone(r.Data)
	}
	if len(r.Meta) > 0 {
		rec.Meta = make(map[string]string, len(r.Meta))
		for k, v := range r.Meta {
			rec.Meta[validUTF8(k)] = validUTF8(v)
		}
	}
	return rec
}

// recordSize estimates the memory of a buffered record, the same when it
// is taken and when a deletion drops it.
func recordSize(rec *Record) int64 {
	n := int64(rowOverhead + len(rec.Tenant) + len(rec.Thread) + len(rec.EventID) + len(rec.Type) + len(rec.DataRaw))
	if rec.Data != nil {
		n += int64(len(*rec.Data))
	}
	if len(rec.Meta) > 0 {
		n += mapOverhead
		for k, v := range rec.Meta {
			n += int64(entryOverhead + len(k) + len(v))
		}
	}
	return n
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
