package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jetsession/jetsession/internal/ctxtime"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

var (
	_ sessionlog.ThreadLister = (*Log)(nil)
	_ sessionlog.Deleter      = (*Log)(nil)
)

// LoadLast implements sessionlog.Log. A thread's events are spread over its
// tenant's sequence, so it first finds where its last n begin, from the
// end. It asks the stream leader, in parallel, for the thread's last event
// and its count, which with the stream's first sequence give the thread's
// mean spacing; then it sends batched direct gets of one message from a
// sequence that far back (each reports how many of the thread's messages
// follow), moving by the density seen until one finds at least n and not
// many more. For a thread of evenly spread events that is one or two small
// requests whatever its length, and all of them touch only the end of the
// stream, where the server's message blocks are hot. Then it reads from
// there like LoadSince, read-your-writes on a replicated stream too, and
// keeps the last n: a lagging replica can only make the search start
// earlier.
func (l *Log) LoadLast(ctx context.Context, key sessionlog.ThreadKey, n int) ([]sessionlog.Record, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	start, err := l.lastStart(ctx, stream, subject, uint64(n))
	if err != nil {
		return nil, fmt.Errorf("jetstream: finding the last %d events of %s: %w", n, subject, err)
	}
	var out []sessionlog.Record
	var corrupt []*sessionlog.CorruptEventError
	err = l.read(ctx, key, start-1, func(c *chunk) bool {
		out = append(out, c.recs...)
		corrupt = append(corrupt, c.corrupt...)
		return true
	})
	if err != nil {
		return nil, err
	}
	// Keep the last n messages, valid or not.
	for len(out)+len(corrupt) > n {
		if len(corrupt) == 0 || len(out) > 0 && out[0].Ordinal < corrupt[0].Ordinal {
			out = out[1:]
		} else {
			corrupt = corrupt[1:]
		}
	}
	errs := make([]error, len(corrupt))
	for i, ce := range corrupt {
		errs[i] = ce
	}
	if len(out) == 0 {
		out = nil
	}
	return out, errors.Join(errs...)
}

