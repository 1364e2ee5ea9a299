package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/syncbuf"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestRunsAsTheLeastPrivilegeBridgeUser runs the command as the bridge user
// of deploy/nats/accounts.conf, on a server booted from single.conf.
func TestRunsAsTheLeastPrivilegeBridgeUser(t *testing.T) {
	opts, err := server.ProcessConfigFile("../../deploy/nats/single.conf")
	require.NoError(t, err)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir, opts.NoLog, opts.NoSigs = t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	require.True(t, srv.ReadyForConnections(10*time.Second))
	testserver.Eventually(t, 10*time.Second, func() error {
		if !srv.JetStreamEnabled() {
			return fmt.Errorf("JetStream not ready")
		}
		return nil
	})
	admin := testserver.Connect(t, srv.ClientURL(), nats.UserInfo("admin", "change-me-admin"))
	log, err := jetstream.New(admin)
	require.NoError(t, err)
	for _, tenant := range []string{"acme", "globex"} {
		_, err := log.Append(context.Background(), sessionlog.ThreadKey{Tenant: tenant, Thread: "t"},
			[]sessionlog.Event{{Type: "user_message", Data: []byte(`{"hi":1}`)}})
		require.NoError(t, err)
	}
	url := strings.Replace(srv.ClientURL(), "nats://", "nats://bridge:change-me-bridge@", 1)
	stdout := &syncbuf.Buffer{}
	_, stop := startRun(t, []string{"--nats", url, "--inbox-prefix", "_INBOX_BRIDGE", "--http", "", "--data-dir", t.TempDir(), "--flush-interval", "20ms"}, stdout)
	testserver.Eventually(t, 30*time.Second, func() error {
		out := stdout.String()
		if !strings.Contains(out, `"tenant":"acme"`) || !strings.Contains(out, `"tenant":"globex"`) {
			return fmt.Errorf("events of both tenants not delivered yet: %q", out)
		}
		return nil
	})
	require.NoError(t, stop())
}
