package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

func defaultConfig(tenants ...string) Config {
	return Config{Account: "JETSESSION", Tenants: tenants, Scheme: subjects.Default(), APIPrefix: "$JS.API"}
}

// The committed accounts.conf is exactly what the generator writes, so the
// tests of deploy/nats cover the generator's output.
func TestAccountsConfIsGenerated(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, defaultConfig("acme", "globex")))
	committed, err := os.ReadFile("../accounts.conf")
	require.NoError(t, err)
	require.Equal(t, buf.String(), string(committed),
		"regenerate: go run ./deploy/nats/genaccounts -tenants acme,globex > deploy/nats/accounts.conf")
}

// Any tenant name the library accepts gives a configuration the server
// parses, with the subjects the library uses for that tenant.
func TestOddTenantNames(t *testing.T) {
	tenants := []string{`Acme "EU"\1`, "bridge", "日本", "a.b*c>d"}
	cfg := defaultConfig(tenants...)
	cfg.Scheme = subjects.Scheme{SubjectPrefix: "prod.sessions", StreamPrefix: "ps-"}
	cfg.APIPrefix = "$JS.hub.API"
	cfg.RandomPasswords = true
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, cfg))
	path := filepath.Join(t.TempDir(), "accounts.conf")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	opts, err := server.ProcessConfigFile(path)
	require.NoError(t, err, buf.String())

	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
		require.Len(t, u.Password, 32)
		require.NotContains(t, u.Password, "change-me")
	}
	require.Len(t, users, 2*len(tenants)+3)
	for _, tenant := range tenants {
		u := users["agent-"+tenant]
		require.NotNil(t, u, tenant)
		stream := cfg.Scheme.Stream(tenant)
		require.Contains(t, u.Permissions.Publish.Allow, cfg.Scheme.TenantFilter(tenant))
		require.Contains(t, u.Permissions.Publish.Allow, "$JS.hub.API.DIRECT.GET."+stream)
		require.Contains(t, u.Permissions.Publish.Allow,
			"$JS.hub.API.CONSUMER.CREATE."+stream+".*.prod.sessions."+subjects.EncodeTenant(tenant)+".*")
		require.Equal(t, []string{TenantInbox(tenant) + ".>"}, u.Permissions.Subscribe.Allow)
		require.NotContains(t, u.Permissions.Publish.Allow, "$JS.hub.API.STREAM.PURGE."+stream)
		require.Contains(t, users["archiver-"+tenant].Permissions.Publish.Allow, "$JS.hub.API.STREAM.PURGE."+stream)
	}
	// A tenant called "bridge" does not share the bridge's inbox.
	require.NotEqual(t, BridgeInbox, TenantInbox("bridge"))
	require.Nil(t, users["admin"].Permissions)
}

// No tenant inbox can equal, or sit under, a service inbox or the default
// one: tenant tokens never hold upper-case letters or dots.
func TestInboxesDoNotOverlap(t *testing.T) {
	for _, tenant := range []string{"BRIDGE", "bridge", "PROVISIONER", ".x", "INBOX"} {
		in := TenantInbox(tenant)
		for _, other := range []string{BridgeInbox, ProvisionerInbox, "_INBOX"} {
			require.NotEqual(t, other, in, tenant)
		}
		require.NotContains(t, strings.TrimPrefix(in, "_INBOX_"), ".", tenant)
		require.False(t, strings.ContainsFunc(strings.TrimPrefix(in, "_INBOX_"), func(r rune) bool { return r >= 'A' && r <= 'Z' }), tenant)
	}
}

func TestRefusesBadInput(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no tenants":   defaultConfig(),
		"duplicate":    defaultConfig("acme", "acme"),
		"control char": defaultConfig("a\nb"),
		"too long":     defaultConfig(strings.Repeat("x", subjects.MaxTenantBytes+1)),
		"bad account":  {Account: "a.b", Tenants: []string{"acme"}, Scheme: subjects.Default(), APIPrefix: "$JS.API"},
		"bad scheme":   {Account: "A", Tenants: []string{"acme"}, Scheme: subjects.Scheme{SubjectPrefix: "a.*"}, APIPrefix: "$JS.API"},
		"empty api":    {Account: "A", Tenants: []string{"acme"}, Scheme: subjects.Default()},
	} {
		require.Error(t, Write(&bytes.Buffer{}, cfg), name)
	}
	users := Users(defaultConfig("acme"))
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	require.True(t, slices.Equal([]string{"agent-acme", "archiver-acme", "provisioner", "bridge", "admin"}, names), names)
}
