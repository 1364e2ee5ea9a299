// Package accountsource follows every tenant of a deployment with an
// account per tenant (package provision): a bridge.Source, and the
// operator's view of any tenant, that finds tenants in the provisioner's
// registry and reads each one through a connection of its own to the
// tenant's account, as a reader.
//
// A reader holds one user seed. The provisioner signs a reader user for
// that key in every tenant account and keeps its JWT in the tenant's
// registry record, so a tenant created while the source runs is followed
// as soon as its record appears (the registry is watched), with no
// credentials to fetch and no restart. The reader role reads and tails;
// it cannot write, purge or change anything. What a tenant stored is
// still untrusted input: every read goes through the library, which hands
// back what is not a valid event as such.
//
// The cost is one connection per live tenant, on both sides (see the
// README's measurements), opened on first use.
package accountsource

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsession/jetsession/bridge"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrNoReaderJWT is returned for a tenant whose record holds no user JWT
// for the source's key: the key is not one of the provisioner's readers,
// or the tenant was created before it became one.
var ErrNoReaderJWT = errors.New("accountsource: the tenant's record has no JWT for this reader")

// Config configures a Source.
type Config struct {
	// Ops is a connection to the operations account as a reader
	// (creds/bridge.creds), with inbox prefix provision.ReaderInbox: the
	// registry and the deletion records. Required.
	Ops *nats.Conn
	// Key is the reader's user key pair, with its seed: the same one Ops
	// signs in with (nkeys.FromSeed of the creds file's seed). Required.
	Key nkeys.KeyPair
	// Dial opens a connection to a tenant's account, adding opts (its
	// credentials, inbox prefix, name and handlers). The default dials
	// the servers Ops is connected to, reconnecting for as long as the
	// source runs; give one for TLS or other options.
	Dial func(opts ...nats.Option) (*nats.Conn, error)
	// Scheme names the tenant streams (default subjects.Default()).
	Scheme subjects.Scheme
	// LogOptions are added to each tenant's jetstream.Log (read batches,
	// tail buffers).
	LogOptions []jetstream.Option
	// Concurrency bounds how many tenants are looked up or connected at
	// once by Tenants (default 16).
	Concurrency int
	// Logger receives the source's notes (default slog.Default()).
	Logger *slog.Logger
}

// Source reads every live tenant of the registry. It implements
// bridge.Source with every optional interface, and hands out each
// tenant's Log for the operator's commands. It is safe for concurrent use.
type Source struct {
	cfg    Config
	pub    string
	reg    *provision.Registry
	opsLog *jetstream.Log
	stop   func()

	mu        sync.Mutex
	records   map[string]provision.Record
	conns     map[string]*tenantConn
	listeners map[int]func()
	nextID    int
	// changed is closed and replaced whenever the records change.
	changed chan struct{}
	closed  bool
}

var (
	_ bridge.Source               = (*Source)(nil)
	_ bridge.TenantWatcher        = (*Source)(nil)
	_ bridge.TenantDeletionSource = (*Source)(nil)
	_ bridge.LagCounter           = (*Source)(nil)
	_ bridge.ConnectionChecker    = (*Source)(nil)
)

// tenantConn is the connection to one tenant's account, opened once.
type tenantConn struct {
	account string
	once    sync.Once
	done    chan struct{}
	nc      *nats.Conn
	log     *jetstream.Log
	err     error
	// gone is set when the source closed the connection because the
	// tenant's account went away.
	gone atomic.Bool
}

// New opens the registry and starts watching it; it returns once the
// current records are known. Close stops it.
func New(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.Ops == nil || cfg.Key == nil {
		return nil, fmt.Errorf("accountsource: the operations connection and the reader's key are required")
	}
	pub, err := cfg.Key.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("accountsource: the reader's key is not a user key")
	}
	if _, err := cfg.Key.Seed(); err != nil {
		return nil, fmt.Errorf("accountsource: the reader's key has no seed: %w", err)
	}
	if cfg.Scheme == (subjects.Scheme{}) {
		cfg.Scheme = subjects.Default()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		ops := cfg.Ops
		cfg.Dial = func(opts ...nats.Option) (*nats.Conn, error) {
			return nats.Connect(ops.ConnectedUrl(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, opts...)...)
		}
	}
	opsLog, err := jetstream.New(cfg.Ops, append([]jetstream.Option{jetstream.WithScheme(cfg.Scheme)}, cfg.LogOptions...)...)
	if err != nil {
		return nil, err
	}
	reg, err := provision.OpenRegistry(ctx, cfg.Ops, cfg.Scheme)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, pub: pub, reg: reg, opsLog: opsLog,
		records: map[string]provision.Record{}, conns: map[string]*tenantConn{}, listeners: map[int]func(){},
		changed: make(chan struct{})}
	stop, err := reg.Watch(context.WithoutCancel(ctx), s.update)
	if err != nil {
		return nil, err
	}
	s.stop = stop
	return s, nil
}

