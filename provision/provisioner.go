package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Config configures a Provisioner.
type Config struct {
	// System is a connection to the system account as the provisioner's
	// system user (creds/provisioner-system.creds): it may only push and
	// delete account JWTs. Required.
	System *nats.Conn
	// Ops is a connection to the operations account as the provisioner
	// (creds/provisioner.creds), with inbox prefix ProvisionerInbox: the
	// registry and the deletion records. Required.
	Ops *nats.Conn
	// Keys sign accounts and users. Required.
	Keys Keys
	// Dial opens the provisioner's passing connections to tenant accounts,
	// adding opts (its credentials, inbox prefix and name). The default
	// dials the servers Ops is connected to; give one for TLS or other
	// options.
	Dial func(opts ...nats.Option) (*nats.Conn, error)
	// Scheme names tenant streams and subjects (default subjects.Default()).
	Scheme subjects.Scheme
	// Replicas is the replica count of the streams it creates (default 1).
	Replicas int
	// DefaultLimits apply to a tenant created with zero Limits (default
	// DefaultLimits()).
	DefaultLimits Limits
	// Timeout bounds each request when the context has no earlier
	// deadline (default 5s).
	Timeout time.Duration
	// Logger receives what the provisioner notes on the way (default
	// slog.Default()).
	Logger *slog.Logger
}

// Provisioner creates, limits, suspends, resumes and deletes tenant
// accounts and issues their credentials. Its connections have the least
// rights that needs: its system user may only push and delete account
// JWTs, its operations user only keep the registry and the deletion
// records, and the user it issues itself in a tenant's account only
// manages the tenant's stream. None of them can read an event. Its keys
// are another matter: whoever holds the operator signing key defines
// every account, so the provisioner is trusted with issuing credentials
// (see Keys).
//
// Every change is recorded in the registry with optimistic concurrency:
// two provisioners changing one tenant at once make one of them fail with
// ErrConflict. A call interrupted half way leaves the record "creating"
// or "deleting"; the same call again finishes it. It is safe for
// concurrent use.
type Provisioner struct {
	cfg    Config
	reg    *Registry
	kv     natsjs.KeyValue
	opsLog *jetstream.Log
}

