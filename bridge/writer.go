package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// batch is rows and the positions they reach, per tenant; or one or more
// deletions and the positions they reach.
type batch struct {
	rows      []Row
	deletions []Deletion
	pos       Positions
}

func (bt *batch) add(it item) {
	if it.row != nil {
		bt.rows = append(bt.rows, *it.row)
	}
	if it.ordinal > 0 {
		bt.pos[it.tenant] = max(bt.pos[it.tenant], it.ordinal)
	}
}

func (bt *batch) empty() bool { return len(bt.rows) == 0 && len(bt.deletions) == 0 && len(bt.pos) == 0 }

// tenants returns every tenant the batch touches.
func (bt *batch) tenants() map[string]bool {
	out := make(map[string]bool, len(bt.pos))
	for t := range bt.pos {
		out[t] = true
	}
	for i := range bt.rows {
		out[bt.rows[i].Tenant] = true
	}
	for _, d := range bt.deletions {
		out[d.Tenant] = true
	}
	return out
}

// take removes from bt, and returns, the part of one tenant.
func (bt *batch) take(tenant string) batch {
	part := batch{pos: Positions{}}
	if p, ok := bt.pos[tenant]; ok {
		part.pos[tenant] = p
		delete(bt.pos, tenant)
	}
	kept := bt.rows[:0]
	for _, r := range bt.rows {
		if r.Tenant == tenant {
			part.rows = append(part.rows, r)
		} else {
			kept = append(kept, r)
		}
	}
	bt.rows = kept
	keptD := bt.deletions[:0]
	for _, d := range bt.deletions {
		if d.Tenant == tenant {
			part.deletions = append(part.deletions, d)
		} else {
			keptD = append(keptD, d)
		}
	}
	bt.deletions = keptD
	return part
}

// stuckTenant holds what of a tenant the sink refused, in order, to be
// retried, while its follower waits on released.
type stuckTenant struct {
	pending  []batch
	since    time.Time
	err      error
	wait     time.Duration
	next     time.Time
	released chan struct{}
}

