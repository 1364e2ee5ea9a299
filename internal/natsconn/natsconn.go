// Package natsconn builds the NATS connection of every jetsession command
// the same way: the server URLs, the credentials (a creds file, an NKey
// seed, a user and password or a token), the inbox prefix, TLS (a CA, a
// client certificate and key), the client name and the reconnect policy.
// Everything is checked before anything connects, so that a bad flag is
// refused at once with the reason, and a failed connection is reported by
// kind (unreachable, credentials refused, TLS) for the command to say what
// to do.
package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Config is how to reach NATS and who to be there. The zero value, with a
// URL, connects anonymously with the client library's defaults.
type Config struct {
	// URL is one server URL or several, comma separated. A URL without a
	// scheme is nats://; a missing port is 4222.
	URL string
	// Name is the client name the server shows for the connection.
	Name string

	// Creds is a user credentials file (a JWT and its NKey seed), as the
	// nats CLI uses. At most one of Creds, NKey and User is set.
	Creds string
	// NKey is a file holding a user NKey seed (SU...).
	NKey string
	// User and Password authenticate with a user name and password; a
	// User without a Password is a token, as in the nats CLI.
	User, Password string

	// InboxPrefix replaces _INBOX as the prefix of reply subjects, for
	// accounts allowed only their own.
	InboxPrefix string

	// TLSCA is a PEM file of the certificate authorities the server's
	// certificate must chain to; TLSCert and TLSKey a client certificate
	// and its key, for servers that verify clients. Any of them turns TLS
	// on.
	TLSCA, TLSCert, TLSKey string

	// Timeout bounds dialling and the handshake with each server (default
	// 5s).
	Timeout time.Duration
	// ReconnectForever keeps reconnecting for as long as the connection is
	// open, for daemons and live tails; otherwise the client library's
	// default applies (60 attempts). The first connection is never
	// retried: a server that cannot be reached at start is an error.
	ReconnectForever bool
	// ReconnectWait is the pause between reconnect attempts (default 2s,
	// the client library's).
	ReconnectWait time.Duration
}

// DefaultTimeout bounds dialling a server when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Flag names, shared by the commands so that they read the same.
const (
	FlagURL         = "nats"
	FlagCreds       = "creds"
	FlagNKey        = "nkey"
	FlagUser        = "user"
	FlagPassword    = "password"
	FlagInboxPrefix = "inbox-prefix"
	FlagTLSCA       = "tls-ca"
	FlagTLSCert     = "tls-cert"
	FlagTLSKey      = "tls-key"
)

// EnvVars maps each connection flag to the environment variable that
// fills it when the flag is not given: the nats CLI's names.
var EnvVars = map[string]string{
	FlagURL:         "NATS_URL",
	FlagCreds:       "NATS_CREDS",
	FlagNKey:        "NATS_NKEY",
	FlagUser:        "NATS_USER",
	FlagPassword:    "NATS_PASSWORD",
	FlagInboxPrefix: "NATS_INBOX_PREFIX",
	FlagTLSCA:       "NATS_CA",
	FlagTLSCert:     "NATS_CERT",
	FlagTLSKey:      "NATS_KEY",
}

// AddFlags registers the connection flags on fs, filling c. urlUsage
// describes --nats, whose default differs between commands.
func (c *Config) AddFlags(fs *flag.FlagSet, urlUsage string) {
	fs.StringVar(&c.URL, FlagURL, c.URL, urlUsage)
	fs.StringVar(&c.Creds, FlagCreds, c.Creds, "user credentials `FILE` (env NATS_CREDS)")
	fs.StringVar(&c.User, FlagUser, c.User, "user `NAME`, or a token without --password (env NATS_USER)")
	fs.StringVar(&c.Password, FlagPassword, c.Password, "user `PASSWORD` (env NATS_PASSWORD)")
	fs.StringVar(&c.NKey, FlagNKey, c.NKey, "user NKey seed `FILE` (env NATS_NKEY)")
	fs.StringVar(&c.InboxPrefix, FlagInboxPrefix, c.InboxPrefix, "inbox `PREFIX` for accounts allowed only their own reply subjects (env NATS_INBOX_PREFIX)")
	fs.StringVar(&c.TLSCA, FlagTLSCA, c.TLSCA, "PEM `FILE` of the CAs that signed the server's certificate (env NATS_CA)")
	fs.StringVar(&c.TLSCert, FlagTLSCert, c.TLSCert, "client certificate PEM `FILE`, with --tls-key (env NATS_CERT)")
	fs.StringVar(&c.TLSKey, FlagTLSKey, c.TLSKey, "client key PEM `FILE`, with --tls-cert (env NATS_KEY)")
}

