package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Goals of issue 12: a listing within 1.2x its raw requests, and a listing
// of 10,000 threads under 100 ms.
var (
	goalList  = &goal{"<=", 1.2}
	goalBound = &goal{"<=", 1.0}
)

// The raw twins of a listing.
const (
	twinList      = "raw STREAM.INFO + multi_last gets"
	twinListAhead = "raw, one page ahead"
)

// twinBound names the absolute bound a time is compared with: the ratio is
// then the time over the bound.
const twinBound = "bound of issue 12"

// rawListing is what the raw twin of a listing builds per thread: what a
// listing reports, decoded from the replies as minimally as a hand-written
// client would.
type rawListing struct {
	thread string
	events uint64
	last   uint64
	typ    string
	at     time.Time
}

// rawThreads lists a tenant's threads with the requests Log.Threads sends,
// by hand: one STREAM.INFO with a subjects filter, then multi_last direct
// gets of up to 1,024 subjects, in name order (each page handed to each as
// it arrives) or, with recent, every thread first, then sorted newest
// first. With ahead, each page's request is sent before the previous
// page's replies are read. It returns the number of threads listed.
func (t *target) rawThreads(ctx context.Context, tenant string, recent, ahead bool, each func(rawListing)) (int, error) {
	stream, filter := t.scheme.Stream(tenant), t.scheme.TenantFilter(tenant)
	counts, err := t.rawSubjectCounts(ctx, stream, filter)
	if err != nil {
		return 0, err
	}
	type entry struct{ thread, subject string }
	entries := make([]entry, 0, len(counts))
	for subj := range counts {
		if _, thread, err := t.scheme.ParseSubject(subj); err == nil {
			entries = append(entries, entry{thread, subj})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.thread, b.thread) })
	var all []rawListing
	n := 0
	type page struct {
		entries []entry
		call    *rawCall
	}
	send := func(i int) (*page, error) {
		if i >= len(entries) {
			return nil, nil
		}
		p := &page{entries: entries[i:min(i+1024, len(entries))]}
		subjs := make([]string, len(p.entries))
		for j, e := range p.entries {
			subjs[j] = e.subject
		}
		var err error
		p.call, err = t.rawSend(stream, rawRequest{MultiFor: subjs})
		return p, err
	}
	var next *page
	if ahead {
		if next, err = send(0); err != nil {
			return 0, err
		}
	}
	for i := 0; i < len(entries); i += 1024 {
		p := next
		if !ahead {
			if p, err = send(i); err != nil {
				return n, err
			}
		} else if next, err = send(i + 1024); err != nil {
			return n, err
		}
		names := make(map[string]string, len(p.entries))
		for _, e := range p.entries {
			names[e.subject] = e.thread
		}
		rows := make(map[string]rawListing, len(p.entries))
		_, err := p.call.receive(ctx, func(m *nats.Msg) error {
			seq, err := rawSeq(m)
			if err != nil {
				return err
			}
			subj := m.Header.Get("Nats-Subject")
			at, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.HeaderTime))
			rows[subj] = rawListing{thread: names[subj], events: counts[subj], last: seq, typ: m.Header.Get(jetstream.HeaderType), at: at}
			return nil
		})
		if err != nil {
			if next != nil {
				next.call.sub.Unsubscribe()
			}
			return n, err
		}
		for _, e := range p.entries {
			row, ok := rows[e.subject]
			if !ok {
				continue
			}
			if recent {
				all = append(all, row)
				continue
			}
			each(row)
			n++
		}
	}
	if recent {
		slices.SortFunc(all, func(a, b rawListing) int { return cmp.Compare(b.last, a.last) })
		for _, row := range all {
			each(row)
			n++
		}
	}
	return n, nil
}

