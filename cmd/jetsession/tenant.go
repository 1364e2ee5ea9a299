package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
)

// tenantVerbs are the provisioner's subcommands, for an account per
// tenant (package provision).
var tenantVerbs = []struct{ name, args, summary string }{
	{"init", "", "write a new operator, its accounts, keys and credentials into --dir"},
	{"create", "TENANT", "create a tenant: its account, with limits, and its stream"},
	{"list", "", "list the tenants of the registry: state, account, limits"},
	{"show", "TENANT", "print a tenant's registry record as JSON"},
	{"limit", "TENANT", "change a tenant's limits (the flags given), at once"},
	{"suspend", "TENANT", "disconnect the tenant's agents and archivers and refuse them (readers go on)"},
	{"resume", "TENANT", "let a suspended tenant's agents and archivers back in"},
	{"delete", "TENANT", "delete a tenant: its stream, its account, every credential; the bridge deletes its copies"},
	{"creds", "TENANT", "issue credentials of --role agent, archiver or reader in the tenant's account"},
	{"revoke", "TENANT USER_KEY", "make the credentials of one user public key stop working, at once"},
}

func runTenant(ctx context.Context, sio stdio, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		w := sio.stdout
		if len(args) == 0 {
			w = sio.stderr
		}
		fmt.Fprint(w, "Usage: jetsession tenant <verb> [arguments] [flags]\n\n"+
			"Provisions tenants that each have a NATS account of their own (deploy/nats/tenant-accounts.conf):\n"+
			"the server keeps them apart and bounds what each uses. 'init' writes a provisioning folder (--dir,\n"+
			"env JETSESSION_PROVISION_DIR, default jetsession-operator): keep it secret, it holds the keys.\n\nVerbs:\n")
		for _, v := range tenantVerbs {
			fmt.Fprintf(w, "  %-8s %-17s %s\n", v.name, v.args, v.summary)
		}
		fmt.Fprint(w, "\nFlags of every verb: --dir DIR; and but for init: --nats URL, --tls-ca FILE, --tls-cert FILE,\n"+
			"--tls-key FILE, --timeout DURATION, --json. The provisioner signs in with DIR/creds.\n"+
			"Run 'jetsession tenant <verb> --help' for a verb's flags.\n")
		if len(args) == 0 {
			return errShown
		}
		return nil
	}
	verb, rest := args[0], args[1:]
	i := slices.IndexFunc(tenantVerbs, func(v struct{ name, args, summary string }) bool { return v.name == verb })
	if i < 0 {
		return usagef("unknown verb %q of 'jetsession tenant' (see 'jetsession tenant help')", verb)
	}
	v := tenantVerbs[i]
	f := newFlags(sio, "tenant", "")
	f.cmd = command{name: "tenant " + v.name, args: v.args, summary: v.summary}
	tf := &tenantFlags{}
	f.fs.StringVar(&tf.dir, "dir", "", "provisioning `DIR` (env JETSESSION_PROVISION_DIR, default jetsession-operator)")
	if verb != "init" {
		f.fs.StringVar(&tf.url, "nats", "", "NATS server `URL`(s), comma separated (env NATS_URL, else "+defaultURL+")")
		f.fs.StringVar(&tf.tls.TLSCA, natsconn.FlagTLSCA, "", "PEM `FILE` of the CAs that signed the server's certificate (env NATS_CA)")
		f.fs.StringVar(&tf.tls.TLSCert, natsconn.FlagTLSCert, "", "client certificate PEM `FILE` (env NATS_CERT)")
		f.fs.StringVar(&tf.tls.TLSKey, natsconn.FlagTLSKey, "", "client key PEM `FILE` (env NATS_KEY)")
		f.duration(&tf.timeout, "timeout", 10*time.Second, "`DURATION` to wait for the server, with a unit")
		f.fs.BoolVar(&tf.json, "json", false, "print JSON")
	}
	switch verb {
	case "init":
		f.details = "Writes DIR/operator.conf (include it from the server configuration, as\n" +
			"deploy/nats/tenant-accounts.conf does), DIR/setup.json, DIR/keys/ (seeds: keep them\n" +
			"secret; keys/operator.nk only changes the operator's signing keys, keep it offline) and\n" +
			"DIR/creds/ (the provisioner's users, the bridge's and the operator view's)."
		var opsStorage string
		f.fs.StringVar(&opsStorage, "ops-storage", "256MiB", "JetStream storage `SIZE` of the operations account (registry, deletion records)")
		if _, err := f.parse(rest, 0, 0); err != nil {
			return err
		}
		size, err := parseSize("ops-storage", opsStorage)
		if err != nil {
			return err
		}
		dir := tf.folder(sio)
		setup, err := provision.Init(dir, provision.InitOptions{OpsStorageBytes: size})
		if err != nil {
			return err
		}
		fmt.Fprintf(sio.stdout, "operator %s written to %s\n", setup.Operator, dir)
		fmt.Fprintf(sio.stdout, "server:      include %q from the server configuration (see deploy/nats/tenant-accounts.conf)\n", filepath.Join(dir, provision.ServerConfigFile))
		fmt.Fprintf(sio.stdout, "bridge:      go run ./cmd/bridge --nats URL --accounts %s\n", dir)
		fmt.Fprintf(sio.stdout, "operator:    jetsession tenants --accounts %s\n", dir)
		fmt.Fprintf(sio.stdout, "next:        jetsession tenant create acme --dir %s\n", dir)
		return nil
	case "create", "limit":
		lf := addLimitFlags(f)
		pos, err := f.parse(rest, 1, 1)
		if err != nil {
			return err
		}
		return tf.withProvisioner(ctx, sio, pos[0], func(ctx context.Context, p *provision.Provisioner) error {
			var rec provision.Record
			var err error
			if verb == "create" {
				l, lerr := lf.limits(f, provision.DefaultLimits())
				if lerr != nil {
					return lerr
				}
				rec, err = p.Create(ctx, pos[0], l)
			} else {
				cur, gerr := p.Get(ctx, pos[0])
				if gerr != nil {
					return gerr
				}
				l, lerr := lf.limits(f, cur.Limits)
				if lerr != nil {
					return lerr
				}
				rec, err = p.SetLimits(ctx, pos[0], l)
			}
			if err != nil {
				return err
			}
			return tf.printRecord(sio, rec)
		})
	case "list":
		if _, err := f.parse(rest, 0, 0); err != nil {
			return err
		}
		return tf.withProvisioner(ctx, sio, "", func(ctx context.Context, p *provision.Provisioner) error {
			recs, err := p.Registry().List(ctx)
			if err != nil {
				return err
			}
			slices.SortFunc(recs, func(a, b provision.Record) int { return strings.Compare(a.Tenant, b.Tenant) })
			if tf.json {
				enc := newEncoder(sio.stdout)
				for _, r := range recs {
					if err := enc.Encode(recordJSON(r)); err != nil {
						return err
					}
				}
				return nil
			}
			if len(recs) == 0 {
				fmt.Fprintln(sio.stdout, "no tenants (create one with 'jetsession tenant create TENANT')")
				return nil
			}
			tw := tabwriter.NewWriter(sio.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT\tSTATE\tACCOUNT\tSTORAGE\tCONNECTIONS\tCONSUMERS\tCREATED")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", field(r.Tenant, maxTenantShown), r.State, r.Account,
					humanBytes(uint64(r.Limits.StorageBytes)), r.Limits.Connections, r.Limits.Consumers, r.Created.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		})
	case "show", "suspend", "resume":
		pos, err := f.parse(rest, 1, 1)
		if err != nil {
			return err
		}
		return tf.withProvisioner(ctx, sio, pos[0], func(ctx context.Context, p *provision.Provisioner) error {
			var rec provision.Record
			var err error
			switch verb {
			case "show":
				rec, err = p.Get(ctx, pos[0])
			case "suspend":
				rec, err = p.Suspend(ctx, pos[0])
			case "resume":
				rec, err = p.Resume(ctx, pos[0])
			}
			if err != nil {
				return err
			}
			if verb == "show" {
				return newEncoder(sio.stdout).Encode(recordJSON(rec))
			}
			return tf.printRecord(sio, rec)
		})
	case "delete":
		f.details = "The tenant's stream and every event in it, its account and every credential issued\n" +
			"in it go for good; the bridge deletes its copies. Created again, the tenant gets a new\n" +
			"account and numbers on after every ordinal it had. Asks first unless --yes."
		var yes bool
		f.fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
		pos, err := f.parse(rest, 1, 1)
		if err != nil {
			return err
		}
		if !yes && !sio.terminal {
			return usagef("tenant delete asks before deleting, and standard input is not a terminal (pass --yes to delete without asking)")
		}
		return tf.withProvisioner(ctx, sio, pos[0], func(ctx context.Context, p *provision.Provisioner) error {
			if !yes && !confirm(sio, fmt.Sprintf("Delete tenant %q, its account and every event in it, here and in the analytics copies?", clean(pos[0]))) {
				return deleted(sio, tf.json, map[string]any{"tenant": pos[0], "deleted": false}, "nothing deleted")
			}
			if err := p.Delete(ctx, pos[0]); err != nil {
				return err
			}
			return deleted(sio, tf.json, map[string]any{"tenant": pos[0], "deleted": true}, fmt.Sprintf("deleted tenant %q", clean(pos[0])))
		})
	case "creds":
		f.details = "Writes a credentials file (a user JWT and its seed) to standard output, or to --out\n" +
			"(created readable by its owner only). With --user-key, for a user that keeps its own seed,\n" +
			"only the JWT. Agents and archivers connect with it as is; readers with inbox prefix\n" +
			provision.ReaderInbox + "."
		var role, name, out, userKey string
		var expires time.Duration
		f.fs.StringVar(&role, "role", "agent", "`ROLE`: agent, archiver or reader")
		f.fs.StringVar(&name, "name", "", "user `NAME` the server shows")
		f.fs.StringVar(&out, "out", "", "write to `FILE` instead of standard output")
		f.fs.StringVar(&userKey, "user-key", "", "the user's public `KEY` (U...): issue a JWT only")
		f.duration(&expires, "expires", 0, "`DURATION` after which the credentials stop working (0: never)")
		pos, err := f.parse(rest, 1, 1)
		if err != nil {
			return err
		}
		return tf.withProvisioner(ctx, sio, pos[0], func(ctx context.Context, p *provision.Provisioner) error {
			creds, err := p.Creds(ctx, pos[0], provision.Role(role), provision.CredsOptions{Name: name, UserKey: userKey, Expires: expires})
			if err != nil {
				return err
			}
			if out == "" {
				_, err = sio.stdout.Write(creds)
				return err
			}
			if err := os.WriteFile(out, creds, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(sio.stderr, "wrote the %s credentials of tenant %q to %s\n", role, clean(pos[0]), out)
			return nil
		})
	case "revoke":
		pos, err := f.parse(rest, 2, 2)
		if err != nil {
			return err
		}
		return tf.withProvisioner(ctx, sio, pos[0], func(ctx context.Context, p *provision.Provisioner) error {
			rec, err := p.Revoke(ctx, pos[0], pos[1])
			if err != nil {
				return err
			}
			return tf.printRecord(sio, rec)
		})
	}
	return nil
}

type tenantFlags struct {
	dir     string
	url     string
	tls     natsconn.Config
	timeout time.Duration
	json    bool
}

func (tf *tenantFlags) folder(sio stdio) string {
	switch {
	case tf.dir != "":
		return tf.dir
	case sio.getenv("JETSESSION_PROVISION_DIR") != "":
		return sio.getenv("JETSESSION_PROVISION_DIR")
	}
	return "jetsession-operator"
}

// withProvisioner connects the provisioner of the folder and runs fn.
func (tf *tenantFlags) withProvisioner(ctx context.Context, sio stdio, tenant string, fn func(context.Context, *provision.Provisioner) error) error {
	if tenant != "" {
		if err := tenantArg(tenant); err != nil {
			return err
		}
	}
	dir := tf.folder(sio)
	setup, err := provision.ReadSetup(dir)
	if err != nil {
		return err
	}
	keys, err := provision.LoadKeys(dir)
	if err != nil {
		return err
	}
	url := tf.url
	if url == "" {
		url = sio.getenv("NATS_URL")
	}
	if url == "" {
		url = defaultURL
	}
	tls := tf.tls
	for flag, p := range map[string]*string{natsconn.FlagTLSCA: &tls.TLSCA, natsconn.FlagTLSCert: &tls.TLSCert, natsconn.FlagTLSKey: &tls.TLSKey} {
		if *p == "" {
			*p = sio.getenv(natsconn.EnvVars[flag])
		}
	}
	dialAs := func(creds string) (*nats.Conn, error) {
		cfg := tls
		cfg.URL, cfg.Creds, cfg.InboxPrefix, cfg.Name, cfg.Timeout = url, filepath.Join(dir, provision.CredsDir, creds), provision.ProvisionerInbox, "jetsession tenant", tf.timeout
		nc, err := natsconn.Connect(cfg, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			return nil, explainConnect(err)
		}
		return nc, nil
	}
	sys, err := dialAs(provision.ProvisionerSystemCreds)
	if err != nil {
		return err
	}
	defer sys.Close()
	ops, err := dialAs(provision.ProvisionerCreds)
	if err != nil {
		return err
	}
	defer ops.Close()
	base := tls
	base.URL, base.Timeout = url, tf.timeout
	tlsOpts, err := base.Options()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 4*tf.timeout)
	defer cancel()
	p, err := provision.New(cctx, provision.Config{
		System: sys, Ops: ops, Keys: keys, Timeout: tf.timeout,
		Scheme: subjects.Scheme{SubjectPrefix: setup.SubjectPrefix, StreamPrefix: setup.StreamPrefix},
		Dial: func(opts ...nats.Option) (*nats.Conn, error) {
			return nats.Connect(url, append(append([]nats.Option(nil), tlsOpts...), opts...)...)
		},
	})
	if err != nil {
		return explainProvision(err)
	}
	return explainProvision(fn(cctx, p))
}

