package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// State is where a tenant is in its life.
type State string

const (
	// StateCreating: the account may exist, its stream may not yet; an
	// interrupted Create finishes when called again.
	StateCreating State = "creating"
	// StateActive: every role may connect.
	StateActive State = "active"
	// StateSuspended: agents and archivers may not connect (those
	// connected were disconnected); readers and the provisioner may.
	StateSuspended State = "suspended"
	// StateDeleting: the stream is being deleted; an interrupted Delete
	// finishes when called again.
	StateDeleting State = "deleting"
	// StateDeleted: the account and the stream are gone; the record stays,
	// with the tenant's last ordinal, for a tenant created again to number
	// on after it.
	StateDeleted State = "deleted"
)

// live reports whether the tenant has an account its users may use.
func (s State) live() bool { return s == StateActive || s == StateSuspended }

// Record is one tenant in the registry.
type Record struct {
	Tenant string `json:"tenant"`
	// Account is the public key of the tenant's account. A tenant created
	// again after its deletion gets a new account, so credentials of its
	// former life never work again.
	Account string `json:"account,omitempty"`
	State   State  `json:"state"`
	Limits  Limits `json:"limits"`
	// Created is when this account was created; Updated when the record
	// last changed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Readers maps each reader's user public key (Keys.Readers) to its user
	// JWT in the tenant's account: with its own seed a reader signs in to
	// every tenant it finds here. A JWT without its seed grants nothing.
	Readers map[string]string `json:"readers,omitempty"`
	// Revoked holds the user public keys whose credentials were revoked
	// (Provisioner.Revoke), with when, in Unix seconds.
	Revoked map[string]int64 `json:"revoked,omitempty"`
	// LastOrdinal is the last ordinal of a deleted tenant.
	LastOrdinal uint64 `json:"last_ordinal,omitempty"`

	// Revision is the record's revision in the registry; it is not
	// stored.
	Revision uint64 `json:"-"`
}

// Live reports whether the tenant has an account: active or suspended.
func (r Record) Live() bool { return r.State.live() }

// decodeRecord reads a registry entry, checking that it is the record of
// the tenant its key names.
func decodeRecord(key string, value []byte, revision uint64) (Record, error) {
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return r, fmt.Errorf("provision: registry entry %q: %w", key, err)
	}
	if err := sessionlog.ValidateTenant(r.Tenant); err != nil || subjects.EncodeTenant(r.Tenant) != key {
		return r, fmt.Errorf("provision: registry entry %q names tenant %q", key, r.Tenant)
	}
	if r.Account != "" && !nkeys.IsValidPublicAccountKey(r.Account) {
		return r, fmt.Errorf("provision: registry entry %q: account %q is not an account key", key, r.Account)
	}
	r.Revision = revision
	return r, nil
}

// Registry reads the tenant registry of the operations account. It is safe
// for concurrent use.
type Registry struct {
	kv     natsjs.KeyValue
	scheme subjects.Scheme
}

// OpenRegistry opens the registry through nc, a connection to the
// operations account (a reader's or the provisioner's); the bucket must
// exist (the provisioner makes it).
func OpenRegistry(ctx context.Context, nc *nats.Conn, scheme subjects.Scheme) (*Registry, error) {
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	kv, err := js.KeyValue(ctx, RegistryBucket(scheme))
	if errors.Is(err, natsjs.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: the registry bucket %s does not exist (no tenant was ever created)", ErrTenantNotFound, RegistryBucket(scheme))
	}
	if err != nil {
		return nil, fmt.Errorf("provision: opening the registry %s: %w", RegistryBucket(scheme), err)
	}
	return &Registry{kv: kv, scheme: scheme}, nil
}

// Get returns the tenant's record; ok is false when the registry has
// none.
func (r *Registry) Get(ctx context.Context, tenant string) (rec Record, ok bool, err error) {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return rec, false, err
	}
	key := subjects.EncodeTenant(tenant)
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("provision: reading the record of tenant %q: %w", tenant, err)
	}
	rec, err = decodeRecord(key, e.Value(), e.Revision())
	return rec, err == nil, err
}

// List returns every record, deleted tenants' included, in no particular
// order: one consumer reads the registry's last values.
func (r *Registry) List(ctx context.Context) ([]Record, error) {
	var out []Record
	var bad []error
	err := r.watch(ctx, func(rec Record, err error) {
		if err != nil {
			bad = append(bad, err)
		} else {
			out = append(out, rec)
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, errors.Join(bad...)
}

// Watch calls changed with every record as it is now, then with each
// record as it changes, until ctx ends or stop is called; it returns once
// the current records were handed over. An entry that is not a valid
// record is passed over. changed is called from one goroutine at a time.
func (r *Registry) Watch(ctx context.Context, changed func(Record)) (stop func(), err error) {
	wctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		failed <- r.watch(wctx, func(rec Record, err error) {
			if err == nil {
				changed(rec)
			}
		}, func() { close(ready) })
	}()
	select {
	case <-ready:
		return cancel, nil
	case err := <-failed:
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
}

// watch hands each registry entry to each. Without ready it returns once
// the registry's current values were handed over; with it, it calls ready
// then and goes on until ctx ends (nil) or the watch fails.
func (r *Registry) watch(ctx context.Context, each func(Record, error), ready func()) error {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("provision: watching the registry: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			if ready == nil {
				return ctx.Err()
			}
			return nil
		case e, ok := <-w.Updates():
			switch {
			case !ok && ctx.Err() != nil && ready != nil:
				return nil
			case !ok:
				return errors.New("provision: the registry watch ended")
			case e == nil: // the current values were all delivered
				if ready == nil {
					return nil
				}
				ready()
			case e.Operation() == natsjs.KeyValuePut:
				rec, err := decodeRecord(e.Key(), e.Value(), e.Revision())
				each(rec, err)
			}
		}
	}
}
