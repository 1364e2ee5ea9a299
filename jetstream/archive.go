package jetstream

import (
	"context"
	"fmt"
	"math"

	"github.com/jetsession/jetsession/sessionlog"
)

// ArchiveBefore implements sessionlog.Log with one purge of the thread's
// subject below watermark+1, and returns the count the server reports
// purged. A purge acts on the events that exist when it runs, so it removes
// exactly those with ordinal <= min(watermark, head), and a watermark past
// the head never reaches events appended later. An unknown tenant or thread
// archives nothing and creates nothing.
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
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	var below uint64 // 0 purges the whole subject: the largest watermark
	if watermark < math.MaxUint64 {
		below = watermark + 1
	}
	purged, err := l.purge(ctx, stream, subject, below)
	if errCode(err) == codeStreamNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: archiving %s: %w", subject, err)
	}
	return int(purged), nil
}
