package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// parseThread parses the flags and the TENANT THREAD arguments, and
// validates the key before anything connects.
func (f *flagSet) parseThread(args []string) (sessionlog.ThreadKey, error) {
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return sessionlog.ThreadKey{}, err
	}
	return threadKey(pos)
}

// threadKey validates the TENANT THREAD arguments before anything connects.
func threadKey(pos []string) (sessionlog.ThreadKey, error) {
	key := sessionlog.ThreadKey{Tenant: pos[0], Thread: pos[1]}
	if err := sessionlog.ValidateKey(key); err != nil {
		return key, &usageError{msg: invalidKey(err).Error()}
	}
	return key, nil
}

func tenantArg(tenant string) error {
	if err := sessionlog.ValidateTenant(tenant); err != nil {
		return &usageError{msg: invalidKey(err).Error()}
	}
	return nil
}

// where names a thread in messages the way the archive prompt does.
func where(key sessionlog.ThreadKey) string { return clean(key.Tenant + "/" + key.Thread) }

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
	tenants, err := c.log.Tenants(tctx)
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
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", clean(t.Tenant), t.Events, t.Threads, t.LastOrdinal, humanBytes(t.Bytes))
	}
	return tw.Flush()
}

// threadInfo is one row of "threads".
type threadInfo struct {
	Tenant      string    `json:"tenant"`
	Thread      string    `json:"thread"`
	Events      uint64    `json:"events"`
	LastOrdinal uint64    `json:"last_ordinal"`
	LastTime    time.Time `json:"last_time"`
	LastType    string    `json:"last_type"`
	subject     string
}

// lastLookups bounds the concurrent last-message reads of "threads".
const lastLookups = 16

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
	threads, err := c.threads(ctx, tenant, sio.stderr)
	if err != nil {
		return err
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
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", clean(t.Thread), t.Events, t.LastOrdinal, formatTime(t.LastTime), clean(t.LastType))
	}
	return tw.Flush()
}

// threads lists a tenant's live threads. The log has no such call: the
// stream's per-subject counts (a stream info with the tenant's filter) name
// the threads, and each one's last message gives its last ordinal and time.
func (c *client) threads(ctx context.Context, tenant string, warn io.Writer) ([]threadInfo, error) {
	stream, err := c.stream(ctx, tenant)
	if err != nil {
		return nil, err
	}
	ictx, cancel := c.withTimeout(ctx)
	info, err := stream.Info(ictx, natsjs.WithSubjectFilter(c.cf.scheme.TenantFilter(tenant)))
	cancel()
	if err != nil {
		return nil, c.explain(err)
	}
	threads := make([]threadInfo, 0, len(info.State.Subjects))
	for subject, n := range info.State.Subjects {
		_, thread, err := c.cf.scheme.ParseSubject(subject)
		if err != nil {
			fmt.Fprintf(warn, "skipping subject %q: not a jetsession thread (%v)\n", clean(subject), err)
			continue
		}
		threads = append(threads, threadInfo{Tenant: tenant, Thread: thread, Events: n, subject: subject})
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
	live := threads[:0]
	for i, t := range threads {
		if !gone[i] {
			live = append(live, t)
		}
	}
	slices.SortFunc(live, func(a, b threadInfo) int { return cmp.Compare(b.LastOrdinal, a.LastOrdinal) })
	return live, nil
}

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
		clean(key.Tenant), clean(key.Thread), h.First, h.Last, h.Count)
	return nil
}

