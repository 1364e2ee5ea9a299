package jetstream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
)

// ScanTenant yields every live event of every thread of the tenant after
// cursor, in ordinal order, one read batch at a time, then ends. It is the
// bounded-memory way to catch up with a whole tenant before tailing it from
// the last ordinal seen. Unlike LoadSince it does not consult the stream
// leader: on a replicated stream a lagging replica may end the scan early,
// which a tail started from the last ordinal yielded makes up for.
func (l *Log) ScanTenant(ctx context.Context, tenant string, cursor uint64) iter.Seq2[sessionlog.TenantRecord, error] {
	return func(yield func(sessionlog.TenantRecord, error) bool) {
		if err := sessionlog.ValidateTenant(tenant); err != nil {
			yield(sessionlog.TenantRecord{}, err)
			return
		}
		stream := l.cfg.scheme.Stream(tenant)
		filter := l.cfg.scheme.TenantFilter(tenant)
		unavailable := 0
		for cursor < math.MaxUint64 {
			if err := ctx.Err(); err != nil {
				yield(sessionlog.TenantRecord{}, err)
				return
			}
			var recs []sessionlog.TenantRecord
			pending, err := l.directGet(ctx, stream, msgGetRequest{Seq: cursor + 1, NextFor: filter, Batch: l.cfg.readEvents, MaxBytes: l.cfg.readBytes},
				func(m *nats.Msg) error {
					rec, err := l.decodeTenantMsg(tenant, m)
					if err != nil {
						return err
					}
					recs = append(recs, rec)
					return nil
				})
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
				cursor = r.Ordinal
			}
			switch {
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
				if sleepCtx(ctx, time.Duration(unavailable)*10*time.Millisecond) != nil {
					return
				}
				continue
			case err != nil:
				yield(sessionlog.TenantRecord{}, err)
				return
			case pending == 0 || len(recs) == 0:
				return
			}
			unavailable = 0
		}
	}
}

// decodeTenantMsg decodes a direct get reply on a tenant's filter.
func (l *Log) decodeTenantMsg(tenant string, m *nats.Msg) (sessionlog.TenantRecord, error) {
	seq, ok := parseUint(m.Header.Get(headerSequence))
	if !ok {
		return sessionlog.TenantRecord{}, fmt.Errorf("jetstream: direct get reply without a sequence for tenant %q", tenant)
	}
	subject := m.Header.Get(headerSubject)
	_, thread, err := l.cfg.scheme.ParseSubject(subject)
	if err != nil {
		return sessionlog.TenantRecord{}, &sessionlog.CorruptEventError{Key: sessionlog.ThreadKey{Tenant: tenant}, Ordinal: seq, Reason: err.Error()}
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(headerTimeStamp))
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: thread}
	rec, err := decodeEvent(key, subjects.EncodeThread(thread), seq, m.Header, m.Data, ts)
	if err != nil {
		return sessionlog.TenantRecord{}, err
	}
	return sessionlog.TenantRecord{Thread: thread, Record: rec}, nil
}