// lastStart returns a sequence from which the subject holds at least n
// messages, and not many more (1 when it holds fewer). It searches the
// distance back from the subject's last message: count(seq), what a
// direct get of one message from seq reports remains, only grows with
// the distance. Any seq with count(seq) >= n is a safe start (the read
// keeps the last n); the rest only saves requests.
func (l *Log) lastStart(ctx context.Context, stream, subject string, n uint64) (uint64, error) {
	// The thread's last event and its count, from the leader, at once.
	type lastReply struct {
		msg *storedMsg
		err error
	}
	lastCh := make(chan lastReply, 1)
	go func() {
		m, err := l.leaderGet(ctx, stream, msgGetRequest{LastFor: subject})
		lastCh <- lastReply{m, err}
	}()
	var info natsjs.StreamInfo
	ierr := l.apiRequest(ctx, apiStreamInfo+"."+stream, streamInfoRequest{SubjectsFilter: subject}, &info)
	last := <-lastCh
	switch {
	case errCode(ierr) == codeStreamNotFound:
		return 1, nil
	case ierr != nil:
		return 0, ierr
	case last.err != nil || last.msg == nil:
		return 1, last.err
	}
	total, end := info.State.Subjects[subject], last.msg.Seq
	if total <= n || end <= 1 {
		return 1, nil // the whole thread is wanted
	}

	// count reports how many of the subject's messages have a sequence of
	// at least end-back, and the first of them.
	count := func(back uint64) (uint64, uint64, error) {
		var first uint64
		pending, err := l.directGet(ctx, stream, subject, msgGetRequest{Seq: end - back, NextFor: subject, Batch: 1},
			func(m *served) error { first = m.seq; return nil })
		if errors.Is(err, errUnverified) || errors.Is(err, errDirectUnavailable) {
			// Not provably the server's or nobody serves: stop guessing.
			return 0, 0, errFallback
		}
		if err != nil || first == 0 {
			return 0, 0, err
		}
		return 1 + pending, first, nil
	}
	// The thread's events since the stream's first message, at most: its
	// mean spacing, or more when it began later.
	spacing := float64(end-min(max(info.State.FirstSeq, 1), end)+1) / float64(total)
	// Aim an eighth past the n-th last message; a few messages more cost
	// less than another request.
	aim := float64(n) + float64(n)/8 + 1
	slack := 16 + n/4
	// Between the distances back known to hold fewer (nearBack, nearCount)
	// and at least n (farBack, farCount, farFirst; farBack is 0 until one
	// is known).
	var nearBack, nearCount, farBack, farCount, farFirst uint64
	back := uint64(min(float64(end-1), max(1, float64(n-1)*spacing*1.125+1)))
	for probes := 0; ; probes++ {
		c, first, err := count(back)
		switch {
		case errors.Is(err, errFallback):
			if farBack > 0 {
				return farFirst, nil
			}
			return 1, nil
		case err != nil:
			return 0, err
		case c >= n:
			farBack, farCount, farFirst = back, c, first
		case back == end-1:
			return 1, nil // fewer than n in all
		default:
			nearBack, nearCount = back, c
		}
		if farBack > 0 && (farCount-n <= slack || farBack-nearBack <= 1) {
			return farFirst, nil
		}
		var next float64
		switch {
		case farBack == 0 && nearCount == 0:
			next = 4 * float64(nearBack) // a lagging replica may show none
		case farBack == 0:
			// Reach for n at the density seen, at least twice as far.
			next = max(2*float64(nearBack), float64(nearBack)*aim/float64(nearCount))
		case probes < 4:
			// Interpolate between the two.
			f := (aim - float64(nearCount)) / float64(farCount-nearCount)
			next = float64(nearBack) + f*float64(farBack-nearBack)
		default:
			next = float64(nearBack) + float64(farBack-nearBack)/2
		}
		// Stay strictly between what is known, and within the stream.
		hiBack := end - 1
		if farBack > 0 {
			hiBack = farBack - 1
		}
		back = uint64(min(max(next, float64(nearBack+1)), float64(hiBack)))
	}
}

var errFallback = errors.New("jetstream: read from the start")

