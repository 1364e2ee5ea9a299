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

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
)

// Config configures a Bridge. Zero values take the defaults documented on
// each field.
type Config struct {
	// Source is what the bridge follows (a *jetstream.Log, or any Source).
	// Required.
	Source Source
	// Sink receives the rows. Required.
	Sink Sink
	// Quarantine keeps the stored messages that are not valid events, or
	// that the sink refuses (see Quarantined). Without one they are only
	// logged and counted before the bridge moves past them.
	Quarantine Quarantine

	// BatchSize is the most rows handed to the sink at once (default 5,000).
	BatchSize int
	// FlushInterval bounds how long a row waits for its batch to fill
	// (default 200ms).
	FlushInterval time.Duration
	// DiscoverInterval is how often the tenants are listed (default 2s); a
	// TenantWatcher source also triggers a listing at once.
	DiscoverInterval time.Duration
	// CatchUpConcurrency bounds how many tenants read a backlog at once,
	// which bounds memory whatever the backlog (default 4). Tenants take
	// turns, one chunk of CatchUpChunk events at a time, so one tenant's
	// large backlog never holds the others back.
	CatchUpConcurrency int
	// CatchUpChunk is how many events a tenant reads of its backlog before
	// it lets another tenant take its turn (default 4 × 2,000).
	CatchUpChunk int
	// RetryInterval is the first wait before the sink is tried again with
	// the rows of a tenant it refused; it doubles up to MaxRetryInterval
	// (defaults 1s and 1m).
	RetryInterval, MaxRetryInterval time.Duration
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
	if c.CatchUpChunk == 0 {
		c.CatchUpChunk = 8000
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = time.Minute
	}
	c.MaxRetryInterval = max(c.MaxRetryInterval, c.RetryInterval)
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
	if c.Source == nil {
		errs = append(errs, errors.New("a source is required"))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("a sink is required"))
	}
	for name, v := range map[string]int{"batch size": c.BatchSize, "catch-up concurrency": c.CatchUpConcurrency, "catch-up chunk": c.CatchUpChunk} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	for name, v := range map[string]time.Duration{"flush interval": c.FlushInterval, "discover interval": c.DiscoverInterval,
		"retry interval": c.RetryInterval, "max retry interval": c.MaxRetryInterval} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bridge: invalid configuration: %w", err)
	}
	return nil
}

// Bridge follows every tenant of its source and delivers each event to a
// sink at least once, with the tenant's position committed in the sink.
//
// One tenant never holds back another: its backlog is read in turns, its
// messages that are not valid events are quarantined and passed over, and
// when the sink refuses its rows it alone waits and is retried while the
// other tenants flow (see Stuck).
type Bridge struct {
	cfg     Config
	items   chan item
	catchUp chan struct{}

	mu        sync.Mutex
	followed  map[string]bool
	committed Positions             // what the sink has stored, per tenant
	heads     map[string]tenantHead // from the last discovery
	stuck     map[string]*stuckTenant
	// deleted holds, per tenant and per thread ("tenant\x00thread"), the
	// Before of the deletions the sink carried out: rows below it that
	// were still on their way are dropped.
	deleted map[string]uint64
	// deletedTenants are the tenant deletions handed to the sink in this
	// run, so each is handed over once.
	deletedTenants map[string]uint64

	delivered  atomic.Uint64
	sinkOK     atomic.Bool
	rediscover chan struct{}
	logLimit   logLimiter
}

// item is what a follower hands the batcher: a row, a deletion, or (both
// nil) only a position moving past a message that was quarantined.
type item struct {
	tenant   string
	ordinal  uint64
	row      *Row
	deletion *Deletion
}

