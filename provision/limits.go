package provision

import (
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
)

// Limits bound what one tenant's account may use of the server. The
// server enforces each: past a limit it refuses the connection, the
// subscription, the message, the stream or the consumer, and that tenant
// alone is refused.
type Limits struct {
	// StorageBytes caps the tenant's stream on disk (the account's
	// JetStream disk storage, and the stream's own quota, so that a full
	// tenant gets sessionlog.ErrQuotaExceeded). On a single server it is
	// a reservation: the storage limits of all accounts must fit the
	// server's jetstream max_file_store, used or not.
	StorageBytes int64 `json:"storage_bytes"`
	// Consumers caps the consumers of the account: one per live tail
	// (agents', the bridge's, the operator's).
	Consumers int64 `json:"consumers"`
	// Connections caps the tenant's connections at once (agents and
	// archivers). The account allows ServiceConnections more, for the
	// bridge's reader and the provisioner's passing connection; a tenant
	// that takes those too stops only its own analytics and storage
	// changes, until it lets go of them (Suspend closes its connections).
	Connections int64 `json:"connections"`
	// Subscriptions caps each connection's subscriptions at once (the
	// server counts them per connection): one for its replies, one per
	// tail and per read in flight. An account holds at most
	// (Connections+ServiceConnections) × Subscriptions.
	Subscriptions int64 `json:"subscriptions"`
	// PayloadBytes caps one message (events plus headers).
	PayloadBytes int64 `json:"payload_bytes"`
}

// SnapshotBytes is the room the account keeps beside StorageBytes for the
// tenant's snapshot stream (sessionlog.Snapshotter): a sixteenth of the
// storage, at least 1 MiB (two of the largest snapshots) and at most
// 64 MiB. A full snapshot stream refuses saves; it never drops another
// thread's snapshot.
func (l Limits) SnapshotBytes() int64 {
	return max(1<<20, min(l.StorageBytes/16, 64<<20))
}

// AccountStorage is the account's JetStream disk storage: the tenant's
// stream quota plus its snapshot stream's.
func (l Limits) AccountStorage() int64 { return l.StorageBytes + l.SnapshotBytes() }

// ServiceConnections is how many connections a tenant's account allows
// beyond Limits.Connections: the bridge's and the provisioner's.
const ServiceConnections = 2

// DefaultLimits are the limits of a tenant created without any: 1 GiB of
// storage, 100 consumers, 50 connections, 1,000 subscriptions, 1 MiB
// messages (the library's default maximum event fits).
func DefaultLimits() Limits {
	return Limits{
		StorageBytes:  1 << 30,
		Consumers:     100,
		Connections:   50,
		Subscriptions: 1000,
		PayloadBytes:  1 << 20,
	}
}

// Validate reports limits that cannot work. There is no "unlimited": an
// account per tenant exists to bound each. The bridge needs a consumer,
// and a connection a few subscriptions (its replies, a tail, a read).
func (l Limits) Validate() error {
	var errs []error
	check := func(name string, v, least int64) {
		if v < least {
			errs = append(errs, fmt.Errorf("%s must be at least %d, got %d", name, least, v))
		}
	}
	check("storage", l.StorageBytes, 1<<20)
	check("consumers", l.Consumers, 2)
	check("connections", l.Connections, 1)
	check("subscriptions", l.Subscriptions, 4)
	check("payload", l.PayloadBytes, 64<<10)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLimits, err)
	}
	return nil
}

// apply writes the limits into an account's claims. Memory storage stays
// off: tenant streams are on disk, and tails' consumers do not count.
func (l Limits) apply(ac *jwt.AccountClaims) {
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		DiskStorage:   l.AccountStorage(),
		MemoryStorage: 0,
		// The tenant's stream and its snapshot stream.
		Streams:  2,
		Consumer: l.Consumers,
		// Every stream must state its size: a stream created by
		// anything but the provisioner cannot escape the quota either.
		MaxBytesRequired: true,
	}
	ac.Limits.Conn = l.Connections + ServiceConnections
	ac.Limits.LeafNodeConn = 0
	ac.Limits.Subs = l.Subscriptions
	ac.Limits.Payload = l.PayloadBytes
	ac.Limits.Data = jwt.NoLimit
	ac.Limits.Imports = 0
	ac.Limits.Exports = 0
	ac.Limits.WildcardExports = false
	ac.Limits.DisallowBearer = true
}
