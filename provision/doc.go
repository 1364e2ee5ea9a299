// Package provision runs jetsession with an account per tenant: NATS
// decentralized auth (an operator, a system account, an operations
// account and one account per tenant, all JWTs), so that the server
// itself keeps tenants apart and bounds what each may use.
//
// The layout:
//
//   - the operator signs every account JWT with its signing key (Keys);
//     the server trusts it and keeps account JWTs in its built-in full
//     resolver, so accounts are created, changed and deleted at run time
//     ($SYS.REQ.CLAIMS.UPDATE and .DELETE) without a restart or a reload;
//   - the operations account ("JETSESSION") holds the tenant registry (a
//     key-value bucket, one Record per tenant) and the system stream of
//     tenant deletion records (jetstream.WithSystemLog): what outlives a
//     tenant's account;
//   - each tenant's account holds its stream and nothing else, with
//     JetStream, connection, subscription and payload limits (Limits). Its
//     users are signed by four role keys shared by every tenant account,
//     each scoped to a permission template (Role): the account decides
//     what a role may do, whoever holds a role's key can only issue users
//     of that role. Suspending a tenant removes its agent and archiver
//     keys from its account, which disconnects them at once.
//
// A Provisioner creates, limits, suspends, resumes and deletes tenants
// and issues credentials; a Registry reads the records, for the bridge and
// the operator's view (package accountsource). Init writes a new operator
// with its accounts, keys, credentials and the server configuration that
// trusts them.
package provision
