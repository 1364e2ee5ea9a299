package jetstream

import (
	"errors"
	"fmt"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
)

// Option configures a Log. Options that shape streams (replicas, storage,
// quota, duplicate window, maximum event size, compression) apply to the
// streams this Log creates; an existing stream keeps its settings.
type Option func(*config) error

// Storage selects where a tenant stream keeps its messages.
type Storage int

const (
	// FileStorage keeps messages on disk (the default).
	FileStorage Storage = iota
	// MemoryStorage keeps messages in server memory only; they do not
	// survive a server restart.
	MemoryStorage
)

type config struct {
	scheme         subjects.Scheme
	apiPrefix      string
	replicas       int
	storage        Storage
	quotaBytes     int64
	dupWindow      time.Duration
	limits         sessionlog.Limits
	maxEventSet    bool
	compression    bool
	requestTimeout time.Duration
	createStreams  bool
	maxBatches     int
	readEvents     int
	readBytes      int
	tailBuffer     int
	// consumerReadMin: see WithConsumerReads.
	consumerReadMin int
	watcher         *PermissionWatcher
	maxAge          time.Duration
	system          *Log
	coldStore       sessionlog.ColdStore
	segmentBytes    int
}

func defaultConfig() config {
	return config{
		scheme:          subjects.Default(),
		apiPrefix:       "$JS.API",
		replicas:        1,
		storage:         FileStorage,
		quotaBytes:      -1,
		dupWindow:       sessionlog.DefaultDuplicateWindow,
		limits:          sessionlog.DefaultLimits(),
		requestTimeout:  5 * time.Second,
		createStreams:   true,
		maxBatches:      32,
		readEvents:      10_000,
		readBytes:       16 << 20,
		tailBuffer:      64 << 20,
		consumerReadMin: DefaultConsumerReadMin,
	}
}

func (c *config) validate() error {
	var errs []error
	if err := c.scheme.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.replicas < 1 || c.replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1 to 5, got %d", c.replicas))
	}
	if c.quotaBytes == 0 || c.quotaBytes < -1 {
		errs = append(errs, fmt.Errorf("tenant quota must be positive bytes, or -1 for none; got %d", c.quotaBytes))
	}
	if c.dupWindow <= 0 {
		errs = append(errs, fmt.Errorf("duplicate window must be positive, got %v", c.dupWindow))
	}
	if c.requestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout must be positive, got %v", c.requestTimeout))
	}
	if c.readEvents < 1 || c.readBytes < 1 {
		errs = append(errs, fmt.Errorf("read batch must be at least 1 event and 1 byte, got %d and %d", c.readEvents, c.readBytes))
	}
	if c.tailBuffer < 1<<20 {
		errs = append(errs, fmt.Errorf("tail buffer must be at least 1 MiB, got %d", c.tailBuffer))
	}
	if c.maxAge < 0 || c.maxAge > 0 && c.maxAge < time.Second {
		errs = append(errs, fmt.Errorf("maximum age must be at least 1s, or 0 for none; got %v", c.maxAge))
	}
	if c.maxBatches < 1 {
		errs = append(errs, fmt.Errorf("concurrent batches must be at least 1, got %d", c.maxBatches))
	}
	if err := c.limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// ErrInvalidConfig is returned by New for options that cannot work.
var ErrInvalidConfig = errors.New("jetstream: invalid configuration")

// WithScheme sets the subject and stream name prefixes (default
// subjects.Default()). Logs with different schemes never share data.
func WithScheme(s subjects.Scheme) Option {
	return func(c *config) error { c.scheme = s; return nil }
}

// WithAPIPrefix sets the JetStream API prefix, for accounts that import
// JetStream from another account or domain (default "$JS.API").
func WithAPIPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" {
			return fmt.Errorf("%w: empty API prefix", ErrInvalidConfig)
		}
		c.apiPrefix = prefix
		return nil
	}
}

// WithReplicas sets how many servers keep each tenant stream (default 1).
// Use 3 on a cluster for durability across the loss of a server.
func WithReplicas(n int) Option {
	return func(c *config) error { c.replicas = n; return nil }
}

// WithStorage sets the storage of tenant streams (default FileStorage).
func WithStorage(s Storage) Option {
	return func(c *config) error {
		if s != FileStorage && s != MemoryStorage {
			return fmt.Errorf("%w: unknown storage %d", ErrInvalidConfig, s)
		}
		c.storage = s
		return nil
	}
}

// WithTenantQuota caps each tenant stream at bytes of stored data (default:
// no cap, -1). A full tenant refuses appends with ErrQuotaExceeded; it
// never discards old events to make room.
func WithTenantQuota(bytes int64) Option {
	return func(c *config) error { c.quotaBytes = bytes; return nil }
}

// WithDuplicateWindow sets how long the server remembers event IDs for
// idempotent retries (default 2 minutes). A longer window costs server
// memory per event appended within it.
func WithDuplicateWindow(d time.Duration) Option {
	return func(c *config) error { c.dupWindow = d; return nil }
}

// WithMaxEventSize sets the largest event accepted, as measured by
// sessionlog.EventSize (default sessionlog.DefaultMaxEventBytes, lowered to
// fit the server's maximum payload). New fails if the server cannot carry
// events this large.
func WithMaxEventSize(bytes int) Option {
	return func(c *config) error {
		c.limits.MaxEventBytes = bytes
		c.maxEventSet = true
		return nil
	}
}

// WithLimits sets every event and batch limit at once. The batch limit in
// events must not exceed the server's atomic batch limit (1,000 by default).
func WithLimits(l sessionlog.Limits) Option {
	return func(c *config) error {
		c.limits = l
		c.maxEventSet = true
		return nil
	}
}

