package provision

import (
	"fmt"

	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/jwt/v2"
)

// Role is what a user of a tenant's account may do. Each role has one
// signing key, shared by every tenant account, scoped in each account to
// the role's permission template: a user signed by the agent key is an
// agent of the account its JWT names, whatever else its JWT says.
type Role string

const (
	// RoleAgent appends, loads and tails its tenant's threads and saves
	// and loads their snapshots: every library call but ArchiveBefore and
	// DeleteThread. Connects with the
	// default inbox prefix, _INBOX.
	RoleAgent Role = "agent"
	// RoleArchiver has the agent's rights plus ArchiveBefore (a purge)
	// and DeleteThread.
	RoleArchiver Role = "archiver"
	// RoleReader reads and tails every thread of its tenant and writes
	// nothing: the bridge and the operator's view. Connects with inbox
	// prefix ReaderInbox.
	RoleReader Role = "reader"
	// RoleProvisioner creates, updates and deletes the tenant's stream
	// and reads no event (EnsureTenant, DeleteTenant, Tenant). It may
	// also create and delete the tenant's snapshot stream, which
	// Provisioner.Create makes beside the event stream. The
	// provisioner issues itself a short-lived user of this role for each
	// change. Connects with inbox prefix ProvisionerInbox.
	RoleProvisioner Role = "provisioner"
)

// Roles lists every role, in a stable order.
var Roles = []Role{RoleAgent, RoleArchiver, RoleReader, RoleProvisioner}

// Inbox prefixes of the service roles. They hold upper-case letters, so
// they never overlap the agents' _INBOX.> (NATS tokens are compared
// exactly).
const (
	ReaderInbox      = "_INBOX_READER"
	ProvisionerInbox = "_INBOX_PROVISIONER"
)

// Inbox returns the inbox prefix users of the role connect with
// (nats.CustomInboxPrefix); agents and archivers use the default.
func (r Role) Inbox() string {
	switch r {
	case RoleReader:
		return ReaderInbox
	case RoleProvisioner:
		return ProvisionerInbox
	}
	return "_INBOX"
}

func (r Role) valid() error {
	for _, known := range Roles {
		if r == known {
			return nil
		}
	}
	return fmt.Errorf("%w: unknown role %q (known: agent, archiver, reader, provisioner)", ErrInvalidConfig, r)
}

// Permissions returns what a user of the role may publish and subscribe
// to in tenant's account, for the library's default API prefix. Anything
// else is denied.
func (r Role) Permissions(scheme subjects.Scheme, tenant string) jwt.Permissions {
	const api = "$JS.API"
	stream := scheme.Stream(tenant)
	read := []string{
		api + ".STREAM.INFO." + stream,
		api + ".DIRECT.GET." + stream,
		api + ".STREAM.MSG.GET." + stream,
		// Tails filtered on a thread, or on the whole tenant: the
		// server refuses a body whose filter is not the subject's, and
		// the last "*" also matches the literal "*" of the tenant filter.
		api + ".CONSUMER.CREATE." + stream + ".*." + scheme.TenantFilter(tenant),
		api + ".CONSUMER.DELETE." + stream + ".*",
		// A tail's answers to flow control, in the default form and in
		// the js_ack_fc_v2 form.
		"$JS.FC." + stream + ".>",
		"$JS.FC.*.*." + stream + ".>",
	}
	// Snapshots: save (a publish, after reading the current one and the
	// tenant's last ordinal) and load (a direct get of a single-replica
	// stream, a leader get otherwise); DeleteThread marks the thread's
	// snapshot deleted with a publish too.
	snapStream := scheme.SnapshotStream(tenant)
	snapshots := []string{
		scheme.SnapshotFilter(tenant),
		api + ".STREAM.INFO." + snapStream,
		api + ".DIRECT.GET." + snapStream,
		api + ".STREAM.MSG.GET." + snapStream,
	}
	var p jwt.Permissions
	switch r {
	case RoleAgent:
		p.Pub.Allow = append(append([]string{scheme.TenantFilter(tenant)}, read...), snapshots...)
		// Thread deletion records are the archiver's: an agent could
		// otherwise make the bridge delete analytics rows.
		p.Pub.Deny = []string{scheme.DeletionSubject(tenant)}
		p.Sub.Allow = []string{"_INBOX.>"}
	case RoleArchiver:
		p.Pub.Allow = append(append(append([]string{scheme.TenantFilter(tenant)}, read...), snapshots...), api+".STREAM.PURGE."+stream)
		p.Sub.Allow = []string{"_INBOX.>"}
	case RoleReader:
		p.Pub.Allow = read
		p.Sub.Allow = []string{ReaderInbox + ".>"}
	case RoleProvisioner:
		p.Pub.Allow = []string{
			api + ".INFO",
			api + ".STREAM.CREATE." + stream,
			api + ".STREAM.UPDATE." + stream,
			// The stream's state, before it is deleted: with a subjects
			// filter it lists thread names, never events.
			api + ".STREAM.INFO." + stream,
			api + ".STREAM.DELETE." + stream,
			// The snapshot stream (created with the tenant, its quota
			// changed with the storage limit, deleted with the tenant).
			api + ".STREAM.CREATE." + snapStream,
			api + ".STREAM.UPDATE." + snapStream,
			api + ".STREAM.INFO." + snapStream,
			api + ".STREAM.DELETE." + snapStream,
		}
		p.Sub.Allow = []string{ProvisionerInbox + ".>"}
	}
	return p
}

// scope is the role's signing key scope in tenant's account.
func (r Role) scope(key string, scheme subjects.Scheme, tenant string) *jwt.UserScope {
	s := jwt.NewUserScope()
	s.Key = key
	s.Role = string(r)
	s.Description = fmt.Sprintf("jetsession %s of tenant %q", r, tenant)
	s.Template.Permissions = r.Permissions(scheme, tenant)
	// Publishing is bounded by the account's payload limit; a user
	// cannot be a bearer token.
	s.Template.BearerToken = false
	return s
}