// Threads implements sessionlog.ThreadLister. The thread names and counts
// come from the stream leader's per-subject state (STREAM.INFO with a
// subject filter); each thread's last message comes from batched
// multi_last direct gets, 1,024 threads a request, checked like every
// direct get (see directGet) and, on a replicated stream, from a replica
// that has caught up with the leader's state when the listing began, so a
// listing sees every append that returned before it. With
// WithFirstOrdinals each thread also costs one small direct get. The
// descriptions are fetched a page at a time, one page ahead of the caller;
// by recent activity every thread's last message is needed before the
// first is handed over.
func (l *Log) Threads(ctx context.Context, tenant string, opts ...sessionlog.ThreadsOption) iter.Seq2[sessionlog.ThreadInfo, error] {
	o := sessionlog.ResolveThreadsOptions(opts)
	return func(yield func(sessionlog.ThreadInfo, error) bool) {
		if err := sessionlog.ValidateTenant(tenant); err != nil {
			yield(sessionlog.ThreadInfo{}, err)
			return
		}
		stream := l.cfg.scheme.Stream(tenant)
		counts, lastSeq, err := l.subjectCounts(ctx, stream, l.cfg.scheme.TenantFilter(tenant))
		if err != nil {
			yield(sessionlog.ThreadInfo{}, err)
			return
		}
		type entry struct{ thread, subject string }
		entries := make([]entry, 0, len(counts))
		for subj := range counts {
			if _, thread, err := l.cfg.scheme.ParseSubject(subj); err == nil {
				entries = append(entries, entry{thread, subj})
			}
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.thread, b.thread) })
		if !o.Recent && o.After != "" {
			i := sort.Search(len(entries), func(i int) bool { return entries[i].thread > o.After })
			entries = entries[i:]
		}
		describe := func(ctx context.Context, page []entry) ([]sessionlog.ThreadInfo, error) {
			subjs := make([]string, len(page))
			for i, e := range page {
				subjs[i] = e.subject
			}
			lasts, err := l.lastMessages(ctx, stream, l.cfg.scheme.TenantFilter(tenant), subjs, lastSeq)
			if err != nil {
				return nil, err
			}
			out := make([]sessionlog.ThreadInfo, 0, len(page))
			for _, e := range page {
				m := lasts[e.subject]
				if m == nil {
					continue // gone since the counts were read
				}
				info := sessionlog.ThreadInfo{Thread: e.thread, Events: counts[e.subject], LastOrdinal: m.seq, LastTime: m.time}
				key := sessionlog.ThreadKey{Tenant: tenant, Thread: e.thread}
				if rec, cerr := decodeEvent(key, subjects.EncodeThread(e.thread), m); cerr == nil {
					info.LastType, info.LastTime = rec.Type, rec.Time
				}
				if o.First {
					if info.FirstOrdinal, err = l.firstOrdinal(ctx, stream, e.subject); err != nil {
						return nil, err
					}
				}
				out = append(out, info)
			}
			return out, nil
		}
		// A goroutine describes the threads a page at a time, one page
		// ahead of the caller: the server answers the next multi_last get
		// while the caller takes in the last one. It stops when the caller
		// does, and is gone when the listing returns. A page is handed over
		// only while ctx lasts, as if it had been fetched then.
		type page struct {
			infos []sessionlog.ThreadInfo
			err   error
		}
		pages := make(chan page)
		pctx, cancel := context.WithCancel(ctx)
		stop, done := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); cancel(); <-done }()
		go func() {
			defer close(done)
			defer close(pages)
			described := 0
			for rest := entries; len(rest) > 0; {
				size := min(len(rest), maxMultiLast)
				if !o.Recent && o.Limit > 0 {
					if described >= o.Limit {
						return
					}
					size = min(size, o.Limit-described)
				}
				infos, err := describe(pctx, rest[:size])
				rest = rest[size:]
				described += len(infos)
				select {
				case pages <- page{infos, err}:
				case <-stop:
					return
				}
				if err != nil {
					return
				}
			}
		}()
		n := 0
		emit := func(infos []sessionlog.ThreadInfo) bool {
			for _, info := range infos {
				if o.Limit > 0 && n == o.Limit {
					return false
				}
				if !yield(info, nil) {
					return false
				}
				n++
			}
			return true
		}
		next := func() (page, bool) {
			p, ok := <-pages
			if err := ctx.Err(); ok && p.err == nil && err != nil {
				p.err = err
			}
			return p, ok
		}
		if !o.Recent {
			for p, ok := next(); ok; p, ok = next() {
				if p.err != nil {
					yield(sessionlog.ThreadInfo{}, p.err)
					return
				}
				if !emit(p.infos) || o.Limit > 0 && n == o.Limit {
					return
				}
			}
			return
		}
		all := make([]sessionlog.ThreadInfo, 0, len(entries))
		for p, ok := next(); ok; p, ok = next() {
			if p.err != nil {
				yield(sessionlog.ThreadInfo{}, p.err)
				return
			}
			for _, info := range p.infos {
				if o.Before == 0 || info.LastOrdinal < o.Before {
					all = append(all, info)
				}
			}
		}
		slices.SortFunc(all, func(a, b sessionlog.ThreadInfo) int { return cmp.Compare(b.LastOrdinal, a.LastOrdinal) })
		emit(all)
	}
}

// maxMultiLast is the most subjects the server answers in one multi_last
// direct get.
const maxMultiLast = 1024

