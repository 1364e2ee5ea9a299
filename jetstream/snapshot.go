package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

var _ sessionlog.Snapshotter = (*Log)(nil)

// Wire format of a snapshot: one message on the thread's snapshot subject
// (subjects.Scheme.SnapshotSubject) in the tenant's snapshot stream, whose
// payload is the state, unchanged, with exactly one of these headers.
// PROTOCOL.md documents it for clients in other languages.
const (
	// HeaderSnapshotOrdinal carries Snapshot.Ordinal in decimal, without
	// sign or leading zeros.
	HeaderSnapshotOrdinal = "Jetsession-Snapshot-Ordinal"
	// HeaderSnapshotDeleted marks the snapshot of a deleted thread, with
	// the deletion's ordinal in decimal: it holds no state, and no
	// snapshot below that ordinal may replace it (it is the thread's
	// previous life). DeleteThread writes it.
	HeaderSnapshotDeleted = "Jetsession-Snapshot-Deleted"
)

// snapshotHeaderRoom is kept for the headers of a snapshot message above
// MaxSnapshotBytes, in the snapshot stream's maximum message size.
const snapshotHeaderRoom = 4 << 10

// SnapshotStreamConfig returns the configuration of the stream the Log
// creates for the tenant's snapshots: the last message of each thread's
// snapshot subject is kept, at most MaxSnapshotBytes of state each.
// Provisioning tools can create it ahead of time with it (or with
// EnsureSnapshots, which also copies the tenant stream's replicas and
// storage).
func (l *Log) SnapshotStreamConfig(tenant string) natsjs.StreamConfig {
	storage, compression := l.streamStorage()
	return natsjs.StreamConfig{
		Name:              l.cfg.scheme.SnapshotStream(tenant),
		Description:       "jetsession snapshots of tenant " + strconv.Quote(tenant),
		Subjects:          []string{l.cfg.scheme.SnapshotFilter(tenant)},
		Retention:         natsjs.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxMsgSize:        sessionlog.MaxSnapshotBytes + snapshotHeaderRoom,
		Discard:           natsjs.DiscardOld,
		Storage:           storage,
		Replicas:          l.cfg.replicas,
		DenyDelete:        true,
		// Direct gets serve loads of single-replica streams (see
		// LoadSnapshot); replicated ones are read through the leader.
		AllowDirect: true,
		Compression: compression,
		Metadata: map[string]string{
			"jetsession.tenant": tenant, "jetsession.protocol": ProtocolVersion, "jetsession.kind": "snapshots",
		},
	}
}

// EnsureSnapshots creates the tenant's snapshot stream if it does not
// exist, with the replicas and storage of the tenant's stream when that
// exists. SaveSnapshot calls it on a tenant's first save unless stream
// creation is turned off; provisioning tools call it where agents may not
// create streams. Creation is idempotent and retried while the system
// elects, until ctx ends (or for 30 seconds when it has no deadline).
func (l *Log) EnsureSnapshots(ctx context.Context, tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return err
	}
	cfg := l.SnapshotStreamConfig(tenant)
	var info natsjs.StreamInfo
	err := l.apiRequest(ctx, apiStreamInfo+"."+l.cfg.scheme.Stream(tenant), nil, &info)
	switch {
	case err == nil:
		cfg.Replicas = max(info.Config.Replicas, 1)
		cfg.Storage = info.Config.Storage
	case errCode(err) != codeStreamNotFound:
		return fmt.Errorf("jetstream: creating the snapshot stream of tenant %q: %w", tenant, err)
	}
	ctx, cancel := withRetryBudget(ctx)
	defer cancel()
	backoff := newSlowBackoff()
	for noPeers := 0; ; {
		gctx, check := l.guard(ctx, l.apiSubject(apiStreamCreate, cfg.Name))
		_, err := l.js.CreateStream(gctx, cfg)
		err = check(err)
		switch {
		case err == nil, errors.Is(err, natsjs.ErrStreamNameAlreadyInUse):
			l.markKnown(cfg.Name)
			return nil
		case errCode(err) == codeMaxStreams:
			return fmt.Errorf("%w: no room for the snapshot stream of tenant %q: %w", sessionlog.ErrQuotaExceeded, tenant, err)
		case errCode(err) == codeInsufficientResources, errCode(err) == codeStorageExceeded, errCode(err) == codeMemoryExceeded:
			return fmt.Errorf("%w: creating the snapshot stream of tenant %q: %w", sessionlog.ErrStorageFull, tenant, err)
		case ctx.Err() == nil && errCode(err) == codeClusterNoPeers && noPeers < noPeersRetries:
			noPeers++
		case ctx.Err() == nil && (apiStatus(err) == 503 || isTransient(err)):
		default:
			return fmt.Errorf("jetstream: creating stream %s for tenant %q: %w", cfg.Name, tenant, err)
		}
		if _, exists, serr := l.quickStreamState(ctx, cfg.Name); serr == nil && exists {
			l.markKnown(cfg.Name)
			return nil
		}
		if werr := backoff.wait(ctx); werr != nil {
			return fmt.Errorf("jetstream: creating stream %s for tenant %q: %w", cfg.Name, tenant, err)
		}
	}
}