// libThreads lists a tenant's threads with Log.Threads and returns how
// many it listed.
func libThreads(ctx context.Context, t *target, tenant string, opts ...sessionlog.ThreadsOption) (int, error) {
	n := 0
	for _, err := range t.log.Threads(ctx, tenant, opts...) {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// runList10000 lists every thread of a tenant of 10,000 threads, by name
// and by recent activity, with Log.Threads and with its raw requests.
func runList10000(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "list10000"
	threads, perThread := 10000, 3
	if r.cfg.smoke {
		threads, perThread = 1500, 2 // still two multi_last pages
	}
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	if _, err := t.fill(ctx, tenant, threadNames("t", threads), perThread, false); err != nil {
		return nil, err
	}
	counter, err := t.newRequestCounter()
	if err != nil {
		return nil, err
	}
	defer counter.close()
	n := r.pairs()
	out := &outcome{}
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		check := func(what string) func(int, error) error {
			return func(got int, err error) error {
				if err != nil {
					return err
				}
				return countErr(what, got, threads)
			}
		}
		raw := func(recent, ahead bool) func() error {
			return func() error {
				return check("raw listing")(t.rawThreads(ctx, tenant, recent, ahead, func(rawListing) {}))
			}
		}
		recent := sessionlog.ByRecentActivity()
		ds, err := interleave(ctx, n,
			func() error { return check("Threads")(libThreads(ctx, t, tenant)) },
			raw(false, false),
			raw(false, true),
			func() error { return check("Threads, recent")(libThreads(ctx, t, tenant, recent)) },
			raw(true, false),
			raw(true, true))
		if err != nil {
			return nil, err
		}
		libReqs, err := counter.count(func() error { return check("Threads")(libThreads(ctx, t, tenant)) })
		if err != nil {
			return nil, err
		}
		rawReqs, err := counter.count(raw(false, false))
		if err != nil {
			return nil, err
		}
		byName := fmt.Sprintf("list %d threads by name", threads)
		byRecent := fmt.Sprintf("list %d threads by recent activity", threads)
		ms := []metric{{Name: byName + ", requests", Unit: unitCount, Lib: float64(libReqs), Twin: twinList, Raw: float64(rawReqs)}}
		for i, what := range []string{byName, byRecent} {
			lib, seq, ahead := ds[3*i], ds[3*i+1], ds[3*i+2]
			ms = append(ms,
				metric{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(lib, 0.5)), Twin: twinList, Raw: micros(percentile(seq, 0.5)), Goal: goalList},
				metric{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(lib, 0.99)), Twin: twinList, Raw: micros(percentile(seq, 0.99))},
				metric{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(lib, 0.5)), Twin: twinListAhead, Raw: micros(percentile(ahead, 0.5)), Goal: goalList},
				metric{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(lib, 0.99)), Twin: twinListAhead, Raw: micros(percentile(ahead, 0.99))},
				metric{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(lib, 0.5)), Twin: twinBound, Raw: 100e3, Goal: goalBound})
		}
		return ms, nil
	})
	out.note("%d threads of %d events each written in turn into one tenant stream; %d interleaved rounds of 6 (by name then by recent activity: library, raw, raw one page ahead) per repetition",
		threads, perThread, n)
	out.note("raw: one STREAM.INFO with subjects_filter and multi_last direct gets of 1,024 subjects, one after the other or each sent before the previous one's replies are read (as the library does), decoding each reply's sequence, subject, type and time headers and trusting them; by recent activity sorted by last ordinal; the library also verifies each reply and, on a replicated stream, that the replica answering holds the leader's last sequence")
	return out, err
}

