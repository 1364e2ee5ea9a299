package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/internal/syncbuf"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/stretchr/testify/require"
)

// TestFollowsEveryTenantAccount runs the command with --tenant-accounts on
// deploy/nats/tenant-accounts.conf, as the bridge's reader: it delivers a
// tenant that exists when it starts and one created while it runs.
func TestFollowsEveryTenantAccount(t *testing.T) {
	env := acctest.Start(t, acctest.Options{})
	p := env.Provisioner(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	appendAs := func(tenant, text string) {
		t.Helper()
		creds, err := p.Creds(ctx, tenant, provision.RoleAgent, provision.CredsOptions{})
		require.NoError(t, err)
		nc, err := env.ConnectCreds(t, creds, "")
		require.NoError(t, err)
		log, err := jetstream.New(nc, jetstream.WithStreamCreation(false))
		require.NoError(t, err)
		_, err = log.Append(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: "t"},
			[]sessionlog.Event{{Type: "user_message", Data: fmt.Appendf(nil, `{"text":%q}`, text)}})
		require.NoError(t, err)
	}
	_, err := p.Create(ctx, "acme", provision.Limits{})
	require.NoError(t, err)
	appendAs("acme", "before the bridge")

	stdout := &syncbuf.Buffer{}
	_, stop := startRun(t, []string{"--nats", env.URL, "--creds", env.CredsPath(provision.BridgeCreds), "--tenant-accounts",
		"--http", "", "--data-dir", t.TempDir(), "--flush-interval", "20ms"}, stdout)
	delivered := func(text string) {
		t.Helper()
		testserver.Eventually(t, 20*time.Second, func() error {
			if !strings.Contains(stdout.String(), text) {
				return fmt.Errorf("%q not delivered yet: %q", text, stdout.String())
			}
			return nil
		})
	}
	delivered("before the bridge")
	_, err = p.Create(ctx, "globex", provision.Limits{})
	require.NoError(t, err)
	appendAs("globex", "created while the bridge runs")
	delivered("created while the bridge runs")
	require.NoError(t, stop())
}

func TestTenantAccountsNeedsTheReadersCredentials(t *testing.T) {
	_, err := parseConfig([]string{"--tenant-accounts"}, func(string) string { return "" }, &syncbuf.Buffer{})
	require.ErrorContains(t, err, "--tenant-accounts needs --nats and --creds")
}
