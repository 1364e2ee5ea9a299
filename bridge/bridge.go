package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
)

// Config configures a Bridge. Zero values take the defaults documented on
// each field.
type Config struct {
	// Conn is the NATS connection; Log a jetstream.Log on it (its scheme
	// names the tenant streams to follow). Both are required.
	Conn *nats.Conn
	Log  *jetstream.Log
	// Sink receives the rows. Required.
	Sink Sink

	// BatchSize is the most rows handed to the sink at once (default 5,000).
	BatchSize int
	// FlushInterval bounds how long a row waits for its batch to fill
	// (default 200ms).
	FlushInterval time.Duration
	// DiscoverInterval is how often the tenant streams are listed (default
	// 2s); stream creation advisories also trigger a listing at once.
	DiscoverInterval time.Duration
	// CatchUpConcurrency bounds how many tenants catch up on a backlog at
	// once, which bounds memory whatever the backlog (default 4).
	CatchUpConcurrency int
	// ProgressInterval is how often a progress line is logged while there
	// is a backlog (default 5s; negative disables it).
	ProgressInterval time.Duration
	// Logger receives the bridge's logs (default slog.Default()).
	Logger *slog.Logger
	// Metrics, when set, is updated as the bridge runs.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 5000
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 200 * time.Millisecond
	}
	if c.DiscoverInterval == 0 {
		c.DiscoverInterval = 2 * time.Second
	}
	if c.CatchUpConcurrency == 0 {
		c.CatchUpConcurrency = 4
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports configuration that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("a NATS connection is required"))
	}
	if c.Log == nil {
		errs = append(errs, errors.New("a jetstream.Log is required"))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("a sink is required"))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size must be positive, got %d", c.BatchSize))
	}
	if c.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("flush interval must be positive, got %v", c.FlushInterval))
	}
	if c.DiscoverInterval < 0 {
		errs = append(errs, fmt.Errorf("discover interval must be positive, got %v", c.DiscoverInterval))
	}
	if c.CatchUpConcurrency < 0 {
		errs = append(errs, fmt.Errorf("catch-up concurrency must be positive, got %d", c.CatchUpConcurrency))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bridge: invalid configuration: %w", err)
	}
	return nil
}

// Bridge follows every tenant stream and delivers its events to a sink.
type Bridge struct {
	cfg     Config
	rows    chan Row
	catchUp chan struct{}

	mu        sync.Mutex
	followed  map[string]bool
	committed Positions             // what the sink has been handed, per tenant
	heads     map[string]streamHead // from the last discovery

	delivered  atomic.Uint64
	healthy    atomic.Bool
	rediscover chan struct{}
}

// New validates cfg and returns a Bridge ready to Run.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	b := &Bridge{
		cfg:        cfg,
		rows:       make(chan Row, cfg.BatchSize),
		catchUp:    make(chan struct{}, cfg.CatchUpConcurrency),
		followed:   make(map[string]bool),
		heads:      make(map[string]streamHead),
		rediscover: make(chan struct{}, 1),
	}
	b.healthy.Store(true)
	return b, nil
}

// Delivered returns how many rows the sink has accepted since Run began.
func (b *Bridge) Delivered() uint64 { return b.delivered.Load() }

// Healthy reports whether the NATS connection is up and the sink's last
// write succeeded.
func (b *Bridge) Healthy() bool {
	return b.healthy.Load() && b.cfg.Conn.IsConnected()
}

// Lag returns, per tenant, about how many events its stream holds that the
// sink was not handed yet, as of the last discovery (an upper bound: the
// sequence distance, capped by the stream's live event count).
func (b *Bridge) Lag() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.heads))
	for t, h := range b.heads {
		out[t] = 0
		if c := b.committed[t]; h.lastSeq > c {
			out[t] = min(h.lastSeq-c, h.events)
		}
	}
	return out
}

