package jetstream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrPermissionDenied is returned when the server refused a publish or a
// subscription a call needs. The server drops a refused message without a
// reply and reports the violation to the connection asynchronously, so the
// call would otherwise only see its deadline; the error carries the
// server's report.
var ErrPermissionDenied = errors.New("jetstream: permission denied")

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

// watch chains a recorder in front of the connection's error handler.
func (v *violations) watch(nc *nats.Conn) {
	v.recent = make(map[string]violation)
	v.waiters = make(map[*waiter]struct{})
	next := nc.Opts.AsyncErrorCB
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			v.record(err.Error())
		}
		if next != nil {
			next(c, s, err)
		}
	})
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
	prefixes := append(subjects, l.inboxPrefix())
	gctx, cancel := context.WithCancelCause(ctx)
	w := &waiter{prefixes: prefixes, notify: func(msg string) { cancel(&deniedCause{msg}) }}
	v := &l.violations
	v.mu.Lock()
	v.waiters[w] = struct{}{}
	v.mu.Unlock()
	return gctx, func(err error) error {
		v.mu.Lock()
		delete(v.waiters, w)
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
// Any other error is returned as is.
func (l *Log) denied(err error, subjects ...string) error {
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
		return err
	}
	since := time.Now().Add(-l.cfg.requestTimeout - time.Second)
	if msg, ok := l.violations.find(since, subjects...); ok {
		return fmt.Errorf("%w: %s", ErrPermissionDenied, msg)
	}
	if msg, ok := l.violations.find(since, l.inboxPrefix()); ok {
		return fmt.Errorf("%w: %s (connect with the inbox prefix the account allows: nats.CustomInboxPrefix)", ErrPermissionDenied, msg)
	}
	return err
}