// FieldError is a connection setting that cannot work, named by its flag.
type FieldError struct {
	Flag string // flag name without dashes, for example "creds"
	Err  error
	Hint string // what to do, may be empty
}

func (e *FieldError) Error() string {
	msg := "--" + e.Flag + ": " + e.Err.Error()
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks every setting without connecting: the URLs parse, the
// files exist and hold what they should, the inbox prefix is a valid
// subject prefix, and the credentials do not contradict each other. It
// returns every problem, each a *FieldError, joined.
func (c Config) Validate() error {
	_, err := c.check()
	return err
}

// check validates c and returns the TLS configuration it asks for (nil
// when none).
func (c Config) check() (*tls.Config, error) {
	var errs []error
	bad := func(flag string, err error, hint string) {
		if errors.Is(err, fs.ErrNotExist) {
			hint = "check the path"
		}
		errs = append(errs, &FieldError{Flag: flag, Err: err, Hint: hint})
	}
	if err := checkURLs(c.URL); err != nil {
		bad(FlagURL, err, "use nats://host:port, or several comma separated")
	}
	auth := 0
	for _, set := range []bool{c.Creds != "", c.NKey != "", c.User != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		bad(FlagCreds, errors.New("--creds, --nkey and --user exclude each other"), "pass one way to authenticate")
	}
	if c.Password != "" && c.User == "" {
		bad(FlagPassword, errors.New("a password needs a user"), "add --user")
	}
	if c.Creds != "" {
		if err := checkCreds(c.Creds); err != nil {
			bad(FlagCreds, err, "pass the .creds file of a NATS user: its JWT and its seed")
		}
	}
	if c.NKey != "" {
		if err := checkSeed(c.NKey); err != nil {
			bad(FlagNKey, err, "pass a file holding the user's NKey seed, SU...")
		}
	}
	if c.InboxPrefix != "" {
		if err := checkInboxPrefix(c.InboxPrefix); err != nil {
			bad(FlagInboxPrefix, err, "use subject tokens separated by dots, for example _INBOX_ops")
		}
	}
	tc, tlsErrs := c.tlsConfig()
	errs = append(errs, tlsErrs...)
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("connect timeout must not be negative, got %v", c.Timeout))
	}
	return tc, errors.Join(errs...)
}

func checkURLs(urls string) error {
	if strings.TrimSpace(urls) == "" {
		return errors.New("no server URL")
	}
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return fmt.Errorf("%q holds an empty URL", urls)
		}
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%q is not a URL", raw)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: unknown scheme %q (nats, tls, ws or wss)", raw, u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%q names no host", raw)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%q: port %q is not 1 to 65535", raw, p)
			}
		}
		if u.Path != "" && u.Path != "/" && u.Scheme != "ws" && u.Scheme != "wss" {
			return fmt.Errorf("%q: a NATS URL has no path", raw)
		}
	}
	return nil
}

func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	token, err := nkeys.ParseDecoratedJWT(b)
	if err != nil {
		return fmt.Errorf("%s holds no user JWT: %w", path, err)
	}
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return fmt.Errorf("%s holds no valid user JWT: %w", path, err)
	}
	if claims.Expires > 0 && time.Unix(claims.Expires, 0).Before(time.Now()) {
		return fmt.Errorf("%s: the user JWT expired at %s", path, time.Unix(claims.Expires, 0).UTC().Format(time.RFC3339))
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%s holds no user seed: %w", path, err)
	}
	kp.Wipe()
	return nil
}

func checkSeed(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%s holds no user NKey seed: %w", path, err)
	}
	kp.Wipe()
	return nil
}

