package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
)

// defaultURL is where the nats CLI and a local "jetsession serve" meet.
const defaultURL = "nats://127.0.0.1:4222"

// flagSet is one subcommand's flags. The flag package's own messages and
// usage dumps are silenced: a mistake becomes one line naming the flag, and
// help goes to standard output only when asked for.
type flagSet struct {
	fs      *flag.FlagSet
	sio     stdio
	cmd     command
	details string          // paragraph printed under the usage line
	conn    map[string]bool // names of the shared connection flags
	bad     error           // first bad flag value, with a message naming the flag
	after   []func() error  // checks and environment defaults run after parsing
}

func newFlags(sio stdio, name, details string) *flagSet {
	c, _ := lookup(name)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{fs: fs, sio: sio, cmd: c, details: details, conn: map[string]bool{}}
}

// uintValue is a flag holding an ordinal or a count.
type uintValue struct {
	f    *flagSet
	name string
	what string // "an ordinal", "a count"
	p    *uint64
}

func (v *uintValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.FormatUint(*v.p, 10)
}

func (v *uintValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		if v.f.bad == nil {
			v.f.bad = usagef("--%s %q is not %s (use a whole number, for example --%s 42)", v.name, s, v.what, v.name)
		}
		return err
	}
	*v.p = n
	return nil
}

// uint registers a flag taking a non-negative whole number.
func (f *flagSet) uint(p *uint64, name, what, usage string) {
	f.fs.Var(&uintValue{f: f, name: name, what: what, p: p}, name, usage)
}

// isSet reports whether the flag was given on the command line.
func (f *flagSet) isSet(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// durationValue is a flag holding a duration, whose mistakes say how to
// write one.
type durationValue struct {
	f    *flagSet
	name string
	p    *time.Duration
}

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return "0s"
	}
	return v.p.String()
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if v.f.bad == nil {
			hint := "for example --" + v.name + " 10s or 1m30s"
			if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
				hint = "add a unit, for example --" + v.name + " " + strings.TrimSpace(s) + "s"
			}
			v.f.bad = usagef("--%s %q is not a duration (%s)", v.name, s, hint)
		}
		return err
	}
	*v.p = d
	return nil
}

// duration registers a flag taking a duration with a unit.
func (f *flagSet) duration(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	f.fs.Var(&durationValue{f: f, name: name, p: p}, name, usage)
}

// connFlags are the connection flags every client command shares. They
// follow the nats CLI's names and environment variables, and are the
// bridge's too (package natsconn).
type connFlags struct {
	nats      natsconn.Config
	apiPrefix string
	scheme    subjects.Scheme
	timeout   time.Duration
	json      bool
	// accounts is a provisioning folder: read tenants through their own
	// accounts, as the operator view's reader (accounts.go).
	accounts string
	// cold names the cold store (coldFlag), empty for none.
	cold string
}

// coldFlag registers --cold, for the commands that archive, read through
// or delete archived events.
func (f *flagSet) coldFlag(c *connFlags) {
	f.fs.StringVar(&c.cold, "cold", "", "cold tier `STORE` of archived events: nats (segment streams in the same NATS) or dir:PATH (a local folder) (env JETSESSION_COLD; default: none)")
	f.after = append(f.after, func() error {
		if c.cold == "" && !f.isSet("cold") {
			c.cold = f.sio.getenv("JETSESSION_COLD")
		}
		if c.cold != "" && c.cold != "nats" && !strings.HasPrefix(c.cold, "dir:") || c.cold == "dir:" {
			return usagef("--cold %q: use nats (segment streams in the same NATS) or dir:PATH (a local folder)", c.cold)
		}
		return nil
	})
}

func (f *flagSet) connFlags() *connFlags {
	c := &connFlags{}
	before := map[string]bool{}
	f.fs.VisitAll(func(fl *flag.Flag) { before[fl.Name] = true })
	fs := f.fs
	c.nats.AddFlags(fs, "NATS server `URL`(s), comma separated (env NATS_URL, else "+defaultURL+")")
	fs.StringVar(&c.apiPrefix, "js-api-prefix", "$JS.API", "JetStream API `PREFIX`, for JetStream imported from another account or domain")
	fs.StringVar(&c.scheme.SubjectPrefix, "subject-prefix", subjects.DefaultSubjectPrefix, "subject `PREFIX` of thread subjects")
	fs.StringVar(&c.scheme.StreamPrefix, "stream-prefix", subjects.DefaultStreamPrefix, "name `PREFIX` of tenant streams")
	f.duration(&c.timeout, "timeout", 10*time.Second, "`DURATION` to wait for the server, with a unit (10s, 1m)")
	fs.BoolVar(&c.json, "json", false, "print JSON, one object per line")
	fs.StringVar(&c.accounts, "accounts", "", "provisioning `DIR` of an account per tenant: read every tenant through its account, as the operator view (env JETSESSION_ACCOUNTS)")
	fs.VisitAll(func(fl *flag.Flag) {
		if !before[fl.Name] {
			f.conn[fl.Name] = true
		}
	})
	f.after = append(f.after, func() error {
		// The environment fills what the command line left out.
		for name, env := range natsconn.EnvVars {
			if v := f.sio.getenv(env); v != "" && !f.isSet(name) {
				fs.Set(name, v)
			}
		}
		if c.accounts == "" {
			c.accounts = f.sio.getenv("JETSESSION_ACCOUNTS")
		}
		if c.nats.URL == "" {
			c.nats.URL = defaultURL
		}
		if c.timeout <= 0 {
			return usagef("--timeout must be positive, got %v", c.timeout)
		}
		if c.apiPrefix == "" {
			return usagef("--js-api-prefix must not be empty (the default is $JS.API)")
		}
		if err := c.scheme.Validate(); err != nil {
			return usagef("--subject-prefix/--stream-prefix: %v", err)
		}
		if err := c.nats.Validate(); err != nil {
			return &usageError{msg: err.Error()}
		}
		return nil
	})
	return c
}