// storedSnapshot is a snapshot message as the stream leader returned it,
// checked: either a snapshot (ordinal) or a deleted thread's mark
// (deleted).
type storedSnapshot struct {
	seq     uint64 // the message's sequence in the snapshot stream
	ordinal uint64
	deleted uint64
	state   []byte
	time    time.Time
}

// decodeSnapshot checks a message read from the snapshot stream: it must be
// on subject and carry exactly one of the two headers, once, with a
// canonical positive decimal, and at most MaxSnapshotBytes of state. What a
// foreign writer stored is never trusted beyond that.
func decodeSnapshot(key sessionlog.ThreadKey, subject string, m *served) (*storedSnapshot, error) {
	corrupt := func(reason string) error {
		return fmt.Errorf("%w: tenant %q thread %q (message %d): %s", sessionlog.ErrCorruptSnapshot, key.Tenant, key.Thread, m.seq, reason)
	}
	if m.subject != subject {
		return nil, corrupt(fmt.Sprintf("stored on subject %q, not %q", m.subject, subject))
	}
	if m.seq == 0 {
		return nil, corrupt("no sequence")
	}
	if m.headerErr != nil {
		return nil, corrupt("unreadable headers")
	}
	// The server adds only Nats-* keys to a direct get reply, so these
	// two are the writer's alone.
	h := m.header
	s := &storedSnapshot{seq: m.seq, time: m.time}
	ord, hasOrd := h[HeaderSnapshotOrdinal]
	del, hasDel := h[HeaderSnapshotDeleted]
	switch {
	case hasOrd && hasDel:
		return nil, corrupt("both " + HeaderSnapshotOrdinal + " and " + HeaderSnapshotDeleted)
	case hasOrd:
		v, ok := canonicalOrdinal(ord)
		if !ok {
			return nil, corrupt("malformed " + HeaderSnapshotOrdinal)
		}
		if len(m.data) > sessionlog.MaxSnapshotBytes {
			return nil, corrupt(fmt.Sprintf("%d bytes of state, more than %d", len(m.data), sessionlog.MaxSnapshotBytes))
		}
		s.ordinal, s.state = v, m.data
	case hasDel:
		v, ok := canonicalOrdinal(del)
		if !ok {
			return nil, corrupt("malformed " + HeaderSnapshotDeleted)
		}
		s.deleted = v
	default:
		return nil, corrupt("no " + HeaderSnapshotOrdinal + " header")
	}
	return s, nil
}