// Run follows the tenants until ctx ends, then hands the sink what it has
// batched, flushes it and returns. It does not close the sink.
func (b *Bridge) Run(ctx context.Context) error {
	log := b.cfg.Logger
	pos, err := b.cfg.Sink.Positions(ctx)
	if err != nil {
		return fmt.Errorf("bridge: reading the sink's positions: %w", err)
	}
	b.committed = pos
	log.Info("bridge starting", "sink", b.cfg.Sink.Name(), "tenants_with_positions", len(pos))

	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	var workers sync.WaitGroup

	if sub, err := b.cfg.Conn.Subscribe("$JS.EVENT.ADVISORY.STREAM.CREATED.>", func(*nats.Msg) { b.wake() }); err == nil {
		defer sub.Unsubscribe()
	} else {
		log.Warn("no stream creation advisories; new tenants are found by periodic listing only", "err", err)
	}

	workers.Add(1)
	go func() {
		defer workers.Done()
		b.discoverLoop(followCtx, &workers)
	}()
	if b.cfg.ProgressInterval > 0 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			b.progressLoop(followCtx)
		}()
	}

	werr := b.batchLoop(ctx)
	stopFollowing()
	workers.Wait()

	flushCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.cfg.Sink.Flush(flushCtx); err != nil {
		return errors.Join(werr, fmt.Errorf("bridge: flushing the sink: %w", err))
	}
	log.Info("bridge stopped", "delivered", b.Delivered())
	return werr
}

func (b *Bridge) wake() {
	select {
	case b.rediscover <- struct{}{}:
	default:
	}
}

// discoverLoop lists tenant streams and starts a follower for each new one.
func (b *Bridge) discoverLoop(ctx context.Context, workers *sync.WaitGroup) {
	ticker := time.NewTicker(b.cfg.DiscoverInterval)
	defer ticker.Stop()
	for {
		streams, err := b.listStreams(ctx)
		if err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("listing tenant streams failed", "err", err)
			b.cfg.Metrics.error("discover")
		}
		for _, s := range streams {
			b.mu.Lock()
			b.heads[s.tenant] = s
			start := !b.followed[s.tenant]
			b.followed[s.tenant] = true
			cursor := b.committed[s.tenant]
			b.mu.Unlock()
			if start {
				b.cfg.Logger.Info("following tenant", "tenant", s.tenant, "from", cursor)
				workers.Add(1)
				go func() {
					defer workers.Done()
					b.follow(ctx, s.tenant, cursor)
				}()
			}
		}
		b.cfg.Metrics.observeLag(b.Lag())
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-b.rediscover:
		}
	}
}

