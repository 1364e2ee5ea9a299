// Package jetstream is the NATS JetStream backend of sessionlog: one stream
// per tenant, one subject per thread, the stream sequence as the ordinal.
//
// Streams are created on a tenant's first append (never on reads) with file
// storage, limits retention, discard-new (a full tenant refuses appends
// instead of dropping history), deny-delete, direct get and atomic batch
// publish enabled. Stream names and subjects come from package subjects.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// headerAllowance is the room kept for headers and subject under the
// server's maximum payload when fitting the default maximum event size.
const headerAllowance = 32 << 10

// ProtocolVersion is the version of PROTOCOL.md this package speaks; the
// streams it creates carry it in their metadata ("jetsession.protocol").
const ProtocolVersion = "1"

// ErrTenantNotProvisioned is returned by Append when the tenant's stream
// does not exist and the Log was told not to create streams.
var ErrTenantNotProvisioned = errors.New("jetstream: tenant stream not provisioned")

// Log is a sessionlog.Log on NATS JetStream. It is safe for concurrent use;
// many Logs in many processes may share the same streams.
type Log struct {
	nc  *nats.Conn
	js  natsjs.JetStream
	cfg config

	// batchSlots bounds this Log's concurrent atomic batches.
	batchSlots chan struct{}

	mu      sync.Mutex
	streams map[string]streamState // by stream name
	// known holds the streams this Log has seen exist: no responders on
	// one of them is a leader election, never a reason to create it.
	known sync.Map
	// creating shares one stream creation among concurrent appends.
	creating map[string]*creation
	// cold is the cold tier, nil without a cold store.
	cold *sessionlog.ColdTier
	// noReadConsumers is set once the server refused this Log the rights
	// to create a read consumer.
	noReadConsumers atomic.Bool
}

// consumerReads reports whether long reads of single-replica streams go
// through a consumer.
func (l *Log) consumerReads() bool {
	return l.cfg.consumerReadMin > 0 && !l.noReadConsumers.Load()
}

var _ sessionlog.Log = (*Log)(nil)

// streamState caches what reads and retries need to know of a stream.
type streamState struct {
	replicas int
	// clustered is true when the stream runs on clustered JetStream (it
	// has a raft group, even at one replica): the server then checks
	// publish conditions in a different order.
	clustered bool
	checked   time.Time
}

// streamStateTTL is how long a stream's replica count is trusted before
// reads look it up again.
const streamStateTTL = 30 * time.Second

// New returns a Log using nc. The connection stays owned by the caller and
// New changes nothing on it: to have refused calls fail at once with
// ErrPermissionDenied rather than at their deadline, give the Log a
// PermissionWatcher (WithPermissionWatcher(WatchPermissions(nc))).
func New(nc *nats.Conn, opts ...Option) (*Log, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil NATS connection", ErrInvalidConfig)
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.watcher != nil && cfg.watcher.nc != nc {
		return nil, fmt.Errorf("%w: the permission watcher watches another connection", ErrInvalidConfig)
	}
	if cfg.system != nil && cfg.system.cfg.scheme != cfg.scheme {
		return nil, fmt.Errorf("%w: the system log uses another scheme", ErrInvalidConfig)
	}
	if maxPayload := int(nc.MaxPayload()); maxPayload > 0 {
		fit := maxPayload - headerAllowance
		switch {
		case cfg.limits.MaxEventBytes <= fit:
		case cfg.maxEventSet:
			return nil, fmt.Errorf("%w: max event size %d does not fit the server's max payload %d (minus %d for headers)",
				ErrInvalidConfig, cfg.limits.MaxEventBytes, maxPayload, headerAllowance)
		default:
			cfg.limits.MaxEventBytes = fit
			cfg.limits.MaxBatchBytes = max(cfg.limits.MaxBatchBytes, fit)
		}
	}
	js, err := natsjs.NewWithAPIPrefix(nc, cfg.apiPrefix)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	l := &Log{
		nc:         nc,
		js:         js,
		cfg:        cfg,
		batchSlots: make(chan struct{}, cfg.maxBatches),
		cold:       coldTier(&cfg),
		streams:    make(map[string]streamState),
		creating:   make(map[string]*creation),
	}
	return l, nil
}

// Scheme returns the naming scheme of the Log's streams and subjects.
func (l *Log) Scheme() subjects.Scheme { return l.cfg.scheme }

// Limits returns the event and batch limits the Log enforces.
func (l *Log) Limits() sessionlog.Limits { return l.cfg.limits }

