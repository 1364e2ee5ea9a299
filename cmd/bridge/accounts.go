package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jetsession/jetsession/accountsource"
	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// openAccountSource follows every tenant of a deployment with an account
// per tenant (--tenant-accounts): nc is the bridge's reader of the
// operations account, whose seed (in the --creds file) also signs in to
// each tenant's account, with the JWT the provisioner keeps in the
// tenant's registry record. Tenant connections use the same servers, TLS
// and reconnect policy as nc.
func openAccountSource(ctx context.Context, ncfg natsconn.Config, nc *nats.Conn, logger *slog.Logger) (*accountsource.Source, error) {
	data, err := os.ReadFile(ncfg.Creds)
	if err != nil {
		return nil, err
	}
	key, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("--creds %s: no user seed: %w", ncfg.Creds, err)
	}
	base := ncfg
	base.Creds, base.InboxPrefix, base.Name = "", "", ""
	base.ReconnectForever = true
	base.ReconnectWait = 250 * time.Millisecond
	opts, err := base.Options()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	src, err := accountsource.New(cctx, accountsource.Config{
		Ops: nc, Key: key, Logger: logger,
		Dial: func(extra ...nats.Option) (*nats.Conn, error) {
			return nats.Connect(ncfg.URL, append(append([]nats.Option(nil), opts...), extra...)...)
		},
		// Small read batches and tail buffers keep memory bounded with
		// many tenants.
		LogOptions: []jetstream.Option{jetstream.WithReadBatch(2000, 2<<20), jetstream.WithTailBuffer(2 << 20)},
	})
	switch {
	case errors.Is(err, provision.ErrTenantNotFound):
		return nil, fmt.Errorf("the operations account at %s has no tenant registry yet: create a tenant with 'jetsession tenant create' first", natsconn.Redact(ncfg.URL))
	case errors.Is(err, jetstream.ErrPermissionDenied), errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("reading the tenant registry at %s: %w (--creds must be the bridge's reader of the operations account, creds/bridge.creds)", natsconn.Redact(ncfg.URL), err)
	case err != nil:
		return nil, fmt.Errorf("reading the tenant registry at %s: %w", natsconn.Redact(ncfg.URL), err)
	}
	logger.Info("following every tenant of the registry through its own account", "tenants", len(src.Records()))
	return src, nil
}