// batchLoop collects items into batches until ctx ends, then hands over the
// last partial batch. One writer goroutine hands batches to the sink in
// order while the next batch fills, so reading and writing overlap. A
// deletion is a batch of its own, after the rows before it.
func (b *Bridge) batchLoop(ctx context.Context) error {
	full := make(chan batch, 1)
	writerDone := make(chan error, 1)
	go func() { writerDone <- b.writer(ctx, full) }()

	newBatch := func() batch { return batch{rows: make([]Row, 0, b.cfg.BatchSize), pos: Positions{}} }
	cur := newBatch()
	ticker := time.NewTicker(b.cfg.FlushInterval)
	defer ticker.Stop()
	hand := func() {
		if cur.empty() {
			return
		}
		full <- cur
		cur = newBatch()
	}
	for {
		select {
		case it := <-b.items:
			if it.deletion != nil {
				hand()
				d := batch{deletions: []Deletion{*it.deletion}, pos: Positions{}}
				if it.ordinal > 0 {
					d.pos[it.tenant] = it.ordinal
				}
				full <- d
				continue
			}
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

// writer hands batches to the sink, one write at a time, and retries what
// stuck tenants hold when it is due. After ctx ends it writes what is left
// and makes one last attempt for stuck tenants, for up to 30 seconds.
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

// write hands one batch to the sink. What belongs to stuck tenants joins
// what they hold, to keep each tenant in order. When the sink refuses the
// batch, each tenant's part is written alone: the parts it takes are
// delivered, the tenants whose parts it refuses become stuck.
func (b *Bridge) write(ctx context.Context, bt batch) {
	b.mu.Lock()
	for t, s := range b.stuck {
		if part := bt.take(t); !part.empty() {
			s.pending = append(s.pending, part)
		}
	}
	b.mu.Unlock()
	b.dropDeleted(&bt)
	if bt.empty() {
		return
	}
	err := b.apply(ctx, bt)
	if err == nil {
		b.sinkOK.Store(true)
		return
	}
	tenants := bt.tenants()
	if len(tenants) == 1 {
		for t := range tenants {
			b.stick(t, bt, err)
		}
		b.sinkOK.Store(false)
		return
	}
	anyOK := false
	for t := range tenants {
		part := bt.take(t)
		if perr := b.apply(ctx, part); perr != nil {
			b.stick(t, part, perr)
			continue
		}
		anyOK = true
	}
	b.sinkOK.Store(anyOK)
}

// dropDeleted removes rows the sink already deleted (they were on their
// way when the deletion was carried out).
func (b *Bridge) dropDeleted(bt *batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.deleted) == 0 {
		return
	}
	kept := bt.rows[:0]
	for _, r := range bt.rows {
		if r.Ordinal < b.deleted[r.Tenant] || r.Ordinal < b.deleted[r.Tenant+"\x00"+r.Thread] {
			continue
		}
		kept = append(kept, r)
	}
	bt.rows = kept
}

// apply writes a batch's rows, or carries out its deletions, and records
// what is delivered and committed.
func (b *Bridge) apply(ctx context.Context, bt batch) error {
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
	}
	start := time.Now()
	var err error
	if len(bt.deletions) > 0 {
		err = b.cfg.Sink.Delete(wctx, bt.deletions, bt.pos)
	} else {
		err = b.cfg.Sink.Write(wctx, bt.rows, bt.pos)
	}
	b.cfg.Metrics.observeWrite(b.cfg.Sink.Name(), time.Since(start), err)
	if err != nil {
		return err
	}
	b.delivered.Add(uint64(len(bt.rows)))
	b.cfg.Metrics.delivered(len(bt.rows))
	b.mu.Lock()
	b.committed = b.committed.Merge(bt.pos)
	for _, d := range bt.deletions {
		k := d.Tenant
		if d.Thread != "" {
			k += "\x00" + d.Thread
		} else {
			delete(b.committed, d.Tenant)
		}
		b.deleted[k] = max(b.deleted[k], d.Before)
	}
	b.mu.Unlock()
	for _, d := range bt.deletions {
		b.cfg.Logger.Info("the sink deleted its copies", "tenant", d.Tenant, "thread", d.Thread, "before", d.Before)
	}
	return nil
}

// stick makes a tenant stuck with the part of a batch the sink refused.
func (b *Bridge) stick(tenant string, part batch, err error) {
	b.mu.Lock()
	s := b.stuck[tenant]
	if s == nil {
		s = &stuckTenant{since: time.Now(), wait: b.cfg.RetryInterval, released: make(chan struct{})}
		b.stuck[tenant] = s
	}
	s.pending = append(s.pending, part)
	s.err = err
	s.next = time.Now().Add(s.wait)
	b.mu.Unlock()
	b.cfg.Metrics.stuck(tenant, true)
	b.cfg.Logger.Error("the sink refused a tenant's rows; that tenant waits and is retried, the others go on",
		"tenant", tenant, "rows", len(part.rows), "retry_in", s.wait, "err", err)
}

// retryStuck writes what due stuck tenants hold (all of them when all is
// set): when they hold only rows, first together, for the common case of a
// sink that was down for everyone, then each tenant alone, in order.
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
	if len(due) > 1 {
		together := batch{pos: Positions{}}
		rowsOnly := true
		for _, s := range due {
			for _, p := range s.pending {
				rowsOnly = rowsOnly && len(p.deletions) == 0
				together.rows = append(together.rows, p.rows...)
				for t, o := range p.pos {
					together.pos[t] = max(together.pos[t], o)
				}
			}
		}
		if rowsOnly {
			b.dropDeleted(&together)
			if err := b.apply(ctx, together); err == nil {
				for t := range due {
					b.release(t)
				}
				b.sinkOK.Store(true)
				return
			}
		}
	}
	for t, s := range due {
		err := b.drainPending(ctx, s)
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
		b.cfg.Logger.Warn("the sink still refuses a tenant's rows", "tenant", t, "parts", len(s.pending),
			"stuck_since", s.since, "retry_in", s.wait, "err", err)
	}
}

// drainPending applies what a stuck tenant holds, in order, until the sink
// refuses a part.
func (b *Bridge) drainPending(ctx context.Context, s *stuckTenant) error {
	for {
		b.mu.Lock()
		if len(s.pending) == 0 {
			b.mu.Unlock()
			return nil
		}
		part := s.pending[0]
		b.mu.Unlock()
		b.dropDeleted(&part)
		if !part.empty() {
			if err := b.apply(ctx, part); err != nil {
				return err
			}
		}
		b.mu.Lock()
		s.pending = s.pending[1:]
		b.mu.Unlock()
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