// canonicalOrdinal parses the one value of a header as a positive decimal
// written as strconv writes it.
func canonicalOrdinal(vs []string) (uint64, bool) {
	if len(vs) != 1 {
		return 0, false
	}
	v, err := strconv.ParseUint(vs[0], 10, 64)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != vs[0] {
		return 0, false
	}
	return v, true
}

// snapshotLoadAttempts bounds the requests of one LoadSnapshot that meets
// transient failures (a stream leader election).
const snapshotLoadAttempts = 3

// LoadSnapshot implements sessionlog.Snapshotter with one request that
// reflects every acknowledged save. On a replicated snapshot stream it is
// the stream leader's message get of the last message on the thread's
// snapshot subject (STREAM.MSG.GET with last_by_subj): a direct get may be
// answered by a follower that has not applied the save yet. On a
// single-replica stream the one server holding it is the only one that
// answers a direct get, so it is a direct get (last_by_subj, checked
// like every direct get, see directGet and directGetLast), which spares the
// server's JSON and base64 encoding of the state; a reply not provably the
// server's falls back to the leader's get. The subject, sequence and time
// are the server's; the ordinal comes from a stored header, parsed
// strictly (see decodeSnapshot). The replica count is the one the Log
// last looked up (at most 30 seconds old). Transient failures are
// retried a few times.
func (l *Log) LoadSnapshot(ctx context.Context, key sessionlog.ThreadKey) (sessionlog.Snapshot, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return sessionlog.Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return sessionlog.Snapshot{}, err
	}
	subject := l.cfg.scheme.SnapshotSubject(key.Tenant, key.Thread)
	s, err := l.currentSnapshot(ctx, key, subject)
	switch {
	case errors.Is(err, sessionlog.ErrCorruptSnapshot):
		return sessionlog.Snapshot{}, err
	case err != nil:
		return sessionlog.Snapshot{}, fmt.Errorf("jetstream: loading the snapshot of tenant %q thread %q: %w", key.Tenant, key.Thread, err)
	case s == nil || s.deleted > 0:
		return sessionlog.Snapshot{}, sessionlog.ErrNoSnapshot
	}
	return sessionlog.Snapshot{Ordinal: s.ordinal, State: s.state, Time: s.time}, nil
}

// currentSnapshot reads the thread's snapshot message (see LoadSnapshot),
// retrying transient failures; nil when there is none.
func (l *Log) currentSnapshot(ctx context.Context, key sessionlog.ThreadKey, subject string) (*storedSnapshot, error) {
	stream := l.cfg.scheme.SnapshotStream(key.Tenant)
	var backoff *backoff
	for attempt := 1; ; attempt++ {
		m, err := l.snapshotGet(ctx, stream, subject)
		if err == nil {
			if m == nil {
				return nil, nil
			}
			return decodeSnapshot(key, subject, m)
		}
		if attempt == snapshotLoadAttempts || !isTransient(err) || ctx.Err() != nil {
			return nil, err
		}
		if backoff == nil {
			backoff = newBackoff()
		}
		if backoff.wait(ctx) != nil {
			return nil, err
		}
	}
}

// snapshotGet returns the last message on subject in the snapshot stream,
// nil when there is none or no stream: by a direct get when the stream has
// one replica, through the leader otherwise or when a direct get is not
// provably answered by the server.
func (l *Log) snapshotGet(ctx context.Context, stream, subject string) (*served, error) {
	st, ok, err := l.streamState(ctx, stream)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	if st.replicas == 1 {
		got, err := l.directGetLast(ctx, stream, subject)
		switch {
		case err == nil:
			return got, nil
		case !errors.Is(err, errUnverified) && !errors.Is(err, errDirectUnavailable):
			return nil, err
		}
	}
	m, err := l.leaderGetLarge(ctx, stream, msgGetRequest{LastFor: subject})
	if err != nil || m == nil {
		return nil, err
	}
	return leaderServed(m), nil
}

