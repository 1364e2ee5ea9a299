package nats_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/provision"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// credsClient signs in with credentials the provisioner issued and
// records what the server reports, like connect.
func credsClient(tb testing.TB, env *acctest.Env, creds []byte, name, inbox string) *client {
	tb.Helper()
	c := &client{user: name}
	nc, err := env.ConnectCreds(tb, creds, inbox, nats.Name(name), c.recorder())
	require.NoError(tb, err, "connecting as %s", name)
	c.nc = nc
	return c
}

// opsClient signs in with one of Init's credentials files.
func opsClient(tb testing.TB, env *acctest.Env, creds, inbox string) *client {
	tb.Helper()
	c := &client{user: creds}
	c.nc = env.Connect(tb, creds, inbox, c.recorder())
	return c
}

func (c *client) recorder() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.errs = append(c.errs, err.Error())
		c.mu.Unlock()
	})
}

// provisioner returns a provisioner whose connections record what the
// server reports.
func provisioner(tb testing.TB, env *acctest.Env) (p *provision.Provisioner, sys, ops *client) {
	tb.Helper()
	sys = opsClient(tb, env, provision.ProvisionerSystemCreds, provision.ProvisionerInbox)
	ops = opsClient(tb, env, provision.ProvisionerCreds, provision.ProvisionerInbox)
	p = env.Provisioner(tb, func(c *provision.Config) { c.System, c.Ops = sys.nc, ops.nc })
	return p, sys, ops
}

// issue issues credentials of role in tenant's account.
func issue(tb testing.TB, p *provision.Provisioner, tenant string, role provision.Role) []byte {
	tb.Helper()
	creds, err := p.Creds(ctxFor(tb, 10*time.Second), tenant, role, provision.CredsOptions{Name: string(role) + "-" + tenant})
	require.NoError(tb, err)
	return creds
}

// grantRoot gives the tenant's account an unscoped signing key and
// returns a user signed by it: every right in the account, what a tenant
// that took over its own account (by reflecting requests into its
// JetStream API, say) could do at most. It edits the account's JWT as the
// resolver holds it, signed with the operator's signing key.
func grantRoot(tb testing.TB, env *acctest.Env, account, name string) *client {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(env.JWTDir, account+".jwt"))
	require.NoError(tb, err)
	ac, err := jwt.DecodeAccountClaims(string(data))
	require.NoError(tb, err)
	signing, err := nkeys.CreateAccount()
	require.NoError(tb, err)
	signingPub, _ := signing.PublicKey()
	ac.SigningKeys.Add(signingPub)
	keys, err := provision.LoadKeys(env.Dir)
	require.NoError(tb, err)
	token, err := ac.Encode(keys.OperatorSigning)
	require.NoError(tb, err)
	sys := env.Connect(tb, provision.ProvisionerSystemCreds, provision.ProvisionerInbox)
	msg, err := sys.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(token), 5*time.Second)
	require.NoError(tb, err)
	require.Contains(tb, string(msg.Data), `"code":200`, "pushing the root key")

	user, err := nkeys.CreateUser()
	require.NoError(tb, err)
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	uc.IssuerAccount = account
	// Explicit, or the account's default permissions (deny all) apply.
	uc.Pub.Allow.Add(">")
	uc.Sub.Allow.Add(">")
	ujwt, err := uc.Encode(signing)
	require.NoError(tb, err)
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	require.NoError(tb, err)
	return credsClient(tb, env, creds, name, "")
}

// apiError returns the JetStream API error code of a reply, 0 if none.
func apiError(tb testing.TB, msg *nats.Msg) int {
	tb.Helper()
	var r struct {
		Error *struct {
			ErrCode int `json:"err_code"`
		} `json:"error"`
	}
	require.NoError(tb, json.Unmarshal(msg.Data, &r), "reply %q", msg.Data)
	if r.Error == nil {
		return 0
	}
	return r.Error.ErrCode
}

// request sends a request and returns its reply, or the error.
func request(c *client, subject string, body []byte) (*nats.Msg, error) {
	msg, err := c.nc.Request(subject, body, 5*time.Second)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, err
	}
	return msg, err
}

// rawConn speaks the NATS protocol by hand with a user JWT: what a client
// that ignores the limits the server announces sends.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialJWT(tb testing.TB, serverURL string, creds []byte) *rawConn {
	tb.Helper()
	u, err := url.Parse(serverURL)
	require.NoError(tb, err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(tb, err)
	tb.Cleanup(func() { conn.Close() })
	c := &rawConn{conn: conn, r: bufio.NewReader(conn)}
	line := c.next(tb)
	var info struct {
		Nonce string `json:"nonce"`
	}
	require.NoError(tb, json.Unmarshal([]byte(strings.TrimPrefix(line, "INFO ")), &info))
	token, err := nkeys.ParseDecoratedJWT(creds)
	require.NoError(tb, err)
	kp, err := nkeys.ParseDecoratedNKey(creds)
	require.NoError(tb, err)
	sig, err := kp.Sign([]byte(info.Nonce))
	require.NoError(tb, err)
	connect, _ := json.Marshal(map[string]any{"verbose": false, "pedantic": false, "protocol": 1, "headers": true,
		"jwt": token, "sig": base64.RawURLEncoding.EncodeToString(sig)})
	fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect)
	for {
		line := c.next(tb)
		require.NotContains(tb, line, "-ERR")
		if strings.HasPrefix(line, "PONG") {
			return c
		}
	}
}

// next returns the next protocol line, answering pings.
func (c *rawConn) next(tb testing.TB) string {
	tb.Helper()
	for {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := c.r.ReadString('\n')
		require.NoError(tb, err)
		if strings.HasPrefix(line, "PING") {
			fmt.Fprint(c.conn, "PONG\r\n")
			continue
		}
		return strings.TrimSpace(line)
	}
}
