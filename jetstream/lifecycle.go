package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sort"
	"strings"
	"time"

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
// tenant's sequence, so it first finds where its last n begin: batched
// direct gets of one message from a sequence report how many of the
// thread's messages follow, and a binary search over the thread's span
// needs about log2(span) of them (some 20 for a span of a million, each a
// small request). Then it reads from there like LoadSince, read-your-writes
// on a replicated stream too, and keeps the last n: a lagging replica can
// only make the search start earlier.
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

// lastStart returns the sequence from which the subject holds at least n
// messages (1 when it holds fewer), by binary search on what direct gets
// report remains.
func (l *Log) lastStart(ctx context.Context, stream, subject string, n uint64) (uint64, error) {
	// count reports how many of the subject's messages have a sequence of
	// at least seq, and the first of them.
	count := func(seq uint64) (uint64, uint64, error) {
		var first uint64
		pending, err := l.directGet(ctx, stream, subject, msgGetRequest{Seq: seq, NextFor: subject, Batch: 1},
			func(m *served) error { first = m.seq; return nil })
		if errors.Is(err, errUnverified) || errors.Is(err, errDirectUnavailable) {
			// Not provably the server's or nobody serves: read from the
			// start instead of guessing.
			return 0, 0, errFallback
		}
		if err != nil || first == 0 {
			return 0, 0, err
		}
		return 1 + pending, first, nil
	}
	total, lo, err := count(1)
	if errors.Is(err, errFallback) {
		return 1, nil
	}
	if err != nil || total <= n {
		return 1, err
	}
	// count(lo) = total > n; find the largest seq with count(seq) >= n.
	hi := uint64(0)
	last, err := l.leaderGet(ctx, stream, msgGetRequest{LastFor: subject})
	if err != nil || last == nil {
		return 1, err
	}
	hi = last.Seq // count(hi) = 1 <= n
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		c, first, err := count(mid)
		if errors.Is(err, errFallback) {
			return lo, nil
		}
		if err != nil {
			return 0, err
		}
		if c >= n {
			lo = max(mid, first)
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

var errFallback = errors.New("jetstream: read from the start")

// Threads implements sessionlog.ThreadLister. The thread names and counts
// come from the stream leader's per-subject state (STREAM.INFO with a
// subject filter); each thread's last message comes from batched
// multi_last direct gets, 1,024 threads a request, checked like every
// direct get (see directGet) and, on a replicated stream, from a replica
// that has caught up with the leader's state when the listing began, so a
// listing sees every append that returned before it. With
// WithFirstOrdinals each thread also costs one small direct get. By name,
// the descriptions are fetched a page at a time as the caller iterates;
// by recent activity every thread's last message is needed first.
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
		sort.Slice(entries, func(i, j int) bool { return entries[i].thread < entries[j].thread })
		if !o.Recent && o.After != "" {
			i := sort.Search(len(entries), func(i int) bool { return entries[i].thread > o.After })
			entries = entries[i:]
		}
		describe := func(page []entry) ([]sessionlog.ThreadInfo, error) {
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
		if !o.Recent {
			for len(entries) > 0 {
				size := min(len(entries), maxMultiLast)
				if o.Limit > 0 {
					size = min(size, o.Limit-n)
				}
				infos, err := describe(entries[:size])
				if err != nil {
					yield(sessionlog.ThreadInfo{}, err)
					return
				}
				entries = entries[size:]
				if !emit(infos) || o.Limit > 0 && n == o.Limit {
					return
				}
			}
			return
		}
		var all []sessionlog.ThreadInfo
		for i := 0; i < len(entries); i += maxMultiLast {
			infos, err := describe(entries[i:min(i+maxMultiLast, len(entries))])
			if err != nil {
				yield(sessionlog.ThreadInfo{}, err)
				return
			}
			for _, info := range infos {
				if o.Before == 0 || info.LastOrdinal < o.Before {
					all = append(all, info)
				}
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].LastOrdinal > all[j].LastOrdinal })
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
				if err := sleepCtx(ctx, time.Duration(attempt+1)*time.Millisecond); err != nil {
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
// reads the record in order with the events and deletes its copies. An
// unknown tenant or thread deletes nothing and creates nothing.
func (l *Log) DeleteThread(ctx context.Context, key sessionlog.ThreadKey) (int, error) {
	if err := sessionlog.ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	stream := l.cfg.scheme.Stream(key.Tenant)
	subject := l.cfg.scheme.Subject(key.Tenant, key.Thread)
	if _, ok, err := l.streamState(ctx, stream); err != nil || !ok {
		return 0, err
	}
	body, _ := json.Marshal(deletionRecord{Thread: key.Thread})
	ack, err := l.publish(ctx, &nats.Msg{Subject: l.cfg.scheme.DeletionSubject(key.Tenant), Data: body})
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
// stream.
func (l *Log) DeleteTenant(ctx context.Context, tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stream := l.cfg.scheme.Stream(tenant)
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
	if _, err := sys.publish(ctx, &nats.Msg{Subject: l.cfg.scheme.TenantDeletedSubject(tenant), Data: body}); err != nil {
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
	return nil
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
