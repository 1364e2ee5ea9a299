package sessionlog

import (
	"context"
	"iter"
	"time"
)

// ThreadInfo describes one thread of a tenant, as a listing reports it.
type ThreadInfo struct {
	Thread string
	// Events is how many live messages the thread holds (counting any
	// that are not valid events).
	Events uint64
	// FirstOrdinal is the ordinal of the oldest live message. Listings
	// report it only when asked (WithFirstOrdinals): on JetStream it costs
	// one more request per thread. Otherwise it is 0.
	FirstOrdinal uint64
	// LastOrdinal is the ordinal of the newest live message.
	LastOrdinal uint64
	// LastTime and LastType describe the newest live event; when the
	// newest message is not a valid event, LastType is empty and LastTime
	// is when the log stored it.
	LastTime time.Time
	LastType string
}

// ThreadLister lists the threads of a tenant.
type ThreadLister interface {
	// Threads yields the tenant's threads that hold live messages,
	// ordered by thread name (byte order), or most recently active first
	// with ByRecentActivity, in pages it fetches as the caller iterates, so
	// that a tenant with very many threads is listed without holding their
	// descriptions all at once. A listing resumes after the last thread a
	// caller saw with ThreadsAfter (by name) or ActiveBefore (by recent
	// activity). An unknown tenant yields nothing; an invalid one yields
	// ErrInvalidKey.
	Threads(ctx context.Context, tenant string, opts ...ThreadsOption) iter.Seq2[ThreadInfo, error]
}

// ThreadsOption changes a listing.
type ThreadsOption func(*ThreadsOptions)

// ThreadsOptions is the resolved form of a list of ThreadsOption.
type ThreadsOptions struct {
	// After lists only threads whose names sort after it (name order).
	After string
	// Recent orders threads by their last ordinal, newest first.
	Recent bool
	// Before lists only threads whose last ordinal is below it (recent
	// order); 0 means no bound.
	Before uint64
	// Limit stops the listing after that many threads; 0 means no limit.
	Limit int
	// First asks for FirstOrdinal.
	First bool
}

// ThreadsAfter resumes a listing by name after thread.
func ThreadsAfter(thread string) ThreadsOption { return func(o *ThreadsOptions) { o.After = thread } }

// ByRecentActivity orders a listing by last ordinal, newest first.
func ByRecentActivity() ThreadsOption { return func(o *ThreadsOptions) { o.Recent = true } }

// ActiveBefore resumes a listing by recent activity: only threads whose
// last ordinal is below ordinal (the last one the caller saw). It implies
// ByRecentActivity.
func ActiveBefore(ordinal uint64) ThreadsOption {
	return func(o *ThreadsOptions) { o.Recent, o.Before = true, ordinal }
}

// ThreadsLimit stops a listing after n threads.
func ThreadsLimit(n int) ThreadsOption { return func(o *ThreadsOptions) { o.Limit = n } }

// WithFirstOrdinals makes a listing report each thread's FirstOrdinal.
func WithFirstOrdinals() ThreadsOption { return func(o *ThreadsOptions) { o.First = true } }

// ResolveThreadsOptions applies opts in order.
func ResolveThreadsOptions(opts []ThreadsOption) ThreadsOptions {
	var o ThreadsOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// Deleter deletes threads and tenants. Deleting is not archiving: it is
// the end of a thread's or a tenant's data everywhere the project put it
// (the bridge deletes the analytics copies too), and callers need rights
// that agents usually lack.
//
// Ordinals are never reused after a deletion. A deleted thread may be
// appended to again: the new events get ordinals above every ordinal the
// tenant ever used, and an append stating ExpectLast of an ordinal from
// before the deletion fails with ErrConflict, so writers that must not
// bring a deleted thread back state the last ordinal they read.
type Deleter interface {
	// DeleteThread removes every live event of the thread appended before
	// it is called (events appended concurrently may survive, as events
	// of the thread's next life) and returns how many it removed. An
	// unknown thread removes nothing and returns 0.
	DeleteThread(ctx context.Context, key ThreadKey) (deleted int, err error)
	// DeleteTenant removes the tenant and every event in it. Tails of the
	// tenant end with ErrTenantDeleted. A later append creates the tenant
	// again, where stream creation is allowed, with ordinals above every
	// ordinal it had. An unknown tenant is not an error.
	DeleteTenant(ctx context.Context, tenant string) error
}

// Deletion records that a thread (or, with Thread empty, a whole tenant)
// was deleted: every event of it with an ordinal below Before is gone.
// Tenant reads yield it in the tenant's order only with IncludeDeletions,
// for consumers such as the bridge that keep copies; Before is also the
// deletion's own ordinal for a thread deletion.
type Deletion struct {
	Tenant string
	Thread string
	Before uint64
	Time   time.Time
}

// ReadOption changes a read: of a thread (LoadSince, Scan) or of a tenant
// (ScanTenant, TailTenant). Each option says which reads it applies to;
// the others ignore it.
type ReadOption func(*ReadOptions)

// ReadOptions is the resolved form of a list of ReadOption.
type ReadOptions struct {
	// Deletions makes the read yield thread deletions, in their place, as
	// TenantRecords with Deletion set.
	Deletions bool
	// Archived makes a thread read go through the cold tier.
	Archived bool
}

// IncludeDeletions makes a tenant read yield the tenant's thread
// deletions in their place, as TenantRecords whose Deletion is set (and
// whose Record holds only the deletion's ordinal). Without it deletions
// are never shown.
func IncludeDeletions() ReadOption { return func(o *ReadOptions) { o.Deletions = true } }

// IncludeArchived makes a thread read (LoadSince, Scan) return the
// thread's archived events from the log's cold tier, then its hot events,
// as one sequence in ordinal order with the guarantees of a hot read: no
// gap and no duplicate, even while an archive runs, and read-your-writes.
// On a log without a cold tier (or a thread archived before it had one,
// whose archived events were dropped) it reads the hot log alone. Tenant
// reads ignore it.
func IncludeArchived() ReadOption { return func(o *ReadOptions) { o.Archived = true } }

// ResolveReadOptions applies opts in order.
func ResolveReadOptions(opts []ReadOption) ReadOptions {
	var o ReadOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}