// Close stops watching the registry and closes every tenant connection.
func (s *Source) Close() {
	s.stop()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[string]*tenantConn{}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// update takes a record from the registry watch.
func (s *Source) update(rec provision.Record) {
	s.mu.Lock()
	old, had := s.records[rec.Tenant]
	s.records[rec.Tenant] = rec
	var stale *tenantConn
	if c := s.conns[rec.Tenant]; c != nil && (!rec.Live() || c.account != rec.Account) {
		stale = c
		delete(s.conns, rec.Tenant)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	var notify []func()
	if !had || old.State != rec.State || old.Account != rec.Account {
		for _, l := range s.listeners {
			notify = append(notify, l)
		}
	}
	s.mu.Unlock()
	if stale != nil {
		stale.gone.Store(true)
		stale.close()
	}
	for _, l := range notify {
		l()
	}
}

func (c *tenantConn) close() {
	c.once.Do(func() { close(c.done) }) // nobody connects after this
	<-c.done
	if c.nc != nil {
		c.nc.Close()
	}
}

// Record returns the registry's record of a tenant as the source last saw
// it.
func (s *Source) Record(tenant string) (provision.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[tenant]
	return rec, ok
}

// Records returns every record as the source last saw it.
func (s *Source) Records() []provision.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]provision.Record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	return out
}

// Log returns the Log of a live tenant's account, connecting on first use.
// It returns provision.ErrTenantNotFound for a tenant without a live
// account.
func (s *Source) Log(ctx context.Context, tenant string) (*jetstream.Log, error) {
	c, err := s.conn(tenant)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.log, c.err
}

// conn returns the connection of a live tenant, started.
func (s *Source) conn(tenant string) (*tenantConn, error) {
	s.mu.Lock()
	rec, ok := s.records[tenant]
	if !ok || !rec.Live() {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", provision.ErrTenantNotFound, tenant)
	}
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("accountsource: closed")
	}
	c := s.conns[tenant]
	if c == nil || c.failed() {
		c = &tenantConn{account: rec.Account, done: make(chan struct{})}
		s.conns[tenant] = c
		go c.once.Do(func() {
			defer close(c.done)
			c.nc, c.log, c.err = s.dial(rec)
		})
	}
	s.mu.Unlock()
	return c, nil
}

// failed reports a connection attempt that failed: the next use tries
// again.
func (c *tenantConn) failed() bool {
	select {
	case <-c.done:
		return c.err != nil
	default:
		return false
	}
}

// dial connects to the record's account as the reader.
func (s *Source) dial(rec provision.Record) (*nats.Conn, *jetstream.Log, error) {
	token := rec.Readers[s.pub]
	if token == "" {
		return nil, nil, fmt.Errorf("%w: tenant %q, reader %s", ErrNoReaderJWT, rec.Tenant, s.pub)
	}
	// The server checks the JWT's signature and account; this checks that
	// the record hands this reader its own user in the record's account.
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil || uc.Subject != s.pub || uc.IssuerAccount != rec.Account {
		return nil, nil, fmt.Errorf("%w: tenant %q: the record's JWT is not this reader's user in account %s", ErrNoReaderJWT, rec.Tenant, rec.Account)
	}
	key := s.cfg.Key
	nc, err := s.cfg.Dial(
		nats.UserJWT(func() (string, error) { return token, nil }, func(nonce []byte) ([]byte, error) { return key.Sign(nonce) }),
		nats.CustomInboxPrefix(provision.ReaderInbox),
		nats.Name("jetsession reader of "+subjects.EncodeTenant(rec.Tenant)),
		// The library's watcher reports refusals to the calls; the rest
		// would only be printed.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("accountsource: connecting to the account of tenant %q: %w", rec.Tenant, err)
	}
	opts := append([]jetstream.Option{jetstream.WithScheme(s.cfg.Scheme), jetstream.WithPermissionWatcher(jetstream.WatchPermissions(nc))}, s.cfg.LogOptions...)
	log, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, log, nil
}