// subjectCounts returns the live message count of every subject of the
// stream matching filter, and the stream's last sequence, from its leader.
// A missing stream has none.
func (l *Log) subjectCounts(ctx context.Context, stream, filter string) (map[string]uint64, uint64, error) {
	out := map[string]uint64{}
	var lastSeq uint64
	for offset := 0; ; {
		var resp struct {
			natsjs.StreamInfo
			Total  int `json:"total"`
			Offset int `json:"offset"`
			Limit  int `json:"limit"`
		}
		err := l.apiRequest(ctx, apiStreamInfo+"."+stream, streamInfoRequest{SubjectsFilter: filter, Offset: offset}, &resp)
		if errCode(err) == codeStreamNotFound {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("jetstream: listing the threads of stream %s: %w", stream, err)
		}
		lastSeq = max(lastSeq, resp.State.LastSeq)
		for subj, n := range resp.State.Subjects {
			out[subj] = n
		}
		offset += len(resp.State.Subjects)
		if len(resp.State.Subjects) == 0 || offset >= resp.Total {
			return out, lastSeq, nil
		}
	}
}

// lastMessages returns the last message of each subject, with one
// multi_last direct get, from a replica that holds at least upTo (the
// leader's last sequence when the listing began); it asks again while the
// replica answering lags behind it.
func (l *Log) lastMessages(ctx context.Context, stream, filter string, subjs []string, upTo uint64) (map[string]*served, error) {
	for attempt := 0; ; attempt++ {
		out := make(map[string]*served, len(subjs))
		var replicaLast uint64
		_, err := l.directGetMulti(ctx, stream, filter, msgGetRequest{MultiFor: subjs}, func(m *served) error {
			out[m.subject] = m
			return nil
		}, &replicaLast)
		switch {
		case err == nil && replicaLast >= upTo:
			return out, nil
		case err == nil, errors.Is(err, errDirectUnavailable), errors.Is(err, errUnverified):
			if attempt < staleRetries {
				if err := ctxtime.Sleep(ctx, time.Duration(attempt+1)*time.Millisecond); err != nil {
					return nil, err
				}
				continue
			}
			return l.leaderLastMessages(ctx, stream, subjs)
		default:
			return nil, err
		}
	}
}

// leaderLastMessages reads each subject's last message through the stream
// leader: one request each, for when no replica serves a current answer.
func (l *Log) leaderLastMessages(ctx context.Context, stream string, subjs []string) (map[string]*served, error) {
	out := make(map[string]*served, len(subjs))
	for _, subj := range subjs {
		m, err := l.leaderGet(ctx, stream, msgGetRequest{LastFor: subj})
		if err != nil {
			return nil, err
		}
		if m != nil {
			out[subj] = leaderServed(m)
		}
	}
	return out, nil
}

// firstOrdinal returns the subject's first live sequence, 0 if none.
func (l *Log) firstOrdinal(ctx context.Context, stream, subject string) (uint64, error) {
	m, err := l.leaderGet(ctx, stream, msgGetRequest{Seq: 1, NextFor: subject})
	if err != nil || m == nil {
		return 0, err
	}
	return m.Seq, nil
}

// DeleteThread implements sessionlog.Deleter. It records the deletion on
// the tenant's deletion subject (see subjects.Scheme.DeletionSubject),
// which gives it an ordinal D in the tenant's order, then purges the
// thread's subject below D. A crash between the two leaves the record
// without the purge: calling DeleteThread again completes it. The bridge
// reads the record in order with the events and deletes its copies. With
// a cold store it then removes the thread's cold segments (a crash before
// that is completed the same way: call DeleteThread again). It returns how
// many hot events it removed. An unknown tenant or thread deletes nothing
// and creates nothing.
func (l *Log) DeleteThread(ctx context.Context, key sessionlog.ThreadKey) (int, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := l.deleteHotThread(ctx, key)
	if err == nil && l.cold != nil {
		err = l.cold.DeleteThread(ctx, key)
	}
	return n, err
}

