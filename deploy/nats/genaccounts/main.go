// Command genaccounts writes the NATS accounts block that gives each
// jetsession role only the subjects it needs, for any list of tenants:
//
//	go run ./deploy/nats/genaccounts -tenants acme,globex > deploy/nats/accounts.conf
//
// Every role lives in one account with JetStream enabled. Per tenant there
// is an agent (append, read, tail that tenant only) and an archiver (the
// agent's rights plus purge), both with their tenant's snapshots; then a
// provisioner (creates tenant and snapshot streams), a
// bridge (reads and tails every tenant) and an admin (everything).
//
// Passwords are placeholders ("change-me-<user>") unless -random-passwords
// is given; in production use nkeys or decentralized JWT auth instead.
package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
)

// Inbox prefixes of the service users. They hold upper-case letters, which
// no tenant inbox can: EncodeTenant only emits a-z, 0-9, '-' and '_'+hex,
// so a tenant named "bridge" cannot share the bridge's inbox.
const (
	BridgeInbox      = "_INBOX_BRIDGE"
	ProvisionerInbox = "_INBOX_PROVISIONER"
)

// Config names what the generated permissions cover.
type Config struct {
	Account         string
	Tenants         []string
	Scheme          subjects.Scheme
	APIPrefix       string
	RandomPasswords bool
}

// TenantInbox is the inbox prefix an agent of tenant must connect with
// (nats.CustomInboxPrefix): the only subjects it may subscribe to.
func TenantInbox(tenant string) string { return "_INBOX_" + subjects.EncodeTenant(tenant) }

func main() {
	var (
		tenants   = flag.String("tenants", "", "comma-separated tenant names (required)")
		account   = flag.String("account", "JETSESSION", "account holding every user")
		subjPre   = flag.String("subject-prefix", subjects.DefaultSubjectPrefix, "thread subject prefix (jetstream.WithScheme)")
		streamPre = flag.String("stream-prefix", subjects.DefaultStreamPrefix, "tenant stream name prefix (jetstream.WithScheme)")
		apiPrefix = flag.String("api-prefix", "$JS.API", "JetStream API prefix (jetstream.WithAPIPrefix)")
		random    = flag.Bool("random-passwords", false, "random passwords instead of change-me placeholders")
	)
	flag.Parse()
	cfg := Config{
		Account:         *account,
		Scheme:          subjects.Scheme{SubjectPrefix: *subjPre, StreamPrefix: *streamPre},
		APIPrefix:       *apiPrefix,
		RandomPasswords: *random,
	}
	for _, t := range strings.Split(*tenants, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Tenants = append(cfg.Tenants, t)
		}
	}
	if err := Write(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "genaccounts:", err)
		os.Exit(2)
	}
}

// User is one login and its permissions; nil Publish or Subscribe means
// no restriction on that side.
type User struct {
	Name      string
	Comment   string
	Publish   []string
	Subscribe []string
	// DenyPublish carves subjects out of Publish.
	DenyPublish []string
}

