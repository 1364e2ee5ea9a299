package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jetsession/jetsession/accountsource"
	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// dialAccounts is dial for an account per tenant (--accounts DIR): it
// signs in to the operations account with the operator view's reader
// credentials (DIR/creds/viewer.creds), finds tenants in the registry and
// reads the one the command names through its own account, as a reader.
// Readers read and tail; appends, archives and deletions are refused.
func dialAccounts(cf *connFlags, o dialOptions) (*client, error) {
	creds := filepath.Join(cf.accounts, provision.CredsDir, provision.ViewerCreds)
	data, err := os.ReadFile(creds)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("--accounts %s: %v (a folder written by 'jetsession tenant init')", cf.accounts, err)}
	}
	key, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("--accounts: %s holds no credentials: %v", creds, err)}
	}
	setup, err := provision.ReadSetup(cf.accounts)
	if err != nil {
		return nil, err
	}
	ncfg := cf.nats
	ncfg.Creds, ncfg.User, ncfg.Password, ncfg.NKey = creds, "", "", ""
	ncfg.InboxPrefix = provision.ReaderInbox
	ncfg.Name = "jetsession CLI"
	ncfg.Timeout = cf.timeout
	if o.follow {
		ncfg.ReconnectForever = true
	}
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nc, err := natsconn.Connect(ncfg, quiet)
	if err != nil {
		return nil, explainConnect(err)
	}
	base := ncfg
	base.Creds, base.InboxPrefix, base.Name = "", "", ""
	tenantOpts, err := base.Options()
	if err != nil {
		nc.Close()
		return nil, err
	}
	watcher := jetstream.WatchPermissions(nc)
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	src, err := accountsource.New(ctx, accountsource.Config{
		Ops: nc, Key: key, Scheme: cf.scheme,
		Dial: func(opts ...nats.Option) (*nats.Conn, error) {
			all := append(append([]nats.Option{quiet}, tenantOpts...), opts...)
			if o.follow {
				all = append(all, nats.MaxReconnects(-1))
			}
			return nats.Connect(ncfg.URL, all...)
		},
		LogOptions: []jetstream.Option{jetstream.WithRequestTimeout(cf.timeout)},
	})
	if errors.Is(err, provision.ErrTenantNotFound) {
		watcher.Close()
		nc.Close()
		return nil, fmt.Errorf("no tenant was ever created in this deployment (operator %s): create one with 'jetsession tenant create'", setup.Operator)
	}
	if err != nil {
		watcher.Close()
		nc.Close()
		return nil, err
	}
	c := &client{cf: cf, nc: nc, watcher: watcher, source: src}
	if o.tenant != "" {
		log, err := src.Log(ctx, o.tenant)
		if errors.Is(err, provision.ErrTenantNotFound) {
			c.close()
			return nil, errNoTenant(o.tenant)
		}
		if err != nil {
			c.close()
			return nil, err
		}
		c.log = log
	}
	return c, nil
}