// runLast10 reads the last 10 events of a 10,000-event thread interleaved
// with other threads, with LoadLast, beside raw ways to the same events.
func runLast10(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "last10"
	const last = 10
	threads, perThread := 10, 10000
	if r.cfg.smoke {
		threads, perThread = 4, 200
	}
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	names := threadNames("t", threads)
	seqs, err := t.fill(ctx, tenant, names, perThread, true)
	if err != nil {
		return nil, err
	}
	mid := threads / 2
	k := sessionlog.ThreadKey{Tenant: tenant, Thread: names[mid]}
	stream, subject := t.scheme.Stream(tenant), t.scheme.Subject(tenant, names[mid])
	start := seqs[mid][perThread-last] // where the last 10 begin
	want := seqs[mid][perThread-last:]
	checkSeqs := func(what string, got []uint64) error {
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s returned ordinals %v, want %v", what, got, want)
		}
		return nil
	}
	libLast := func() error {
		recs, err := t.log.LoadLast(ctx, k, last)
		if err != nil {
			return err
		}
		got := make([]uint64, len(recs))
		for i, rec := range recs {
			got[i] = rec.Ordinal
		}
		return checkSeqs("LoadLast", got)
	}
	// The floor: a client that already knows where the last 10 begin
	// reads them with one batched direct get.
	rawKnown := func() error {
		msgs, err := jetstreamext.GetBatch(ctx, t.js, stream, last, jetstreamext.GetBatchSeq(start), jetstreamext.GetBatchSubject(subject))
		if err != nil {
			return err
		}
		var got []uint64
		for m, err := range msgs {
			if err != nil {
				return err
			}
			got = append(got, m.Sequence)
		}
		return checkSeqs("GetBatch", got)
	}
	// Without knowing where they begin: the last message, then each one
	// before it with a multi_last get up to the previous sequence.
	rawWalk := func() error {
		got, err := t.rawLastByWalk(ctx, stream, subject, last)
		if err != nil {
			return err
		}
		return checkSeqs("raw walk back", got)
	}
	counter, err := t.newRequestCounter()
	if err != nil {
		return nil, err
	}
	defer counter.close()
	n := r.pairs()
	out := &outcome{}
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		libReqs, err := counter.count(libLast)
		if err != nil {
			return nil, err
		}
		walkReqs, err := counter.count(rawWalk)
		if err != nil {
			return nil, err
		}
		ds, err := interleave(ctx, n, libLast, rawKnown, rawWalk)
		if err != nil {
			return nil, err
		}
		what := fmt.Sprintf("last %d of a %d-event thread", last, perThread)
		const walk = "raw multi_last walk back (10 gets)"
		const known = "raw batched direct get, start known"
		return []metric{
			{Name: what + ", requests", Unit: unitCount, Lib: float64(libReqs), Twin: walk, Raw: float64(walkReqs)},
			{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: walk, Raw: micros(percentile(ds[2], 0.5)), Goal: goalTime},
			{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.99)), Twin: walk, Raw: micros(percentile(ds[2], 0.99))},
			{Name: what + " p50", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.5)), Twin: known, Raw: micros(percentile(ds[1], 0.5))},
			{Name: what + " p99", Unit: unitMicros, Lib: micros(percentile(ds[0], 0.99)), Twin: known, Raw: micros(percentile(ds[1], 0.99))},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	// For context, reading the whole thread and keeping the last 10: a
	// few rounds, each read is long.
	ctxRounds := max(1, n/20)
	for rep := range out.reps {
		ds, err := interleaveFrom(ctx, rep, ctxRounds, libLast, func() error {
			recs, err := t.log.LoadSince(ctx, k, 0)
			if err != nil {
				return err
			}
			return countErr("LoadSince", len(recs), perThread)
		})
		if err != nil {
			return nil, err
		}
		out.reps[rep] = append(out.reps[rep], metric{Name: fmt.Sprintf("last %d of a %d-event thread p50", last, perThread), Unit: unitMicros,
			Lib: micros(percentile(ds[0], 0.5)), Twin: "LoadSince from the thread's start", Raw: micros(percentile(ds[1], 0.5))})
	}
	out.note("thread of %d events among %d threads written in turn (%d events in the stream); %d interleaved rounds of 3 (LoadLast, raw walk back, raw known start) per repetition, then %d pairs of LoadLast and LoadSince(0)",
		perThread, threads, perThread*threads, n, ctxRounds)
	out.note("raw walk back: a multi_last direct get of the subject, then one with up_to_seq just below each message found, 10 requests in all, trusting every reply; raw known start: jetstreamext.GetBatch of 10 from the 10th-last ordinal, which a client must already know")
	return out, nil
}

