package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jetsession/jetsession/sessionlog"
)

// threadInfo is one row of "threads".
type threadInfo struct {
	Tenant      string    `json:"tenant"`
	Thread      string    `json:"thread"`
	Events      uint64    `json:"events"`
	LastOrdinal uint64    `json:"last_ordinal"`
	LastTime    time.Time `json:"last_time"`
	LastType    string    `json:"last_type"`
}

func runThreads(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "threads", "Threads are listed most recently active first (--sort recent), or by name\n"+
		"(--sort name). EVENTS counts live events; LAST TIME and LAST TYPE are those of\n"+
		"the thread's newest event. --limit pages: continue with --after (by name) or\n"+
		"--before (by recent activity), as the note at the end of a page says.")
	var sortBy, after string
	var before, limit uint64
	f.fs.StringVar(&sortBy, "sort", "recent", "order: recent (newest activity first) or name")
	f.fs.StringVar(&after, "after", "", "list threads whose names sort after `THREAD` (with --sort name)")
	f.uint(&before, "before", "an ordinal", "list threads whose last ordinal is below `N` (with --sort recent)")
	f.uint(&limit, "limit", "a count", "list at most `N` threads (0: all)")
	cf := f.connFlags()
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	tenant := pos[0]
	if err := tenantArg(tenant); err != nil {
		return err
	}
	var opts []sessionlog.ThreadsOption
	switch sortBy {
	case "recent":
		if f.isSet("after") {
			return usagef("--after pages a listing by name: use it with --sort name (by recent activity, page with --before)")
		}
		opts = append(opts, sessionlog.ByRecentActivity())
		if before > 0 {
			opts = append(opts, sessionlog.ActiveBefore(before))
		}
	case "name":
		if f.isSet("before") {
			return usagef("--before pages a listing by recent activity: use it with --sort recent (by name, page with --after)")
		}
		if after != "" {
			opts = append(opts, sessionlog.ThreadsAfter(after))
		}
	default:
		return usagef("--sort %q: use recent or name", sortBy)
	}
	if limit > 0 {
		// One more than asked tells whether there is a next page.
		opts = append(opts, sessionlog.ThreadsLimit(int(min(limit+1, 1<<30))))
	}
	c, err := dialTenant(ctx, cf, tenant)
	if err != nil {
		return err
	}
	defer c.close()
	var threads []threadInfo
	more := false
	for t, err := range c.log.Threads(ctx, tenant, opts...) {
		if err != nil {
			return c.explain(err)
		}
		if limit > 0 && uint64(len(threads)) == limit {
			more = true
			break
		}
		threads = append(threads, threadInfo{Tenant: tenant, Thread: t.Thread, Events: t.Events,
			LastOrdinal: t.LastOrdinal, LastTime: t.LastTime.UTC(), LastType: t.LastType})
	}
	if more {
		last := threads[len(threads)-1]
		next := fmt.Sprintf("--before %d", last.LastOrdinal)
		if sortBy == "name" {
			next = fmt.Sprintf("--sort name --after %s", shellQuote(last.Thread))
		}
		defer fmt.Fprintf(sio.stderr, "stopped at --limit %d; continue with %s\n", limit, next)
	}
	if cf.json {
		enc := newEncoder(sio.stdout)
		for _, t := range threads {
			if err := enc.Encode(t); err != nil {
				return err
			}
		}
		return nil
	}
	if len(threads) == 0 {
		fmt.Fprintf(sio.stdout, "tenant %q has no live events\n", tenant)
		return nil
	}
	tw := tabwriter.NewWriter(sio.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "THREAD\tEVENTS\tLAST ORDINAL\tLAST TIME\tLAST TYPE")
	for _, t := range threads {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", field(t.Thread, maxThreadShown), t.Events, t.LastOrdinal, formatTime(t.LastTime), field(t.LastType, maxTypeShown))
	}
	return tw.Flush()
}