// New validates cfg and returns a Bridge ready to Run.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	b := &Bridge{
		cfg:      cfg,
		items:    make(chan item, cfg.BatchSize),
		catchUp:  make(chan struct{}, cfg.CatchUpConcurrency),
		followed: make(map[string]bool),
		heads:    make(map[string]tenantHead),
		stuck:    make(map[string]*stuckTenant),
		deleted:  make(map[string]uint64),

		deletedTenants: make(map[string]uint64),
		rediscover:     make(chan struct{}, 1),
		logLimit:       logLimiter{last: make(map[string]time.Time)},
	}
	b.sinkOK.Store(true)
	return b, nil
}

// Delivered returns how many rows the sink has accepted since Run began.
func (b *Bridge) Delivered() uint64 { return b.delivered.Load() }

// Healthy reports whether the source's connection is up and the sink
// accepted the last batch, or part of it: a sink refusing one tenant's
// rows makes that tenant stuck (see Stuck), not the bridge unhealthy.
func (b *Bridge) Healthy() bool {
	if cc, ok := b.cfg.Source.(ConnectionChecker); ok && !cc.Connected() {
		return false
	}
	return b.sinkOK.Load()
}

// StuckTenant is a tenant whose rows the sink refused.
type StuckTenant struct {
	Tenant string
	Since  time.Time
	Err    error
}