// Tenants implements bridge.Source: every live tenant that has a stream,
// from its stream's leader, a bounded number at once. Tenants that cannot
// be reached are left out and their errors joined.
func (s *Source) Tenants(ctx context.Context) ([]sessionlog.TenantInfo, error) {
	s.mu.Lock()
	var live []string
	for t, r := range s.records {
		if r.Live() {
			live = append(live, t)
		}
	}
	s.mu.Unlock()
	var (
		mu   sync.Mutex
		out  = make([]sessionlog.TenantInfo, 0, len(live))
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, s.cfg.Concurrency)
	)
	for _, t := range live {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			log, err := s.Log(ctx, t)
			var info sessionlog.TenantInfo
			ok := false
			if err == nil {
				info, ok, err = log.Tenant(ctx, t)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, provision.ErrTenantNotFound):
			case err != nil:
				errs = append(errs, err)
			case ok:
				out = append(out, info)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// ScanTenant implements bridge.Source; a tenant without a live account
// yields nothing.
func (s *Source) ScanTenant(ctx context.Context, tenant string, cursor uint64, opts ...sessionlog.ReadOption) iter.Seq2[sessionlog.TenantRecord, error] {
	return func(yield func(sessionlog.TenantRecord, error) bool) {
		log, err := s.Log(ctx, tenant)
		if errors.Is(err, provision.ErrTenantNotFound) {
			return
		}
		if err != nil {
			yield(sessionlog.TenantRecord{}, err)
			return
		}
		for rec, err := range log.ScanTenant(ctx, tenant, cursor, opts...) {
			if !yield(rec, err) {
				return
			}
		}
	}
}

// TailTenant implements bridge.Source. It waits while the tenant has no
// live account, like a tail of a stream not created yet; when the tenant's
// account goes away it yields sessionlog.ErrTenantDeleted and ends.
func (s *Source) TailTenant(ctx context.Context, tenant string, cursor uint64, opts ...sessionlog.ReadOption) iter.Seq2[sessionlog.TenantRecord, error] {
	return func(yield func(sessionlog.TenantRecord, error) bool) {
		var c *tenantConn
		for {
			s.mu.Lock()
			changed := s.changed
			s.mu.Unlock()
			var err error
			if c, err = s.conn(tenant); err == nil {
				break
			}
			if !errors.Is(err, provision.ErrTenantNotFound) {
				yield(sessionlog.TenantRecord{}, err)
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
		if c.err != nil {
			yield(sessionlog.TenantRecord{}, c.err)
			return
		}
		for rec, err := range c.log.TailTenant(ctx, tenant, cursor, opts...) {
			if err != nil && c.gone.Load() {
				yield(sessionlog.TenantRecord{}, fmt.Errorf("%w: the account of tenant %q went away", sessionlog.ErrTenantDeleted, tenant))
				return
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}

// Pending implements bridge.LagCounter.
func (s *Source) Pending(ctx context.Context, tenant string, after uint64) (uint64, error) {
	log, err := s.Log(ctx, tenant)
	if errors.Is(err, provision.ErrTenantNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return log.Pending(ctx, tenant, after)
}

// TenantDeletions implements bridge.TenantDeletionSource: the records the
// provisioner keeps in the operations account.
func (s *Source) TenantDeletions(ctx context.Context) iter.Seq2[sessionlog.Deletion, error] {
	return s.opsLog.TenantDeletions(ctx)
}

// WatchTenants implements bridge.TenantWatcher: changed is called after
// every change of a tenant's state or account in the registry.
func (s *Source) WatchTenants(ctx context.Context, changed func()) (stop func(), err error) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.listeners[id] = changed
	s.mu.Unlock()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.listeners, id)
			s.mu.Unlock()
		})
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	return stop, nil
}

// Connected implements bridge.ConnectionChecker: the operations
// connection is up. A tenant whose connection is down shows as lag.
func (s *Source) Connected() bool { return s.cfg.Ops.IsConnected() }

// Connections returns how many tenant connections are open.
func (s *Source) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		select {
		case <-c.done:
			if c.err == nil {
				n++
			}
		default:
		}
	}
	return n
}