func (l *Log) deleteHotThread(ctx context.Context, key sessionlog.ThreadKey) (int, error) {
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	if _, ok, err := l.streamState(ctx, stream); err != nil || !ok {
		return 0, err
	}
	body, _ := json.Marshal(deletionRecord{Thread: key.Thread})
	ack, err := l.publishToStream(ctx, stream, &nats.Msg{Subject: l.cfg.scheme.DeletionSubject(key.Tenant), Data: body})
	if errors.Is(err, nats.ErrNoResponders) {
		return 0, nil // the stream is gone
	}
	if err != nil {
		return 0, translate(err, key, nil)
	}
	purged, err := l.purge(ctx, stream, subject, ack.Seq)
	if errCode(err) == codeStreamNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: deleting %s: %w", subject, err)
	}
	if err := l.deleteSnapshot(ctx, key, ack.Seq); err != nil {
		return 0, fmt.Errorf("jetstream: deleting the snapshot of %s: %w", subject, err)
	}
	return int(purged), nil
}

// tenantDeletion is the payload of a tenant deletion record, kept (the
// last one per tenant) in the system stream.
type tenantDeletion struct {
	Tenant      string    `json:"tenant"`
	LastOrdinal uint64    `json:"last_ordinal"`
	Time        time.Time `json:"time"`
}

// DeleteTenant implements sessionlog.Deleter. It records the deletion and
// the tenant's last ordinal in the system stream (see
// subjects.Scheme.SystemStream; creating it on first use; another
// account's with WithSystemLog), so that the bridge deletes its copies and
// a tenant created again numbers on after it, then deletes the tenant's
// stream. With a cold store it then removes the tenant's cold tier (a
// crash before that is completed by calling DeleteTenant again).
func (l *Log) DeleteTenant(ctx context.Context, tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := l.deleteHotTenant(ctx, tenant)
	if err == nil && l.cold != nil {
		err = l.cold.DeleteTenant(ctx, tenant)
	}
	return err
}

func (l *Log) deleteHotTenant(ctx context.Context, tenant string) error {
	stream := l.cfg.scheme.Stream(tenant)
	// Snapshots first, so that calling DeleteTenant again completes a
	// deletion cut short; and again once the stream is gone, in case a
	// save raced with it (see snapshot.go).
	if err := l.deleteSnapshotStream(ctx, tenant); err != nil {
		return err
	}
	var info natsjs.StreamInfo
	err := l.apiRequest(ctx, apiStreamInfo+"."+stream, nil, &info)
	if errCode(err) == codeStreamNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream: deleting tenant %q: %w", tenant, err)
	}
	sys := l.systemLog()
	if err := sys.ensureSystemStream(ctx); err != nil {
		return err
	}
	body, _ := json.Marshal(tenantDeletion{Tenant: tenant, LastOrdinal: info.State.LastSeq, Time: time.Now().UTC()})
	if _, err := sys.publishToStream(ctx, sys.cfg.scheme.SystemStream(), &nats.Msg{Subject: l.cfg.scheme.TenantDeletedSubject(tenant), Data: body}); err != nil {
		return fmt.Errorf("jetstream: recording the deletion of tenant %q: %w", tenant, err)
	}
	var resp struct {
		Success bool `json:"success"`
	}
	err = l.apiRequest(ctx, apiStreamDelete+"."+stream, nil, &resp)
	if err != nil && errCode(err) != codeStreamNotFound {
		return fmt.Errorf("jetstream: deleting the stream of tenant %q: %w", tenant, err)
	}
	l.forget(stream)
	return l.deleteSnapshotStream(ctx, tenant)
}

// systemLog is the Log whose system stream holds this Log's tenant
// deletion records: its own, unless WithSystemLog named another.
func (l *Log) systemLog() *Log {
	if l.cfg.system != nil {
		return l.cfg.system
	}
	return l
}

// forget drops what the Log knows of a stream.
func (l *Log) forget(stream string) {
	l.mu.Lock()
	delete(l.streams, stream)
	l.mu.Unlock()
	l.known.Delete(stream)
}

