package main

import (
	"context"
	"fmt"

	"github.com/jetsession/jetsession/sessionlog"
)

func runTail(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "tail", "Prints the live events after --since, then every new one as it is appended,\n"+
		"until Ctrl-C. Without THREAD it follows every thread of the tenant and shows\n"+
		"each event's thread. To resume, pass the last ordinal seen as --since: one\n"+
		"ordinal resumes a whole tenant. A tenant without a stream fails, as other\n"+
		"reads do, unless --wait is given.")
	var since uint64
	var wait bool
	f.uint(&since, "since", "an ordinal", "start after ordinal `N` (0: from the first live event)")
	f.fs.BoolVar(&wait, "wait", false, "wait for a tenant that has no stream yet, until its first event")
	cf := f.connFlags()
	pos, err := f.parse(args, 1, 2)
	if err != nil {
		return err
	}
	var key sessionlog.ThreadKey
	if len(pos) == 2 {
		if key, err = threadKey(pos); err != nil {
			return err
		}
	} else {
		if err := tenantArg(pos[0]); err != nil {
			return err
		}
		key.Tenant = pos[0]
	}
	c, err := dial(cf, dialOptions{follow: true, notes: sio.stderr, tenant: key.Tenant})
	if err != nil {
		return err
	}
	defer c.close()
	what := fmt.Sprintf("tenant %q", key.Tenant)
	if key.Thread != "" {
		what = where(key)
	}
	switch head, err := c.tenantHead(ctx, key.Tenant); {
	case err == nil && since > head:
		// Ordinals up to --since will never show: say so rather than wait
		// in silence.
		fmt.Fprintf(sio.stderr, "--since %d is past the last ordinal of tenant %q, %d: following %s, but only ordinals above %d will show (pass --since %d to see every new event)\n",
			since, key.Tenant, head, what, since, head)
	case err == nil:
		fmt.Fprintf(sio.stderr, "following %s after ordinal %d (Ctrl-C to stop)\n", what, since)
	case ctx.Err() != nil:
		return nil // Ctrl-C before the tail began
	case isNoTenant(err) && wait:
		fmt.Fprintf(sio.stderr, "tenant %q has no stream yet: waiting for its first event (Ctrl-C to stop)\n", key.Tenant)
	case isNoTenant(err):
		return fmt.Errorf("tenant %q has no stream (check the name with 'jetsession tenants', or add --wait to wait for its first event)", key.Tenant)
	default:
		return err
	}
	p := newRecordPrinter(sio.stdout, cf.json, key.Tenant, key.Thread == "")
	if key.Thread != "" {
		for rec, err := range c.log.Tail(ctx, key, since) {
			if c.skipCorrupt(sio.stderr, err) {
				continue
			}
			if err != nil {
				return c.explain(err)
			}
			if err := p.print(key.Thread, rec); err != nil {
				return err
			}
		}
		return nil
	}
	for rec, err := range c.log.TailTenant(ctx, key.Tenant, since) {
		if c.skipCorrupt(sio.stderr, err) {
			continue
		}
		if err != nil {
			return c.explain(err)
		}
		if err := p.print(rec.Thread, rec.Record); err != nil {
			return err
		}
	}
	return nil
}
