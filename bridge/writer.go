package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// batch is rows and the positions they reach, per tenant.
type batch struct {
	rows []Row
	pos  Positions
}

func (bt *batch) add(it item) {
	if it.row != nil {
		bt.rows = append(bt.rows, *it.row)
	}
	bt.pos[it.tenant] = max(bt.pos[it.tenant], it.ordinal)
}

// split returns the batch's rows and positions of each tenant, rows in
// order.
func (bt *batch) split() map[string]*batch {
	out := make(map[string]*batch, len(bt.pos))
	for t, p := range bt.pos {
		out[t] = &batch{pos: Positions{t: p}}
	}
	for i := range bt.rows {
		s := out[bt.rows[i].Tenant]
		s.rows = append(s.rows, bt.rows[i])
	}
	return out
}

// stuckTenant holds the rows of a tenant the sink refused, to be retried,
// while its follower waits on released.
type stuckTenant struct {
	pending  batch
	since    time.Time
	err      error
	wait     time.Duration
	next     time.Time
	released chan struct{}
}

// batchLoop collects items into batches until ctx ends, then hands over the
// last partial batch. One writer goroutine hands batches to the sink in
// order while the next batch fills, so reading and writing overlap.
func (b *Bridge) batchLoop(ctx context.Context) error {
	full := make(chan batch, 1)
	writerDone := make(chan error, 1)
	go func() { writerDone <- b.writer(ctx, full) }()

	newBatch := func() batch { return batch{rows: make([]Row, 0, b.cfg.BatchSize), pos: Positions{}} }
	cur := newBatch()
	ticker := time.NewTicker(b.cfg.FlushInterval)
	defer ticker.Stop()
	hand := func() {
		if len(cur.pos) == 0 {
			return
		}
		full <- cur
		cur = newBatch()
	}
	for {
		select {
		case it := <-b.items:
			cur.add(it)
			if len(cur.rows) >= b.cfg.BatchSize || len(cur.pos) >= b.cfg.BatchSize {
				hand()
			}
		case <-ticker.C:
			hand()
		case <-ctx.Done():
			// Hand over what is batched; items still queued are not lost,
			// their positions were never committed.
			hand()
			close(full)
			return <-writerDone
		}
	}
}

// writer hands batches to the sink, one write at a time, and retries the
// rows of stuck tenants when they are due. After ctx ends it writes what
// is left and makes one last attempt for stuck tenants, for up to 30
// seconds.
func (b *Bridge) writer(ctx context.Context, full <-chan batch) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.armRetry(timer)
		select {
		case bt, ok := <-full:
			if !ok {
				return b.finish()
			}
			b.write(ctx, bt)
		case <-timer.C:
			b.retryStuck(ctx, false)
		}
	}
}

// finish writes, after shutdown began, what stuck tenants still hold. What
// cannot be written is not lost: its positions were never committed, so it
// is read again on the next start.
func (b *Bridge) finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.retryStuck(ctx, true)
	stuck := b.Stuck()
	if len(stuck) == 0 {
		return nil
	}
	errs := make([]error, 0, len(stuck))
	for _, s := range stuck {
		errs = append(errs, fmt.Errorf("tenant %q: %w", s.Tenant, s.Err))
	}
	return fmt.Errorf("bridge: the sink refused the rows of %d tenants at shutdown; they are read again on the next start: %w", len(stuck), errors.Join(errs...))
}

// armRetry sets timer for the earliest retry of a stuck tenant.
func (b *Bridge) armRetry(timer *time.Timer) {
	b.mu.Lock()
	var next time.Time
	for _, s := range b.stuck {
		if next.IsZero() || s.next.Before(next) {
			next = s.next
		}
	}
	b.mu.Unlock()
	if !timer.Stop() {
		select {
		case <-timer.C:
		default:
		}
	}
	if next.IsZero() {
		timer.Reset(time.Hour)
		return
	}
	timer.Reset(max(time.Until(next), 0))
}