// checkInboxPrefix accepts what a subscription to prefix.> needs: tokens
// of printable characters without wildcards, separated by single dots.
func checkInboxPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("%q has an empty token (a leading, trailing or double dot)", p)
		case strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("%q holds a wildcard", p)
		case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Errorf("%q holds white space or a control character", p)
		}
	}
	return nil
}

func (c Config) tlsConfig() (*tls.Config, []error) {
	if c.TLSCA == "" && c.TLSCert == "" && c.TLSKey == "" {
		return nil, nil
	}
	var errs []error
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		switch {
		case err != nil:
			errs = append(errs, &FieldError{Flag: FlagTLSCA, Err: err, Hint: "check the path"})
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, &FieldError{Flag: FlagTLSCA, Err: fmt.Errorf("%s holds no PEM certificate", c.TLSCA),
					Hint: "pass the CA certificate, -----BEGIN CERTIFICATE-----"})
			}
			tc.RootCAs = pool
		}
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		errs = append(errs, &FieldError{Flag: FlagTLSKey, Err: errors.New("--tls-cert needs its key"), Hint: "add --tls-key"})
	case c.TLSCert == "" && c.TLSKey != "":
		errs = append(errs, &FieldError{Flag: FlagTLSCert, Err: errors.New("--tls-key needs its certificate"), Hint: "add --tls-cert"})
	case c.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			errs = append(errs, &FieldError{Flag: FlagTLSCert, Err: err, Hint: "pass a PEM certificate and the PEM key it was made for"})
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, errs
}

// Options returns the nats.Options c describes, after Validate.
func (c Config) Options() ([]nats.Option, error) {
	tc, err := c.check()
	if err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	opts := []nats.Option{nats.Timeout(timeout)}
	if c.Name != "" {
		opts = append(opts, nats.Name(c.Name))
	}
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, &FieldError{Flag: FlagNKey, Err: err}
		}
		opts = append(opts, opt)
	case c.User != "" && c.Password == "":
		opts = append(opts, nats.Token(c.User))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	if c.ReconnectForever {
		opts = append(opts, nats.MaxReconnects(-1))
	}
	if c.ReconnectWait > 0 {
		opts = append(opts, nats.ReconnectWait(c.ReconnectWait))
	}
	return opts, nil
}

// Connect validates c and connects, once: a server that cannot be reached
// is an error at once, not a retry. extra options (handlers, say) apply
// after c's. A failed connection is a *ConnectError; a bad setting a
// *FieldError.
func Connect(c Config, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URL, append(opts, extra...)...)
	if err != nil {
		return nil, &ConnectError{URL: Redact(c.URL), Kind: classify(err), Err: err}
	}
	return nc, nil
}

// Kind says why a connection failed.
type Kind int

const (
	// Unreachable: no server answered (refused, unknown host, timed out).
	Unreachable Kind = iota + 1
	// Credentials: a server answered and refused the credentials.
	Credentials
	// TLS: the TLS handshake failed, or one side requires TLS and the
	// other does not offer it.
	TLS
	// Other: anything else the client library reports.
	Other
)

// ConnectError is a connection that could not be made.
type ConnectError struct {
	URL  string // redacted
	Kind Kind
	Err  error
}

func (e *ConnectError) Error() string {
	switch e.Kind {
	case Credentials:
		return fmt.Sprintf("NATS at %s refused the credentials: %v", e.URL, e.Err)
	case TLS:
		return fmt.Sprintf("TLS with NATS at %s failed: %v", e.URL, e.Err)
	default:
		return fmt.Sprintf("cannot connect to NATS at %s: %v", e.URL, e.Err)
	}
}

func (e *ConnectError) Unwrap() error { return e.Err }

func classify(err error) Kind {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		dns      *net.DNSError
		op       *net.OpError
	)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired):
		return Credentials
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &record), errors.As(err, &alert):
		return TLS
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &dns), errors.As(err, &op):
		return Unreachable
	}
	return Other
}

// Redact hides passwords and tokens in NATS URLs before they are printed.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts[i] = u.String()
		} else if u.User.Username() != "" {
			u.User = url.User("xxxxx") // a token
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