// explainProvision adds what to do to the provisioner's errors.
func explainProvision(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, provision.ErrInvalidLimits), errors.Is(err, sessionlog.ErrInvalidKey):
		return &usageError{msg: err.Error()}
	case errors.Is(err, provision.ErrTenantNotFound):
		return fmt.Errorf("%w (see 'jetsession tenant list')", err)
	case errors.Is(err, provision.ErrTenantBusy):
		return fmt.Errorf("%w (an earlier call was interrupted: run it again to finish it)", err)
	case errors.Is(err, provision.ErrConflict):
		return fmt.Errorf("%w (another provisioner changed it at the same time: retry)", err)
	case errors.Is(err, provision.ErrMissingKey):
		return fmt.Errorf("%w (this provisioning folder lacks that seed)", err)
	}
	return err
}

func (tf *tenantFlags) printRecord(sio stdio, rec provision.Record) error {
	if tf.json {
		return newEncoder(sio.stdout).Encode(recordJSON(rec))
	}
	_, err := fmt.Fprintf(sio.stdout, "tenant %q is %s (account %s; storage %s, %d connections, %d consumers)\n", clean(rec.Tenant), rec.State,
		rec.Account, humanBytes(uint64(rec.Limits.StorageBytes)), rec.Limits.Connections, rec.Limits.Consumers)
	return err
}

