package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	natsjs "github.com/nats-io/nats.go/jetstream"
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
	f := newFlags(sio, "threads", "Threads are sorted by last activity, most recent first. EVENTS counts live\n"+
		"events; LAST TIME and LAST TYPE are those of the thread's newest event.")
	cf := f.connFlags()
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	tenant := pos[0]
	if err := tenantArg(tenant); err != nil {
		return err
	}
	c, err := dial(cf, dialOptions{})
	if err != nil {
		return err
	}
	defer c.close()
	threads, err := listThreads(ctx, c, tenant, sio.stderr)
	if err != nil {
		return err
	}
	slices.SortFunc(threads, func(a, b threadInfo) int { return cmp.Compare(b.LastOrdinal, a.LastOrdinal) })
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

// lastLookups bounds the concurrent last-message reads of listThreads.
const lastLookups = 16

// listThreads lists a tenant's live threads, in no particular order. It is
// the one place the CLI reads JetStream beside the library, because the
// library has no thread listing yet: the stream's per-subject counts (a
// stream info with the tenant's filter) name the threads, and each one's
// last message (one request per thread) gives its last ordinal, time and
// type. When the library's Log.Threads arrives, this function becomes a
// call to it.
func listThreads(ctx context.Context, c *client, tenant string, warn io.Writer) ([]threadInfo, error) {
	ictx, cancel := c.withTimeout(ctx)
	defer cancel()
	stream, err := c.js.Stream(ictx, c.cf.scheme.Stream(tenant))
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		return nil, errNoTenant(tenant)
	}
	if err != nil {
		return nil, c.explain(err)
	}
	info, err := stream.Info(ictx, natsjs.WithSubjectFilter(c.cf.scheme.TenantFilter(tenant)))
	if err != nil {
		return nil, c.explain(err)
	}
	type found struct {
		threadInfo
		subject string
	}
	threads := make([]found, 0, len(info.State.Subjects))
	for subject, n := range info.State.Subjects {
		_, thread, err := c.cf.scheme.ParseSubject(subject)
		if err != nil {
			fmt.Fprintf(warn, "skipping subject %s: not a jetsession thread\n", field(subject, maxThreadShown))
			continue
		}
		threads = append(threads, found{threadInfo{Tenant: tenant, Thread: thread, Events: n}, subject})
	}

	errs := make([]error, len(threads))
	gone := make([]bool, len(threads))
	sem := make(chan struct{}, lastLookups)
	var wg sync.WaitGroup
	for i := range threads {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t := &threads[i]
			gctx, cancel := c.withTimeout(ctx)
			defer cancel()
			m, err := stream.GetLastMsgForSubject(gctx, t.subject)
			switch {
			case errors.Is(err, natsjs.ErrMsgNotFound):
				gone[i] = true // archived since the count was taken
				return
			case err != nil:
				errs[i] = err
				return
			}
			t.LastOrdinal, t.LastType, t.LastTime = m.Sequence, m.Header.Get(jetstream.HeaderType), m.Time.UTC()
			if v := m.Header.Get(jetstream.HeaderTime); v != "" {
				if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
					t.LastTime = ts.UTC()
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, c.explain(err)
	}
	live := make([]threadInfo, 0, len(threads))
	for i, t := range threads {
		if !gone[i] {
			live = append(live, t.threadInfo)
		}
	}
	return live, nil
}