// New checks cfg and opens the registry, creating its bucket if it does
// not exist yet.
func New(ctx context.Context, cfg Config) (*Provisioner, error) {
	if cfg.System == nil || cfg.Ops == nil {
		return nil, fmt.Errorf("%w: the system and operations connections are required", ErrInvalidConfig)
	}
	if err := cfg.Keys.validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.Keys.roleSigner(RoleProvisioner); err != nil {
		return nil, err
	}
	if cfg.Scheme == (subjects.Scheme{}) {
		cfg.Scheme = subjects.Default()
	}
	if err := cfg.Scheme.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.DefaultLimits == (Limits{}) {
		cfg.DefaultLimits = DefaultLimits()
	}
	if err := cfg.DefaultLimits.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		ops := cfg.Ops
		cfg.Dial = func(opts ...nats.Option) (*nats.Conn, error) {
			return nats.Connect(ops.ConnectedUrl(), opts...)
		}
	}
	opsLog, err := jetstream.New(cfg.Ops, jetstream.WithScheme(cfg.Scheme), jetstream.WithReplicas(cfg.Replicas),
		jetstream.WithRequestTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	js, err := natsjs.New(cfg.Ops)
	if err != nil {
		return nil, err
	}
	bucket := RegistryBucket(cfg.Scheme)
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	kv, err := js.KeyValue(rctx, bucket)
	if errors.Is(err, natsjs.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(rctx, natsjs.KeyValueConfig{
			Bucket:      bucket,
			Description: "jetsession tenant registry: one record per tenant",
			History:     1,
			Storage:     natsjs.FileStorage,
			Replicas:    cfg.Replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("provision: opening the registry %s: %w", bucket, err)
	}
	return &Provisioner{cfg: cfg, kv: kv, reg: &Registry{kv: kv, scheme: cfg.Scheme}, opsLog: opsLog}, nil
}

// Registry returns the registry the provisioner keeps.
func (p *Provisioner) Registry() *Registry { return p.reg }

// Get returns the tenant's record, or ErrTenantNotFound when the registry
// has none.
func (p *Provisioner) Get(ctx context.Context, tenant string) (Record, error) {
	rec, ok, err := p.reg.Get(ctx, tenant)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %q", ErrTenantNotFound, tenant)
	}
	return rec, err
}

// Create creates the tenant: a new account with limits (DefaultLimits of
// the Config when zero) and the tenant's stream in it, whose ordinals
// continue after the tenant's last deleted life, if any. Agents, archivers
// and readers may connect as soon as it returns; the readers' JWTs are in
// the returned record. It returns ErrTenantExists for a live tenant,
// ErrNoJetStream when the server has no room for the account's storage.
func (p *Provisioner) Create(ctx context.Context, tenant string, limits Limits) (Record, error) {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return Record{}, err
	}
	if limits == (Limits{}) {
		limits = p.cfg.DefaultLimits
	}
	if err := limits.Validate(); err != nil {
		return Record{}, err
	}
	if _, err := p.cfg.Keys.roleSigner(RoleReader); err != nil && len(p.cfg.Keys.Readers) > 0 {
		return Record{}, err
	}
	rec, ok, err := p.reg.Get(ctx, tenant)
	if err != nil {
		return Record{}, err
	}
	switch {
	case ok && rec.Live():
		return rec, fmt.Errorf("%w: %q (account %s)", ErrTenantExists, tenant, rec.Account)
	case ok && rec.State == StateDeleting:
		return rec, fmt.Errorf("%w: %q is being deleted: finish with Delete first", ErrTenantBusy, tenant)
	case ok && rec.State == StateCreating:
		// An interrupted creation: finish it, in the same account.
		rec.Limits = limits
	default:
		kp, err := nkeys.CreateAccount()
		if err != nil {
			return Record{}, err
		}
		// The account's own key is never needed again: its JWTs come from
		// the operator's signing key and its users from the role keys.
		pub, _ := kp.PublicKey()
		rec = Record{Tenant: tenant, Account: pub, State: StateCreating, Limits: limits, Created: time.Now().UTC(),
			LastOrdinal: rec.LastOrdinal, Revision: rec.Revision}
	}
	if err := p.put(ctx, &rec); err != nil {
		return rec, err
	}
	if err := p.pushAccount(ctx, rec); err != nil {
		return rec, err
	}
	err = p.withTenant(ctx, rec, func(log *jetstream.Log, js natsjs.JetStream) error {
		if err := p.checkJetStream(ctx, js, rec); err != nil {
			return err
		}
		if err := log.EnsureTenant(ctx, tenant); err != nil {
			return fmt.Errorf("provision: creating the stream of tenant %q: %w", tenant, err)
		}
		return ensureSnapshotStream(ctx, log, js, tenant, limits)
	})
	if err != nil {
		return rec, err
	}
	if rec.Readers, err = p.readerJWTs(rec); err != nil {
		return rec, err
	}
	rec.State = StateActive
	if err := p.put(ctx, &rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// ensureSnapshotStream creates the tenant's snapshot stream if it is
// missing. Agents may not create streams, so the provisioner makes it,
// with its share of the account's storage.
func ensureSnapshotStream(ctx context.Context, log *jetstream.Log, js natsjs.JetStream, tenant string, limits Limits) error {
	if _, err := js.CreateStream(ctx, snapshotStreamConfig(log, tenant, limits)); err != nil && !errors.Is(err, natsjs.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("provision: creating the snapshot stream of tenant %q: %w", tenant, err)
	}
	return nil
}

// snapshotStreamConfig is the tenant's snapshot stream in its account: the
// library's configuration with the account's share for snapshots as its
// quota, refusing saves when full rather than dropping other threads'.
func snapshotStreamConfig(log *jetstream.Log, tenant string, limits Limits) natsjs.StreamConfig {
	cfg := log.SnapshotStreamConfig(tenant)
	cfg.MaxBytes = limits.SnapshotBytes()
	cfg.Discard = natsjs.DiscardNew
	return cfg
}

// SetLimits changes a live tenant's limits at once: the account's, and,
// when the storage limit changes, its stream's quota. Connections over a
// lowered connection limit are closed by the server, newest first. It
// returns ErrNoJetStream when the server has no room for a raised storage
// limit (the account keeps the old one).
func (p *Provisioner) SetLimits(ctx context.Context, tenant string, limits Limits) (Record, error) {
	if err := limits.Validate(); err != nil {
		return Record{}, err
	}
	rec, err := p.live(ctx, tenant)
	if err != nil {
		return rec, err
	}
	old := rec.Limits
	rec.Limits = limits
	if err := p.put(ctx, &rec); err != nil {
		return rec, err
	}
	if limits.StorageBytes == old.StorageBytes {
		// No connection to the account: one whose connections are full
		// (what a lowered connection limit is for) still takes the rest.
		return rec, p.pushAccount(ctx, rec)
	}
	// setQuota sets one stream's quota; found is false when it does not
	// exist.
	setQuota := func(js natsjs.JetStream, stream string, bytes int64) (found bool, err error) {
		s, err := js.Stream(ctx, stream)
		if errors.Is(err, natsjs.ErrStreamNotFound) {
			return false, nil
		}
		if err != nil {
			return true, err
		}
		cfg := s.CachedInfo().Config
		cfg.MaxBytes = bytes
		_, err = js.UpdateStream(ctx, cfg)
		return true, err
	}
	quota := func(js natsjs.JetStream) error {
		found, err := setQuota(js, p.cfg.Scheme.Stream(tenant), limits.StorageBytes)
		if err == nil && !found {
			err = natsjs.ErrStreamNotFound
		}
		if err != nil {
			return fmt.Errorf("provision: setting the quota of tenant %q: %w", tenant, err)
		}
		// A tenant created before snapshots has no snapshot stream: it is
		// made below.
		if _, err := setQuota(js, p.cfg.Scheme.SnapshotStream(tenant), limits.SnapshotBytes()); err != nil {
			return fmt.Errorf("provision: setting the snapshot quota of tenant %q: %w", tenant, err)
		}
		return nil
	}
	// A stream's quota may not exceed its account's storage: lower the
	// quota first, raise it last.
	lower := limits.StorageBytes < old.StorageBytes
	if lower {
		if err := p.withTenant(ctx, rec, func(_ *jetstream.Log, js natsjs.JetStream) error { return quota(js) }); err != nil {
			return rec, err
		}
	}
	if err := p.pushAccount(ctx, rec); err != nil {
		return rec, err
	}
	err = p.withTenant(ctx, rec, func(log *jetstream.Log, js natsjs.JetStream) error {
		if err := p.checkJetStream(ctx, js, rec); err != nil {
			return err
		}
		if !lower {
			if err := quota(js); err != nil {
				return err
			}
		}
		return ensureSnapshotStream(ctx, log, js, tenant, limits)
	})
	return rec, err
}

// Suspend stops the tenant's agents and archivers: the server closes their
// connections at once and refuses new ones, while the tenant's events stay
// and readers (the bridge) still follow it. Resume lets them back with the
// credentials they had.
func (p *Provisioner) Suspend(ctx context.Context, tenant string) (Record, error) {
	return p.setState(ctx, tenant, StateSuspended)
}

// Resume undoes Suspend.
func (p *Provisioner) Resume(ctx context.Context, tenant string) (Record, error) {
	return p.setState(ctx, tenant, StateActive)
}

func (p *Provisioner) setState(ctx context.Context, tenant string, state State) (Record, error) {
	rec, err := p.live(ctx, tenant)
	if err != nil || rec.State == state {
		return rec, err
	}
	rec.State = state
	if err := p.put(ctx, &rec); err != nil {
		return rec, err
	}
	return rec, p.pushAccount(ctx, rec)
}

// Revoke makes the credentials of the user with public key userKey in the
// tenant's account stop working, at once and for good (the server closes
// its connections). Credentials issued to other keys are untouched.
func (p *Provisioner) Revoke(ctx context.Context, tenant, userKey string) (Record, error) {
	if !nkeys.IsValidPublicUserKey(userKey) {
		return Record{}, fmt.Errorf("%w: %q is not a user public key", ErrInvalidConfig, userKey)
	}
	rec, err := p.live(ctx, tenant)
	if err != nil {
		return rec, err
	}
	rec.Revoked = maps.Clone(rec.Revoked)
	if rec.Revoked == nil {
		rec.Revoked = map[string]int64{}
	}
	rec.Revoked[userKey] = time.Now().Unix()
	if err := p.put(ctx, &rec); err != nil {
		return rec, err
	}
	return rec, p.pushAccount(ctx, rec)
}

// Delete deletes the tenant: it records the deletion and the tenant's last
// ordinal in the operations account's system stream (where the bridge
// reads it and deletes its copies, and where a tenant created again finds
// where to number on), deletes the tenant's stream, then its account:
// every connection to it is closed and its credentials never work again.
// The record stays, "deleted". It returns ErrTenantNotFound when the
// tenant has no account.
func (p *Provisioner) Delete(ctx context.Context, tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return err
	}
	rec, ok, err := p.reg.Get(ctx, tenant)
	if err != nil {
		return err
	}
	if !ok || rec.State == StateDeleted {
		return fmt.Errorf("%w: %q", ErrTenantNotFound, tenant)
	}
	if rec.State != StateDeleting {
		rec.State = StateDeleting
		if err := p.put(ctx, &rec); err != nil {
			return err
		}
	}
	// Only the provisioner may connect from here on.
	if err := p.pushAccount(ctx, rec); err != nil {
		return err
	}
	var last uint64
	err = p.withTenant(ctx, rec, func(log *jetstream.Log, js natsjs.JetStream) error {
		info, ok, err := log.Tenant(ctx, tenant)
		if err != nil {
			return err
		}
		if ok {
			last = info.LastOrdinal
			return log.DeleteTenant(ctx, tenant)
		}
		// Gone already: an earlier attempt recorded its deletion.
		last, err = log.DeletedLastOrdinal(ctx, tenant)
		return err
	})
	if err != nil {
		return fmt.Errorf("provision: deleting the stream of tenant %q: %w", tenant, err)
	}
	// A tombstone first: an account with no signing key, no connection and
	// no JetStream is dead even where the server does not allow deletions.
	rec.State = StateDeleted
	if err := p.pushAccount(ctx, rec); err != nil {
		return err
	}
	if err := p.deleteAccount(ctx, rec.Account); err != nil {
		if !errors.Is(err, errDeleteDisabled) {
			return err
		}
		p.cfg.Logger.Warn("the server does not allow account deletions (resolver allow_delete); the tenant's account stays as a tombstone",
			"tenant", tenant, "account", rec.Account)
	}
	rec.LastOrdinal = max(rec.LastOrdinal, last)
	rec.Readers = nil
	rec.Revoked = nil
	return p.put(ctx, &rec)
}

// CredsOptions shape issued credentials.
type CredsOptions struct {
	// Name labels the user (the server shows it for the connection).
	Name string
	// UserKey is the user's public key, when the user holds its own seed:
	// Creds then returns a user JWT only. Empty makes a new key pair and
	// returns a whole credentials file (JWT and seed).
	UserKey string
	// Expires makes the credentials stop working after this long (0:
	// never; revoke them with Revoke).
	Expires time.Duration
}

// Creds issues credentials of role in a live tenant's account, signed by
// the role's key (ErrMissingKey without its seed). The provisioner's role
// is its own and is not issued.
func (p *Provisioner) Creds(ctx context.Context, tenant string, role Role, o CredsOptions) ([]byte, error) {
	if err := role.valid(); err != nil {
		return nil, err
	}
	if role == RoleProvisioner {
		return nil, fmt.Errorf("%w: the provisioner issues its own users", ErrInvalidConfig)
	}
	rec, err := p.live(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var seed []byte
	pub := o.UserKey
	if pub == "" {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, err
		}
		pub = public(kp)
		seed, _ = kp.Seed()
	}
	name := o.Name
	if name == "" {
		name = string(role)
	}
	token, err := p.userJWT(rec, role, pub, name, o.Expires)
	if err != nil {
		return nil, err
	}
	if seed == nil {
		return []byte(token + "\n"), nil
	}
	return jwt.FormatUserConfig(token, seed)
}

// live returns the record of a tenant that has an account.
func (p *Provisioner) live(ctx context.Context, tenant string) (Record, error) {
	rec, err := p.Get(ctx, tenant)
	if err != nil {
		return rec, err
	}
	switch {
	case rec.State == StateDeleted:
		return rec, fmt.Errorf("%w: %q was deleted", ErrTenantNotFound, tenant)
	case !rec.Live():
		return rec, fmt.Errorf("%w: %q is %s", ErrTenantBusy, tenant, rec.State)
	}
	return rec, nil
}

// put writes rec to the registry if nobody changed it since it was read.
func (p *Provisioner) put(ctx context.Context, rec *Record) error {
	rec.Updated = time.Now().UTC()
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	key := subjects.EncodeTenant(rec.Tenant)
	pctx, cancel := p.withTimeout(ctx)
	defer cancel()
	var rev uint64
	if rec.Revision == 0 {
		rev, err = p.kv.Create(pctx, key, data)
	} else {
		rev, err = p.kv.Update(pctx, key, data, rec.Revision)
	}
	var ae *natsjs.APIError
	if errors.Is(err, natsjs.ErrKeyExists) || errors.As(err, &ae) && ae.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence {
		return fmt.Errorf("%w: tenant %q", ErrConflict, rec.Tenant)
	}
	if err != nil {
		return fmt.Errorf("provision: recording tenant %q: %w", rec.Tenant, err)
	}
	rec.Revision = rev
	return nil
}

func (p *Provisioner) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= p.cfg.Timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, p.cfg.Timeout)
}