// streamStorage is the storage and compression of the streams the Log
// creates (tenant and snapshot streams alike).
func (l *Log) streamStorage() (natsjs.StorageType, natsjs.StoreCompression) {
	storage := natsjs.FileStorage
	if l.cfg.storage == MemoryStorage {
		storage = natsjs.MemoryStorage
	}
	compression := natsjs.NoCompression
	if l.cfg.compression {
		compression = natsjs.S2Compression
	}
	return storage, compression
}

// StreamConfig returns the configuration of the stream the Log creates for
// tenant. Provisioning tools can create it ahead of time with it.
func (l *Log) StreamConfig(tenant string) natsjs.StreamConfig {
	storage, compression := l.streamStorage()
	return natsjs.StreamConfig{
		Name:        l.cfg.scheme.Stream(tenant),
		Description: "jetsession tenant " + tenant,
		Subjects:    []string{l.cfg.scheme.TenantFilter(tenant)},
		Retention:   natsjs.LimitsPolicy,
		Discard:     natsjs.DiscardNew,
		MaxBytes:    l.cfg.quotaBytes,
		MaxMsgs:     -1,
		MaxAge:      l.cfg.maxAge,
		// Headers and subject ride on top of the event itself.
		MaxMsgSize:         int32(min(l.cfg.limits.MaxEventBytes+headerAllowance, 1<<31-1)),
		Storage:            storage,
		Replicas:           l.cfg.replicas,
		Duplicates:         l.cfg.dupWindow,
		DenyDelete:         true,
		DenyPurge:          false,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		AllowMsgTTL:        true,
		Compression:        compression,
		Metadata:           map[string]string{"jetsession.tenant": tenant, "jetsession.protocol": ProtocolVersion},
	}
}

