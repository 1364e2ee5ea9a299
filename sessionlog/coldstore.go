package sessionlog

import (
	"context"
	"errors"
	"iter"
)

// ColdStore keeps the cold tier of a log: archived events, packed into
// compressed per-thread segments (see ColdTier). It is a small blob store
// scoped by tenant, so that each backend maps a tenant onto its own
// bucket, folder or key prefix and a tenant is deleted in one call.
//
// Names are chosen by the ColdTier: non-empty, printable ASCII without
// spaces or backslashes, at most a few hundred bytes, and using '/' only
// as a separator between non-empty parts (they never begin or end with
// it). Tenants are valid tenant names (ValidateTenant); stores encode them
// injectively, so that distinct tenants never share objects.
//
// Implementations are safe for concurrent use. The conformance suite in
// package sessionlog/coldstoretest states the rules; every store passes
// it.
type ColdStore interface {
	// Put stores data under name, replacing what was there. Once it
	// returns, Get and List see the object. A Put that fails may leave the
	// object absent or whole, never partial.
	Put(ctx context.Context, tenant, name string, data []byte) error
	// Get returns the object's data, or an error matching ErrNotFound
	// (errors.Is) when there is none.
	Get(ctx context.Context, tenant, name string) ([]byte, error)
	// List yields the names of the tenant's objects that begin with
	// prefix, in byte order. An unknown tenant yields nothing. An error
	// is the last element.
	List(ctx context.Context, tenant, prefix string) iter.Seq2[string, error]
	// Delete removes the object; removing a missing one is not an error.
	Delete(ctx context.Context, tenant, name string) error
	// DeleteTenant removes every object of the tenant; an unknown tenant
	// is not an error. A tenant written to again afterwards starts empty.
	DeleteTenant(ctx context.Context, tenant string) error
}

// ErrNotFound is returned (wrapped) by ColdStore.Get for a name that holds
// no object.
var ErrNotFound = errors.New("sessionlog: cold object not found")

// ObjectLimiter is implemented by a ColdStore that cannot keep objects
// larger than MaxObjectBytes (0: no limit), such as one message per
// object; a ColdTier bounds its segments to fit.
type ObjectLimiter interface {
	MaxObjectBytes() int
}
