package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/stretchr/testify/require"
)

// TestTenantCommandsAndTheOperatorViewAcrossAccounts drives the
// provisioner's commands and the operator view on tenant-accounts.conf.
func TestTenantCommandsAndTheOperatorViewAcrossAccounts(t *testing.T) {
	srv := acctest.Start(t, acctest.Options{})
	e := env{"NATS_URL": srv.URL, "JETSESSION_PROVISION_DIR": srv.Dir}

	out := ok(t, e, "tenant", "create", "acme", "--storage", "64MiB", "--connections", "10")
	require.Contains(t, out, `tenant "acme" is active`)
	require.Contains(t, out, "64.0 MiB")
	r := cli(t, e, "", "tenant", "create", "acme")
	require.Equal(t, exitRuntime, r.code)
	require.Contains(t, r.stderr, "tenant exists")
	r = cli(t, e, "", "tenant", "create", "globex", "--storage", "lots")
	require.Equal(t, exitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, `--storage "lots" is not a size`)

	creds := filepath.Join(t.TempDir(), "agent.creds")
	ok(t, e, "tenant", "creds", "acme", "--role", "agent", "--name", "agent-1", "--out", creds)
	agent := env{"NATS_URL": srv.URL, "NATS_CREDS": creds}
	require.Equal(t, "1\n", ok(t, agent, "append", "acme", "t1", "--type", "user_message", "--data", `{"text":"hello"}`))

	// The operator view reads every tenant through its own account.
	view := env{"NATS_URL": srv.URL, "JETSESSION_ACCOUNTS": srv.Dir}
	require.Contains(t, ok(t, view, "tenants"), "acme")
	require.Contains(t, ok(t, view, "load", "acme", "t1"), "hello")
	require.Contains(t, ok(t, view, "threads", "acme"), "t1")
	r = cli(t, view, "", "append", "acme", "t1", "--type", "user_message", "--data", `{}`, "--timeout", "1s")
	require.NotEqual(t, 0, r.code, "the operator view writes nothing")
	r = cli(t, view, "", "delete-tenant", "acme", "--yes")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "jetsession tenant delete")

	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(ok(t, e, "tenant", "show", "acme")), &rec))
	require.Equal(t, "active", rec["state"])
	ok(t, e, "tenant", "limit", "acme", "--connections", "20")
	require.Contains(t, ok(t, e, "tenant", "list"), "acme")
	require.Contains(t, ok(t, e, "tenant", "suspend", "acme"), "suspended")
	r = cli(t, agent, "", "append", "acme", "t1", "--type", "user_message", "--data", `{}`)
	require.NotEqual(t, 0, r.code, "a suspended tenant's agent is refused")
	require.Contains(t, ok(t, e, "tenant", "resume", "acme"), "active")
	require.Equal(t, "2\n", ok(t, agent, "append", "acme", "t1", "--type", "user_message", "--data", `{"text":"back"}`))

	r = cli(t, e, "", "tenant", "delete", "acme")
	require.Equal(t, exitUsage, r.code, "no terminal to ask on")
	ok(t, e, "tenant", "delete", "acme", "--yes")
	require.Contains(t, ok(t, e, "tenant", "list"), "deleted")
	r = cli(t, agent, "", "append", "acme", "t1", "--type", "user_message", "--data", `{}`)
	require.NotEqual(t, 0, r.code, "credentials of a deleted tenant")
	ok(t, e, "tenant", "create", "acme")
	ok(t, e, "tenant", "creds", "acme", "--out", creds)
	require.Equal(t, "3\n", ok(t, agent, "append", "acme", "t1", "--type", "user_message", "--data", `{"text":"second life"}`), "ordinals go on")
	require.True(t, strings.HasPrefix(ok(t, e, "tenant", "creds", "acme", "--role", "reader"), "-----BEGIN NATS USER JWT-----"))
}
