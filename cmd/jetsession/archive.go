package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
)

func runArchive(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "archive", "Events with ordinal <= --before leave the tenant stream. With --cold they move to\n"+
		"the cold tier first ('load --archived' reads them); without it they are gone for\n"+
		"good (export them first, for example with the bridge). Archiving never moves back: events after --before,\n"+
		"later appends, other threads and tenants are untouched. Asks first unless --yes;\n"+
		"without a terminal to ask on (a script, a pipe), --yes is required.")
	var before uint64
	var yes bool
	f.uint(&before, "before", "an ordinal", "archive events with ordinal up to and including `N` (required)")
	f.fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cf := f.connFlags()
	f.coldFlag(cf)
	key, err := f.parseThread(args)
	if err != nil {
		return err
	}
	if !f.isSet("before") || before == 0 {
		return usagef("--before N is required: the last ordinal to archive, at least 1 (see them with 'jetsession load %s %s')", key.Tenant, key.Thread)
	}
	if !yes && !sio.terminal {
		return usagef("archive asks before removing events, and standard input is not a terminal (pass --yes to archive without asking)")
	}
	c, err := dialTenant(ctx, cf, key.Tenant)
	if err != nil {
		return err
	}
	defer c.close()
	result := func(n int) error {
		if cf.json {
			return newEncoder(sio.stdout).Encode(map[string]any{
				"tenant": key.Tenant, "thread": key.Thread, "before": before, "archived": n,
			})
		}
		_, err := fmt.Fprintf(sio.stdout, "archived %s of %s up to ordinal %d\n", plural(uint64(n), "event"), where(key), before)
		return err
	}
	declined := func(why string) error {
		if cf.json {
			return result(0)
		}
		_, err := fmt.Fprintln(sio.stdout, why)
		return err
	}
	if !yes {
		hctx, cancel := c.withTimeout(ctx)
		h, err := c.log.Head(hctx, key)
		cancel()
		if err != nil {
			return c.explain(err)
		}
		if h.Count == 0 {
			return declined(where(key) + " has no live events: nothing to archive")
		}
		fmt.Fprintf(sio.stderr, "%s holds %s, ordinals %d to %d.\n", where(key), plural(h.Count, "live event"), h.First, h.Last)
		fmt.Fprintf(sio.stderr, "Archive events of %s up to ordinal %d? [y/N] ", where(key), before)
		answer, _ := bufio.NewReader(sio.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return declined("nothing archived")
		}
	}
	actx, cancel := c.withTimeout(ctx)
	defer cancel()
	n, err := c.log.ArchiveBefore(actx, key, before)
	if err != nil {
		return c.explain(err)
	}
	return result(n)
}