// WithMaxAge makes the events of the tenant streams the Log creates
// expire d after they were stored (the stream's maximum age; default 0,
// never). It is one of the two explicit retention policies, with
// Event.TTL: the only ways the log removes events on its own.
func WithMaxAge(d time.Duration) Option {
	return func(c *config) error { c.maxAge = d; return nil }
}

// WithCompression enables S2 compression of stream blocks on disk (default
// off): less disk for more CPU.
func WithCompression(on bool) Option {
	return func(c *config) error { c.compression = on; return nil }
}

// WithRequestTimeout bounds each request to the server when the caller's
// context has no earlier deadline (default 5s).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error { c.requestTimeout = d; return nil }
}

// WithStreamCreation sets whether Append creates a missing tenant stream
// (default true). Turn it off where agents lack stream-admin permissions and
// tenants are provisioned with EnsureTenant by a trusted service; an append
// to an unprovisioned tenant then fails with ErrTenantNotProvisioned.
func WithStreamCreation(on bool) Option {
	return func(c *config) error { c.createStreams = on; return nil }
}

// WithMaxConcurrentBatches bounds how many multi-event appends this Log has
// in flight at once (default 32). The server allows 50 open atomic batches
// per stream and 1,000 per server; appends over the bound wait their turn
// instead of failing.
func WithMaxConcurrentBatches(n int) Option {
	return func(c *config) error { c.maxBatches = n; return nil }
}

// WithPermissionWatcher makes the Log fail a call the server refuses as
// soon as the server reports it, with ErrPermissionDenied, using w (see
// WatchPermissions), which must watch the Log's connection.
func WithPermissionWatcher(w *PermissionWatcher) Option {
	return func(c *config) error {
		if w == nil {
			return fmt.Errorf("%w: nil permission watcher", ErrInvalidConfig)
		}
		c.watcher = w
		return nil
	}
}

// WithSystemLog makes the Log keep its tenant deletion records in sys's
// system stream instead of its own account's: DeleteTenant records the
// deletion through sys, a tenant created again (EnsureTenant, or Append
// creating its stream) numbers on after the last ordinal sys recorded, and
// TenantDeletions reads sys's records. sys must use the same scheme. It is
// for deployments with an account per tenant, where the tenant's account
// holds only the tenant's stream and the records live in an operations
// account that outlives the tenant's (package provision).
func WithSystemLog(sys *Log) Option {
	return func(c *config) error {
		if sys == nil {
			return fmt.Errorf("%w: nil system log", ErrInvalidConfig)
		}
		c.system = sys
		return nil
	}
}

// WithColdStore gives the Log a cold tier in store (default none; see
// sessionlog.ColdTier): ArchiveBefore writes a thread's events up to the
// watermark to store as compressed segments, and only then purges them
// from the tenant stream; reads with sessionlog.IncludeArchived go through
// the cold tier; Head reports it; DeleteThread and DeleteTenant remove
// its segments too, and archived events expire by their TTL and the
// maximum age (WithMaxAge) like hot ones. Without a cold store,
// ArchiveBefore drops the events. Package coldstore/jsstore keeps the
// segments in JetStream (a segment stream per tenant), with no
// infrastructure beyond NATS.
func WithColdStore(store sessionlog.ColdStore) Option {
	return func(c *config) error {
		if store == nil {
			return fmt.Errorf("%w: nil cold store", ErrInvalidConfig)
		}
		c.coldStore = store
		return nil
	}
}

// WithColdSegmentBytes bounds the records of one cold segment before
// compression (default sessionlog.DefaultSegmentBytes); larger archives
// are split into several segments.
func WithColdSegmentBytes(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: cold segment bound must be positive, got %d", ErrInvalidConfig, n)
		}
		c.segmentBytes = n
		return nil
	}
}

// WithReadBatch bounds one read request, and so the memory a Scan or
// ScanTenant holds at once: at most events events or bytes bytes (default
// 10,000 events, 16 MiB). Smaller batches bound memory; larger ones read
// long threads in fewer round trips.
func WithReadBatch(events, bytes int) Option {
	return func(c *config) error { c.readEvents, c.readBytes = events, bytes; return nil }
}

// DefaultConsumerReadMin is how many events must follow a read's first
// batch for the rest to come through a consumer, by default.
const DefaultConsumerReadMin = 256

// WithConsumerReads sets when a read of a single-replica stream switches
// from batched direct gets to a consumer: when at least minEvents events
// follow its first batch (default DefaultConsumerReadMin; 0 never). A
// consumer delivers long threads faster (cmd/bench's hydrate scenario
// compares both) but needs the rights to create and delete consumers on
// the tenant stream, which tails need too; a Log refused them once reads
// with direct gets only from then on (without a PermissionWatcher the
// refusal is known when the creation's 1 s wait ends, so that first long
// read takes a second longer: give a Log without those rights
// WithConsumerReads(0)). Replicated streams are always read with direct
// gets.
func WithConsumerReads(minEvents int) Option {
	return func(c *config) error {
		if minEvents < 0 {
			return fmt.Errorf("consumer reads: minimum events must not be negative, got %d", minEvents)
		}
		c.consumerReadMin = minEvents
		return nil
	}
}

// WithTailBuffer bounds what the client buffers for one tail that its
// reader has not consumed yet (default 64 MiB, at least 1 MiB). Past it the
// client drops messages, the tail sees the gap and recreates its consumer
// after the last event it yielded: nothing is lost, but a reader that falls
// that far behind makes the server send again.
func WithTailBuffer(bytes int) Option {
	return func(c *config) error { c.tailBuffer = bytes; return nil }
}