// SystemStreamConfig returns the configuration of the stream where tenant
// deletions are recorded: the last record of each tenant is kept.
func (l *Log) SystemStreamConfig() natsjs.StreamConfig {
	storage := natsjs.FileStorage
	if l.cfg.storage == MemoryStorage {
		storage = natsjs.MemoryStorage
	}
	return natsjs.StreamConfig{
		Name:              l.cfg.scheme.SystemStream(),
		Description:       "jetsession tenant deletions",
		Subjects:          []string{l.cfg.scheme.SystemFilter()},
		Retention:         natsjs.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Storage:           storage,
		Replicas:          l.cfg.replicas,
		AllowDirect:       true,
		Metadata:          map[string]string{"jetsession.protocol": ProtocolVersion},
	}
}

func (l *Log) ensureSystemStream(ctx context.Context) error {
	cfg := l.SystemStreamConfig()
	if _, ok, err := l.streamState(ctx, cfg.Name); err != nil || ok {
		return err
	}
	_, err := l.js.CreateStream(ctx, cfg)
	if err != nil && !errors.Is(err, natsjs.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("jetstream: creating the system stream %s: %w", cfg.Name, err)
	}
	return nil
}

// DeletedLastOrdinal returns the last ordinal the tenant had when it was
// last deleted, from the deletion records (the system Log's, see
// WithSystemLog), or 0 when it was never deleted. A tenant created again
// numbers on after it.
func (l *Log) DeletedLastOrdinal(ctx context.Context, tenant string) (uint64, error) {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	return l.systemLog().deletedLastOrdinal(ctx, tenant)
}

// deletedLastOrdinal returns the last ordinal a deleted tenant had, 0 when
// it was never deleted.
func (l *Log) deletedLastOrdinal(ctx context.Context, tenant string) (uint64, error) {
	m, err := l.leaderGet(ctx, l.cfg.scheme.SystemStream(), msgGetRequest{LastFor: l.cfg.scheme.TenantDeletedSubject(tenant)})
	if err != nil || m == nil {
		return 0, err
	}
	var d tenantDeletion
	if err := json.Unmarshal(m.Data, &d); err != nil || d.Tenant != tenant {
		return 0, fmt.Errorf("jetstream: the deletion record of tenant %q is unreadable", tenant)
	}
	return d.LastOrdinal, nil
}

// TenantDeletions yields the tenant deletions recorded in the system
// stream (the last one of each tenant), for the bridge: each says that
// every event of the tenant up to Before-1 is gone.
func (l *Log) TenantDeletions(ctx context.Context) iter.Seq2[sessionlog.Deletion, error] {
	if l.cfg.system != nil {
		return l.cfg.system.TenantDeletions(ctx)
	}
	return func(yield func(sessionlog.Deletion, error) bool) {
		stream := l.cfg.scheme.SystemStream()
		prefix := strings.TrimSuffix(l.cfg.scheme.TenantDeletedSubject("x"), "x")
		// The deletion records' own filter: a direct get reply is checked
		// against a subject or a filter ending in ".*".
		filter := prefix + "*"
		var cursor uint64
		for {
			var got []*served
			pending, err := l.directGet(ctx, stream, filter, msgGetRequest{Seq: cursor + 1, NextFor: filter, Batch: 1000},
				func(m *served) error { got = append(got, m); return nil })
			if errors.Is(err, errDirectUnavailable) {
				if _, ok, serr := l.streamState(ctx, stream); serr == nil && !ok {
					return // no tenant was ever deleted
				}
			}
			if err != nil {
				yield(sessionlog.Deletion{}, fmt.Errorf("jetstream: reading tenant deletions: %w", err))
				return
			}
			for _, m := range got {
				cursor = m.seq
				if !strings.HasPrefix(m.subject, prefix) {
					continue
				}
				var d tenantDeletion
				if json.Unmarshal(m.data, &d) != nil || sessionlog.ValidateTenant(d.Tenant) != nil ||
					l.cfg.scheme.TenantDeletedSubject(d.Tenant) != m.subject {
					continue // not ours to trust
				}
				if !yield(sessionlog.Deletion{Tenant: d.Tenant, Before: d.LastOrdinal + 1, Time: d.Time}, nil) {
					return
				}
			}
			if pending == 0 || len(got) == 0 {
				return
			}
		}
	}
}
