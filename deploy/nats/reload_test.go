package nats_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestAddingATenantIsAReload regenerates accounts.conf with one more tenant
// and reloads the running server (what SIGHUP or nats-server --signal
// reload does): the new tenant's agent logs in, existing ones stay.
func TestAddingATenantIsAReload(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 2)
	single, err := os.ReadFile("single.conf")
	require.NoError(t, err)
	// A copy of single.conf that reload can re-read as it is: concrete
	// ports and a temporary store.
	conf := string(single)
	for old, repl := range map[string]string{
		"listen: 0.0.0.0:4222":                 fmt.Sprintf("listen: 127.0.0.1:%d", ports[0]),
		"http_port: 8222":                      fmt.Sprintf("http: 127.0.0.1:%d", ports[1]),
		`store_dir: "/var/lib/nats/jetstream"`: fmt.Sprintf("store_dir: %q", filepath.Join(dir, "jetstream")),
	} {
		require.Contains(t, conf, old)
		conf = strings.Replace(conf, old, repl, 1)
	}
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	write("single.conf", []byte(conf))
	accounts, err := os.ReadFile("accounts.conf")
	require.NoError(t, err)
	write("accounts.conf", accounts)
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "single.conf"))
	require.NoError(t, err)
	opts.NoLog, opts.NoSigs = true, true
	srv := startServer(t, opts)

	login := func(user string) error {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, "change-me-"+user))
		if err == nil {
			nc.Close()
		}
		return err
	}
	require.ErrorContains(t, login("agent-initech"), "Authorization Violation")
	cmd := exec.Command("go", "run", "./genaccounts", "-tenants", "acme,globex,initech")
	cmd.Stderr = os.Stderr
	generated, err := cmd.Output()
	require.NoError(t, err)
	write("accounts.conf", generated)
	require.NoError(t, srv.Reload())
	require.NoError(t, login("agent-initech"))
	require.NoError(t, login("agent-acme"))
}
