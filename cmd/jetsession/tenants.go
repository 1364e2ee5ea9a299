package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jetsession/jetsession/sessionlog"
)

func runTenants(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "tenants", "Tenants are sorted by name. LAST ORDINAL is the highest ordinal the tenant ever\n"+
		"assigned, archived or not; EVENTS and THREADS count live events and threads.")
	cf := f.connFlags()
	if _, err := f.parse(args, 0, 0); err != nil {
		return err
	}
	c, err := dial(cf, dialOptions{})
	if err != nil {
		return err
	}
	defer c.close()
	tctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var tenants []sessionlog.TenantInfo
	if c.source != nil {
		tenants, err = c.source.Tenants(tctx)
	} else {
		tenants, err = c.log.Tenants(tctx)
	}
	if err != nil {
		return c.explain(err)
	}
	slices.SortFunc(tenants, func(a, b sessionlog.TenantInfo) int { return strings.Compare(a.Tenant, b.Tenant) })
	if cf.json {
		enc := newEncoder(sio.stdout)
		for _, t := range tenants {
			err := enc.Encode(map[string]any{
				"tenant": t.Tenant, "stream": c.cf.scheme.Stream(t.Tenant), "events": t.Events, "threads": t.Threads,
				"first_ordinal": t.FirstOrdinal, "last_ordinal": t.LastOrdinal, "bytes": t.Bytes,
				"replicas": t.Replicas, "created": t.Created.UTC(),
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	if len(tenants) == 0 {
		fmt.Fprintf(sio.stdout, "no tenants (no stream is named %s*)\n", cf.scheme.StreamPrefix)
		return nil
	}
	tw := tabwriter.NewWriter(sio.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tEVENTS\tTHREADS\tLAST ORDINAL\tBYTES")
	for _, t := range tenants {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", field(t.Tenant, maxTenantShown), t.Events, t.Threads, t.LastOrdinal, humanBytes(t.Bytes))
	}
	return tw.Flush()
}
