package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/internal/syncbuf"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startFails runs the bridge, which must fail before it starts, and
// returns its error and standard output. run is called synchronously: a
// bridge that retried instead of failing would hang the test.
func startFails(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	out, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	err = run(context.Background(), args, noEnv, out, stderr, &hooks{onStart: func(started) {
		t.Error("the bridge started")
	}})
	require.Error(t, err, "stderr:\n%s", stderr)
	var ce *configError
	assert.False(t, errors.As(err, &ce), "a runtime failure, not a configuration error: %v", err)
	return out.String(), err
}

func TestEmbeddedServerOnATakenAddressSaysSoAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	addr := ln.Addr().String()
	_, err = startFails(t, "--listen", addr, "--data-dir", t.TempDir(), "--http", "")
	assert.Contains(t, err.Error(), "the embedded NATS server cannot listen on "+addr+": the address is already in use")
	assert.Contains(t, err.Error(), "--nats nats://"+addr)
	assert.Contains(t, err.Error(), "another --listen address")
}

func TestNATSThatCannotBeReachedFailsAtStartWithTheReason(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	nobody := "nats://" + ln.Addr().String()
	ln.Close()
	for name, url := range map[string]string{
		"nothing listens":  nobody,
		"unknown host":     "nats://no-such-host.invalid:4222",
		"several, all off": nobody + "," + nobody,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := startFails(t, "--nats", url, "--data-dir", t.TempDir(), "--http", "")
			var ce *natsconn.ConnectError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, natsconn.Unreachable, ce.Kind)
			assert.Contains(t, err.Error(), "cannot connect to NATS at ")
			assert.Contains(t, err.Error(), "check --nats")
		})
	}
}

func TestRefusedCredentialsFailAtStart(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) { o.Username, o.Password = "bridge", "pw" })
	_, err := startFails(t, "--nats", srv.URL(), "--user", "bridge", "--password", "wrong", "--data-dir", t.TempDir(), "--http", "")
	require.ErrorIs(t, err, nats.ErrAuthorization)
	assert.Contains(t, err.Error(), "refused the credentials")
	assert.Contains(t, err.Error(), "--user and --password")

	// The right ones, by flag: the bridge runs.
	_, stop := startRun(t, []string{"--nats", srv.URL(), "--user", "bridge", "--password", "pw", "--data-dir", t.TempDir(), "--http", ""}, io.Discard)
	require.NoError(t, stop())
}

func TestAServerWithoutJetStreamOrRightsFailsAtStart(t *testing.T) {
	plain := testserver.Start(t, func(o *server.Options) { o.JetStream = false })
	_, err := startFails(t, "--nats", plain.URL(), "--data-dir", t.TempDir(), "--http", "")
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Contains(t, err.Error(), "JetStream does not answer at "+plain.URL())

	limited := testserver.Start(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "u", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{"elsewhere.>"}}}}}
	})
	_, err = startFails(t, "--nats", limited.URL(), "--user", "u", "--password", "pw", "--data-dir", t.TempDir(), "--http", "")
	require.ErrorIs(t, err, jetstream.ErrPermissionDenied)
	assert.Contains(t, err.Error(), "refuses to let the bridge list the tenant streams")
}

// TestAnUnwritableDataFolderFailsAtStart: with the JSON-lines sink on
// standard output, the positions live in --data-dir; if they cannot be
// saved the same rows would be printed again and again. The folder is
// checked before anything is read.
func TestAnUnwritableDataFolderFailsAtStart(t *testing.T) {
	srv := testserver.Start(t)
	log, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	_, err = log.Append(context.Background(), sessionlog.ThreadKey{Tenant: "acme", Thread: "t"}, []sessionlog.Event{{Type: "x"}})
	require.NoError(t, err)

	// A folder below a file cannot be created, whoever runs the test.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	dataDir := filepath.Join(file, "data")
	stdout, err := startFails(t, "--nats", srv.URL(), "--data-dir", dataDir, "--quarantine", filepath.Join(t.TempDir(), "q.jsonl"), "--http", "")
	assert.Contains(t, err.Error(), "--data-dir: the folder "+filepath.Join(dataDir, "bridge")+" is not writable")
	assert.Empty(t, stdout, "no row is printed")

	// The embedded server's folder is checked the same way.
	_, err = startFails(t, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--http", "")
	assert.Contains(t, err.Error(), "is not writable")
	assert.True(t, strings.HasPrefix(err.Error(), "--"), "names the flag: %v", err)
}

func TestHTTPAddressInUseFailsAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	srv := testserver.Start(t)
	_, err = startFails(t, "--nats", srv.URL(), "--data-dir", t.TempDir(), "--http", ln.Addr().String())
	assert.Contains(t, err.Error(), "--http "+ln.Addr().String()+": the address is already in use")
}

// TestAFailedStartStopsWhatHadStarted: the embedded server started before
// the HTTP address turned out to be taken; it must not be left running.
func TestAFailedStartStopsWhatHadStarted(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := free.Addr().String()
	free.Close()
	_, err = startFails(t, "--listen", listen, "--data-dir", t.TempDir(), "--http", taken.Addr().String())
	assert.Contains(t, err.Error(), "--http "+taken.Addr().String()+": the address is already in use")
	again, err := net.Listen("tcp", listen)
	require.NoError(t, err, "the embedded server was stopped")
	again.Close()
}

func TestAGarbageCredentialsFileIsRefusedBeforeConnecting(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "bridge.creds")
	require.NoError(t, os.WriteFile(creds, []byte("this is not a credentials file\n"), 0o600))
	err := run(context.Background(), []string{"--nats", "nats://127.0.0.1:1", "--creds", creds, "--data-dir", t.TempDir()},
		noEnv, io.Discard, io.Discard, &hooks{onStart: func(started) { t.Error("the bridge started") }})
	var ce *configError
	require.ErrorAs(t, err, &ce)
	var fe *natsconn.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "creds", fe.Flag)
}
