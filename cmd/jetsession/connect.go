package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// client is a connection and the views of JetStream the commands use: the
// session log, and the plain JetStream API for what the log does not offer
// (thread listings, stream lookups).
type client struct {
	cf  *connFlags
	nc  *nats.Conn
	log *jetstream.Log
	js  natsjs.JetStream
}

// dialOptions vary the connection by command.
type dialOptions struct {
	// follow keeps reconnecting for as long as the command runs (tails),
	// reporting outages on notes.
	follow bool
	notes  io.Writer
	// create lets appends create a missing tenant stream, with replicas.
	create   bool
	replicas int
}

// dialTenant connects and checks that tenant has a stream, for commands that
// read or change one tenant's threads. The caller closes the client.
func dialTenant(ctx context.Context, cf *connFlags, tenant string) (*client, error) {
	c, err := dial(cf, dialOptions{})
	if err != nil {
		return nil, err
	}
	if _, err := c.stream(ctx, tenant); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func dial(cf *connFlags, o dialOptions) (*client, error) {
	opts := []nats.Option{nats.Name("jetsession CLI"), nats.Timeout(cf.timeout)}
	if cf.creds != "" {
		if _, err := os.Stat(cf.creds); err != nil {
			return nil, fmt.Errorf("cannot read the --creds file: %v (check the path)", err)
		}
		opts = append(opts, nats.UserCredentials(cf.creds))
	}
	if cf.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(cf.nkey)
		if err != nil {
			return nil, fmt.Errorf("cannot use the --nkey file: %v (it must hold a user NKey seed, SU...)", err)
		}
		opts = append(opts, opt)
	}
	switch {
	case cf.user != "" && cf.password == "":
		// Like the nats CLI: a user without a password is a token.
		opts = append(opts, nats.Token(cf.user))
	case cf.user != "" || cf.password != "":
		opts = append(opts, nats.UserInfo(cf.user, cf.password))
	}
	if cf.inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cf.inboxPrefix))
	}
	// The client library prints asynchronous errors (permission
	// violations) itself unless told otherwise; explain reports them as
	// one line instead, and a tail notes them as they come.
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if o.follow && o.notes != nil {
			fmt.Fprintf(o.notes, "NATS reports: %v\n", err)
		}
	}))
	if o.follow {
		opts = append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
		if o.notes != nil {
			opts = append(opts,
				nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
					if err != nil {
						fmt.Fprintf(o.notes, "disconnected from NATS (%v); reconnecting...\n", err)
					}
				}),
				nats.ReconnectHandler(func(nc *nats.Conn) {
					fmt.Fprintf(o.notes, "reconnected to %s; resuming after the last event shown\n", redact(nc.ConnectedUrl()))
				}))
		}
	}
	nc, err := nats.Connect(cf.url, opts...)
	if err != nil {
		return nil, explainConnect(cf.url, err)
	}
	logOpts := []jetstream.Option{
		jetstream.WithScheme(cf.scheme),
		jetstream.WithAPIPrefix(cf.apiPrefix),
		jetstream.WithRequestTimeout(cf.timeout),
		// Only append --create may create a tenant: a mistyped tenant name
		// must not quietly become a new stream.
		jetstream.WithStreamCreation(o.create),
	}
	if o.replicas > 0 {
		logOpts = append(logOpts, jetstream.WithReplicas(o.replicas))
	}
	log, err := jetstream.New(nc, logOpts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	js, err := natsjs.NewWithAPIPrefix(nc, cf.apiPrefix)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &client{cf: cf, nc: nc, log: log, js: js}, nil
}

func (c *client) close() { c.nc.Close() }

// withTimeout bounds one request, or a whole short command, by --timeout.
func (c *client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cf.timeout)
}

// stream returns the tenant's stream, or the one-line error an operator
// needs when it does not exist.
func (c *client) stream(ctx context.Context, tenant string) (natsjs.Stream, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	s, err := c.js.Stream(ctx, c.cf.scheme.Stream(tenant))
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		return nil, errNoTenant(tenant)
	}
	if err != nil {
		return nil, c.explain(err)
	}
	return s, nil
}

// noTenantError reports a tenant without a stream; tail and append --create
// tell it apart from other failures.
type noTenantError struct{ tenant string }

func (e *noTenantError) Error() string {
	return fmt.Sprintf("tenant %q has no stream (check the name with 'jetsession tenants')", e.tenant)
}

func errNoTenant(tenant string) error { return &noTenantError{tenant: tenant} }

func isNoTenant(err error) bool {
	var nt *noTenantError
	return errors.As(err, &nt)
}

// explainConnect turns a failed connection into what to do about it.
func explainConnect(urls string, err error) error {
	lower := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		strings.Contains(lower, "authorization"), strings.Contains(lower, "authentication"):
		return fmt.Errorf("NATS at %s refused the credentials: %v (check --creds, --user/--password or --nkey)", redact(urls), err)
	case errors.Is(err, nats.ErrBadSubject), strings.Contains(lower, "inbox"):
		return fmt.Errorf("cannot connect to NATS at %s: %v (check --inbox-prefix)", redact(urls), err)
	default:
		return fmt.Errorf("cannot connect to NATS at %s: %v (start a local server with 'jetsession serve', or point --nats or NATS_URL at one)", redact(urls), err)
	}
}

