package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jetsession/jetsession/accountsource"
	"github.com/jetsession/jetsession/coldstore/dirstore"
	"github.com/jetsession/jetsession/coldstore/jsstore"
	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
)

// client is a connection and the session log the commands use.
type client struct {
	cf      *connFlags
	nc      *nats.Conn
	log     *jetstream.Log
	watcher *jetstream.PermissionWatcher
	// source reads every tenant through its own account, with --accounts.
	source *accountsource.Source
}

// dialOptions vary the connection by command.
type dialOptions struct {
	// follow keeps reconnecting for as long as the command runs (tails),
	// reporting outages on notes.
	follow bool
	notes  io.Writer
	// create lets appends create a missing tenant stream, with replicas
	// and a maximum age of its events.
	create   bool
	replicas int
	maxAge   time.Duration
	// tenant is the tenant the command reads: with --accounts, the
	// client's Log is the one of that tenant's account.
	tenant string
}

// dialTenant connects and checks that tenant has a stream, for commands that
// read or change one tenant's threads. The caller closes the client.
func dialTenant(ctx context.Context, cf *connFlags, tenant string) (*client, error) {
	c, err := dial(cf, dialOptions{tenant: tenant})
	if err != nil {
		return nil, err
	}
	if _, err := c.tenantHead(ctx, tenant); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func dial(cf *connFlags, o dialOptions) (*client, error) {
	if cf.accounts != "" {
		if cf.cold != "" {
			return nil, usagef("--cold does not combine with --accounts")
		}
		return dialAccounts(cf, o)
	}
	ncfg := cf.nats
	ncfg.Name = "jetsession CLI"
	ncfg.Timeout = cf.timeout
	if o.follow {
		ncfg.ReconnectForever = true
		ncfg.ReconnectWait = 250 * time.Millisecond
	}
	opts := []nats.Option{
		// A refused subscription shows on the subscription itself, so
		// that explain can tell a missing reply right from others.
		nats.PermissionErrOnSubscribe(true),
		// The client library prints asynchronous errors (permission
		// violations) itself unless told otherwise; explain reports them
		// as one line instead, and a tail notes them as they come.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if o.follow && o.notes != nil {
				fmt.Fprintf(o.notes, "NATS reports: %v\n", err)
			}
		}),
	}
	if o.follow && o.notes != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					fmt.Fprintf(o.notes, "disconnected from NATS (%v); reconnecting...\n", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				fmt.Fprintf(o.notes, "reconnected to %s; resuming after the last event shown\n", natsconn.Redact(nc.ConnectedUrl()))
			}))
	}
	nc, err := natsconn.Connect(ncfg, opts...)
	if err != nil {
		return nil, explainConnect(err)
	}
	// Refusals fail at once, with the server's report, rather than at
	// --timeout.
	watcher := jetstream.WatchPermissions(nc)
	logOpts := []jetstream.Option{
		jetstream.WithPermissionWatcher(watcher),
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
	if o.maxAge > 0 {
		logOpts = append(logOpts, jetstream.WithMaxAge(o.maxAge))
	}
	if cf.cold != "" {
		store, err := openColdStore(cf.cold, nc)
		if err != nil {
			watcher.Close()
			nc.Close()
			return nil, err
		}
		logOpts = append(logOpts, jetstream.WithColdStore(store))
	}
	log, err := jetstream.New(nc, logOpts...)
	if err != nil {
		watcher.Close()
		nc.Close()
		return nil, err
	}
	return &client{cf: cf, nc: nc, log: log, watcher: watcher}, nil
}

// openColdStore opens the cold store --cold names.
func openColdStore(spec string, nc *nats.Conn) (sessionlog.ColdStore, error) {
	if path, ok := strings.CutPrefix(spec, "dir:"); ok {
		return dirstore.New(path)
	}
	return jsstore.New(nc)
}

func (c *client) close() {
	if c.source != nil {
		c.source.Close()
	}
	c.watcher.Close()
	c.nc.Close()
}

// withTimeout bounds one request, or a whole short command, by --timeout.
func (c *client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cf.timeout)
}

// tenantHead returns the last ordinal the tenant's stream ever assigned,
// or the one-line error an operator needs when the tenant has no stream.
func (c *client) tenantHead(ctx context.Context, tenant string) (uint64, error) {
	info, err := c.tenantInfo(ctx, tenant)
	return info.LastOrdinal, err
}

// tenantInfo describes the tenant, or says it has no stream.
func (c *client) tenantInfo(ctx context.Context, tenant string) (sessionlog.TenantInfo, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	info, ok, err := c.log.Tenant(ctx, tenant)
	switch {
	case err != nil:
		return info, c.explain(err)
	case !ok:
		return info, errNoTenant(tenant)
	}
	return info, nil
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

// mayReceiveReplies reports whether the account may subscribe to the
// connection's reply subjects: it subscribes to a fresh inbox and waits
// for the server's answer to a ping, which comes after its refusal, if
// any. ok is false when the check itself could not be made.
func (c *client) mayReceiveReplies() (allowed, ok bool) {
	sub, err := c.nc.SubscribeSync(c.nc.NewInbox())
	if err != nil {
		return false, false
	}
	defer sub.Unsubscribe()
	if err := c.nc.FlushTimeout(c.cf.timeout); err != nil {
		return false, false
	}
	_, err = sub.NextMsg(time.Millisecond)
	switch {
	case errors.Is(err, nats.ErrPermissionViolation):
		return false, true
	case errors.Is(err, nats.ErrTimeout):
		return true, true
	}
	return false, false
}
