package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"
)

// Keys are what a Provisioner signs with, and the public keys it writes
// into every tenant account.
type Keys struct {
	// OperatorSigning signs account JWTs: every change of a tenant needs
	// it. Whoever holds it defines every account, so keep it as secret as
	// the operator's own key.
	OperatorSigning nkeys.KeyPair
	// Roles holds one signing key per role. Every role's public key is
	// written into each tenant account; a seed is needed only to issue
	// users of that role: the provisioner's own (always), the readers'
	// (when creating a tenant), the agents' and archivers' (Creds). A key
	// made with nkeys.FromPublicKey carries no seed.
	Roles map[Role]nkeys.KeyPair
	// Readers are user public keys given a reader user in every tenant
	// account: their JWTs are in each tenant's Record, so a process holding
	// one of these seeds (the bridge) follows every tenant with no
	// credentials to fetch.
	Readers []string
}

func (k Keys) validate() error {
	var errs []error
	if k.OperatorSigning == nil {
		errs = append(errs, errors.New("no operator signing key"))
	} else if _, err := k.OperatorSigning.Seed(); err != nil {
		errs = append(errs, fmt.Errorf("the operator signing key has no seed: %w", err))
	} else if pub, err := k.OperatorSigning.PublicKey(); err != nil || !nkeys.IsValidPublicOperatorKey(pub) {
		errs = append(errs, errors.New("the operator signing key is not an operator key"))
	}
	for _, r := range Roles {
		kp := k.Roles[r]
		if kp == nil {
			errs = append(errs, fmt.Errorf("no %s role key", r))
			continue
		}
		if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
			errs = append(errs, fmt.Errorf("the %s role key is not an account key", r))
		}
	}
	for _, r := range k.Readers {
		if !nkeys.IsValidPublicUserKey(r) {
			errs = append(errs, fmt.Errorf("reader %q is not a user public key", r))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// rolePublic returns the public key of a role's signing key.
func (k Keys) rolePublic(r Role) string {
	pub, _ := k.Roles[r].PublicKey()
	return pub
}

// roleSigner returns the role's key if it can sign.
func (k Keys) roleSigner(r Role) (nkeys.KeyPair, error) {
	kp := k.Roles[r]
	if kp == nil {
		return nil, fmt.Errorf("%w: no %s role key", ErrMissingKey, r)
	}
	if _, err := kp.Seed(); err != nil {
		return nil, fmt.Errorf("%w: the %s role key's seed (%s)", ErrMissingKey, r, roleKeyFile(r))
	}
	return kp, nil
}

// Files of a provisioning folder (Init writes them, LoadKeys reads them).
// Seeds and credentials are written readable by their owner only.
const (
	// ServerConfigFile is included by the server configuration: the
	// operator JWT, the system account and the preloaded JWTs of the
	// system and operations accounts.
	ServerConfigFile = "operator.conf"
	// SetupFile records the public side of the setup (Setup).
	SetupFile = "setup.json"
	// KeysDir holds the seeds, CredsDir the user credentials.
	KeysDir  = "keys"
	CredsDir = "creds"
)

// Names of the credentials Init writes in CredsDir.
const (
	// ProvisionerSystemCreds is the provisioner's user of the system
	// account: it may only push and delete account JWTs.
	ProvisionerSystemCreds = "provisioner-system.creds"
	// ProvisionerCreds is the provisioner's user of the operations
	// account: the registry and the deletion records.
	ProvisionerCreds = "provisioner.creds"
	// BridgeCreds and ViewerCreds are readers: users of the operations
	// account that read the registry and the deletion records, whose seed
	// also signs in to every tenant account as a reader. The bridge uses
	// the first, the operator's CLI the second.
	BridgeCreds = "bridge.creds"
	ViewerCreds = "viewer.creds"
)

func roleKeyFile(r Role) string { return filepath.Join(KeysDir, "role-"+string(r)+".nk") }

const operatorSigningFile = "operator-signing.nk"

// Setup is the public side of a provisioning folder: which operator and
// accounts it made, and the public keys of its role signing keys and
// readers.
type Setup struct {
	Operator         string          `json:"operator"`
	OperatorSigning  string          `json:"operator_signing_key"`
	SystemAccount    string          `json:"system_account"`
	OpsAccount       string          `json:"operations_account"`
	RoleKeys         map[Role]string `json:"role_keys"`
	Readers          []string        `json:"readers"`
	SubjectPrefix    string          `json:"subject_prefix"`
	StreamPrefix     string          `json:"stream_prefix"`
	ProvisionerInbox string          `json:"provisioner_inbox"`
}

// ReadSetup reads the Setup of a provisioning folder.
func ReadSetup(dir string) (Setup, error) {
	var s Setup
	data, err := os.ReadFile(filepath.Join(dir, SetupFile))
	if err != nil {
		return s, fmt.Errorf("%w: %w (make one with 'jetsession tenant init')", ErrInvalidConfig, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, SetupFile, err)
	}
	return s, nil
}

// LoadKeys reads the keys of a provisioning folder written by Init: the
// operator signing key (required) and the seeds of whichever role keys
// the folder holds; the other roles get their public keys from the
// folder's Setup. Giving a provisioner fewer seeds limits what it can
// issue: without keys/role-agent.nk it cannot issue agent credentials.
func LoadKeys(dir string) (Keys, error) {
	setup, err := ReadSetup(dir)
	if err != nil {
		return Keys{}, err
	}
	k := Keys{Roles: map[Role]nkeys.KeyPair{}, Readers: setup.Readers}
	if k.OperatorSigning, err = readSeed(filepath.Join(dir, KeysDir, operatorSigningFile)); err != nil {
		return Keys{}, err
	}
	for _, r := range Roles {
		kp, err := readSeed(filepath.Join(dir, roleKeyFile(r)))
		if errors.Is(err, os.ErrNotExist) {
			pub := setup.RoleKeys[r]
			if kp, err = nkeys.FromPublicKey(pub); err != nil {
				return Keys{}, fmt.Errorf("%w: %s: the %s role key %q: %w", ErrInvalidConfig, SetupFile, r, pub, err)
			}
		} else if err != nil {
			return Keys{}, err
		}
		k.Roles[r] = kp
	}
	return k, k.validate()
}

func readSeed(path string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
	if err != nil {
		return nil, fmt.Errorf("%w: %s holds no NKey seed: %w", ErrInvalidConfig, path, err)
	}
	return kp, nil
}