// SaveSnapshot implements sessionlog.Snapshotter. It asks, in parallel,
// the tenant stream's leader for the tenant's last ordinal and the
// snapshot stream's leader for the thread's current snapshot, checks the
// rules, and publishes the snapshot on the thread's snapshot subject
// conditional on that current message still being the last one
// (Nats-Expected-Last-Subject-Sequence): a concurrent save or deletion
// makes it read again, so a snapshot never moves back. The tenant's
// snapshot stream is created on its first save unless stream creation is
// turned off (then ErrTenantNotProvisioned). Transient failures are
// retried until ctx ends, or for 30 seconds when it has no deadline:
// saving again at the same ordinal is safe.
func (l *Log) SaveSnapshot(ctx context.Context, key sessionlog.ThreadKey, ordinal uint64, state []byte) error {
	if err := sessionlog.ValidateSnapshot(key, ordinal, state); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	where := fmt.Sprintf("tenant %q thread %q", key.Tenant, key.Thread)
	stream := l.cfg.scheme.SnapshotStream(key.Tenant)
	subject := l.cfg.scheme.SnapshotSubject(key.Tenant, key.Thread)
	msg := &nats.Msg{Subject: subject, Header: nats.Header{HeaderSnapshotOrdinal: []string{strconv.FormatUint(ordinal, 10)}}, Data: state}
	if maxPayload := int(l.nc.MaxPayload()); maxPayload > 0 && msgSize(msg)+64 > maxPayload {
		return fmt.Errorf("%w: %s: the snapshot encodes to %d bytes, the server takes at most %d",
			sessionlog.ErrSnapshotTooLarge, where, msgSize(msg), maxPayload)
	}
	var backoff *backoff
	ensured := false
	for {
		err := l.trySaveSnapshot(ctx, key, stream, subject, ordinal, msg)
		if err == nil {
			l.markKnown(stream)
			return nil
		}
		lastErr := err
		code := errCode(err)
		switch {
		case errors.Is(err, sessionlog.ErrInvalidSnapshot), errors.Is(err, sessionlog.ErrConflict), errors.Is(err, ErrPermissionDenied):
			return err
		case code == codeWrongLastSequence, code == codeWrongLastSequenceConst:
			// Another save or a deletion came first: read again.
		case errors.Is(err, nats.ErrNoResponders):
			// No leader listens on the subject: the snapshot stream does
			// not exist, or is electing one.
			if !ensured && !l.isKnown(stream) {
				_, exists, serr := l.quickStreamState(ctx, stream)
				switch {
				case serr != nil:
				case exists:
					l.markKnown(stream)
				case !l.cfg.createStreams:
					return fmt.Errorf("%w: snapshots of tenant %q (stream %s)", ErrTenantNotProvisioned, key.Tenant, stream)
				default:
					if err := l.EnsureSnapshots(ctx, key.Tenant); err != nil {
						return err
					}
					ensured = true
					continue
				}
			}
		case ctx.Err() == nil && (isTransient(err) || code == codeDuplicateInProcess):
		case code == codeMsgExceedsMaximum, code == codeHeaderExceedsMaximum, errors.Is(err, nats.ErrMaxPayload):
			return fmt.Errorf("%w: %s: %w", sessionlog.ErrSnapshotTooLarge, where, err)
		default:
			return translate(err, key, nil)
		}
		if backoff == nil {
			var cancel context.CancelFunc
			ctx, cancel = withRetryBudget(ctx)
			defer cancel()
			backoff = newBackoff()
		}
		if err := backoff.wait(ctx); err != nil {
			return fmt.Errorf("jetstream: saving the snapshot of %s: %w (last error: %v)", where, err, lastErr)
		}
	}
}

