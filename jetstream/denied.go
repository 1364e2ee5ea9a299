package jetstream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrPermissionDenied is returned when the server refused a publish or a
// subscription a call needs. The server drops a refused message without a
// reply and reports the violation to the connection asynchronously: a Log
// with a PermissionWatcher (WithPermissionWatcher) fails the call as soon
// as the report arrives, one without recognises the refusal when the call
// times out. The error carries the server's report.
var ErrPermissionDenied = errors.New("jetstream: permission denied")

// PermissionWatcher records the permission violations the server reports
// on one connection, so that the Logs given it (WithPermissionWatcher) fail
// a refused call at once with ErrPermissionDenied. One per connection is
// enough: Logs share it.
type PermissionWatcher struct {
	nc     *nats.Conn
	prev   nats.ErrHandler
	closed atomic.Bool
	violations
}

// WatchPermissions installs a PermissionWatcher on nc, chained in front of
// the connection's error handler (set yours with nats.ErrorHandler before,
// it still receives every error).
func WatchPermissions(nc *nats.Conn) *PermissionWatcher {
	w := &PermissionWatcher{nc: nc, prev: nc.ErrorHandler()}
	w.violations.init()
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		if !w.closed.Load() && errors.Is(err, nats.ErrPermissionViolation) {
			w.record(err.Error())
		}
		if w.prev != nil {
			w.prev(c, s, err)
		}
	})
	return w
}

// Close restores the error handler the connection had before
// WatchPermissions; Logs using the watcher go back to recognising refusals
// when calls time out. Close a connection's watchers in the reverse order
// of their creation.
func (w *PermissionWatcher) Close() {
	if w.closed.CompareAndSwap(false, true) {
		w.nc.SetErrorHandler(w.prev)
	}
}

// violations remembers the permission violations the server reported on
// the connection, by subject, so that a timed-out call can tell a refusal
// from a slow server even while other calls fail concurrently.
type violations struct {
	mu      sync.Mutex
	recent  map[string]violation
	waiters map[*waiter]struct{}
}

// waiter is a call waiting for a reply that wants to hear at once of a
// violation on one of its subjects.
type waiter struct {
	prefixes []string
	notify   func(msg string)
}

type violation struct {
	at  time.Time
	msg string
}

var violationRE = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]+)"`)

func (v *violations) init() {
	v.recent = make(map[string]violation)
	v.waiters = make(map[*waiter]struct{})
}

func (v *violations) record(msg string) {
	m := violationRE.FindStringSubmatch(msg)
	if m == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.recent) > 1024 { // bound memory: old reports are useless anyway
		clear(v.recent)
	}
	v.recent[m[2]] = violation{at: time.Now(), msg: m[0]}
	for w := range v.waiters {
		if hasPrefix(m[2], w.prefixes) {
			w.notify(m[0])
		}
	}
}

// hasPrefix reports whether subject is one of subjects, or lies under one
// of them: "a.b" covers "a.b" and "a.b.c", and "a." covers "a.anything".
func hasPrefix(subject string, subjects []string) bool {
	for _, p := range subjects {
		switch {
		case p == "":
		case subject == p, strings.HasPrefix(subject, p+"."):
			return true
		case strings.HasSuffix(p, ".") && strings.HasPrefix(subject, p):
			return true
		}
	}
	return false
}

// deniedCause cancels a guarded call's context.
type deniedCause struct{ msg string }

func (d *deniedCause) Error() string { return d.msg }

// guard returns a context that is cancelled as soon as the server reports
// a violation on one of subjects (prefixes) or on the reply inboxes, and a
// function that turns the call's error into ErrPermissionDenied when that
// happened (or when the call timed out after such a report), and releases
// the guard.
func (l *Log) guard(ctx context.Context, subjects ...string) (context.Context, func(error) error) {
	w := l.cfg.watcher
	if w == nil || w.closed.Load() {
		return ctx, func(err error) error { return l.denied(err, subjects...) }
	}
	prefixes := append(subjects, l.inboxPrefix())
	gctx, cancel := context.WithCancelCause(ctx)
	wt := &waiter{prefixes: prefixes, notify: func(msg string) { cancel(&deniedCause{msg}) }}
	v := &w.violations
	v.mu.Lock()
	v.waiters[wt] = struct{}{}
	v.mu.Unlock()
	return gctx, func(err error) error {
		v.mu.Lock()
		delete(v.waiters, wt)
		v.mu.Unlock()
		var d *deniedCause
		if cause := context.Cause(gctx); err != nil && errors.As(cause, &d) {
			cancel(nil)
			return fmt.Errorf("%w: %s", ErrPermissionDenied, d.msg)
		}
		cancel(nil)
		return l.denied(err, subjects...)
	}
}

func (l *Log) inboxPrefix() string {
	inbox := l.nc.Opts.InboxPrefix
	if inbox == "" {
		inbox = nats.InboxPrefix
	}
	return strings.TrimSuffix(inbox, ".")
}

// find returns a violation reported since since on a subject starting
// with one of prefixes.
func (v *violations) find(since time.Time, prefixes ...string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for subj, rec := range v.recent {
		if !rec.at.Before(since) && hasPrefix(subj, prefixes) {
			return rec.msg, true
		}
	}
	return "", false
}

// denied turns err into ErrPermissionDenied when it is a timeout and the
// server refused, during the last request timeout, a publish to one of
// subjects (prefixes) or a subscription to the connection's reply inboxes.
// Without a watcher it knows only the connection's last error. The
// timeout stays in the error's chain. Any other error is returned as is.
func (l *Log) denied(err error, subjects ...string) error {
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
		return err
	}
	inbox := l.inboxPrefix()
	hint := " (connect with the inbox prefix the account allows: nats.CustomInboxPrefix)"
	if w := l.cfg.watcher; w != nil {
		since := time.Now().Add(-l.cfg.requestTimeout - time.Second)
		if msg, ok := w.find(since, subjects...); ok {
			return fmt.Errorf("%w: %s: %w", ErrPermissionDenied, msg, err)
		}
		if msg, ok := w.find(since, inbox); ok {
			return fmt.Errorf("%w: %s%s: %w", ErrPermissionDenied, msg, hint, err)
		}
		return err
	}
	last := l.nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) {
		return err
	}
	m := violationRE.FindStringSubmatch(last.Error())
	switch {
	case m == nil:
	case hasPrefix(m[2], subjects):
		return fmt.Errorf("%w: %s: %w", ErrPermissionDenied, m[0], err)
	case hasPrefix(m[2], []string{inbox}):
		return fmt.Errorf("%w: %s%s: %w", ErrPermissionDenied, m[0], hint, err)
	}
	return err
}