// EnsureTenant creates the tenant's stream if it does not exist. An existing
// stream is left as it is, whatever its settings. Append calls it on a
// tenant's first append unless stream creation is turned off; concurrent
// calls for one tenant share one creation. Creation is idempotent, so
// attempts that time out (a busy or electing meta leader) are retried, each
// first asking whether an earlier attempt succeeded, until ctx ends, or for
// 30 seconds when it has no deadline. Attempts wait 1 s at first, doubling
// up to the request timeout, so that the first attempt after an election
// goes out soon.
func (l *Log) EnsureTenant(ctx context.Context, tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return err
	}
	name := l.cfg.scheme.Stream(tenant)
	l.mu.Lock()
	c := l.creating[name]
	if c == nil {
		c = &creation{done: make(chan struct{})}
		l.creating[name] = c
		l.mu.Unlock()
		c.err = l.createStream(ctx, tenant)
		l.mu.Lock()
		delete(l.creating, name)
		l.mu.Unlock()
		close(c.done)
		if c.err == nil {
			l.markKnown(name)
		}
		return c.err
	}
	l.mu.Unlock()
	select {
	case <-c.done:
		if c.err != nil && ctx.Err() == nil {
			return l.EnsureTenant(ctx, tenant) // its caller gave up; try ourselves
		}
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noPeersRetries bounds how often a creation refused for want of servers is
// tried again (with the slow backoff, a few seconds in all) before the
// refusal is the caller's: a cluster too small for the replicas asked stays
// refused.
const noPeersRetries = 4

// creation is one stream creation that concurrent callers wait for.
type creation struct {
	done chan struct{}
	err  error
}

func (l *Log) createStream(ctx context.Context, tenant string) error {
	cfg := l.StreamConfig(tenant)
	ctx, cancel := withRetryBudget(ctx)
	defer cancel()
	backoff := newBackoff()
	unavailable := newSlowBackoff()
	attempt := min(time.Second, l.cfg.requestTimeout)
	looked := false
	noPeers := 0
	for {
		actx, acancel := context.WithTimeout(ctx, attempt)
		var err error
		if !looked {
			// A tenant created again numbers on after its deleted self:
			// ordinals are never reused.
			var last uint64
			if last, err = l.systemLog().deletedLastOrdinal(actx, tenant); err == nil {
				looked = true
				if last > 0 {
					cfg.FirstSeq = last + 1
				}
			}
		}
		if looked {
			gctx, check := l.guard(actx, l.apiSubject(apiStreamCreate, cfg.Name))
			_, err = l.js.CreateStream(gctx, cfg)
			err = check(err)
		}
		acancel()
		wait := backoff
		switch {
		case err == nil:
			return nil
		case errors.Is(err, natsjs.ErrStreamNameAlreadyInUse):
			// Created elsewhere with other settings: use it as it is.
			return nil
		case errCode(err) == codeMaxStreams:
			return fmt.Errorf("%w: no room for the stream of tenant %q: %w", sessionlog.ErrQuotaExceeded, tenant, err)
		case errCode(err) == codeInsufficientResources, errCode(err) == codeStorageExceeded, errCode(err) == codeMemoryExceeded:
			return fmt.Errorf("%w: creating the stream of tenant %q: %w", sessionlog.ErrStorageFull, tenant, err)
		case ctx.Err() == nil && errCode(err) == codeClusterNoPeers && noPeers < noPeersRetries:
			// Placement found too few servers: either the stream is new and
			// a peer is down (it may be back in a moment), or a meta leader
			// just elected has not applied the stream's assignment yet and
			// took an existing stream for a new one. Ask before resending.
			noPeers++
			if _, exists, serr := l.quickStreamState(ctx, cfg.Name); serr == nil && exists {
				return nil
			}
			wait = unavailable
		case ctx.Err() == nil && apiStatus(err) == 503:
			// The system is electing: ask again, without a storm.
			wait = unavailable
		case ctx.Err() == nil && isTransient(err):
			// No answer: the creation may have happened; ask before
			// resending, and give the next attempt longer.
			if _, exists, serr := l.quickStreamState(ctx, cfg.Name); serr == nil && exists {
				return nil
			}
			attempt = min(2*attempt, l.cfg.requestTimeout)
		default:
			return fmt.Errorf("jetstream: creating stream %s for tenant %q: %w", cfg.Name, tenant, err)
		}
		if werr := wait.wait(ctx); werr != nil {
			return fmt.Errorf("jetstream: creating stream %s for tenant %q: %w", cfg.Name, tenant, err)
		}
	}
}

func (l *Log) markKnown(stream string) {
	if _, ok := l.known.Load(stream); !ok {
		l.known.Store(stream, struct{}{})
	}
}

func (l *Log) isKnown(stream string) bool {
	_, ok := l.known.Load(stream)
	return ok
}

// isTransient reports errors worth retrying an idempotent request for: a
// timeout, nobody answering, or JetStream being briefly unavailable.
func isTransient(err error) bool {
	if errors.Is(err, ErrPermissionDenied) {
		return false // a refusal, even one recognised by its timeout
	}
	if apiStatus(err) == 503 {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, natsjs.ErrJetStreamNotEnabled) || isDisconnect(err)
}

// isDisconnect reports a request cut short by a lost connection that the
// client is re-establishing: its outcome is unknown, and the connection
// will be back.
func isDisconnect(err error) bool {
	return errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// quickStreamState is streamState asked with a 1 s deadline: for the paths
// that recover from faults, where a request nobody answers must not hold
// the caller for the whole request timeout.
func (l *Log) quickStreamState(ctx context.Context, stream string) (streamState, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, min(time.Second, l.cfg.requestTimeout))
	defer cancel()
	return l.streamState(qctx, stream)
}

// streamInfoAttempts bounds the requests of one stream look-up.
const streamInfoAttempts = 3

// streamState returns what the Log knows of a stream, looking it up when
// unknown or older than streamStateTTL. ok is false when the stream does not
// exist.
func (l *Log) streamState(ctx context.Context, stream string) (st streamState, ok bool, err error) {
	l.mu.Lock()
	st, ok = l.streams[stream]
	l.mu.Unlock()
	if ok && time.Since(st.checked) < streamStateTTL {
		return st, true, nil
	}
	var info natsjs.StreamInfo
	// A busy or electing server may miss one request: the look-up is
	// idempotent, so ask a few times while the caller waits.
	backoff := newBackoff()
	for attempt := 1; ; attempt++ {
		err = l.apiRequest(ctx, apiStreamInfo+"."+stream, nil, &info)
		if attempt == streamInfoAttempts || !isTransient(err) || ctx.Err() != nil || backoff.wait(ctx) != nil {
			break
		}
	}
	if errCode(err) == codeStreamNotFound {
		l.mu.Lock()
		delete(l.streams, stream)
		l.mu.Unlock()
		return streamState{}, false, nil
	}
	if err != nil {
		return streamState{}, false, fmt.Errorf("jetstream: looking up stream %s: %w", stream, err)
	}
	st = streamState{
		replicas:  max(info.Config.Replicas, 1),
		clustered: info.Cluster != nil && info.Cluster.RaftGroup != "",
		checked:   time.Now(),
	}
	l.mu.Lock()
	l.streams[stream] = st
	l.mu.Unlock()
	return st, true, nil
}

func coldTier(cfg *config) *sessionlog.ColdTier {
	if cfg.coldStore == nil {
		return nil
	}
	return sessionlog.NewColdTier(cfg.coldStore, sessionlog.ColdTierOptions{MaxAge: cfg.maxAge, SegmentBytes: cfg.segmentBytes})
}
