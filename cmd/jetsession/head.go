package main

import (
	"context"
	"fmt"
)

func runHead(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "head", "Ordinals are the tenant's sequence numbers: a thread's are increasing but not\n"+
		"consecutive. A thread without live events (unknown, or all archived) shows zeros.")
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
	hctx, cancel := c.withTimeout(ctx)
	defer cancel()
	h, err := c.log.Head(hctx, key)
	if err != nil {
		return c.explain(err)
	}
	if cf.json {
		return newEncoder(sio.stdout).Encode(map[string]any{
			"tenant": key.Tenant, "thread": key.Thread, "first": h.First, "last": h.Last, "count": h.Count,
		})
	}
	fmt.Fprintf(sio.stdout, "tenant  %s\nthread  %s\nfirst   %d\nlast    %d\ncount   %d\n",
		field(key.Tenant, maxTenantShown), field(key.Thread, maxThreadShown), h.First, h.Last, h.Count)
	return nil
}