func runTail(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "tail", "Prints the live events after --since, then every new one as it is appended,\n"+
		"until Ctrl-C. Without THREAD it follows every thread of the tenant and shows\n"+
		"each event's thread. To resume, pass the last ordinal seen as --since: one\n"+
		"ordinal resumes a whole tenant. A tenant that does not exist yet is waited for.")
	var since uint64
	f.uint(&since, "since", "an ordinal", "start after ordinal `N` (0: from the first live event)")
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
	c, err := dial(cf, dialOptions{follow: true, notes: sio.stderr})
	if err != nil {
		return err
	}
	defer c.close()
	what := fmt.Sprintf("tenant %q", key.Tenant)
	if key.Thread != "" {
		what = where(key)
	}
	switch _, err := c.stream(ctx, key.Tenant); {
	case err == nil:
		fmt.Fprintf(sio.stderr, "following %s after ordinal %d (Ctrl-C to stop)\n", what, since)
	case ctx.Err() != nil:
		return nil // Ctrl-C before the tail began
	case isNoTenant(err):
		fmt.Fprintf(sio.stderr, "tenant %q has no stream yet: waiting for its first event (Ctrl-C to stop)\n", key.Tenant)
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

func runAppend(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "append", "The payload must be JSON. Appending again with the same --id within the\n"+
		"stream's duplicate window (2 minutes by default) stores nothing and prints the\n"+
		"original ordinal. A tenant without a stream is refused unless --create is given.")
	var typ, id, data string
	var expectLast uint64
	var create bool
	var replicas int
	meta := map[string]string{}
	f.fs.StringVar(&typ, "type", "", "event `TYPE`, for example user_message (required)")
	f.fs.StringVar(&id, "id", "", "event `ID` for idempotent retries (default: a new UUIDv7)")
	f.fs.StringVar(&data, "data", "", "payload: `JSON`, @FILE to read a file, or - to read standard input (default: none)")
	f.meta(meta, "meta", "metadata `KEY=VALUE`; repeat for more")
	f.uint(&expectLast, "expect-last", "an ordinal", "append only if the thread's last ordinal is `N` (0: no live events)")
	f.fs.BoolVar(&create, "create", false, "create the tenant's stream if it does not exist")
	f.fs.IntVar(&replicas, "replicas", 1, "`N` replicas for a stream made by --create (3 on a cluster)")
	cf := f.connFlags()
	key, err := f.parseThread(args)
	if err != nil {
		return err
	}
	if typ == "" {
		return usagef("--type is required (for example --type user_message)")
	}
	if replicas < 1 || replicas > 5 {
		return usagef("--replicas must be 1 to 5, got %d", replicas)
	}
	payload, err := readPayload(data, f.isSet("data"), sio.stdin)
	if err != nil {
		return err
	}
	c, err := dial(cf, dialOptions{create: create, replicas: replicas})
	if err != nil {
		return err
	}
	defer c.close()
	actx, cancel := c.withTimeout(ctx)
	defer cancel()
	if create {
		if _, err := c.stream(actx, key.Tenant); isNoTenant(err) {
			fmt.Fprintf(sio.stderr, "creating the stream of the new tenant %q\n", key.Tenant)
		}
	}
	ev := sessionlog.Event{ID: id, Type: typ, Data: payload}
	if len(meta) > 0 {
		ev.Meta = meta
	}
	events := []sessionlog.Event{ev}
	var opts []sessionlog.AppendOption
	if f.isSet("expect-last") {
		opts = append(opts, sessionlog.ExpectLast(expectLast))
	}
	last, err := c.log.Append(actx, key, events, opts...)
	switch {
	case errors.Is(err, jetstream.ErrTenantNotProvisioned):
		return fmt.Errorf("tenant %q has no stream (check the name with 'jetsession tenants', or add --create to create it)", key.Tenant)
	case errors.Is(err, sessionlog.ErrConflict):
		hctx, hcancel := c.withTimeout(ctx)
		defer hcancel()
		h, herr := c.log.Head(hctx, key)
		if herr != nil {
			return fmt.Errorf("conflict: the thread's last ordinal is not %d (read it with 'jetsession head', then retry)", expectLast)
		}
		return fmt.Errorf("conflict: the last ordinal of %s is %d, not %d (the thread changed; reread it, then retry with --expect-last %d)",
			where(key), h.Last, expectLast, h.Last)
	case err != nil:
		return c.explain(err)
	}
	if cf.json {
		return newEncoder(sio.stdout).Encode(map[string]any{
			"tenant": key.Tenant, "thread": key.Thread, "id": events[0].ID, "ordinal": last,
		})
	}
	_, err = fmt.Fprintln(sio.stdout, last)
	return err
}

// readPayload reads --data: inline JSON, @FILE or - for standard input. The
// result must be JSON; surrounding white space is dropped.
func readPayload(data string, set bool, stdin io.Reader) ([]byte, error) {
	if !set {
		return nil, nil
	}
	var raw []byte
	source := "--data"
	switch {
	case data == "-":
		source = "--data - (standard input)"
		var err error
		if raw, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("reading the payload from standard input: %v", err)
		}
	case strings.HasPrefix(data, "@"):
		source = "--data " + data
		var err error
		if raw, err = os.ReadFile(data[1:]); err != nil {
			return nil, usagef("cannot read the payload file: %v (check the path after --data @)", err)
		}
	default:
		raw = []byte(data)
	}
	raw = bytes.TrimSpace(raw)
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, usagef("%s is not valid JSON: %v at byte %d (quote it for the shell, for example --data '{\"text\":\"hi\"}')", source, err, se.Offset)
		}
		return nil, usagef("%s is not valid JSON: %v (for example --data '{\"text\":\"hi\"}')", source, err)
	}
	return raw, nil
}

func runArchive(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "archive", "Events with ordinal <= --before leave NATS for good (export them first, for\n"+
		"example with the bridge). Archiving never moves back: events after --before,\n"+
		"later appends, other threads and tenants are untouched. Asks first unless --yes.")
	var before uint64
	var yes bool
	f.uint(&before, "before", "an ordinal", "archive events with ordinal up to and including `N` (required)")
	f.fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cf := f.connFlags()
	key, err := f.parseThread(args)
	if err != nil {
		return err
	}
	if !f.isSet("before") || before == 0 {
		return usagef("--before N is required: the last ordinal to archive, at least 1 (see them with 'jetsession load %s %s')", key.Tenant, key.Thread)
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

func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
