package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
)

func runDeleteThread(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "delete-thread", "Every event of the thread leaves NATS for good, and the analytics bridge\n"+
		"deletes its copies too. Ordinals are never reused: appending to the thread\n"+
		"again starts a new life after every ordinal the tenant had. Asks first unless\n"+
		"--yes; without a terminal to ask on, --yes is required. Needs the archiver's\n"+
		"or the admin's rights. With --cold its archived events in the cold tier go too.")
	var yes bool
	f.fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cf := f.connFlags()
	f.coldFlag(cf)
	key, err := f.parseThread(args)
	if err != nil {
		return err
	}
	if !yes && !sio.terminal {
		return usagef("delete-thread asks before deleting, and standard input is not a terminal (pass --yes to delete without asking)")
	}
	c, err := dialTenant(ctx, cf, key.Tenant)
	if err != nil {
		return err
	}
	defer c.close()
	if !yes {
		hctx, cancel := c.withTimeout(ctx)
		h, err := c.log.Head(hctx, key)
		cancel()
		if err != nil {
			return c.explain(err)
		}
		if h.Count == 0 {
			fmt.Fprintf(sio.stderr, "%s has no live events.\n", where(key))
		} else {
			fmt.Fprintf(sio.stderr, "%s holds %s, ordinals %d to %d.\n", where(key), plural(h.Count, "live event"), h.First, h.Last)
		}
		if !confirm(sio, fmt.Sprintf("Delete %s and every event in it, here and in the analytics copies?", where(key))) {
			return deleted(sio, cf.json, map[string]any{"tenant": key.Tenant, "thread": key.Thread, "deleted": 0}, "nothing deleted")
		}
	}
	dctx, cancel := c.withTimeout(ctx)
	defer cancel()
	n, err := c.log.DeleteThread(dctx, key)
	if err != nil {
		return c.explain(err)
	}
	return deleted(sio, cf.json, map[string]any{"tenant": key.Tenant, "thread": key.Thread, "deleted": n},
		fmt.Sprintf("deleted %s and its %s", where(key), plural(uint64(n), "event")))
}

func runDeleteTenant(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "delete-tenant", "The tenant's stream and every event in it leave NATS for good, and the\n"+
		"analytics bridge deletes its copies too. A later 'append --create' creates the\n"+
		"tenant again, numbering on after every ordinal it had. Asks first unless --yes;\n"+
		"without a terminal to ask on, --yes is required. Needs the provisioner's or the\n"+
		"admin's rights. With --cold its archived events in the cold tier go too.")
	var yes bool
	f.fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cf := f.connFlags()
	f.coldFlag(cf)
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	tenant := pos[0]
	if err := tenantArg(tenant); err != nil {
		return err
	}
	if cf.accounts != "" {
		return usagef("with an account per tenant, the provisioner deletes tenants: 'jetsession tenant delete %s --dir %s'", shellQuote(tenant), shellQuote(cf.accounts))
	}
	if !yes && !sio.terminal {
		return usagef("delete-tenant asks before deleting, and standard input is not a terminal (pass --yes to delete without asking)")
	}
	c, err := dial(cf, dialOptions{})
	if err != nil {
		return err
	}
	defer c.close()
	info, err := c.tenantInfo(ctx, tenant)
	if err != nil {
		return err
	}
	if !yes {
		fmt.Fprintf(sio.stderr, "tenant %q holds %s in %s (%s).\n", clean(tenant), plural(info.Events, "live event"),
			plural(info.Threads, "thread"), humanBytes(info.Bytes))
		if !confirm(sio, fmt.Sprintf("Delete tenant %q and everything in it, here and in the analytics copies?", clean(tenant))) {
			return deleted(sio, cf.json, map[string]any{"tenant": tenant, "deleted": false}, "nothing deleted")
		}
	}
	dctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if err := c.log.DeleteTenant(dctx, tenant); err != nil {
		return c.explain(err)
	}
	return deleted(sio, cf.json, map[string]any{"tenant": tenant, "deleted": true, "events": info.Events},
		fmt.Sprintf("deleted tenant %q and its %s", clean(tenant), plural(info.Events, "event")))
}

// confirm asks a yes/no question on the terminal; anything but yes is no.
func confirm(sio stdio, question string) bool {
	fmt.Fprintf(sio.stderr, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(sio.stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}

// deleted reports the outcome of a deletion, as JSON or a line.
func deleted(sio stdio, asJSON bool, record map[string]any, line string) error {
	if asJSON {
		return newEncoder(sio.stdout).Encode(record)
	}
	_, err := fmt.Fprintln(sio.stdout, line)
	return err
}