// trySaveSnapshot is one attempt of SaveSnapshot.
func (l *Log) trySaveSnapshot(ctx context.Context, key sessionlog.ThreadKey, stream, subject string, ordinal uint64, msg *nats.Msg) error {
	type current struct {
		m   *served
		err error
	}
	curCh := make(chan current, 1)
	go func() {
		m, err := l.snapshotGet(ctx, stream, subject)
		curCh <- current{m, err}
	}()
	var info natsjs.StreamInfo
	ierr := l.apiRequest(ctx, apiStreamInfo+"."+l.cfg.scheme.Stream(key.Tenant), nil, &info)
	cur := <-curCh
	switch {
	case errCode(ierr) == codeStreamNotFound:
		return fmt.Errorf("%w: ordinal %d: tenant %q has no events", sessionlog.ErrInvalidSnapshot, ordinal, key.Tenant)
	case ierr != nil:
		return ierr
	case ordinal > info.State.LastSeq:
		return fmt.Errorf("%w: ordinal %d is beyond tenant %q's last ordinal %d", sessionlog.ErrInvalidSnapshot, ordinal, key.Tenant, info.State.LastSeq)
	case cur.err != nil:
		return cur.err
	}
	var expect uint64
	if cur.m != nil {
		expect = cur.m.seq
		s, err := decodeSnapshot(key, subject, cur.m)
		switch {
		case err != nil:
			// Not a snapshot that follows the protocol, so worth nothing:
			// replace it, conditional on it still being there.
		case s.deleted > 0 && ordinal < s.deleted:
			return fmt.Errorf("%w: snapshot at ordinal %d is from before the thread's deletion at %d", sessionlog.ErrConflict, ordinal, s.deleted)
		case s.deleted == 0 && ordinal < s.ordinal:
			return fmt.Errorf("%w: snapshot at ordinal %d is older than the stored one at %d", sessionlog.ErrConflict, ordinal, s.ordinal)
		}
	}
	msg.Header[headerExpectedLastSubjSeq] = []string{strconv.FormatUint(expect, 10)}
	_, err := l.publish(ctx, msg)
	return err
}

// deleteSnapshot replaces the thread's snapshot, if its tenant has a
// snapshot stream, with the mark of its deletion at ordinal deletion:
// the state is gone (the stream keeps one message per subject), and a
// save of a snapshot from before the deletion, racing with it, is
// refused. An unknown snapshot stream deletes nothing.
func (l *Log) deleteSnapshot(ctx context.Context, key sessionlog.ThreadKey, deletion uint64) error {
	stream := l.cfg.scheme.SnapshotStream(key.Tenant)
	if _, ok, err := l.streamState(ctx, stream); err != nil || !ok {
		return err
	}
	msg := &nats.Msg{
		Subject: l.cfg.scheme.SnapshotSubject(key.Tenant, key.Thread),
		Header:  nats.Header{HeaderSnapshotDeleted: []string{strconv.FormatUint(deletion, 10)}},
	}
	backoff := newBackoff()
	for attempt := 1; ; attempt++ {
		_, err := l.publish(ctx, msg)
		if err == nil {
			return nil
		}
		if errors.Is(err, nats.ErrNoResponders) {
			if _, exists, serr := l.quickStreamState(ctx, stream); serr == nil && !exists {
				return nil
			}
		} else if !isTransient(err) {
			return err
		}
		if attempt == 10 || backoff.wait(ctx) != nil {
			return err
		}
	}
}

// deleteSnapshotStream deletes the tenant's snapshot stream; a missing one
// is not an error.
func (l *Log) deleteSnapshotStream(ctx context.Context, tenant string) error {
	stream := l.cfg.scheme.SnapshotStream(tenant)
	var resp struct {
		Success bool `json:"success"`
	}
	err := l.apiRequest(ctx, apiStreamDelete+"."+stream, nil, &resp)
	if err != nil && errCode(err) != codeStreamNotFound {
		return fmt.Errorf("jetstream: deleting the snapshot stream of tenant %q: %w", tenant, err)
	}
	l.forget(stream)
	return nil
}
