// Package acctest boots the shipped account-per-tenant server
// configuration (deploy/nats/tenant-accounts.conf) in-process, with a new
// operator from provision.Init, for tests and benchmarks.
package acctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/provision"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// ConfigPath is the shipped configuration.
func ConfigPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nats", "tenant-accounts.conf")
}

// Env is a running server in account-per-tenant mode.
type Env struct {
	// Dir is the provisioning folder Init wrote (keys, creds, setup).
	Dir    string
	Setup  provision.Setup
	Opts   *server.Options
	Server *server.Server
	URL    string
	// JWTDir is the resolver's folder.
	JWTDir string
}

// Options adjust the parsed configuration before the server starts.
type Options struct {
	// Edit changes the parsed options (for example the store's size).
	Edit func(*server.Options)
	// Replace rewrites the configuration text before it is parsed.
	Replace map[string]string
}

// Start copies the shipped configuration into a temporary folder with a
// new operator beside it, on free loopback ports and temporary stores,
// and runs it until the test ends.
func Start(tb testing.TB, o Options) *Env {
	tb.Helper()
	env, stop, err := Launch(tb.TempDir(), o)
	require.NoError(tb, err)
	tb.Cleanup(stop)
	return env
}

// Launch is Start in dir, for programs: stop shuts the server down.
func Launch(dir string, o Options) (env *Env, stop func(), err error) {
	text, err := os.ReadFile(ConfigPath())
	if err != nil {
		return nil, nil, err
	}
	conf := string(text)
	jwtDir := filepath.Join(dir, "jwt")
	repl := map[string]string{
		"listen: 0.0.0.0:4222":                 "listen: 127.0.0.1:-1",
		"http_port: 8222":                      "http: 127.0.0.1:-1",
		`store_dir: "/var/lib/nats/jetstream"`: fmt.Sprintf("store_dir: %q", filepath.Join(dir, "jetstream")),
		`dir: "/var/lib/nats/jwt"`:             fmt.Sprintf("dir: %q", jwtDir),
	}
	for old, new := range o.Replace {
		repl[old] = new
	}
	for old, new := range repl {
		if !strings.Contains(conf, old) {
			return nil, nil, fmt.Errorf("the shipped configuration has no %q: update acctest", old)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	path := filepath.Join(dir, "tenant-accounts.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, nil, err
	}
	opDir := filepath.Join(dir, "operator")
	setup, err := provision.Init(opDir, provision.InitOptions{})
	if err != nil {
		return nil, nil, err
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, nil, err
	}
	opts.NoLog = os.Getenv("JETSESSION_TEST_SERVER_LOG") == ""
	opts.NoSigs = true
	if o.Edit != nil {
		o.Edit(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, err
	}
	if !opts.NoLog {
		srv.ConfigureLogger()
	}
	go srv.Start()
	stop = func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	if !srv.ReadyForConnections(30 * time.Second) {
		stop()
		return nil, nil, errors.New("the server is not ready for connections")
	}
	for deadline := time.Now().Add(30 * time.Second); !srv.JetStreamEnabled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			return nil, nil, errors.New("JetStream not enabled")
		}
	}
	return &Env{Dir: opDir, Setup: setup, Opts: opts, Server: srv, URL: srv.ClientURL(), JWTDir: jwtDir}, stop, nil
}

// CredsPath is the path of one of Init's credentials files.
func (e *Env) CredsPath(name string) string { return filepath.Join(e.Dir, provision.CredsDir, name) }

// Connect signs in with one of Init's credentials files and the given
// inbox prefix ("" for the default), closing the connection when the test
// ends.
func (e *Env) Connect(tb testing.TB, creds, inbox string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := []nats.Option{nats.UserCredentials(e.CredsPath(creds)), nats.Name(creds), quiet}
	if inbox != "" {
		all = append(all, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(e.URL, append(all, opts...)...)
	require.NoError(tb, err, "connecting with %s", creds)
	tb.Cleanup(nc.Close)
	return nc
}

// ConnectCreds signs in with credentials a provisioner issued.
func (e *Env) ConnectCreds(tb testing.TB, creds []byte, inbox string, opts ...nats.Option) (*nats.Conn, error) {
	tb.Helper()
	token, err := nkeysJWT(creds)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.ParseDecoratedNKey(creds)
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	all := []nats.Option{nats.UserJWTAndSeed(token, string(seed)), quiet}
	if inbox != "" {
		all = append(all, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(e.URL, append(all, opts...)...)
	if err == nil {
		tb.Cleanup(nc.Close)
	}
	return nc, err
}

// quiet keeps the client library from printing the server's asynchronous
// errors; tests that want them record them with a handler of their own.
var quiet = nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})

func nkeysJWT(creds []byte) (string, error) { return nkeys.ParseDecoratedJWT(creds) }

// Provisioner returns a provisioner holding every key of the folder.
func (e *Env) Provisioner(tb testing.TB, edit ...func(*provision.Config)) *provision.Provisioner {
	tb.Helper()
	keys, err := provision.LoadKeys(e.Dir)
	require.NoError(tb, err)
	cfg := provision.Config{
		System: e.Connect(tb, provision.ProvisionerSystemCreds, provision.ProvisionerInbox),
		Ops:    e.Connect(tb, provision.ProvisionerCreds, provision.ProvisionerInbox),
		Keys:   keys,
	}
	for _, f := range edit {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := provision.New(ctx, cfg)
	require.NoError(tb, err)
	return p
}

// ReaderKey returns the user key of one of Init's reader credentials
// (provision.BridgeCreds or provision.ViewerCreds).
func (e *Env) ReaderKey(tb testing.TB, creds string) nkeys.KeyPair {
	tb.Helper()
	data, err := os.ReadFile(e.CredsPath(creds))
	require.NoError(tb, err)
	kp, err := nkeys.ParseDecoratedNKey(data)
	require.NoError(tb, err)
	return kp
}
