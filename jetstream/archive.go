package jetstream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/jetsession/jetsession/sessionlog"
)

// ArchiveBefore implements sessionlog.Log.
//
// Without a cold store it is one purge of the thread's subject below
// watermark+1, returning the count the server reports purged. A purge acts
// on the events that exist when it runs, so it removes exactly those with
// ordinal <= min(watermark, head), and a watermark past the head never
// reaches events appended later.
//
// With a cold store (WithColdStore) it first writes the thread's events
// after its last archived ordinal, up to the watermark, to the cold tier
// as segments, then purges the subject up to the last ordinal written (see
// sessionlog.ColdTier.Archive): a crash in between leaves the events in
// both tiers, which reads through the tier yield once, and calling
// ArchiveBefore again purges them.
//
// An unknown tenant or thread archives nothing and creates nothing.
func (l *Log) ArchiveBefore(ctx context.Context, key sessionlog.ThreadKey, watermark uint64) (int, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if watermark == 0 {
		return 0, nil
	}
	if l.cold != nil {
		return l.cold.Archive(ctx, key, watermark, hotThread{l})
	}
	return hotThread{l}.Purge(ctx, key, watermark)
}

// hotThread lends a Log's tenant streams to its cold tier.
type hotThread struct{ l *Log }

// ScanStored implements sessionlog.HotThread, reading like Scan.
func (h hotThread) ScanStored(ctx context.Context, key sessionlog.ThreadKey, after uint64) iter.Seq2[sessionlog.ColdRecord, error] {
	return func(yield func(sessionlog.ColdRecord, error) bool) {
		var inner error
		err := h.l.readTimes(ctx, key, after, true, func(c *chunk) bool {
			if len(c.stored) != len(c.recs) {
				inner = fmt.Errorf("jetstream: archiving %s: a read lost the store times of its records", key.Thread)
				return false
			}
			i, j := 0, 0
			for i < len(c.recs) || j < len(c.corrupt) {
				if j == len(c.corrupt) || i < len(c.recs) && c.recs[i].Ordinal < c.corrupt[j].Ordinal {
					if !yield(sessionlog.ColdRecord{Record: c.recs[i], Stored: c.stored[i]}, nil) {
						return false
					}
					i++
					continue
				}
				ce := c.corrupt[j]
				if !yield(sessionlog.ColdRecord{Record: sessionlog.Record{Ordinal: ce.Ordinal}, Stored: ce.Time, Corrupt: ce}, nil) {
					return false
				}
				j++
			}
			return true
		})
		if err = errors.Join(err, inner); err != nil {
			yield(sessionlog.ColdRecord{}, err)
		}
	}
}

// Purge implements sessionlog.HotThread with one purge of the thread's
// subject.
func (h hotThread) Purge(ctx context.Context, key sessionlog.ThreadKey, through uint64) (int, error) {
	stream := h.l.cfg.scheme.Stream(key.Tenant)
	subject := h.l.cfg.scheme.Subject(key.Tenant, key.Thread)
	var below uint64 // 0 purges the whole subject: the largest watermark
	if through < math.MaxUint64 {
		below = through + 1
	}
	purged, err := h.l.purge(ctx, stream, subject, below)
	if errCode(err) == codeStreamNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: archiving %s: %w", subject, err)
	}
	return int(purged), nil
}