// Users returns every user of cfg, in a stable order.
func Users(cfg Config) []User {
	api, sc := cfg.APIPrefix, cfg.Scheme
	var users []User
	for _, tenant := range cfg.Tenants {
		enc := subjects.EncodeTenant(tenant)
		stream := sc.Stream(tenant)
		agent := []string{
			// Append: single events and atomic batches, request/reply.
			sc.TenantFilter(tenant),
			// Reads: stream lookups, batched direct gets, leader gets.
			api + ".STREAM.INFO." + stream,
			api + ".DIRECT.GET." + stream,
			api + ".STREAM.MSG.GET." + stream,
			// Tails: a consumer filtered on a thread or the whole tenant;
			// the server refuses a body whose filter differs from the
			// subject's. "*" also matches the literal "*" of the tenant filter.
			api + ".CONSUMER.CREATE." + stream + ".*." + sc.SubjectPrefix + "." + enc + ".*",
			api + ".CONSUMER.DELETE." + stream + ".*",
			// Flow control replies of the tail's push consumer, in the
			// default form and in the js_ack_fc_v2 form
			// ($JS.FC.<domain>.<account hash>.<stream>...).
			"$JS.FC." + stream + ".>",
			"$JS.FC.*.*." + stream + ".>",
			// Snapshots: save (a publish, after reading the current one
			// and the tenant's last ordinal) and load (a direct get of a
			// single-replica stream, a leader get otherwise). The
			// provisioner creates the snapshot stream (EnsureSnapshots).
			sc.SnapshotFilter(tenant),
			api + ".STREAM.INFO." + sc.SnapshotStream(tenant),
			api + ".DIRECT.GET." + sc.SnapshotStream(tenant),
			api + ".STREAM.MSG.GET." + sc.SnapshotStream(tenant),
		}
		inbox := []string{TenantInbox(tenant) + ".>"}
		users = append(users,
			User{
				Name:      "agent-" + tenant,
				Comment:   fmt.Sprintf("tenant %q: append, load, list, tail; connect with nats.CustomInboxPrefix(%q)", tenant, TenantInbox(tenant)),
				Publish:   agent,
				Subscribe: inbox,
				// Thread deletion records are the archiver's: an agent
				// could otherwise make the bridge delete analytics rows.
				DenyPublish: []string{sc.DeletionSubject(tenant)},
			},
			User{
				Name:      "archiver-" + tenant,
				Comment:   fmt.Sprintf("tenant %q: the agent's rights plus ArchiveBefore (purge) and DeleteThread", tenant),
				Publish:   append(append([]string(nil), agent...), api+".STREAM.PURGE."+stream),
				Subscribe: inbox,
			})
	}
	// Stream names are one token and NATS wildcards match whole tokens, so
	// "every tenant stream" can only be written as "every stream"; the
	// bridge's reads of the known tenants' snapshot streams are carved
	// out (it needs none).
	var noSnapshots []string
	for _, tenant := range cfg.Tenants {
		noSnapshots = append(noSnapshots,
			api+".STREAM.MSG.GET."+sc.SnapshotStream(tenant), api+".DIRECT.GET."+sc.SnapshotStream(tenant))
	}
	users = append(users,
		User{
			Name:    "provisioner",
			Comment: fmt.Sprintf("creates and deletes tenants (EnsureTenant, DeleteTenant); reads no events; inbox %q", ProvisionerInbox),
			Publish: []string{
				api + ".STREAM.CREATE.*",
				api + ".STREAM.DELETE.*",
				// A deleted tenant's last ordinal, before creating it
				// again; the stream's state, before deleting it. STREAM.INFO
				// with a subjects filter would list thread names, never
				// events.
				api + ".STREAM.INFO.*",
				api + ".STREAM.MSG.GET." + sc.SystemStream(),
				// The record of a tenant's deletion.
				sc.SystemFilter(),
			},
			Subscribe: []string{ProvisionerInbox + ".>"},
		},
		User{
			Name:    "bridge",
			Comment: fmt.Sprintf("reads and tails every tenant, never writes; inbox %q", BridgeInbox),
			Publish: []string{
				api + ".STREAM.LIST",
				api + ".STREAM.INFO.*",
				api + ".DIRECT.GET.*",
				api + ".STREAM.MSG.GET.*",
				api + ".CONSUMER.CREATE.*.*." + sc.AllTenantsFilter(),
				api + ".CONSUMER.DELETE.*.*",
				"$JS.FC.>",
			},
			Subscribe: []string{
				BridgeInbox + ".>",
				"$JS.EVENT.ADVISORY.STREAM.CREATED.>",
			},
			DenyPublish: noSnapshots,
		},
		User{Name: "admin", Comment: "everything in the account: operators and tooling only"},
	)
	return users
}

