package bridge

import (
	"context"
	"iter"

	"github.com/jetsession/jetsession/sessionlog"
)

// Source is what the bridge follows: every tenant of a deployment. It
// lists tenants with their heads, scans a tenant's backlog in bounded
// chunks and tails it live. *jetstream.Log and *sessionlog.Memory satisfy
// it. Everything a Source yields is treated as untrusted: records are
// checked again before they reach a sink.
type Source interface {
	sessionlog.TenantReader
	TailTenant(ctx context.Context, tenant string, cursor uint64, opts ...sessionlog.ReadOption) iter.Seq2[sessionlog.TenantRecord, error]
}

// TenantWatcher is implemented by sources that can announce new tenants
// (JetStream's stream-creation advisories), so that the bridge follows them
// at once instead of at its next listing.
type TenantWatcher interface {
	WatchTenants(ctx context.Context, changed func()) (stop func(), err error)
}

// TenantDeletionSource is implemented by sources that record tenant
// deletions (the last of each tenant): the bridge deletes its copies of a
// deleted tenant's rows. Thread deletions come in order with the rows
// (sessionlog.IncludeDeletions).
type TenantDeletionSource interface {
	TenantDeletions(ctx context.Context) iter.Seq2[sessionlog.Deletion, error]
}

// LagCounter is implemented by sources that count a tenant's live
// messages after an ordinal: the bridge's lag is then exact, instead of an
// upper bound that stays above zero when events were archived before the
// bridge read them.
type LagCounter interface {
	Pending(ctx context.Context, tenant string, after uint64) (uint64, error)
}

// ConnectionChecker is implemented by sources that depend on a connection;
// the bridge reports itself unhealthy while it is down.
type ConnectionChecker interface {
	Connected() bool
}
