package jetstream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
)

// ScanTenant yields every live event of every thread of the tenant after
// cursor, in ordinal order, one read batch at a time, then ends. It is the
// bounded-memory way to catch up with a whole tenant before tailing it from
// the last ordinal seen. Unlike LoadSince it does not consult the stream
// leader: on a replicated stream a lagging replica may end the scan early,
// which a tail started from the last ordinal yielded makes up for.
//
// A stored message that is not a valid event is yielded in its place as a
// *sessionlog.CorruptEventError and the scan goes on; any other error is
// the last element. The scan only moves forward, to ordinals the server
// gave, so whatever the tenant's messages hold it ends.
func (l *Log) ScanTenant(ctx context.Context, tenant string, cursor uint64, opts ...sessionlog.ReadOption) iter.Seq2[sessionlog.TenantRecord, error] {
	o := sessionlog.ResolveReadOptions(opts)
	return func(yield func(sessionlog.TenantRecord, error) bool) {
		if err := sessionlog.ValidateTenant(tenant); err != nil {
			yield(sessionlog.TenantRecord{}, err)
			return
		}
		stream := l.cfg.scheme.Stream(tenant)
		filter := l.cfg.scheme.TenantFilter(tenant)
		emit := func(m *served) bool {
			rec, cerr, skip := l.decodeTenantItem(tenant, m, o.Deletions)
			switch {
			case skip:
				return true
			case cerr != nil:
				return yield(rec, cerr)
			}
			return yield(rec, nil)
		}
		unavailable := 0
		for cursor < math.MaxUint64 {
			if err := ctx.Err(); err != nil {
				yield(sessionlog.TenantRecord{}, err)
				return
			}
			stopped := false
			n := 0
			pending, err := l.directGet(ctx, stream, filter,
				msgGetRequest{Seq: cursor + 1, NextFor: filter, Batch: l.cfg.readEvents, MaxBytes: l.cfg.readBytes},
				func(m *served) error {
					n++
					cursor = m.seq
					if !emit(m) {
						stopped = true
						return errStopped
					}
					return nil
				})
			if stopped {
				return
			}
			switch {
			case errors.Is(err, errUnverified):
				// The next message is not provably the server's as a direct
				// get served it: read it through the leader.
				m, lerr := l.leaderGet(ctx, stream, msgGetRequest{Seq: cursor + 1, NextFor: filter})
				if lerr != nil {
					yield(sessionlog.TenantRecord{}, fmt.Errorf("jetstream: scanning tenant %q through the stream leader: %w", tenant, lerr))
					return
				}
				if m == nil || m.Seq <= cursor {
					return
				}
				cursor = m.Seq
				if !emit(leaderServed(m)) {
					return
				}
				continue
			case errors.Is(err, errDirectUnavailable):
				if _, ok, serr := l.streamState(ctx, stream); serr != nil || !ok {
					if serr != nil {
						yield(sessionlog.TenantRecord{}, serr)
					}
					return // no stream: nothing to scan
				}
				if unavailable++; unavailable > staleRetries {
					yield(sessionlog.TenantRecord{}, fmt.Errorf("jetstream: stream %s serves no direct gets", stream))
					return
				}
				if ctxtime.Sleep(ctx, time.Duration(unavailable)*10*time.Millisecond) != nil {
					return
				}
				continue
			case err != nil:
				yield(sessionlog.TenantRecord{}, err)
				return
			case pending == 0 || n == 0:
				return
			}
			unavailable = 0
		}
	}
}

// errStopped ends a direct get whose caller wants no more.
var errStopped = errors.New("jetstream: read stopped by the caller")
