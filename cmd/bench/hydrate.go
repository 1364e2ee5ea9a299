package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/internal/pgtest"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// The hydrate scenario reads one long thread from the hot log every way
// there is, interleaved in one run: the library's LoadSince(0), the raw
// JetStream paths a hand-written client could take on the same stored
// bytes, PostgreSQL reading the same events from a table keyed by (tenant,
// thread, ordinal), and two floors that are not the same read (the thread's
// payloads packed into one message, and a PostgreSQL snapshot plus the
// events after it).

// rowKind says what a hydrate row is compared as.
type rowKind int

const (
	// rowLibrary rows are measured: each is compared with every peer.
	rowLibrary rowKind = iota
	// rowRaw rows read the same stored messages by hand; the fastest of
	// them is the goal's reference.
	rowRaw
	// rowPostgres rows read the same events from PostgreSQL.
	rowPostgres
	// rowFloor rows read less or differently packed data: references, not
	// twins.
	rowFloor
)

// hydrateRow is one way of hydrating the thread. read returns the number of
// events it decoded, which must be the thread's (or, for a snapshot row,
// what follows the snapshot, with want set).
type hydrateRow struct {
	name string
	kind rowKind
	want int // events read returns; 0 means the whole thread
	read func(ctx context.Context) (int, error)
	// after, when set, runs after each repetition, untimed (clean-up).
	after func(ctx context.Context) error
	// goalPeer and goal, when set, are the row's goal against the named
	// peer (a library row without one has the fastest raw path's goal);
	// underMs, when set, is a bound in milliseconds on its p50.
	goalPeer string
	goal     *goal
	underMs  float64
}

// Names of the PostgreSQL rows, which variant rows name as their goal's peer.
var (
	postgresSelectRow   = "PostgreSQL SELECT"
	postgresSnapshotRow = fmt.Sprintf("PostgreSQL %d KiB snapshot + %d rows (floor)", hydrateSnapshotBytes>>10, hydrateSnapshotTail)
)

// hydrateSet is the data set every row reads: one thread of perThread
// events among threads threads written in turn.
type hydrateSet struct {
	r         *runner
	t         *target
	tenant    string
	threads   []string
	thread    string
	key       sessionlog.ThreadKey
	stream    string
	subject   string
	perThread int
	ordinals  []uint64 // the thread's ordinals, in order

	orderedRetries int // ordered consumer reads retried after "no responders"
}

// hydrateSnapshotTail is how many events follow the snapshot in the
// snapshot rows, and hydrateSnapshotBytes the snapshot's size.
const (
	hydrateSnapshotTail  = 10
	hydrateSnapshotBytes = 64 << 10
)

