package jetstream

import (
	"context"
	"fmt"

	"github.com/jetsession/jetsession/sessionlog"
)

// ArchiveBefore implements sessionlog.Log with a purge of the thread's
// subject up to min(watermark, head), the head read from the stream leader
// first so that a watermark past the head never reaches events appended
// while the call runs. It returns the count the server reports purged.
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
	head, err := l.lastOrdinal(ctx, stream, subject)
	if err != nil {
		return 0, fmt.Errorf("jetstream: archiving %s: %w", subject, err)
	}
	if head == 0 {
		return 0, nil
	}
	// The purge removes sequences strictly below its bound.
	purged, err := l.purge(ctx, stream, subject, min(watermark, head)+1)
	if err != nil {
		return 0, fmt.Errorf("jetstream: archiving %s: %w", subject, err)
	}
	return int(purged), nil
}
