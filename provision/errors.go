package provision

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrTenantExists is returned by Provisioner.Create for a tenant that
	// already has an account (active or suspended).
	ErrTenantExists = errors.New("provision: tenant exists")

	// ErrTenantNotFound is returned for a tenant the registry has no live
	// account for: never created, or deleted.
	ErrTenantNotFound = errors.New("provision: no such tenant")

	// ErrTenantBusy is returned when a tenant's record is in a state the
	// call cannot start from: Create of a tenant being deleted, or a
	// change of a tenant being created or deleted by an interrupted call
	// (run that call again to finish it).
	ErrTenantBusy = errors.New("provision: tenant is being created or deleted")

	// ErrConflict is returned when another provisioner changed the
	// tenant's record at the same time; nothing of this call was
	// recorded. Try again.
	ErrConflict = errors.New("provision: the tenant's record changed concurrently")

	// ErrClaimsRefused is returned when the server refused an account JWT
	// or an account deletion: it does not trust the signing key, or its
	// resolver is not a full resolver (allow_delete for deletions). The
	// error carries the server's reason.
	ErrClaimsRefused = errors.New("provision: the server refused the account claims")

	// ErrNoJetStream is returned when the tenant's account got no
	// JetStream: on a single server the accounts' storage limits are
	// reservations, and the server has no room left for this one's
	// (jetstream max_file_store and max_memory_store), or JetStream is
	// off. The account exists and the tenant's record stays "creating":
	// make room, then call Create again.
	ErrNoJetStream = errors.New("provision: no JetStream for the tenant's account")

	// ErrMissingKey is returned when a call needs a signing key whose seed
	// this provisioner was not given (Keys).
	ErrMissingKey = errors.New("provision: signing key not available")

	// ErrInvalidLimits is returned for limits that cannot work.
	ErrInvalidLimits = errors.New("provision: invalid limits")

	// ErrInvalidConfig is returned by New, Init and LoadKeys for settings
	// or files that cannot work.
	ErrInvalidConfig = errors.New("provision: invalid configuration")
)