// rawLastByWalk returns the ordinals of the last n messages of subject,
// oldest first, walking back one multi_last direct get at a time.
func (t *target) rawLastByWalk(ctx context.Context, stream, subject string, n int) ([]uint64, error) {
	var got []uint64
	var upTo uint64
	for len(got) < n {
		var seq uint64
		eob, err := t.rawDirectGet(ctx, stream, rawRequest{MultiFor: []string{subject}, UpToSeq: upTo}, func(m *nats.Msg) error {
			var err error
			seq, err = rawSeq(m)
			return err
		})
		if err != nil {
			return nil, err
		}
		if !eob.found || seq <= 1 {
			break
		}
		got = append(got, seq)
		upTo = seq - 1
	}
	slices.Reverse(got)
	return got, nil
}

// runDelete1000 deletes a 1,000-event thread with DeleteThread, beside a
// raw purge of an identical thread, and beside the same two requests the
// library sends (a deletion record, then a purge below it) sent by hand.
// Each round gets three fresh threads written in turn into one tenant
// stream.
func runDelete1000(ctx context.Context, r *runner, t *target) (*outcome, error) {
	const tenant = "delete1000"
	size := 1000
	if r.cfg.smoke {
		size = 100
	}
	if err := t.log.EnsureTenant(ctx, tenant); err != nil {
		return nil, err
	}
	stream := t.scheme.Stream(tenant)
	n := r.pairs()
	round := 0
	out := &outcome{}
	var err error
	out.reps, err = repeat(ctx, r.cfg.reps, func() ([]metric, error) {
		var lib, purge, both []float64
		for range n {
			round++
			id := strconv.Itoa(round)
			names := []string{"lib" + id, "purge" + id, "both" + id}
			if _, err := t.fill(ctx, tenant, names, size, false); err != nil {
				return nil, err
			}
			ds, err := interleaveFrom(ctx, round, 1,
				func() error {
					deleted, err := t.log.DeleteThread(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: names[0]})
					if err != nil {
						return err
					}
					return countErr("DeleteThread", deleted, size)
				},
				func() error {
					purged, err := t.purge(ctx, stream, t.scheme.Subject(tenant, names[1]), 0)
					if err != nil {
						return err
					}
					return countErr("purge", int(purged), size)
				},
				func() error {
					body, err := json.Marshal(map[string]string{"deleted_thread": names[2]})
					if err != nil {
						return err
					}
					ack, err := t.js.Publish(ctx, t.scheme.DeletionSubject(tenant), body)
					if err != nil {
						return err
					}
					purged, err := t.purge(ctx, stream, t.scheme.Subject(tenant, names[2]), ack.Sequence)
					if err != nil {
						return err
					}
					return countErr("record and purge", int(purged), size)
				})
			if err != nil {
				return nil, err
			}
			lib = append(lib, micros(ds[0][0]))
			purge = append(purge, micros(ds[1][0]))
			both = append(both, micros(ds[2][0]))
		}
		what := fmt.Sprintf("delete a %d-event thread p50", size)
		return []metric{
			{Name: what, Unit: unitMicros, Lib: median(lib), Twin: "raw STREAM.PURGE of the subject", Raw: median(purge)},
			{Name: what, Unit: unitMicros, Lib: median(lib), Twin: "raw deletion record + purge below it", Raw: median(both), Goal: goalTime},
		}, nil
	})
	out.note("%d rounds per repetition, each on three fresh %d-event threads written in turn into one tenant stream, in turn first; the library publishes a deletion record (so the bridge deletes its copies, in order with the events) and purges below it: two requests, where a bare purge is one", n, size)
	return out, err
}