// Stuck lists the tenants whose rows the sink refused, by tenant name.
// Their delivery waits and is retried with backoff; every other tenant
// keeps flowing.
func (b *Bridge) Stuck() []StuckTenant {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]StuckTenant, 0, len(b.stuck))
	for t, s := range b.stuck {
		out = append(out, StuckTenant{Tenant: t, Since: s.since, Err: s.err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
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
		c := b.committed[t]
		switch {
		case h.exact != nil && c == h.at:
			out[t] = *h.exact
		case h.lastSeq > c:
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

	if w, ok := b.cfg.Source.(TenantWatcher); ok {
		if stop, err := w.WatchTenants(followCtx, b.wake); err == nil {
			defer stop()
		} else {
			log.Warn("new tenants are found by periodic listing only", "err", err)
		}
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

// tenantHead is what discovery learns of a tenant; exact is set when lag
// was counted after the committed position.
type tenantHead struct {
	lastSeq uint64
	events  uint64
	exact   *uint64
	at      uint64 // the committed position exact was counted after
}

// discoverLoop lists tenants and starts a follower for each new one.
func (b *Bridge) discoverLoop(ctx context.Context, workers *sync.WaitGroup) {
	ticker := time.NewTicker(b.cfg.DiscoverInterval)
	defer ticker.Stop()
	for {
		b.tenantDeletions(ctx)
		tenants, err := b.cfg.Source.Tenants(ctx)
		if err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("listing tenants failed", "err", err)
			b.cfg.Metrics.error("discover")
		}
		for _, t := range tenants {
			b.mu.Lock()
			b.heads[t.Tenant] = tenantHead{lastSeq: t.LastOrdinal, events: t.Events}
			start := !b.followed[t.Tenant]
			b.followed[t.Tenant] = true
			cursor := b.committed[t.Tenant]
			b.mu.Unlock()
			if start {
				b.cfg.Logger.Info("following tenant", "tenant", t.Tenant, "from", cursor)
				workers.Add(1)
				go func() {
					defer workers.Done()
					b.follow(ctx, t.Tenant, cursor)
				}()
			}
		}
		b.countLag(ctx)
		b.cfg.Metrics.observeLag(b.Lag())
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-b.rediscover:
		}
	}
}

// countLag replaces the lag estimate of each tenant that seems to lag by
// the count of its live messages after the committed position, where the
// source can count them.
func (b *Bridge) countLag(ctx context.Context) {
	lc, ok := b.cfg.Source.(LagCounter)
	if !ok {
		return
	}
	for t, n := range b.Lag() {
		if n == 0 {
			continue
		}
		b.mu.Lock()
		at := b.committed[t]
		b.mu.Unlock()
		exact, err := lc.Pending(ctx, t, at)
		if err != nil {
			continue // the estimate stands
		}
		b.mu.Lock()
		if h, ok := b.heads[t]; ok {
			h.exact, h.at = &exact, at
			b.heads[t] = h
		}
		b.mu.Unlock()
	}
}

// follow delivers one tenant's events from cursor: its backlog in chunks,
// taking turns with other tenants, then a live tail. A failure other than a
// bad message restarts it from the last ordinal handed over.
func (b *Bridge) follow(ctx context.Context, tenant string, cursor uint64) {
	log := b.cfg.Logger.With("tenant", tenant)
	wait := time.Second
	for ctx.Err() == nil {
		caughtUp, err := b.catchUpChunk(ctx, tenant, &cursor)
		if err == nil && !caughtUp {
			continue // let another tenant take its turn first
		}
		if err == nil {
			err = b.drain(ctx, tenant, &cursor, b.cfg.Source.TailTenant(ctx, tenant, cursor, sessionlog.IncludeDeletions()), 0)
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, sessionlog.ErrTenantDeleted) {
			// Its record reaches the sink through the tenant deletions;
			// a tenant created again numbers on after cursor.
			log.Info("the tenant was deleted; waiting for it to be created again", "after", cursor)
			err = nil
		}
		if err != nil {
			log.Warn("following tenant failed; retrying", "err", err, "after", cursor, "in", wait)
			b.cfg.Metrics.error("follow")
			if ctxtime.Sleep(ctx, wait) != nil {
				return
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		wait = time.Second
	}
}

// catchUpChunk reads up to one chunk of the tenant's backlog while holding
// a catch-up slot, and reports whether the tenant is caught up.
func (b *Bridge) catchUpChunk(ctx context.Context, tenant string, cursor *uint64) (bool, error) {
	select {
	case b.catchUp <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-b.catchUp }()
	err := b.drain(ctx, tenant, cursor, b.cfg.Source.ScanTenant(ctx, tenant, *cursor, sessionlog.IncludeDeletions()), b.cfg.CatchUpChunk)
	if errors.Is(err, errChunkDone) {
		return false, nil
	}
	return err == nil, err
}

var errChunkDone = errors.New("bridge: catch-up chunk done")

// drain hands what seq yields to the batcher, quarantining what is not a
// valid event, until seq ends, ctx ends, or (limit > 0) limit messages were
// handled (errChunkDone). It moves *cursor to the last ordinal handed over.
func (b *Bridge) drain(ctx context.Context, tenant string, cursor *uint64, seq func(func(sessionlog.TenantRecord, error) bool), limit int) error {
	n := 0
	var failed error
	for rec, err := range seq {
		var ce *sessionlog.CorruptEventError
		switch {
		case errors.As(err, &ce):
			if ce.Ordinal <= *cursor {
				continue
			}
			q := Quarantined{Tenant: tenant, Thread: ce.Key.Thread, Subject: ce.Subject, Ordinal: ce.Ordinal,
				Reason: ce.Reason, Time: ce.Time, Header: ce.Header, Data: ce.Data}
			if !b.quarantine(ctx, q) || !b.send(ctx, item{tenant: tenant, ordinal: ce.Ordinal}) {
				return ctx.Err()
			}
			*cursor = ce.Ordinal
		case err != nil:
			failed = err
		case rec.Ordinal <= *cursor:
			continue // never hand over an ordinal twice
		case rec.Deletion != nil:
			d := &Deletion{Tenant: tenant, Thread: rec.Deletion.Thread, Before: rec.Deletion.Before, Time: rec.Deletion.Time}
			if !b.send(ctx, item{tenant: tenant, ordinal: rec.Ordinal, deletion: d}) {
				return ctx.Err()
			}
			*cursor = rec.Ordinal
		default:
			row := &Row{Tenant: tenant, Thread: rec.Thread, Ordinal: rec.Ordinal, ID: rec.ID, Type: rec.Type,
				Time: rec.Time, Data: rec.Data, Meta: rec.Meta}
			it := item{tenant: tenant, ordinal: rec.Ordinal, row: row}
			if verr := ValidateRow(row); verr != nil {
				it.row = nil
				q := Quarantined{Tenant: tenant, Thread: rec.Thread, Ordinal: rec.Ordinal, Reason: verr.Error(), Time: rec.Time, Data: rec.Data}
				if !b.quarantine(ctx, q) {
					return ctx.Err()
				}
			}
			if !b.send(ctx, it) {
				return ctx.Err()
			}
			*cursor = rec.Ordinal
		}
		if failed != nil {
			return failed
		}
		if n++; limit > 0 && n >= limit {
			return errChunkDone
		}
	}
	return ctx.Err()
}

// tenantDeletions hands the sink each tenant deletion of the source not
// handed over yet in this run. Applying one again after a restart is
// harmless: ordinals are never reused, so a deletion never reaches the
// rows of the tenant's next life.
func (b *Bridge) tenantDeletions(ctx context.Context) {
	src, ok := b.cfg.Source.(TenantDeletionSource)
	if !ok {
		return
	}
	for d, err := range src.TenantDeletions(ctx) {
		if err != nil {
			if ctx.Err() == nil {
				b.cfg.Logger.Warn("reading tenant deletions failed", "err", err)
				b.cfg.Metrics.error("discover")
			}
			return
		}
		b.mu.Lock()
		done := b.deletedTenants[d.Tenant] >= d.Before
		if !done {
			b.deletedTenants[d.Tenant] = d.Before
		}
		b.mu.Unlock()
		if done {
			continue
		}
		b.cfg.Logger.Info("deleting the copies of a deleted tenant", "tenant", d.Tenant, "before", d.Before)
		// Not through send: a stuck tenant's gate must not hold discovery
		// up; the writer keeps the deletion in the tenant's order.
		select {
		case b.items <- item{tenant: d.Tenant, deletion: &Deletion{Tenant: d.Tenant, Before: d.Before, Time: d.Time}}:
		case <-ctx.Done():
			return
		}
	}
}

// quarantine keeps q, retrying until it is durable or ctx ends, and
// reports whether it is. A tenant's position never moves past a message
// that was neither delivered nor kept.
func (b *Bridge) quarantine(ctx context.Context, q Quarantined) bool {
	b.cfg.Metrics.quarantined(q.Tenant)
	if b.logLimit.allow(q.Tenant) {
		b.cfg.Logger.Error("quarantining a message that is not a valid event (more of this tenant are logged at most once a minute)",
			"tenant", q.Tenant, "ordinal", q.Ordinal, "thread", q.Thread, "subject", q.Subject, "reason", q.Reason)
	}
	if b.cfg.Quarantine == nil {
		return true
	}
	wait := b.cfg.RetryInterval
	for {
		err := b.cfg.Quarantine.Put(ctx, q)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		b.cfg.Metrics.error("quarantine")
		b.cfg.Logger.Error("writing to the quarantine failed; retrying", "tenant", q.Tenant, "ordinal", q.Ordinal, "err", err)
		if ctxtime.Sleep(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, b.cfg.MaxRetryInterval)
	}
}

// send hands an item to the batcher, first waiting while its tenant is
// stuck.
func (b *Bridge) send(ctx context.Context, it item) bool {
	for {
		gate := b.gate(it.tenant)
		if gate == nil {
			select {
			case b.items <- it:
				return true
			case <-ctx.Done():
				return false
			}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return false
		}
	}
}

// gate returns a channel closed when the tenant is no longer stuck, or nil
// when it is not.
func (b *Bridge) gate(tenant string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.stuck[tenant]; s != nil {
		return s.released
	}
	return nil
}

// logLimiter lets a message per key through at most once a minute.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if len(l.last) > 10_000 {
		clear(l.last)
	}
	l.last[key] = now
	return true
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
			b.cfg.Logger.Log(ctx, level, "progress", "events_per_s", int(rate), "delivered", delivered, "lag", total,
				"top_lag", topLag(lag, 5), "stuck_tenants", len(b.Stuck()))
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