// parse parses args, flags and positional arguments in any order (so that
// "load acme t1 --since 5" works), and checks the number of positional
// arguments. "--" ends the flags, for names that start with '-'.
func (f *flagSet) parse(args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		err := f.fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			f.usage(f.sio.stdout)
			return nil, flag.ErrHelp
		case f.bad != nil:
			return nil, f.bad
		case err != nil:
			msg := err.Error()
			// The flag package names flags with one dash; the help uses two.
			if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "unknown flag -" + name
			} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
				msg = "-" + name + " needs a value"
			}
			return nil, usagef("%s (see 'jetsession %s --help')", msg, f.cmd.name)
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	for _, check := range f.after {
		if err := check(); err != nil {
			return nil, err
		}
	}
	switch {
	case len(pos) < minArgs:
		return nil, usagef("missing arguments: usage is 'jetsession %s %s' (see 'jetsession %s --help')", f.cmd.name, f.cmd.args, f.cmd.name)
	case len(pos) > maxArgs && strings.HasPrefix(pos[maxArgs], "-"):
		return nil, usagef("unexpected argument %q: flags go before '--' (usage is 'jetsession %s [flags] -- %s')", pos[maxArgs], f.cmd.name, strings.TrimSpace(f.cmd.args))
	case len(pos) > maxArgs:
		return nil, usagef("unexpected argument %q: usage is 'jetsession %s %s'", pos[maxArgs], f.cmd.name, strings.TrimSpace(f.cmd.args))
	}
	return pos, nil
}

// usage prints the command's help: its own flags first, then the shared
// connection flags.
func (f *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: jetsession %s [flags]\n\n%s.\n", strings.TrimSpace(f.cmd.name+" "+f.cmd.args), upperFirst(f.cmd.summary))
	if f.details != "" {
		fmt.Fprintf(w, "\n%s\n", f.details)
	}
	for _, conn := range []bool{false, true} {
		printed := false
		f.fs.VisitAll(func(fl *flag.Flag) {
			if f.conn[fl.Name] != conn {
				return
			}
			if !printed {
				fmt.Fprintf(w, "\n%s:\n", map[bool]string{false: "Flags", true: "Connection flags"}[conn])
				printed = true
			}
			name, usage := flag.UnquoteUsage(fl)
			switch name {
			case "string", "value":
				name = "VALUE"
			}
			line := "  --" + fl.Name
			if name != "" {
				line += " " + name
			}
			if d := fl.DefValue; d != "" && d != "0" && d != "false" && d != "[]" && fl.Name != "nats" {
				usage += " (default " + d + ")"
			}
			if len(line) > 26 {
				fmt.Fprintf(w, "%s\n%28s%s\n", line, "", usage)
			} else {
				fmt.Fprintf(w, "%-26s  %s\n", line, usage)
			}
		})
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// metaValue collects repeated --meta key=value flags.
type metaValue struct {
	f *flagSet
	m map[string]string
}

func (v *metaValue) String() string { return "" }

func (v *metaValue) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		if v.f.bad == nil {
			v.f.bad = usagef("--meta %q is not key=value (for example --meta model=gpt-x)", s)
		}
		return errors.New("not key=value")
	}
	v.m[k] = val
	return nil
}

// meta registers a repeatable key=value flag filling m.
func (f *flagSet) meta(m map[string]string, name, usage string) {
	f.fs.Var(&metaValue{f: f, m: m}, name, usage)
}

// parseThread parses the flags and the TENANT THREAD arguments, and
// validates the key before anything connects.
func (f *flagSet) parseThread(args []string) (sessionlog.ThreadKey, error) {
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return sessionlog.ThreadKey{}, err
	}
	return threadKey(pos)
}

// threadKey validates the TENANT THREAD arguments before anything connects.
func threadKey(pos []string) (sessionlog.ThreadKey, error) {
	key := sessionlog.ThreadKey{Tenant: pos[0], Thread: pos[1]}
	if err := sessionlog.ValidateKey(key); err != nil {
		return key, &usageError{msg: invalidKey(err).Error()}
	}
	return key, nil
}

func tenantArg(tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return &usageError{msg: invalidKey(err).Error()}
	}
	return nil
}

// where names a thread in messages the way the archive prompt does.
func where(key sessionlog.ThreadKey) string {
	return field(key.Tenant, maxTenantShown) + "/" + field(key.Thread, maxThreadShown)
}

func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// shellQuote quotes s for a shell when it needs it, so that a suggested
// command line can be pasted as is.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(clean(s), "'", `'\''`) + "'"
}