// write hands one batch to the sink. The rows of tenants that are stuck
// join what they hold, to keep each tenant in order. When the sink refuses
// the batch, each tenant's part is written alone: the parts it takes are
// delivered, the tenants whose parts it refuses become stuck.
func (b *Bridge) write(ctx context.Context, bt batch) {
	b.mu.Lock()
	for t, s := range b.stuck {
		if _, ok := bt.pos[t]; !ok {
			continue
		}
		for i := range bt.rows {
			if bt.rows[i].Tenant == t {
				s.pending.rows = append(s.pending.rows, bt.rows[i])
			}
		}
		s.pending.pos[t] = max(s.pending.pos[t], bt.pos[t])
		delete(bt.pos, t)
	}
	if len(b.stuck) > 0 {
		kept := bt.rows[:0]
		for _, r := range bt.rows {
			if _, ok := bt.pos[r.Tenant]; ok {
				kept = append(kept, r)
			}
		}
		bt.rows = kept
	}
	b.mu.Unlock()
	if len(bt.pos) == 0 {
		return
	}
	err := b.sinkWrite(ctx, bt)
	if err == nil {
		b.sinkOK.Store(true)
		return
	}
	parts := bt.split()
	if len(parts) == 1 {
		for t, p := range parts {
			b.stick(t, p, err)
		}
		b.sinkOK.Store(false)
		return
	}
	anyOK := false
	for t, p := range parts {
		if perr := b.sinkWrite(ctx, *p); perr != nil {
			b.stick(t, p, perr)
			continue
		}
		anyOK = true
	}
	b.sinkOK.Store(anyOK)
}

// sinkWrite writes bt and, when the sink took it, records what is
// delivered and committed.
func (b *Bridge) sinkWrite(ctx context.Context, bt batch) error {
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
	}
	start := time.Now()
	err := b.cfg.Sink.Write(wctx, bt.rows, bt.pos)
	b.cfg.Metrics.observeWrite(b.cfg.Sink.Name(), time.Since(start), err)
	if err != nil {
		return err
	}
	b.delivered.Add(uint64(len(bt.rows)))
	b.cfg.Metrics.delivered(len(bt.rows))
	b.mu.Lock()
	b.committed = b.committed.Merge(bt.pos)
	b.mu.Unlock()
	return nil
}

// stick makes a tenant stuck with the part of a batch the sink refused.
func (b *Bridge) stick(tenant string, part *batch, err error) {
	b.mu.Lock()
	s := b.stuck[tenant]
	if s == nil {
		s = &stuckTenant{pending: batch{pos: Positions{}}, since: time.Now(), wait: b.cfg.RetryInterval, released: make(chan struct{})}
		b.stuck[tenant] = s
	}
	s.pending.rows = append(s.pending.rows, part.rows...)
	s.pending.pos[tenant] = max(s.pending.pos[tenant], part.pos[tenant])
	s.err = err
	s.next = time.Now().Add(s.wait)
	b.mu.Unlock()
	b.cfg.Metrics.stuck(tenant, true)
	b.cfg.Logger.Error("the sink refused a tenant's rows; that tenant waits and is retried, the others go on",
		"tenant", tenant, "rows", len(part.rows), "retry_in", s.wait, "err", err)
}

// retryStuck writes what due stuck tenants hold (all of them when all is
// set): first together, for the common case of a sink that was down for
// everyone, then each alone.
func (b *Bridge) retryStuck(ctx context.Context, all bool) {
	now := time.Now()
	b.mu.Lock()
	due := map[string]*stuckTenant{}
	for t, s := range b.stuck {
		if all || !s.next.After(now) {
			due[t] = s
		}
	}
	b.mu.Unlock()
	if len(due) == 0 {
		return
	}
	together := batch{pos: Positions{}}
	for t, s := range due {
		together.rows = append(together.rows, s.pending.rows...)
		together.pos[t] = s.pending.pos[t]
	}
	if len(due) > 1 {
		if err := b.sinkWrite(ctx, together); err == nil {
			for t := range due {
				b.release(t)
			}
			b.sinkOK.Store(true)
			return
		}
	}
	for t, s := range due {
		err := b.sinkWrite(ctx, s.pending)
		if err == nil {
			b.release(t)
			b.sinkOK.Store(true)
			continue
		}
		b.mu.Lock()
		s.err = err
		s.wait = min(2*s.wait, b.cfg.MaxRetryInterval)
		s.next = time.Now().Add(s.wait)
		b.mu.Unlock()
		b.cfg.Logger.Warn("the sink still refuses a tenant's rows", "tenant", t, "rows", len(s.pending.rows),
			"stuck_since", s.since, "retry_in", s.wait, "err", err)
	}
}

// release ends a tenant's stuck state and lets its follower go on.
func (b *Bridge) release(tenant string) {
	b.mu.Lock()
	s := b.stuck[tenant]
	delete(b.stuck, tenant)
	b.mu.Unlock()
	if s != nil {
		close(s.released)
		b.cfg.Metrics.stuck(tenant, false)
		b.cfg.Logger.Info("the sink takes the tenant's rows again", "tenant", tenant, "stuck_for", time.Since(s.since).Round(time.Millisecond))
	}
}
