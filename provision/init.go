package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Names of the accounts Init creates (the JWTs' names; the server knows
// accounts by public key).
const (
	SystemAccountName = "SYS"
	OpsAccountName    = "JETSESSION"
)

// InitOptions shape a new provisioning folder.
type InitOptions struct {
	// Scheme names the tenant streams and subjects (default
	// subjects.Default()).
	Scheme subjects.Scheme
	// OpsStorageBytes caps the operations account's JetStream storage
	// (the registry and the deletion records; default 256 MiB). On a
	// single server it is reserved out of max_file_store.
	OpsStorageBytes int64
}

// RegistryBucket is the key-value bucket of the tenant registry, in the
// operations account: one key per tenant (subjects.EncodeTenant), whose
// value is the tenant's Record as JSON.
func RegistryBucket(scheme subjects.Scheme) string { return scheme.StreamPrefix + "tenants" }

// Init writes a new operator and everything a deployment with an account
// per tenant needs into dir, which must not hold one already:
//
//   - operator.conf, for the server configuration to include: the
//     operator's JWT, the system account, and the JWTs of the system and
//     operations accounts to preload into the resolver;
//   - setup.json, the public keys (Setup);
//   - keys/, the seeds: the operator's own (keep it offline: it is only
//     needed to change the operator's signing keys), its signing key (the
//     provisioner's), the accounts' signing keys, the four role keys and
//     the readers' user keys;
//   - creds/, the users of the system and operations accounts: the
//     provisioner's two, the bridge's and the operator view's.
//
// Seeds and credentials are written readable by their owner only.
func Init(dir string, o InitOptions) (Setup, error) {
	if o.Scheme == (subjects.Scheme{}) {
		o.Scheme = subjects.Default()
	}
	if err := o.Scheme.Validate(); err != nil {
		return Setup{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if o.OpsStorageBytes == 0 {
		o.OpsStorageBytes = 256 << 20
	}
	if o.OpsStorageBytes < 1<<20 {
		return Setup{}, fmt.Errorf("%w: operations account storage must be at least 1 MiB, got %d", ErrInvalidConfig, o.OpsStorageBytes)
	}
	if _, err := os.Stat(filepath.Join(dir, SetupFile)); err == nil {
		return Setup{}, fmt.Errorf("%w: %s already holds a setup (%s)", ErrInvalidConfig, dir, SetupFile)
	}
	for _, sub := range []string{KeysDir, CredsDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return Setup{}, err
		}
	}
	w := &initWriter{dir: dir}

	operator := w.key(nkeys.CreateOperator, "operator.nk")
	opSigning := w.key(nkeys.CreateOperator, operatorSigningFile)
	sys := w.key(nkeys.CreateAccount, "system.nk")
	sysSigning := w.key(nkeys.CreateAccount, "system-signing.nk")
	ops := w.key(nkeys.CreateAccount, "operations.nk")
	opsSigning := w.key(nkeys.CreateAccount, "operations-signing.nk")
	roles := map[Role]nkeys.KeyPair{}
	for _, r := range Roles {
		roles[r] = w.key(nkeys.CreateAccount, strings.TrimPrefix(roleKeyFile(r), KeysDir+string(filepath.Separator)))
	}
	provUser := w.key(nkeys.CreateUser, "provisioner-user.nk")
	bridge := w.key(nkeys.CreateUser, "bridge-user.nk")
	viewer := w.key(nkeys.CreateUser, "viewer-user.nk")
	if w.err != nil {
		return Setup{}, w.err
	}

	setup := Setup{
		Operator:         public(operator),
		OperatorSigning:  public(opSigning),
		SystemAccount:    public(sys),
		OpsAccount:       public(ops),
		RoleKeys:         map[Role]string{},
		Readers:          []string{public(bridge), public(viewer)},
		SubjectPrefix:    o.Scheme.SubjectPrefix,
		StreamPrefix:     o.Scheme.StreamPrefix,
		ProvisionerInbox: ProvisionerInbox,
	}
	for r, kp := range roles {
		setup.RoleKeys[r] = public(kp)
	}

	// The operator: account JWTs must come from its signing key.
	oc := jwt.NewOperatorClaims(setup.Operator)
	oc.Name = "jetsession"
	oc.SigningKeys.Add(setup.OperatorSigning)
	oc.StrictSigningKeyUsage = true
	oc.SystemAccount = setup.SystemAccount
	operatorJWT := w.encode(oc.Encode(operator))

	// The system account: its users are signed by its signing key.
	sc := jwt.NewAccountClaims(setup.SystemAccount)
	sc.Name = SystemAccountName
	sc.SigningKeys.Add(public(sysSigning))
	systemJWT := w.encode(sc.Encode(opSigning))

	// The operations account: the registry and the deletion records.
	ac := jwt.NewAccountClaims(setup.OpsAccount)
	ac.Name = OpsAccountName
	ac.SigningKeys.Add(public(opsSigning))
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: o.OpsStorageBytes, MemoryStorage: 0, Streams: 4, Consumer: jwt.NoLimit}
	ac.Limits.DisallowBearer = true
	opsJWT := w.encode(ac.Encode(opSigning))

	w.creds(ProvisionerSystemCreds, provUser, setup.SystemAccount, sysSigning, "provisioner", jwt.Permissions{
		Pub: jwt.Permission{Allow: []string{"$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.CLAIMS.DELETE"}},
		Sub: jwt.Permission{Allow: []string{ProvisionerInbox + ".>"}},
	})
	w.creds(ProvisionerCreds, provUser, setup.OpsAccount, opsSigning, "provisioner", opsProvisionerPermissions(o.Scheme))
	w.creds(BridgeCreds, bridge, setup.OpsAccount, opsSigning, "bridge", opsReaderPermissions(o.Scheme))
	w.creds(ViewerCreds, viewer, setup.OpsAccount, opsSigning, "viewer", opsReaderPermissions(o.Scheme))

	conf := fmt.Sprintf(`# Written by 'jetsession tenant init': the operator this server trusts, its
# system account, and the JWTs of the system and operations accounts. Tenant
# accounts are pushed at run time by the provisioner ($SYS.REQ.CLAIMS.UPDATE)
# into the resolver the including configuration declares.
operator: %q
system_account: %q
resolver_preload: {
  %s: %q
  %s: %q
}
`, operatorJWT, setup.SystemAccount, setup.SystemAccount, systemJWT, setup.OpsAccount, opsJWT)
	w.file(ServerConfigFile, []byte(conf), 0o644)
	w.file("operator.jwt", []byte(operatorJWT), 0o644)
	data, _ := json.MarshalIndent(setup, "", "  ")
	w.file(SetupFile, append(data, '\n'), 0o644)
	if w.err != nil {
		return Setup{}, w.err
	}
	return setup, nil
}

// opsProvisionerPermissions lets the provisioner keep the registry and
// write deletion records in the operations account.
func opsProvisionerPermissions(s subjects.Scheme) jwt.Permissions {
	kv := "KV_" + RegistryBucket(s)
	sys := s.SystemStream()
	return jwt.Permissions{
		Pub: jwt.Permission{Allow: append([]string{
			"$JS.API.STREAM.CREATE." + kv,
			"$JS.API.STREAM.CREATE." + sys,
			"$KV." + RegistryBucket(s) + ".>",
			// The record of a tenant's deletion.
			strings.TrimSuffix(s.TenantDeletedSubject("x"), "x") + "*",
		}, opsReadSubjects(s)...)},
		Sub: jwt.Permission{Allow: []string{ProvisionerInbox + ".>"}},
	}
}

// opsReaderPermissions lets the bridge and the operator's view read the
// registry and the deletion records, and watch the registry.
func opsReaderPermissions(s subjects.Scheme) jwt.Permissions {
	return jwt.Permissions{
		Pub: jwt.Permission{Allow: opsReadSubjects(s)},
		Sub: jwt.Permission{Allow: []string{ReaderInbox + ".>"}},
	}
}

func opsReadSubjects(s subjects.Scheme) []string {
	kv := "KV_" + RegistryBucket(s)
	sys := s.SystemStream()
	return []string{
		// Account information: the client library asks for it when it
		// opens a bucket.
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO." + kv,
		"$JS.API.DIRECT.GET." + kv + ".>",
		"$JS.API.STREAM.MSG.GET." + kv,
		// Watching the registry: an ordered push consumer.
		"$JS.API.CONSUMER.CREATE." + kv + ".>",
		"$JS.API.CONSUMER.DELETE." + kv + ".>",
		"$JS.FC." + kv + ".>",
		"$JS.FC.*.*." + kv + ".>",
		"$JS.API.STREAM.INFO." + sys,
		"$JS.API.DIRECT.GET." + sys,
		"$JS.API.STREAM.MSG.GET." + sys,
	}
}

// initWriter keeps the first error of a sequence of writes.
type initWriter struct {
	dir string
	err error
}

func (w *initWriter) key(create func() (nkeys.KeyPair, error), name string) nkeys.KeyPair {
	if w.err != nil {
		return nil
	}
	kp, err := create()
	if err != nil {
		w.err = err
		return nil
	}
	seed, err := kp.Seed()
	if err != nil {
		w.err = err
		return nil
	}
	w.file(filepath.Join(KeysDir, name), append(seed, '\n'), 0o600)
	return kp
}

func (w *initWriter) encode(token string, err error) string {
	if w.err == nil && err != nil {
		w.err = err
	}
	return token
}

func (w *initWriter) creds(name string, user nkeys.KeyPair, account string, signer nkeys.KeyPair, label string, perms jwt.Permissions) {
	if w.err != nil {
		return
	}
	uc := jwt.NewUserClaims(public(user))
	uc.Name = label
	uc.IssuerAccount = account
	uc.Permissions = perms
	token := w.encode(uc.Encode(signer))
	seed, err := user.Seed()
	if err != nil && w.err == nil {
		w.err = err
	}
	if w.err != nil {
		return
	}
	data, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		w.err = err
		return
	}
	w.file(filepath.Join(CredsDir, name), data, 0o600)
}

func (w *initWriter) file(name string, data []byte, mode os.FileMode) {
	if w.err != nil {
		return
	}
	path := filepath.Join(w.dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%w: %s exists: Init never overwrites keys", ErrInvalidConfig, path)
		}
		w.err = err
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	w.err = err
}

func public(kp nkeys.KeyPair) string {
	if kp == nil {
		return ""
	}
	pub, _ := kp.PublicKey()
	return pub
}