func runHydrate(ctx context.Context, r *runner, t *target) (*outcome, error) {
	perThread, threads := r.cfg.hydrateEvents, 100
	if r.cfg.smoke && !r.cfg.hydrateSet {
		perThread, threads = 20, 4
	}
	h := &hydrateSet{r: r, t: t, tenant: "hydrate" + strconv.Itoa(perThread), perThread: perThread,
		threads: threadNames("t", threads)}
	h.thread = h.threads[threads/2]
	h.key = sessionlog.ThreadKey{Tenant: h.tenant, Thread: h.thread}
	h.stream = t.scheme.Stream(h.tenant)
	h.subject = t.scheme.Subject(h.tenant, h.thread)
	out := &outcome{}
	if err := t.log.EnsureTenant(ctx, h.tenant); err != nil {
		return nil, err
	}
	seqs, err := t.fill(ctx, h.tenant, h.threads, perThread, true)
	if err != nil {
		return nil, err
	}
	h.ordinals = seqs[threads/2]

	rows := []hydrateRow{{name: "LoadSince(0)", kind: rowLibrary, read: func(ctx context.Context) (int, error) {
		recs, err := t.log.LoadSince(ctx, h.key, 0)
		return len(recs), err
	}}}
	rows = append(rows, h.rawRows()...)
	floor, err := h.floorRow(ctx)
	if err != nil {
		return nil, err
	}
	rows = append(rows, floor)
	pgRows, pgNote, err := h.postgresRows(ctx, seqs)
	if err != nil {
		return nil, err
	}
	rows = append(rows, pgRows...)
	more, archiveMetrics, err := h.variantRows(ctx)
	if err != nil {
		return nil, err
	}
	rows = append(rows, more...)

	fb, err := h.fallback(ctx)
	if err != nil {
		return nil, err
	}
	// One untimed read of each row first: connections, caches and the
	// library's stream look-up are warm for every row alike.
	for _, row := range rows {
		if _, err := row.read(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", row.name, err)
		}
		if row.after != nil {
			if err := row.after(ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", row.name, err)
			}
		}
	}
	n := r.pairs()
	fastest := map[string]int{}
	gcs := newGCTally(len(rows))
	var perRep []string
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		ops := make([]func() error, len(rows))
		for i, row := range rows {
			want := row.want
			if want == 0 {
				want = perThread
			}
			ops[i] = func() error {
				start := time.Now()
				got, err := row.read(ctx)
				gcs.record(i, time.Since(start))
				if err != nil {
					return fmt.Errorf("%s: %w", row.name, err)
				}
				return countErr(row.name, got, want)
			}
		}
		ds, err := interleave(ctx, n, ops...)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			if row.after != nil {
				if err := row.after(ctx); err != nil {
					return nil, fmt.Errorf("%s: %w", row.name, err)
				}
			}
		}
		ms, name := hydrateMetrics(perThread, rows, ds)
		fastest[name]++
		perRep = append(perRep, repRatios(rows, ds))
		fms, err := fb.measure(ctx, min(n, fallbackReads))
		if err != nil {
			return nil, fmt.Errorf("fallback: %w", err)
		}
		return append(append(ms, fms...), archiveMetrics...), nil
	})
	out.note("thread of %d %d-byte events among %d threads written in turn (%d events in the stream), R%d; %d interleaved rounds of %d reads per repetition",
		perThread, r.cfg.payload, threads, perThread*threads, t.replicas, n, len(rows))
	out.note("fastest raw path by repetition: %v", fastest)
	out.note("p50 ratios by repetition: %s", strings.Join(perRep, " | "))
	out.note("%s", gcs.summary(rows))
	out.note("ordered consumer reads retried after 'no responders': %d", h.orderedRetries)
	out.note("raw paths trust every reply (no header verification, no read-your-writes check); the ordered consumer row creates a consumer per read and deletes them after the repetition, untimed; the 'deletion timed' row deletes its consumer within the read")
	out.note("floors are not the same read: the thread's payloads packed into 512 KiB messages, and a %d KiB snapshot row plus the %d events after it", hydrateSnapshotBytes>>10, hydrateSnapshotTail)
	out.note("%s", pgNote)
	out.note("fallback: a thread of %d events among 100 written in turn in a stream with direct gets turned off, the path of a read whose replicas all lag; %d interleaved pairs per repetition",
		fb.perThread, min(n, fallbackReads))
	return out, err
}

