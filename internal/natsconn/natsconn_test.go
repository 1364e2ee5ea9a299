package natsconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// fieldErrors returns the flags named by the *FieldErrors err joins.
func fieldErrors(err error) []string {
	var flags []string
	var walk func(error)
	walk = func(err error) {
		var fe *natsconn.FieldError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &fe) {
			flags = append(flags, fe.Flag)
		}
	}
	walk(err)
	return flags
}

func TestValidateRefusesWhatCannotWorkBeforeConnecting(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	garbage := writeFile(t, "garbage", "not a credentials file\n")
	for name, tc := range map[string]struct {
		cfg  natsconn.Config
		flag string
		is   error
	}{
		"no URL":                  {cfg: natsconn.Config{}, flag: "nats"},
		"garbage URL":             {cfg: natsconn.Config{URL: "nats://a b"}, flag: "nats"},
		"unknown scheme":          {cfg: natsconn.Config{URL: "http://localhost:4222"}, flag: "nats"},
		"port out of range":       {cfg: natsconn.Config{URL: "nats://localhost:99999"}, flag: "nats"},
		"empty URL in a list":     {cfg: natsconn.Config{URL: "nats://a:4222,,nats://b:4222"}, flag: "nats"},
		"URL with a path":         {cfg: natsconn.Config{URL: "nats://a:4222/x"}, flag: "nats"},
		"missing creds file":      {cfg: natsconn.Config{URL: "nats://a", Creds: missing}, flag: "creds", is: os.ErrNotExist},
		"garbage creds file":      {cfg: natsconn.Config{URL: "nats://a", Creds: garbage}, flag: "creds"},
		"missing nkey file":       {cfg: natsconn.Config{URL: "nats://a", NKey: missing}, flag: "nkey", is: os.ErrNotExist},
		"garbage nkey file":       {cfg: natsconn.Config{URL: "nats://a", NKey: garbage}, flag: "nkey"},
		"two ways to log in":      {cfg: natsconn.Config{URL: "nats://a", User: "u", NKey: garbage}, flag: "creds"},
		"password without user":   {cfg: natsconn.Config{URL: "nats://a", Password: "pw"}, flag: "password"},
		"inbox prefix wildcard":   {cfg: natsconn.Config{URL: "nats://a", InboxPrefix: "_INBOX.*"}, flag: "inbox-prefix"},
		"inbox prefix trailing":   {cfg: natsconn.Config{URL: "nats://a", InboxPrefix: "_INBOX."}, flag: "inbox-prefix"},
		"inbox prefix space":      {cfg: natsconn.Config{URL: "nats://a", InboxPrefix: "my inbox"}, flag: "inbox-prefix"},
		"CA file missing":         {cfg: natsconn.Config{URL: "nats://a", TLSCA: missing}, flag: "tls-ca", is: os.ErrNotExist},
		"CA file not PEM":         {cfg: natsconn.Config{URL: "nats://a", TLSCA: garbage}, flag: "tls-ca"},
		"certificate without key": {cfg: natsconn.Config{URL: "nats://a", TLSCert: garbage}, flag: "tls-key"},
		"key without certificate": {cfg: natsconn.Config{URL: "nats://a", TLSKey: garbage}, flag: "tls-cert"},
		"certificate not PEM":     {cfg: natsconn.Config{URL: "nats://a", TLSCert: garbage, TLSKey: garbage}, flag: "tls-cert"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, fieldErrors(err), tc.flag)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			// Connect refuses the same way, without dialling.
			_, cerr := natsconn.Connect(tc.cfg)
			var ce *natsconn.ConnectError
			assert.False(t, errors.As(cerr, &ce), "a bad setting is not a connection failure: %v", cerr)
			assert.Contains(t, fieldErrors(cerr), tc.flag)
		})
	}
	for _, ok := range []string{"localhost", "127.0.0.1:4222", "nats://a:1,tls://b:2", "ws://h:8080/nats", "nats://u:p@h:4222"} {
		assert.NoError(t, natsconn.Config{URL: ok}.Validate(), ok)
	}
	assert.NoError(t, natsconn.Config{URL: "nats://a", InboxPrefix: "_INBOX_acme.x"}.Validate())
}

func TestConnectsWithUserPasswordOrTokenAndReportsRefusals(t *testing.T) {
	srv := testserver.Start(t, func(o *server.Options) { o.Username, o.Password = "ops", "pw" })
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL(), User: "ops", Password: "pw", Name: "test client"})
	require.NoError(t, err)
	assert.Equal(t, "test client", nc.Opts.Name)
	nc.Close()

	_, err = natsconn.Connect(natsconn.Config{URL: srv.URL(), User: "ops", Password: "wrong"})
	var ce *natsconn.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, natsconn.Credentials, ce.Kind)
	assert.ErrorIs(t, err, nats.ErrAuthorization)

	tokens := testserver.Start(t, func(o *server.Options) { o.Authorization = "s3cret" })
	nc, err = natsconn.Connect(natsconn.Config{URL: tokens.URL(), User: "s3cret"})
	require.NoError(t, err, "a user without a password is a token")
	nc.Close()
}

func TestUnreachableServerFailsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "nats://app:s3cret@" + ln.Addr().String()
	ln.Close()
	_, err = natsconn.Connect(natsconn.Config{URL: url, ReconnectForever: true})
	var ce *natsconn.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, natsconn.Unreachable, ce.Kind)
	assert.ErrorIs(t, err, nats.ErrNoServers)
	assert.NotContains(t, ce.URL, "s3cret")
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestConnectsWithAnNKeySeed(t *testing.T) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	srv := testserver.Start(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL(), NKey: writeFile(t, "user.nk", string(seed)+"\n")})
	require.NoError(t, err)
	nc.Close()

	other, err := nkeys.CreateUser()
	require.NoError(t, err)
	otherSeed, err := other.Seed()
	require.NoError(t, err)
	_, err = natsconn.Connect(natsconn.Config{URL: srv.URL(), NKey: writeFile(t, "other.nk", string(otherSeed))})
	var ce *natsconn.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, natsconn.Credentials, ce.Kind)
}

// TestConnectsWithACredsFile runs a server in operator mode, with the
// account's JWT in memory, and connects as a user of that account.
func TestConnectsWithACredsFile(t *testing.T) {
	operator, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opPub, _ := operator.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(operator)
	require.NoError(t, err)
	opClaims, err = jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)

	account, err := nkeys.CreateAccount()
	require.NoError(t, err)
	accPub, _ := account.PublicKey()
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(operator)
	require.NoError(t, err)

	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.IssuerAccount = accPub
	userJWT, err := uc.Encode(account)
	require.NoError(t, err)
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	require.NoError(t, err)

	resolver := &server.MemAccResolver{}
	require.NoError(t, resolver.Store(accPub, accJWT))
	srv := testserver.Start(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{opClaims}
		o.AccountResolver = resolver
		o.JetStream = false
	})
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL(), Creds: writeFile(t, "user.creds", string(creds))})
	require.NoError(t, err)
	nc.Close()

	// An expired user JWT is refused before connecting.
	uc.Expires = time.Now().Add(-time.Hour).Unix()
	expired, err := uc.Encode(account)
	require.NoError(t, err)
	creds, err = jwt.FormatUserConfig(expired, seed)
	require.NoError(t, err)
	err = natsconn.Config{URL: srv.URL(), Creds: writeFile(t, "expired.creds", string(creds))}.Validate()
	assert.Equal(t, []string{"creds"}, fieldErrors(err))
}

func TestTLSWithACAAndAClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pemCert(ca), 0o600))
	serverCert := newLeaf(t, ca, caKey, "server", x509.ExtKeyUsageServerAuth)
	clientCertFile, clientKeyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	client := newLeaf(t, ca, caKey, "client", x509.ExtKeyUsageClientAuth)
	require.NoError(t, os.WriteFile(clientCertFile, pemCert(client.Leaf), 0o600))
	keyDER, err := x509.MarshalECPrivateKey(client.PrivateKey.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(clientKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := testserver.Start(t, func(o *server.Options) {
		o.TLS, o.TLSVerify = true, true
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	})
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL(), TLSCA: caFile, TLSCert: clientCertFile, TLSKey: clientKeyFile})
	require.NoError(t, err)
	assert.True(t, nc.TLSRequired())
	nc.Close()

	// Without the CA the server's certificate is unknown.
	_, err = natsconn.Connect(natsconn.Config{URL: srv.URL(), TLSCert: clientCertFile, TLSKey: clientKeyFile})
	var ce *natsconn.ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, natsconn.TLS, ce.Kind, "%v", err)

	// TLS asked of a server without it.
	plain := testserver.Start(t)
	_, err = natsconn.Connect(natsconn.Config{URL: plain.URL(), TLSCA: caFile})
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, natsconn.TLS, ce.Kind, "%v", err)
	assert.ErrorIs(t, err, nats.ErrSecureConnWanted)
}

func TestReconnectPolicyAndInboxPrefixReachTheConnection(t *testing.T) {
	srv := testserver.Start(t)
	nc, err := natsconn.Connect(natsconn.Config{URL: srv.URL(), ReconnectForever: true, ReconnectWait: 250 * time.Millisecond,
		InboxPrefix: "_INBOX_ops"})
	require.NoError(t, err)
	defer nc.Close()
	assert.Equal(t, -1, nc.Opts.MaxReconnect)
	assert.Equal(t, 250*time.Millisecond, nc.Opts.ReconnectWait)
	assert.Equal(t, "_INBOX_ops", nc.Opts.InboxPrefix)
	assert.Equal(t, natsconn.DefaultTimeout, nc.Opts.Timeout)

	short, err := natsconn.Connect(natsconn.Config{URL: srv.URL(), Timeout: time.Second})
	require.NoError(t, err)
	defer short.Close()
	assert.Equal(t, nats.DefaultMaxReconnect, short.Opts.MaxReconnect)
	assert.Equal(t, time.Second, short.Opts.Timeout)
}

func TestFlagsAndEnvironmentNames(t *testing.T) {
	var c natsconn.Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.AddFlags(fs, "NATS `URL`")
	require.NoError(t, fs.Parse([]string{"--nats", "nats://h:1", "--creds", "c", "--user", "u", "--password", "p", "--nkey", "k",
		"--inbox-prefix", "_I", "--tls-ca", "ca", "--tls-cert", "cert", "--tls-key", "key"}))
	assert.Equal(t, natsconn.Config{URL: "nats://h:1", Creds: "c", User: "u", Password: "p", NKey: "k", InboxPrefix: "_I",
		TLSCA: "ca", TLSCert: "cert", TLSKey: "key"}, c)
	fs.VisitAll(func(f *flag.Flag) {
		assert.NotEmpty(t, natsconn.EnvVars[f.Name], "flag --%s has an environment variable", f.Name)
	})
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "nats://u:xxxxx@h:4222,nats://xxxxx@h2", natsconn.Redact("nats://u:p@h:4222,nats://token@h2"))
	assert.Equal(t, "nats://h:4222", natsconn.Redact("nats://h:4222"))
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
