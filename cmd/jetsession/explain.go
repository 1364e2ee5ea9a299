package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jetsession/jetsession/internal/natsconn"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Every explanation below decides by errors.Is and errors.As, never by an
// error's text: messages are only printed.

// explainConnect turns a failed connection into what to do about it.
func explainConnect(err error) error {
	var ce *natsconn.ConnectError
	if !errors.As(err, &ce) {
		return &usageError{msg: err.Error()} // a setting natsconn refused
	}
	switch ce.Kind {
	case natsconn.Credentials:
		return fmt.Errorf("%w (check --creds, --user/--password or --nkey)", err)
	case natsconn.TLS:
		return fmt.Errorf("%w (check --tls-ca, --tls-cert and --tls-key against the server's TLS settings)", err)
	default:
		return fmt.Errorf("%w (start a local server with 'jetsession serve', or point --nats or NATS_URL at one)", err)
	}
}

// explain turns an error of the log or of JetStream into one line saying
// what is wrong and what to do.
func (c *client) explain(err error) error {
	if err == nil {
		return nil
	}
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
	// The server reports a permissions violation asynchronously and a
	// plain request just times out: the connection's last error says why.
	if timedOut && errors.Is(c.nc.LastError(), nats.ErrPermissionViolation) {
		return c.explainPermission(c.nc.LastError())
	}
	var (
		corrupt *sessionlog.CorruptEventError
		api     *natsjs.APIError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, jetstream.ErrPermissionDenied), errors.Is(err, nats.ErrPermissionViolation):
		return c.explainPermission(err)
	case timedOut:
		return fmt.Errorf("no answer from NATS at %s within %v (the server or JetStream may be busy or unavailable; retry, or raise --timeout)", natsconn.Redact(c.cf.nats.URL), c.cf.timeout)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, natsjs.ErrJetStreamNotEnabled), errors.Is(err, natsjs.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("JetStream does not answer at %s (is JetStream enabled for this account? JetStream imported from another account needs --js-api-prefix)", natsconn.Redact(c.cf.nats.URL))
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
		return fmt.Errorf("lost the connection to NATS at %s (retry when the server is back)", natsconn.Redact(c.cf.nats.URL))
	case errors.Is(err, sessionlog.ErrInvalidKey):
		return invalidKey(err)
	case errors.Is(err, sessionlog.ErrInvalidEvent):
		return fmt.Errorf("invalid event: %s (check --type, --id and --meta: no control characters, no surrounding spaces, at most %d bytes each)", detail(err, sessionlog.ErrInvalidEvent), sessionlog.MaxTypeBytes)
	case errors.Is(err, sessionlog.ErrEventTooLarge):
		return fmt.Errorf("event too large: at most %d bytes fit on this server (store large payloads elsewhere and append a reference)", c.log.Limits().MaxEventBytes)
	case errors.Is(err, sessionlog.ErrBatchTooLarge):
		return fmt.Errorf("append too large: %s (split it)", detail(err, sessionlog.ErrBatchTooLarge))
	case errors.Is(err, sessionlog.ErrStorageFull):
		return fmt.Errorf("no room on the server: %s (the server or account store is full; add storage, or archive old events with 'jetsession archive')", detail(err, sessionlog.ErrStorageFull))
	case errors.Is(err, sessionlog.ErrQuotaExceeded):
		return fmt.Errorf("tenant is full: %s (its quota refuses new events; archive old ones with 'jetsession archive', or raise the stream's max bytes)", detail(err, sessionlog.ErrQuotaExceeded))
	case errors.Is(err, sessionlog.ErrPartialRetry):
		return fmt.Errorf("%s (a retry must repeat exactly the events of the first attempt; use new IDs for new events)", detail(err, sessionlog.ErrPartialRetry))
	case errors.As(err, &corrupt):
		return fmt.Errorf("undecodable message at ordinal %d of tenant %s: %s (a client outside jetsession wrote to the thread's subject; inspect it with 'nats stream get %s %d')",
			corrupt.Ordinal, field(corrupt.Key.Tenant, sessionlog.MaxTenantBytes), field(corrupt.Reason, 200), c.cf.scheme.Stream(corrupt.Key.Tenant), corrupt.Ordinal)
	case errors.As(err, &api) && api.ErrorCode == natsjs.ErrorCode(server.ApiErrors[server.JSStreamReplicasNotSupportedErr].ErrCode):
		return fmt.Errorf("this NATS server is not part of a cluster, so it keeps one copy of a stream only (use --replicas 1, or create the tenant on a cluster)")
	case errors.As(err, &api) && api.ErrorCode == natsjs.ErrorCode(server.ApiErrors[server.JSClusterNoPeersErrF].ErrCode):
		return fmt.Errorf("the cluster has too few servers able to hold the stream: %s (lower --replicas to the servers JetStream runs on)", api.Description)
	}
	return err
}

// explainPermission says which right is missing: the reply subjects of
// requests, or the JetStream API and the tenant's subjects. It asks the
// server rather than reading the report.
func (c *client) explainPermission(err error) error {
	inbox := c.cf.nats.InboxPrefix
	if inbox == "" {
		inbox = nats.InboxPrefix
	}
	inbox = strings.TrimSuffix(inbox, ".")
	// The server's own report is the connection's last error.
	report := detail(err, jetstream.ErrPermissionDenied)
	if last := c.nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
		report = detail(last, nats.ErrPermissionViolation)
	}
	if allowed, ok := c.mayReceiveReplies(); ok && !allowed {
		return fmt.Errorf("permission denied: %s (the account may not receive replies on %s.>: pass the reply prefix it allows with --inbox-prefix)", report, inbox)
	}
	return fmt.Errorf("permission denied: %s (the account needs publish rights on the JetStream API, %s.>, and on the tenant's subjects)", report, c.cf.apiPrefix)
}

// skipCorrupt reports on w, and steps over, a stored message that is not a
// valid event: reads go on past it, as they do in the library.
func (c *client) skipCorrupt(w io.Writer, err error) bool {
	var ce *sessionlog.CorruptEventError
	if !errors.As(err, &ce) {
		return false
	}
	thread := field(ce.Key.Thread, 80)
	if ce.Key.Thread == "" {
		thread = "subject " + field(ce.Subject, 80)
	}
	fmt.Fprintf(w, "skipping ordinal %d of tenant %s (%s): not a valid event: %s (a client outside jetsession wrote it; inspect it with 'nats stream get %s %d')\n",
		ce.Ordinal, field(ce.Key.Tenant, sessionlog.MaxTenantBytes), thread, field(ce.Reason, 200), c.cf.scheme.Stream(ce.Key.Tenant), ce.Ordinal)
	return true
}

// invalidKey explains a tenant or thread name the log refuses.
func invalidKey(err error) error {
	return fmt.Errorf("invalid name: %s (tenants and threads are non-empty UTF-8 without control characters, at most %d and %d bytes)",
		detail(err, sessionlog.ErrInvalidKey), sessionlog.MaxTenantBytes, sessionlog.MaxThreadBytes)
}

// detail is err's message without the sentinel's own words, which the
// caller rephrases. It only shortens what is printed; nothing is decided
// by it.
func detail(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()); i >= 0 {
		msg = msg[:i] + strings.TrimPrefix(msg[i+len(sentinel.Error()):], ": ")
	}
	return strings.TrimPrefix(msg, "jetstream: ")
}
