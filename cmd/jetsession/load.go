package main

import (
	"context"
	"fmt"
)

func runLoad(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "load", "Events stream from the server in batches, so long threads are fine. The payload\n"+
		"column shows at most 100 characters; --json prints every record in full.")
	var since, limit uint64
	f.uint(&since, "since", "an ordinal", "print events after ordinal `N` (0: from the first live event)")
	f.uint(&limit, "limit", "a count", "print at most `N` events (0: all)")
	cf := f.connFlags()
	key, err := f.parseThread(args)
	if err != nil {
		return err
	}
	c, err := dialTenant(ctx, cf, key.Tenant)
	if err != nil {
		return err
	}
	defer c.close()
	p := newRecordPrinter(sio.stdout, cf.json, key.Tenant, false)
	var n, last uint64
	for rec, err := range c.log.Scan(ctx, key, since) {
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
