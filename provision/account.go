package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The system account's subjects for pushing and deleting account JWTs.
const (
	claimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"
	claimsDeleteSubject = "$SYS.REQ.CLAIMS.DELETE"
)

// rolesIn returns the roles whose users may connect in a state.
func rolesIn(s State) []Role {
	switch s {
	case StateCreating, StateActive:
		return Roles
	case StateSuspended:
		return []Role{RoleReader, RoleProvisioner}
	case StateDeleting:
		return []Role{RoleProvisioner}
	}
	return nil
}

// accountClaims returns the account JWT claims of a tenant's record.
func (p *Provisioner) accountClaims(rec Record) *jwt.AccountClaims {
	ac := jwt.NewAccountClaims(rec.Account)
	ac.Name = rec.Tenant
	ac.Description = "jetsession tenant " + rec.Tenant + " (" + string(rec.State) + ")"
	ac.Tags.Add("jetsession-tenant")
	rec.Limits.apply(ac)
	if rec.State == StateDeleted {
		// A tombstone: nobody may connect, no JetStream.
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{}
		ac.Limits.Conn = 0
		ac.Limits.Subs = 0
	}
	for _, r := range rolesIn(rec.State) {
		ac.SigningKeys.AddScopedSigner(r.scope(p.cfg.Keys.rolePublic(r), p.cfg.Scheme, rec.Tenant))
	}
	// Users without a scope get nothing.
	ac.DefaultPermissions.Pub.Deny.Add(">")
	ac.DefaultPermissions.Sub.Deny.Add(">")
	for key, at := range rec.Revoked {
		ac.RevokeAt(key, time.Unix(at, 0))
	}
	return ac
}

// claimsResponse is the server's answer to a claims update or deletion.
type claimsResponse struct {
	Data *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

var errDeleteDisabled = errors.New("account deletion disabled")

// pushAccount signs the record's account JWT and hands it to the server's
// resolver, which applies it at once. The last JWT pushed wins, so it
// then reads the record again: when another provisioner changed it
// meanwhile (and may have pushed before this call did), it pushes the
// newer record, until the one it pushed is the latest.
func (p *Provisioner) pushAccount(ctx context.Context, rec Record) error {
	for {
		token, err := p.accountClaims(rec).Encode(p.cfg.Keys.OperatorSigning)
		if err != nil {
			return fmt.Errorf("provision: signing the account of tenant %q: %w", rec.Tenant, err)
		}
		if err := p.claimsRequest(ctx, claimsUpdateSubject, token, "updating the account of tenant "+fmt.Sprintf("%q", rec.Tenant)); err != nil {
			return err
		}
		latest, ok, err := p.reg.Get(ctx, rec.Tenant)
		if err != nil {
			return err
		}
		if !ok || latest.Revision <= rec.Revision || latest.Account != rec.Account {
			return nil
		}
		rec = latest
	}
}

// deleteAccount asks the server's resolver to delete an account.
func (p *Provisioner) deleteAccount(ctx context.Context, account string) error {
	pub := public(p.cfg.Keys.OperatorSigning)
	gc := jwt.NewGenericClaims(pub)
	gc.Data["accounts"] = []any{account}
	token, err := gc.Encode(p.cfg.Keys.OperatorSigning)
	if err != nil {
		return err
	}
	err = p.claimsRequest(ctx, claimsDeleteSubject, token, "deleting account "+account)
	if err != nil && strings.Contains(err.Error(), "delete must be enabled") {
		return fmt.Errorf("%w: %w", errDeleteDisabled, err)
	}
	return err
}

func (p *Provisioner) claimsRequest(ctx context.Context, subject, token, what string) error {
	rctx, cancel := p.withTimeout(ctx)
	defer cancel()
	msg, err := p.cfg.System.RequestWithContext(rctx, subject, []byte(token))
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w: %s: nobody answers %s (the server needs a full account resolver, and the connection must be the system account's)",
			ErrClaimsRefused, what, subject)
	}
	if err != nil {
		return fmt.Errorf("provision: %s: %w", what, err)
	}
	var resp claimsResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("provision: %s: unreadable answer %q: %w", what, msg.Data, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("%w: %s: %s", ErrClaimsRefused, what, resp.Error.Description)
	}
	if resp.Data == nil || resp.Data.Code != 200 {
		return fmt.Errorf("%w: %s: unexpected answer %q", ErrClaimsRefused, what, msg.Data)
	}
	return nil
}