// explain turns an error of the log or of JetStream into one line saying
// what is wrong and what to do.
func (c *client) explain(err error) error {
	if err == nil {
		return nil
	}
	// The server reports a permissions violation asynchronously and the
	// request just times out: the connection's last error says why.
	if last := c.nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) && !errors.Is(err, context.Canceled) &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)) {
		return explainPermission(last, c.cf.apiPrefix)
	}
	var corrupt *sessionlog.CorruptEventError
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("no answer from NATS at %s within %v (the server or JetStream may be busy or unavailable; retry, or raise --timeout)", redact(c.cf.url), c.cf.timeout)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, natsjs.ErrJetStreamNotEnabled), errors.Is(err, natsjs.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("JetStream does not answer at %s (is JetStream enabled for this account? JetStream imported from another account needs --js-api-prefix)", redact(c.cf.url))
	case errors.Is(err, nats.ErrPermissionViolation), strings.Contains(strings.ToLower(err.Error()), "permissions violation"):
		return explainPermission(err, c.cf.apiPrefix)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
		return fmt.Errorf("lost the connection to NATS at %s (retry when the server is back)", redact(c.cf.url))
	case errors.Is(err, sessionlog.ErrInvalidKey):
		return invalidKey(err)
	case errors.Is(err, sessionlog.ErrInvalidEvent):
		return fmt.Errorf("invalid event: %s (check --type, --id and --meta: no control characters, no surrounding spaces, at most %d bytes each)", detail(err, sessionlog.ErrInvalidEvent), sessionlog.MaxTypeBytes)
	case errors.Is(err, sessionlog.ErrEventTooLarge):
		return fmt.Errorf("event too large: %s (at most %d bytes on this server; store large payloads elsewhere and append a reference)", detail(err, sessionlog.ErrEventTooLarge), c.log.Limits().MaxEventBytes)
	case errors.Is(err, sessionlog.ErrBatchTooLarge):
		return fmt.Errorf("append too large: %s (split it)", detail(err, sessionlog.ErrBatchTooLarge))
	case errors.Is(err, sessionlog.ErrQuotaExceeded):
		return fmt.Errorf("tenant is full: %s (its quota refuses new events; archive old ones with 'jetsession archive', or raise the stream's max bytes)", detail(err, sessionlog.ErrQuotaExceeded))
	case errors.Is(err, sessionlog.ErrPartialRetry):
		return fmt.Errorf("%s (a retry must repeat exactly the events of the first attempt; use new IDs for new events)", detail(err, sessionlog.ErrPartialRetry))
	case errors.As(err, &corrupt):
		return fmt.Errorf("undecodable message at ordinal %d of tenant %q: %s (a client outside jetsession wrote to the thread's subject; inspect it with 'nats stream get %s %d')",
			corrupt.Ordinal, corrupt.Key.Tenant, corrupt.Reason, c.cf.scheme.Stream(corrupt.Key.Tenant), corrupt.Ordinal)
	}
	return err
}

// skipCorrupt reports on w, and steps over, a stored message that is not a
// valid event: reads go on past it, as they do in the library.
func (c *client) skipCorrupt(w io.Writer, err error) bool {
	var ce *sessionlog.CorruptEventError
	if !errors.As(err, &ce) {
		return false
	}
	thread := clean(truncate(ce.Key.Thread, 80))
	if ce.Key.Thread == "" {
		thread = "subject " + clean(truncate(ce.Subject, 80))
	}
	fmt.Fprintf(w, "skipping ordinal %d of tenant %s (%s): not a valid event: %s (a client outside jetsession wrote it; inspect it with 'nats stream get %s %d')\n",
		ce.Ordinal, clean(ce.Key.Tenant), thread, clean(truncate(ce.Reason, 200)), c.cf.scheme.Stream(ce.Key.Tenant), ce.Ordinal)
	return true
}

// explainPermission says which right is missing: the reply subjects of
// requests, or the JetStream API and the tenant's subjects.
func explainPermission(err error, apiPrefix string) error {
	msg := strings.TrimPrefix(err.Error(), nats.ErrPermissionViolation.Error()+": ")
	if strings.Contains(msg, "Subscription to") {
		return fmt.Errorf("permission denied: %s (the account limits reply subjects: pass its allowed prefix with --inbox-prefix)", msg)
	}
	return fmt.Errorf("permission denied: %s (the account needs publish rights on the JetStream API, %s.>, and on the tenant's subjects)", msg, apiPrefix)
}

// invalidKey explains a tenant or thread name the log refuses.
func invalidKey(err error) error {
	return fmt.Errorf("invalid name: %s (tenants and threads are non-empty UTF-8 without control characters, at most %d and %d bytes)",
		detail(err, sessionlog.ErrInvalidKey), sessionlog.MaxTenantBytes, sessionlog.MaxThreadBytes)
}

// detail is err's message without the sentinel's own words, which the
// caller rephrases.
func detail(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()); i >= 0 {
		msg = msg[:i] + strings.TrimPrefix(msg[i+len(sentinel.Error()):], ": ")
	}
	return strings.TrimPrefix(msg, "jetstream: ")
}

// redact hides passwords in NATS URLs before they are printed.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts[i] = u.String()
		} else if u.User.Username() != "" {
			u.User = url.User("xxxxx") // a token
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