// hydrateMetrics compares each library row with every peer (p50 and p99),
// and with the fastest raw path of the repetition (the goal).
func hydrateMetrics(perThread int, rows []hydrateRow, ds [][]time.Duration) ([]metric, string) {
	fastest := -1
	for i, row := range rows {
		if row.kind == rowRaw && (fastest < 0 || percentile(ds[i], 0.5) < percentile(ds[fastest], 0.5)) {
			fastest = i
		}
	}
	var ms []metric
	for i, lib := range rows {
		if lib.kind != rowLibrary {
			continue
		}
		what := fmt.Sprintf("hydrate %d, %s", perThread, lib.name)
		if lib.underMs > 0 {
			ms = append(ms, metric{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(ds[i], 0.5)),
				Twin: "bound of issue 16", Raw: lib.underMs * 1000, Goal: &goal{"<=", 1}})
		}
		if fastest >= 0 && lib.goalPeer == "" {
			ms = append(ms, metric{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(ds[i], 0.5)),
				Twin: "fastest raw path", Raw: micros(percentile(ds[fastest], 0.5)), Goal: goalTime})
		}
		for j, peer := range rows {
			if peer.kind == rowLibrary {
				continue
			}
			var g *goal
			if peer.name == lib.goalPeer {
				g = lib.goal
			}
			ms = append(ms,
				metric{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(ds[i], 0.5)), Twin: peer.name, Raw: micros(percentile(ds[j], 0.5)), Goal: g},
				metric{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(ds[i], 0.99)), Twin: peer.name, Raw: micros(percentile(ds[j], 0.99))})
		}
	}
	name := ""
	if fastest >= 0 {
		name = rows[fastest].name
	}
	return ms, name
}

// rawRecord is what the raw paths decode of each message: as much as a
// client needs to hand an event on (its ordinal, id, type, time, payload).
type rawRecord struct {
	seq     uint64
	id, typ string
	at      time.Time
	data    []byte
}

func rawDecode(m *nats.Msg, seq uint64) (rawRecord, error) {
	rec := rawRecord{seq: seq, id: m.Header.Get(jetstream.HeaderMsgID), typ: m.Header.Get(jetstream.HeaderType), data: m.Data}
	at, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.HeaderTime))
	rec.at = at
	return rec, err
}

// rawRows are the raw JetStream paths over the library's own stream.
func (h *hydrateSet) rawRows() []hydrateRow {
	t := h.t
	chain := hydrateRow{name: "raw direct-get chain", kind: rowRaw, read: func(ctx context.Context) (int, error) {
		// What the library sends: batched direct gets from the cursor on,
		// chained while the server reports more.
		recs := make([]rawRecord, 0, h.perThread)
		cursor := uint64(0)
		for {
			eob, err := t.rawDirectGet(ctx, h.stream, rawRequest{Seq: cursor + 1, NextFor: h.subject, Batch: 10_000}, func(m *nats.Msg) error {
				seq, err := rawSeq(m)
				if err != nil {
					return err
				}
				rec, err := rawDecode(m, seq)
				recs = append(recs, rec)
				cursor = seq
				return err
			})
			if err != nil {
				return 0, err
			}
			if !eob.found || eob.pending == 0 {
				return len(recs), nil
			}
		}
	}}
	getBatch := hydrateRow{name: "raw GetBatch (orbit.go)", kind: rowRaw, read: func(ctx context.Context) (int, error) {
		msgs, err := jetstreamext.GetBatch(ctx, t.js, h.stream, h.perThread,
			jetstreamext.GetBatchSeq(1), jetstreamext.GetBatchSubject(h.subject))
		if err != nil {
			return 0, err
		}
		recs := make([]rawRecord, 0, h.perThread)
		for m, err := range msgs {
			if err != nil {
				return 0, err
			}
			at, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.HeaderTime))
			recs = append(recs, rawRecord{seq: m.Sequence, id: m.Header.Get(jetstream.HeaderMsgID), typ: m.Header.Get(jetstream.HeaderType), at: at, data: m.Data})
		}
		return len(recs), nil
	}}
	var consumers []string
	ordered := hydrateRow{name: "raw ordered consumer", kind: rowRaw, read: func(ctx context.Context) (int, error) {
		return h.retryNoResponders(ctx, func() (int, error) { return h.orderedRead(ctx, &consumers) })
	}, after: func(ctx context.Context) error {
		// Ordered consumers are ephemeral; delete them rather than leave
		// them to their inactivity threshold.
		for _, name := range consumers {
			if err := t.js.DeleteConsumer(ctx, h.stream, name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
				return err
			}
		}
		consumers = consumers[:0]
		return nil
	}}
	// The same read leaving no server state behind: the consumer's
	// deletion is timed too.
	var last []string
	orderedDeleted := hydrateRow{name: "raw ordered consumer, deletion timed", kind: rowRaw, read: func(ctx context.Context) (int, error) {
		return h.retryNoResponders(ctx, func() (int, error) {
			last = last[:0]
			n, err := h.orderedRead(ctx, &last)
			for _, name := range last {
				if derr := t.js.DeleteConsumer(ctx, h.stream, name); derr != nil && !errors.Is(derr, natsjs.ErrConsumerNotFound) && err == nil {
					err = derr
				}
			}
			return n, err
		})
	}}
	return []hydrateRow{chain, getBatch, ordered, orderedDeleted}
}

