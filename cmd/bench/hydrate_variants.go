package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetsession/jetsession/coldstore/jsstore"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
)

// hydrateHotTail is how many of the thread's newest events stay hot in the
// cold-tier row: the rest is archived into the cold tier.
const hydrateHotTail = 50

// Goals of issue 16 for the variant rows, against PostgreSQL.
var (
	goalColdVsPostgres     = &goal{"<=", 0.5} // cold tier + hot tail vs PostgreSQL's SELECT of the same rows
	goalSnapshotVsPostgres = &goal{"<=", 1.0} // snapshot + 10 events vs PostgreSQL's snapshot + 10 rows
)

// variantRows are the hydrate scenario's further library rows, each timed
// interleaved with every other row and compared with every raw and
// PostgreSQL peer:
//   - the same thread in a copy of the tenant (written the same way) whose
//     events but the newest hydrateHotTail were archived into a cold tier in
//     JetStream (coldstore/jsstore), read with IncludeArchived;
//   - a 64 KiB snapshot taken before the thread's last hydrateSnapshotTail
//     events, then those events: LoadSnapshot + LoadSince(snapshot.Ordinal).
//
// Setting up the cold copy also times ArchiveBefore with the cold store
// against a plain purge of another thread of the same shape.
func (h *hydrateSet) variantRows(ctx context.Context) ([]hydrateRow, []metric, error) {
	t := h.t
	var rows []hydrateRow

	// Snapshot: on the thread itself (a snapshot is not an event).
	at := h.ordinals[len(h.ordinals)-hydrateSnapshotTail-1]
	if err := t.log.SaveSnapshot(ctx, h.key, at, make([]byte, hydrateSnapshotBytes)); err != nil {
		return nil, nil, fmt.Errorf("saving the snapshot: %w", err)
	}
	rows = append(rows, hydrateRow{name: fmt.Sprintf("LoadSnapshot (%d KiB) + LoadSince", hydrateSnapshotBytes>>10), kind: rowLibrary, want: hydrateSnapshotTail,
		goalPeer: postgresSnapshotRow, goal: goalSnapshotVsPostgres, underMs: 1,
		read: func(ctx context.Context) (int, error) {
			snap, err := t.log.LoadSnapshot(ctx, h.key)
			if err != nil {
				return 0, err
			}
			if len(snap.State) != hydrateSnapshotBytes || snap.Ordinal != at {
				return 0, fmt.Errorf("snapshot of %d bytes at %d, want %d at %d", len(snap.State), snap.Ordinal, hydrateSnapshotBytes, at)
			}
			recs, err := t.log.LoadSince(ctx, h.key, snap.Ordinal)
			return len(recs), err
		}})

	// Cold tier: a copy of the tenant, so that the hot rows keep reading
	// the whole thread from the hot log.
	store, err := jsstore.New(t.nc, jsstore.WithReplicas(t.replicas),
		jsstore.WithPrefixes(t.scheme.StreamPrefix+"cold-", t.scheme.SubjectPrefix+"cold"))
	if err != nil {
		return nil, nil, err
	}
	cold, err := jetstream.New(t.nc, jetstream.WithScheme(t.scheme), jetstream.WithReplicas(t.replicas), jetstream.WithColdStore(store))
	if err != nil {
		return nil, nil, err
	}
	tenant := h.tenant + "cold"
	if err := cold.EnsureTenant(ctx, tenant); err != nil {
		return nil, nil, err
	}
	seqs, err := t.fill(ctx, tenant, h.threads, h.perThread, true)
	if err != nil {
		return nil, nil, err
	}
	mid := len(h.threads) / 2
	key := sessionlog.ThreadKey{Tenant: tenant, Thread: h.threads[mid]}
	hot := min(hydrateHotTail, h.perThread/2)
	watermark := func(i int) uint64 { return seqs[i][len(seqs[i])-hot-1] }
	archived := len(seqs[mid]) - hot
	// Archive the measured thread and its neighbours, alternating with
	// plain purges of the threads after them: the same shape of work with
	// and without the cold store.
	var withCold, plain []time.Duration
	for j := range min(5, (len(h.threads)-mid)/2) {
		i, p := mid+2*j, mid+2*j+1
		start := time.Now()
		n, err := cold.ArchiveBefore(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: h.threads[i]}, watermark(i))
		if err != nil {
			return nil, nil, fmt.Errorf("archiving into the cold tier: %w", err)
		}
		withCold = append(withCold, time.Since(start))
		if n != archived {
			return nil, nil, fmt.Errorf("archived %d events into the cold tier, want %d", n, archived)
		}
		start = time.Now()
		if n, err = t.log.ArchiveBefore(ctx, sessionlog.ThreadKey{Tenant: tenant, Thread: h.threads[p]}, watermark(p)); err != nil {
			return nil, nil, fmt.Errorf("plain archive: %w", err)
		}
		plain = append(plain, time.Since(start))
		if n != archived {
			return nil, nil, fmt.Errorf("purged %d events, want %d", n, archived)
		}
	}
	if len(withCold) == 0 {
		return nil, nil, errors.New("too few threads to archive")
	}
	rate := func(ds []time.Duration) float64 {
		return float64(archived) / percentile(ds, 0.5).Seconds()
	}
	ms := []metric{
		{Name: fmt.Sprintf("ArchiveBefore of %d events into the cold tier, p50", archived), Unit: unitMicros, Lib: micros(percentile(withCold, 0.5)),
			Twin: "ArchiveBefore without a cold store (purge)", Raw: micros(percentile(plain, 0.5))},
		{Name: "ArchiveBefore into the cold tier, events/s (p50)", Unit: unitRate, Lib: rate(withCold),
			Twin: "ArchiveBefore without a cold store (purge)", Raw: rate(plain)},
	}
	rows = append(rows, hydrateRow{name: fmt.Sprintf("LoadSince(0, IncludeArchived): %d cold + %d hot", archived, hot), kind: rowLibrary,
		goalPeer: postgresSelectRow, goal: goalColdVsPostgres,
		read: func(ctx context.Context) (int, error) {
			recs, err := cold.LoadSince(ctx, key, 0, sessionlog.IncludeArchived())
			return len(recs), err
		}})
	return rows, ms, nil
}
