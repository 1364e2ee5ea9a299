package main

import (
	"context"
	"fmt"

	"github.com/jetsession/jetsession/sessionlog"
)

func runLoad(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "load", "Events stream from the server in batches, so long threads are fine. The payload\n"+
		"column shows at most 100 characters; --json prints every record in full.\n"+
		"--last N prints the newest N events without reading the thread from its start.\n"+
		"--archived reads the thread's archived events from the cold tier (--cold, nats\n"+
		"unless set) first, then the live ones, as one sequence in ordinal order.")
	var since, limit, lastN uint64
	var archived bool
	f.uint(&since, "since", "an ordinal", "print events after ordinal `N` (0: from the first live event)")
	f.uint(&limit, "limit", "a count", "print at most `N` events (0: all)")
	f.uint(&lastN, "last", "a count", "print only the newest `N` events, in order")
	f.fs.BoolVar(&archived, "archived", false, "read through the cold tier: archived events first, then live ones")
	cf := f.connFlags()
	f.coldFlag(cf)
	key, err := f.parseThread(args)
	if err != nil {
		return err
	}
	if f.isSet("last") && (f.isSet("since") || f.isSet("limit")) {
		return usagef("--last reads the newest events: it does not combine with --since or --limit")
	}
	if f.isSet("last") && (lastN == 0 || lastN > 100_000) {
		return usagef("--last %d: give a count from 1 to 100000", lastN)
	}
	if archived && f.isSet("last") {
		return usagef("--archived reads the thread from its start: it does not combine with --last")
	}
	if archived && cf.cold == "" {
		cf.cold = "nats"
	}
	c, err := dialTenant(ctx, cf, key.Tenant)
	if err != nil {
		return err
	}
	defer c.close()
	p := newRecordPrinter(sio.stdout, cf.json, key.Tenant, false)
	if f.isSet("last") {
		lctx, cancel := c.withTimeout(ctx)
		defer cancel()
		recs, err := c.log.LoadLast(lctx, key, int(lastN))
		for _, ce := range sessionlog.CorruptEvents(err) {
			c.skipCorrupt(sio.stderr, ce)
		}
		if err != nil && len(sessionlog.CorruptEvents(err)) == 0 {
			return c.explain(err)
		}
		for _, rec := range recs {
			if err := p.print(key.Thread, rec); err != nil {
				return err
			}
		}
		if len(recs) == 0 && !cf.json {
			fmt.Fprintf(sio.stderr, "no live events in %s\n", where(key))
		}
		return nil
	}
	var readOpts []sessionlog.ReadOption
	if archived {
		readOpts = append(readOpts, sessionlog.IncludeArchived())
	}
	var n, last uint64
	for rec, err := range c.log.Scan(ctx, key, since, readOpts...) {
		if c.skipCorrupt(sio.stderr, err) {
			continue
		}
		if err != nil {
			return c.explain(err)
		}
		if limit > 0 && n == limit {
			// One record past the limit tells there is more.
			fmt.Fprintf(sio.stderr, "stopped at --limit %d; continue with --since %d\n", limit, last)
			return nil
		}
		if err := p.print(key.Thread, rec); err != nil {
			return err
		}
		n, last = n+1, rec.Ordinal
	}
	if n == 0 && !cf.json {
		fmt.Fprintf(sio.stderr, "no live events in %s after ordinal %d\n", where(key), since)
	}
	return nil
}