// userJWT signs a user of role in the tenant's account.
func (p *Provisioner) userJWT(rec Record, role Role, userKey, name string, expires time.Duration) (string, error) {
	if !nkeys.IsValidPublicUserKey(userKey) {
		return "", fmt.Errorf("%w: %q is not a user public key", ErrInvalidConfig, userKey)
	}
	signer, err := p.cfg.Keys.roleSigner(role)
	if err != nil {
		return "", err
	}
	uc := jwt.NewUserClaims(userKey)
	uc.Name = name
	uc.IssuerAccount = rec.Account
	uc.Tags.Add("jetsession-" + string(role))
	// The role's scope in the account decides the permissions.
	uc.SetScoped(true)
	if expires > 0 {
		uc.Expires = time.Now().Add(expires).Unix()
	}
	return uc.Encode(signer)
}

// readerJWTs signs a reader user in the tenant's account for each reader.
func (p *Provisioner) readerJWTs(rec Record) (map[string]string, error) {
	if len(p.cfg.Keys.Readers) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(p.cfg.Keys.Readers))
	for _, r := range p.cfg.Keys.Readers {
		token, err := p.userJWT(rec, RoleReader, r, "reader", 0)
		if err != nil {
			return nil, err
		}
		out[r] = token
	}
	return out, nil
}

// withTenant runs fn on a passing connection to the tenant's account, as a
// fresh provisioner user that expires soon: a Log whose deletion records
// live in the operations account, and a JetStream context.
func (p *Provisioner) withTenant(ctx context.Context, rec Record, fn func(*jetstream.Log, natsjs.JetStream) error) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	token, err := p.userJWT(rec, RoleProvisioner, public(kp), "jetsession provisioner", 10*time.Minute)
	if err != nil {
		return err
	}
	seed, _ := kp.Seed()
	logger := p.cfg.Logger
	nc, err := p.cfg.Dial(nats.UserJWTAndSeed(token, string(seed)), nats.CustomInboxPrefix(ProvisionerInbox),
		nats.Name("jetsession provisioner"), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Debug("NATS reports an error on the provisioner's connection to a tenant", "tenant", rec.Tenant, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("provision: connecting to the account of tenant %q: %w", rec.Tenant, err)
	}
	defer nc.Close()
	watcher := jetstream.WatchPermissions(nc)
	log, err := jetstream.New(nc, jetstream.WithScheme(p.cfg.Scheme), jetstream.WithSystemLog(p.opsLog),
		jetstream.WithPermissionWatcher(watcher), jetstream.WithReplicas(p.cfg.Replicas),
		jetstream.WithTenantQuota(rec.Limits.StorageBytes), jetstream.WithRequestTimeout(p.cfg.Timeout))
	if err != nil {
		return err
	}
	js, err := natsjs.New(nc)
	if err != nil {
		return err
	}
	return fn(log, js)
}

// checkJetStream waits until the tenant's account has JetStream with the
// record's storage limit: the server applies a pushed JWT at once, but
// refuses JetStream (or a raised limit) to an account it has no room for.
func (p *Provisioner) checkJetStream(ctx context.Context, js natsjs.JetStream, rec Record) error {
	// A loaded server may take a while; one with no room never gives it.
	deadline := time.Now().Add(p.cfg.Timeout)
	// JetStream comes to a new account a moment after its first
	// connection: ask often at first.
	wait := 2 * time.Millisecond
	for {
		actx, cancel := p.withTimeout(ctx)
		info, err := js.AccountInfo(actx)
		cancel()
		switch {
		case err == nil && info.Limits.MaxStore == rec.Limits.AccountStorage():
			return nil
		case err == nil:
			err = fmt.Errorf("its storage limit is %d bytes, not %d", info.Limits.MaxStore, rec.Limits.AccountStorage())
		case !errors.Is(err, natsjs.ErrJetStreamNotEnabledForAccount) && !errors.Is(err, natsjs.ErrJetStreamNotEnabled):
			return fmt.Errorf("provision: asking the account of tenant %q for its JetStream: %w", rec.Tenant, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: tenant %q (account %s): %w (see the server's log: a single server reserves every account's storage limit out of max_file_store)",
				ErrNoJetStream, rec.Tenant, rec.Account, err)
		}
		time.Sleep(wait)
		wait = min(wait+5*time.Millisecond, 50*time.Millisecond)
	}
}