// follow delivers one tenant's events from cursor: a bounded scan while
// there is a backlog, then a live tail. A corrupt event is logged with its
// ordinal, counted, and passed over, so that one bad message cannot stop a
// tenant's delivery.
func (b *Bridge) follow(ctx context.Context, tenant string, cursor uint64) {
	log := b.cfg.Logger.With("tenant", tenant)
	for ctx.Err() == nil {
		// Catch up holding a slot, so memory stays bounded.
		select {
		case b.catchUp <- struct{}{}:
		case <-ctx.Done():
			return
		}
		var err error
		for rec, serr := range b.cfg.Log.ScanTenant(ctx, tenant, cursor) {
			if serr != nil {
				err = serr
				break
			}
			if !b.send(ctx, tenant, rec) {
				break
			}
			cursor = rec.Ordinal
		}
		<-b.catchUp
		if err == nil && ctx.Err() == nil {
			for rec, terr := range b.cfg.Log.TailTenant(ctx, tenant, cursor) {
				if terr != nil {
					err = terr
					break
				}
				if !b.send(ctx, tenant, rec) {
					break
				}
				cursor = rec.Ordinal
			}
		}
		if ctx.Err() != nil {
			return
		}
		var corrupt *sessionlog.CorruptEventError
		switch {
		case errors.As(err, &corrupt):
			log.Error("skipping an event that cannot be decoded", "ordinal", corrupt.Ordinal, "thread", corrupt.Key.Thread, "reason", corrupt.Reason)
			b.cfg.Metrics.error("corrupt_event")
			cursor = max(cursor, corrupt.Ordinal)
		case err != nil:
			log.Warn("following tenant failed; retrying", "err", err)
			b.cfg.Metrics.error("follow")
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (b *Bridge) send(ctx context.Context, tenant string, rec sessionlog.TenantRecord) bool {
	row := Row{Tenant: tenant, Thread: rec.Thread, Ordinal: rec.Ordinal, ID: rec.ID, Type: rec.Type, Time: rec.Time, Data: rec.Data, Meta: rec.Meta}
	select {
	case b.rows <- row:
		return true
	case <-ctx.Done():
		return false
	}
}

type batch struct {
	rows []Row
	pos  Positions
}

// batchLoop collects rows into batches until ctx ends, then hands over the
// last partial batch. One writer goroutine hands batches to the sink in
// order while the next batch fills, so reading and writing overlap.
func (b *Bridge) batchLoop(ctx context.Context) error {
	full := make(chan batch, 1)
	writeErr := make(chan error, 1)
	go func() {
		defer close(writeErr)
		for bt := range full {
			if err := b.write(ctx, bt); err != nil {
				writeErr <- err
				for range full { // let the collector finish
				}
				return
			}
		}
	}()
	cur := batch{rows: make([]Row, 0, b.cfg.BatchSize), pos: Positions{}}
	ticker := time.NewTicker(b.cfg.FlushInterval)
	defer ticker.Stop()
	hand := func() bool {
		if len(cur.rows) == 0 {
			return true
		}
		select {
		case full <- cur:
		case err := <-writeErr:
			writeErr <- err
			return false
		}
		cur = batch{rows: make([]Row, 0, b.cfg.BatchSize), pos: Positions{}}
		return true
	}
	var ok = true
	for ok {
		select {
		case row := <-b.rows:
			cur.rows = append(cur.rows, row)
			cur.pos[row.Tenant] = row.Ordinal
			if len(cur.rows) >= b.cfg.BatchSize {
				ok = hand()
			}
		case <-ticker.C:
			ok = hand()
		case <-ctx.Done():
			// Hand over what is batched; rows still queued are not lost,
			// their positions were never committed.
			hand()
			ok = false
		case err := <-writeErr:
			writeErr <- err
			ok = false
		}
	}
	close(full)
	return <-writeErr
}

// write hands one batch to the sink, retrying failures until ctx ends;
// after ctx ends it still tries for up to 30 seconds, so that a shutdown
// delivers what was batched.
func (b *Bridge) write(ctx context.Context, bt batch) error {
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
	}
	for {
		start := time.Now()
		err := b.cfg.Sink.Write(wctx, bt.rows, bt.pos)
		b.cfg.Metrics.observeWrite(b.cfg.Sink.Name(), time.Since(start), err)
		if err == nil {
			break
		}
		b.healthy.Store(false)
		if ctx.Err() != nil && wctx == ctx {
			// Shutting down mid-write: one last bounded attempt.
			return b.write(ctx, bt)
		}
		if wctx.Err() != nil {
			return fmt.Errorf("bridge: writing %d rows to %s: %w", len(bt.rows), b.cfg.Sink.Name(), err)
		}
		b.cfg.Logger.Error("sink write failed; retrying", "sink", b.cfg.Sink.Name(), "rows", len(bt.rows), "err", err)
		select {
		case <-wctx.Done():
		case <-time.After(time.Second):
		}
	}
	b.healthy.Store(true)
	b.delivered.Add(uint64(len(bt.rows)))
	b.cfg.Metrics.delivered(len(bt.rows))
	b.mu.Lock()
	b.committed = b.committed.Merge(bt.pos)
	b.mu.Unlock()
	return nil
}

// progressLoop logs throughput and lag while there is a backlog.
func (b *Bridge) progressLoop(ctx context.Context) {
	ticker := time.NewTicker(b.cfg.ProgressInterval)
	defer ticker.Stop()
	last, lastAt := b.Delivered(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			delivered := b.Delivered()
			rate := float64(delivered-last) / now.Sub(lastAt).Seconds()
			last, lastAt = delivered, now
			lag := b.Lag()
			var total uint64
			for _, n := range lag {
				total += n
			}
			level := slog.LevelInfo
			if total == 0 {
				level = slog.LevelDebug // caught up: no need to report at info
			}
			b.cfg.Logger.Log(ctx, level, "progress", "events_per_s", int(rate), "delivered", delivered, "lag", total, "top_lag", topLag(lag, 5))
		}
	}
}

func topLag(lag map[string]uint64, n int) string {
	type tl struct {
		tenant string
		lag    uint64
	}
	var all []tl
	for t, l := range lag {
		if l > 0 {
			all = append(all, tl{t, l})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lag > all[j].lag })
	var parts []string
	for i := 0; i < len(all) && i < n; i++ {
		parts = append(parts, fmt.Sprintf("%s=%d", all[i].tenant, all[i].lag))
	}
	return strings.Join(parts, ",")
}