// recordJSON is a record without the readers' JWTs, which only readers
// need.
func recordJSON(r provision.Record) map[string]any {
	readers := make([]string, 0, len(r.Readers))
	for k := range r.Readers {
		readers = append(readers, k)
	}
	slices.Sort(readers)
	return map[string]any{"tenant": r.Tenant, "account": r.Account, "state": r.State, "limits": r.Limits,
		"created": r.Created, "updated": r.Updated, "readers": readers, "revoked": r.Revoked, "last_ordinal": r.LastOrdinal}
}

type limitFlags struct{ storage, payload string }

var limitInts = []struct{ name, usage string }{
	{"consumers", "most consumers (live tails) at once `N`"},
	{"connections", "most connections of the tenant's agents and archivers `N`"},
	{"subscriptions", "most subscriptions per connection `N`"},
}

func addLimitFlags(f *flagSet) *limitFlags {
	lf := &limitFlags{}
	f.fs.StringVar(&lf.storage, "storage", "", "storage `SIZE` of the tenant (1GiB, 500MB, bytes)")
	f.fs.StringVar(&lf.payload, "payload", "", "largest message `SIZE`")
	for _, l := range limitInts {
		f.fs.String(l.name, "", l.usage)
	}
	return lf
}

// limits applies the flags given to base.
func (lf *limitFlags) limits(f *flagSet, base provision.Limits) (provision.Limits, error) {
	l := base
	var err error
	if f.isSet("storage") {
		if l.StorageBytes, err = parseSize("storage", lf.storage); err != nil {
			return l, err
		}
	}
	if f.isSet("payload") {
		if l.PayloadBytes, err = parseSize("payload", lf.payload); err != nil {
			return l, err
		}
	}
	for _, li := range limitInts {
		if !f.isSet(li.name) {
			continue
		}
		n, err := strconv.ParseInt(f.fs.Lookup(li.name).Value.String(), 10, 64)
		if err != nil || n < 0 {
			return l, usagef("--%s %q is not a count (use a whole number)", li.name, f.fs.Lookup(li.name).Value.String())
		}
		switch li.name {
		case "consumers":
			l.Consumers = n
		case "connections":
			l.Connections = n
		case "subscriptions":
			l.Subscriptions = n
		}
	}
	return l, nil
}

// parseSize reads 1GiB, 512MiB, 500MB, 64KiB or a number of bytes.
func parseSize(flag, s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mul = strings.TrimSpace(rest), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mul {
		return 0, usagef("--%s %q is not a size (for example --%s 1GiB, 500MB or 1048576)", flag, s, flag)
	}
	return n * mul, nil
}