// Write writes the accounts block of cfg to w.
func Write(w io.Writer, cfg Config) error {
	if cfg.Account == "" || strings.ContainsAny(cfg.Account, " \t.*>\"") {
		return fmt.Errorf("bad account name %q", cfg.Account)
	}
	if len(cfg.Tenants) == 0 {
		return errors.New("no tenants: pass -tenants a,b,c")
	}
	if err := cfg.Scheme.Validate(); err != nil {
		return err
	}
	if cfg.APIPrefix == "" {
		return errors.New("empty API prefix")
	}
	seen := map[string]bool{}
	for _, t := range cfg.Tenants {
		if err := sessionlog.ValidateTenant(t); err != nil {
			return err
		}
		if seen[t] {
			return fmt.Errorf("tenant %q listed twice", t)
		}
		seen[t] = true
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by: go run ./deploy/nats/genaccounts -tenants %s", quoteArg(strings.Join(cfg.Tenants, ",")))
	if cfg.Scheme != subjects.Default() {
		fmt.Fprintf(&b, " -subject-prefix %s -stream-prefix %s", quoteArg(cfg.Scheme.SubjectPrefix), quoteArg(cfg.Scheme.StreamPrefix))
	}
	if cfg.APIPrefix != "$JS.API" {
		fmt.Fprintf(&b, " -api-prefix %s", quoteArg(cfg.APIPrefix))
	}
	if cfg.Account != "JETSESSION" {
		fmt.Fprintf(&b, " -account %s", quoteArg(cfg.Account))
	}
	b.WriteString(`
#
# Least-privilege roles for jetsession, all in one account. Anything not
# allowed below is denied: creating, updating, deleting or purging streams
# (but for the provisioner and archivers), other tenants, $JS.API.INFO,
# $SYS, other inboxes.
#
# The passwords are placeholders: replace them (or generate random ones with
# -random-passwords), keep this file secret, and prefer nkeys or JWT auth in
# production (an nkey user is { nkey: "U...", permissions: {...} }).
#
# One account is one subject space. These permissions confine every library
# call, but not a hostile client: the server does not check the reply
# subject of a request, and through it a tenant with agent rights reaches
# other tenants' streams and the JetStream API. Tenants that may attack
# each other need an account each: see README.md ("What the permissions do
# not cover").
`)
	fmt.Fprintf(&b, "accounts {\n  %s {\n    jetstream: enabled\n    users: [\n", cfg.Account)
	for _, u := range Users(cfg) {
		pass := "change-me-" + u.Name
		if cfg.RandomPasswords {
			var err error
			if pass, err = randomPassword(); err != nil {
				return err
			}
		}
		fmt.Fprintf(&b, "\n      # %s\n", u.Comment)
		fmt.Fprintf(&b, "      {\n        user: %s\n        password: %s\n", quote(u.Name), quote(pass))
		if u.Publish != nil || u.Subscribe != nil {
			b.WriteString("        permissions: {\n")
			writeList(&b, "publish", u.Publish, u.DenyPublish)
			writeList(&b, "subscribe", u.Subscribe, nil)
			b.WriteString("        }\n")
		}
		b.WriteString("      }\n")
	}
	b.WriteString("    ]\n  }\n}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeList(b *strings.Builder, side string, allow, deny []string) {
	fmt.Fprintf(b, "          %s: { allow: [\n", side)
	for _, s := range allow {
		fmt.Fprintf(b, "            %s\n", quote(s))
	}
	if len(deny) == 0 {
		b.WriteString("          ] }\n")
		return
	}
	b.WriteString("          ], deny: [\n")
	for _, s := range deny {
		fmt.Fprintf(b, "            %s\n", quote(s))
	}
	b.WriteString("          ] }\n")
}

// quote writes a double-quoted config string. Quoting keeps "$JS..." from
// being read as a variable reference.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// quoteArg quotes a shell argument when it needs it.
func quoteArg(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(",.-_/", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func randomPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	for i, c := range buf {
		buf[i] = alphabet[int(c)%len(alphabet)]
	}
	return string(buf), nil
}