// retryNoResponders runs read again, up to 10 times in all, while it fails
// with no responders: on R3 a consumer placed on another node may not have
// its interest there yet (the library's raw twins retry alike).
func (h *hydrateSet) retryNoResponders(ctx context.Context, read func() (int, error)) (int, error) {
	for attempt := 1; ; attempt++ {
		n, err := read()
		if !errors.Is(err, nats.ErrNoResponders) || attempt >= 10 {
			return n, err
		}
		h.orderedRetries++
		if err := ctxtime.Sleep(ctx, time.Duration(attempt)*10*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// orderedRead reads the thread with an ordered consumer, recording its
// name for deletion.
func (h *hydrateSet) orderedRead(ctx context.Context, consumers *[]string) (int, error) {
	c, err := h.t.js.OrderedConsumer(ctx, h.stream, natsjs.OrderedConsumerConfig{FilterSubjects: []string{h.subject}})
	if err != nil {
		return 0, err
	}
	*consumers = append(*consumers, c.CachedInfo().Name)
	recs := make([]rawRecord, 0, h.perThread)
	// A fetch may end early (a pull request lost while the consumer starts
	// on another node, which the ordered consumer recovers from): fetch
	// the rest, within a minute.
	deadline := time.Now().Add(time.Minute)
	for len(recs) < h.perThread && time.Now().Before(deadline) {
		batch, err := c.Fetch(h.perThread-len(recs), natsjs.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return 0, err
			}
			at, _ := time.Parse(time.RFC3339Nano, m.Headers().Get(jetstream.HeaderTime))
			recs = append(recs, rawRecord{seq: md.Sequence.Stream, id: m.Headers().Get(jetstream.HeaderMsgID), typ: m.Headers().Get(jetstream.HeaderType), at: at, data: m.Data()})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, natsjs.ErrNoHeartbeat) {
			return 0, err
		}
	}
	return len(recs), nil
}

// floorRow stores the thread's payloads packed into messages of at most
// 1,000 payloads (512 KB at 512 bytes) in a stream of their own, and reads
// them back with one batched direct get: the floor of a hot-log read.
func (h *hydrateSet) floorRow(ctx context.Context) (hydrateRow, error) {
	t := h.t
	name := t.raw.Stream(h.tenant + "-packed")
	subject := t.raw.Subject(h.tenant, "packed")
	per := h.perThread
	if per > 1000 {
		per = 1000
	}
	payload := len(t.payload)
	_, err := t.js.CreateStream(ctx, natsjs.StreamConfig{Name: name, Subjects: []string{subject}, Storage: natsjs.FileStorage,
		Replicas: t.replicas, AllowDirect: true, MaxMsgSize: int32(per*payload + 4096)})
	if err != nil {
		return hydrateRow{}, fmt.Errorf("creating the packed stream: %w", err)
	}
	for done := 0; done < h.perThread; done += per {
		n := min(per, h.perThread-done)
		buf := make([]byte, 0, n*payload)
		for range n {
			buf = append(buf, t.payload...)
		}
		if _, err := t.js.Publish(ctx, subject, buf); err != nil {
			return hydrateRow{}, fmt.Errorf("publishing the packed thread: %w", err)
		}
	}
	return hydrateRow{name: "raw packed 512 KB messages (floor)", kind: rowFloor, read: func(ctx context.Context) (int, error) {
		got := 0
		_, err := t.rawDirectGet(ctx, name, rawRequest{Seq: 1, NextFor: subject, Batch: 1000}, func(m *nats.Msg) error {
			for off := 0; off+payload <= len(m.Data); off += payload {
				_ = m.Data[off : off+payload]
				got++
			}
			return nil
		})
		return got, err
	}}, nil
}

// postgres starts the run's PostgreSQL on first use. skipped explains why
// there is none; in CI a missing PostgreSQL is an error, as in the tests.
func (r *runner) postgres() (dsn, skipped string, err error) {
	if !r.pgTried {
		r.pgTried = true
		r.pg, r.pgErr = pgtest.Run()
	}
	switch {
	case r.pgErr == nil:
		return r.pg.DSN(), "", nil
	case pgtest.Missing(r.pgErr) && os.Getenv("CI") == "":
		return "", r.pgErr.Error(), nil
	case pgtest.Missing(r.pgErr):
		return "", "", fmt.Errorf("PostgreSQL is required in CI (install the Debian postgresql package): %w", r.pgErr)
	default:
		return "", "", fmt.Errorf("starting PostgreSQL: %w", r.pgErr)
	}
}

// postgresRows load the same events into PostgreSQL, keyed by (tenant,
// thread, ordinal) with the JetStream ordinals, and read them back.
func (h *hydrateSet) postgresRows(ctx context.Context, seqs [][]uint64) ([]hydrateRow, string, error) {
	dsn, skipped, err := h.r.postgres()
	if err != nil {
		return nil, "", err
	}
	if dsn == "" {
		fmt.Fprintf(h.r.stderr, "bench: hydrate: PostgreSQL peer SKIPPED: %s\n", skipped)
		return nil, "PostgreSQL peer SKIPPED (no lib/PostgreSQL ratios): " + skipped, nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, "", fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	h.r.cleanups = append(h.r.cleanups, func() { conn.Close(context.Background()) })
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return nil, "", err
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS events (tenant text, thread text, ordinal bigint, id text NOT NULL, type text NOT NULL,
			at timestamptz NOT NULL, payload bytea NOT NULL, PRIMARY KEY (tenant, thread, ordinal))`,
		`CREATE TABLE IF NOT EXISTS snapshots (tenant text, thread text, ordinal bigint NOT NULL, state bytea NOT NULL,
			PRIMARY KEY (tenant, thread))`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, "", err
		}
	}
	// Rows go in in the order JetStream stored them: interleaved threads.
	now := time.Now().UTC()
	byOrdinal := make([][]any, 0, h.perThread*len(h.threads))
	for e := range h.perThread {
		for i, th := range h.threads {
			byOrdinal = append(byOrdinal, []any{h.tenant, th, int64(seqs[i][e]), jetstream.MsgID(th, "f"+strconv.Itoa(e)), "tool_result", now, h.t.payload})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"tenant", "thread", "ordinal", "id", "type", "at", "payload"},
		pgx.CopyFromRows(byOrdinal)); err != nil {
		return nil, "", fmt.Errorf("loading PostgreSQL: %w", err)
	}
	tail := min(hydrateSnapshotTail, h.perThread)
	var snapAt uint64 // the ordinal the snapshot was taken at: tail events follow it
	if h.perThread > tail {
		snapAt = h.ordinals[h.perThread-tail-1]
	}
	if _, err := conn.Exec(ctx, `INSERT INTO snapshots VALUES ($1, $2, $3, $4)`, h.tenant, h.thread, int64(snapAt), make([]byte, hydrateSnapshotBytes)); err != nil {
		return nil, "", err
	}
	if _, err := conn.Exec(ctx, `ANALYZE events; ANALYZE snapshots`); err != nil {
		return nil, "", err
	}
	scan := func(rows pgx.Rows) (int, error) {
		defer rows.Close()
		recs := make([]rawRecord, 0, h.perThread)
		for rows.Next() {
			var rec rawRecord
			var ord int64
			if err := rows.Scan(&ord, &rec.id, &rec.typ, &rec.at, &rec.data); err != nil {
				return 0, err
			}
			rec.seq = uint64(ord)
			recs = append(recs, rec)
		}
		return len(recs), rows.Err()
	}
	const selectEvents = `SELECT ordinal, id, type, at, payload FROM events WHERE tenant = $1 AND thread = $2 AND ordinal > $3 ORDER BY ordinal`
	events := hydrateRow{name: postgresSelectRow, kind: rowPostgres, read: func(ctx context.Context) (int, error) {
		rows, err := conn.Query(ctx, selectEvents, h.tenant, h.thread, 0)
		if err != nil {
			return 0, err
		}
		return scan(rows)
	}}
	snapshot := hydrateRow{name: postgresSnapshotRow, kind: rowFloor, want: tail,
		read: func(ctx context.Context) (int, error) {
			// One round trip: the snapshot, and the events after its ordinal.
			b := &pgx.Batch{}
			var state []byte
			var at int64
			b.Queue(`SELECT ordinal, state FROM snapshots WHERE tenant = $1 AND thread = $2`, h.tenant, h.thread).
				QueryRow(func(row pgx.Row) error { return row.Scan(&at, &state) })
			var got int
			b.Queue(`SELECT ordinal, id, type, at, payload FROM events WHERE tenant = $1 AND thread = $2
				AND ordinal > (SELECT ordinal FROM snapshots WHERE tenant = $1 AND thread = $2) ORDER BY ordinal`, h.tenant, h.thread).
				Query(func(rows pgx.Rows) error {
					n, err := scan(rows)
					got = n
					return err
				})
			if err := conn.SendBatch(ctx, b).Close(); err != nil {
				return 0, err
			}
			if len(state) != hydrateSnapshotBytes {
				return 0, fmt.Errorf("snapshot of %d bytes, want %d", len(state), hydrateSnapshotBytes)
			}
			return got, nil
		}}
	return []hydrateRow{events, snapshot}, fmt.Sprintf("PostgreSQL %s (throwaway cluster from internal/pgtest, fsync off) over TCP loopback, pgx, the same %d rows in a table keyed by (tenant, thread, ordinal)",
		version, h.perThread*len(h.threads)), nil
}

// fallbackEvents is the thread length of the fallback measurement (among
// 100 threads written in turn), and fallbackReads its reads per repetition.
const (
	fallbackEvents = 200
	fallbackReads  = 3
)

// fallbackSet is a tenant whose stream serves no direct gets: every read
// takes the path of a read whose replicas all lag, through the stream
// leader's message get.
type fallbackSet struct {
	t         *target
	key       sessionlog.ThreadKey
	stream    string
	subject   string
	perThread int
}

func (h *hydrateSet) fallback(ctx context.Context) (*fallbackSet, error) {
	perThread, threads := fallbackEvents, 100
	if h.r.cfg.smoke {
		perThread, threads = 5, 4
	}
	t := h.t
	f := &fallbackSet{t: t, perThread: perThread}
	tenant := "hydratelag"
	names := threadNames("t", threads)
	f.key = sessionlog.ThreadKey{Tenant: tenant, Thread: names[threads/2]}
	f.stream = t.scheme.Stream(tenant)
	f.subject = t.scheme.Subject(tenant, f.key.Thread)
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	if _, err := t.fill(ctx, tenant, names, perThread, false); err != nil {
		return nil, err
	}
	s, err := t.js.Stream(ctx, f.stream)
	if err != nil {
		return nil, err
	}
	cfg := s.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := t.js.UpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("turning direct gets off: %w", err)
	}
	return f, nil
}

// measure reads the thread with LoadSince and with a raw chain of leader
// message gets (one event a request: the fastest raw read without direct
// gets that leaves no server state), interleaved.
func (f *fallbackSet) measure(ctx context.Context, n int) ([]metric, error) {
	t := f.t
	ds, err := interleave(ctx, n,
		func() error {
			recs, err := t.log.LoadSince(ctx, f.key, 0)
			if err != nil {
				return err
			}
			return countErr("LoadSince", len(recs), f.perThread)
		},
		func() error {
			got := 0
			for cursor := uint64(0); ; {
				body, err := json.Marshal(rawRequest{Seq: cursor + 1, NextFor: f.subject})
				if err != nil {
					return err
				}
				msg, err := t.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+f.stream, body)
				if err != nil {
					return err
				}
				var resp struct {
					Message *struct {
						Seq  uint64 `json:"seq"`
						Data []byte `json:"data"`
					} `json:"message"`
					Error *struct {
						Code int `json:"err_code"`
					} `json:"error"`
				}
				if err := json.Unmarshal(msg.Data, &resp); err != nil {
					return err
				}
				if resp.Error != nil || resp.Message == nil {
					break // no message found: the end of the thread
				}
				cursor = resp.Message.Seq
				got++
			}
			return countErr("leader message gets", got, f.perThread)
		})
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("fallback: no replica serves direct gets, load %d events", f.perThread)
	twin := "raw leader STREAM.MSG.GET chain"
	return []metric{
		{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: twin, Raw: micros(percentile(ds[1], 0.5))},
		{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.99)), Twin: twin, Raw: micros(percentile(ds[1], 0.99))},
	}, nil
}

// gcTally splits each row's reads by whether a garbage collection ended
// since the previous read ended. With servers in this process a collection
// also frees the file store's block caches (weak pointers), so the next
// read of a large stream reloads its blocks: which row a collection falls
// before moves its median.
type gcTally struct {
	sample  []metrics.Sample
	lastEnd uint64
	after   [][]time.Duration
	clean   [][]time.Duration
}

func newGCTally(rows int) *gcTally {
	g := &gcTally{sample: []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}},
		after: make([][]time.Duration, rows), clean: make([][]time.Duration, rows)}
	g.lastEnd = g.cycles()
	return g
}

func (g *gcTally) cycles() uint64 {
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return g.sample[0].Value.Uint64()
}

func (g *gcTally) record(row int, d time.Duration) {
	now := g.cycles()
	if now != g.lastEnd {
		g.after[row] = append(g.after[row], d)
	} else {
		g.clean[row] = append(g.clean[row], d)
	}
	g.lastEnd = now
}

func (g *gcTally) summary(rows []hydrateRow) string {
	var b strings.Builder
	b.WriteString("reads with a garbage collection since the previous read (count, p50) vs without:")
	for i, row := range rows {
		fmt.Fprintf(&b, " %s %d/%d %s vs %s;", row.name, len(g.after[i]), len(g.after[i])+len(g.clean[i]),
			formatValue(micros(percentile(g.after[i], 0.5)), unitMicros), formatValue(micros(percentile(g.clean[i], 0.5)), unitMicros))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// repRatios is one repetition's p50 ratios of the first library row to the
// fastest raw path and to PostgreSQL, for the spread between repetitions.
func repRatios(rows []hydrateRow, ds [][]time.Duration) string {
	lib, raw, pg := -1, time.Duration(0), time.Duration(0)
	for i, row := range rows {
		p := percentile(ds[i], 0.5)
		switch {
		case row.kind == rowLibrary && lib < 0:
			lib = i
		case row.kind == rowRaw && (raw == 0 || p < raw):
			raw = p
		case row.kind == rowPostgres && pg == 0:
			pg = p
		}
	}
	if lib < 0 || raw == 0 {
		return "-"
	}
	l := percentile(ds[lib], 0.5)
	out := fmt.Sprintf("lib/raw-fastest %.2f", float64(l)/float64(raw))
	if pg > 0 {
		out += fmt.Sprintf(", lib/PG %.2f, raw-fastest/PG %.2f", float64(l)/float64(pg), float64(raw)/float64(pg))
	}
	return out
}
