package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
)

// maxPayloadRead bounds what --data reads from a file or standard input:
// one byte more than the largest event the log accepts by default, enough
// to tell that a payload is too large without reading all of it.
const maxPayloadRead = sessionlog.DefaultMaxEventBytes + 1

func runAppend(ctx context.Context, sio stdio, args []string) error {
	f := newFlags(sio, "append", "The payload must be JSON, unless --binary stores it byte for byte. Appending\n"+
		"again with the same --id within the stream's duplicate window (2 minutes by\n"+
		"default) stores nothing and prints the original ordinal. A tenant without a\n"+
		"stream is refused unless --create is given.")
	var typ, id, data string
	var expectLast uint64
	var create, binary bool
	var replicas int
	var ttl, maxAge time.Duration
	meta := map[string]string{}
	f.fs.StringVar(&typ, "type", "", "event `TYPE`, for example user_message (required)")
	f.fs.StringVar(&id, "id", "", "event `ID` for idempotent retries (default: a new UUIDv7)")
	f.fs.StringVar(&data, "data", "", "payload: `JSON`, @FILE to read a file, or - to read standard input (default: none)")
	f.fs.BoolVar(&binary, "binary", false, "store the --data bytes as they are (any bytes, not checked as JSON, white space kept)")
	f.meta(meta, "meta", "metadata `KEY=VALUE`; repeat for more")
	f.uint(&expectLast, "expect-last", "an ordinal", "append only if the thread's last ordinal is `N` (0: no live events)")
	f.fs.BoolVar(&create, "create", false, "create the tenant's stream if it does not exist")
	f.fs.IntVar(&replicas, "replicas", 1, "`N` replicas for a stream made by --create (3 on a cluster)")
	f.fs.DurationVar(&maxAge, "max-age", 0, "with --create: events of the new tenant expire this `DURATION` after they were stored (whole seconds; 0: never)")
	f.fs.DurationVar(&ttl, "ttl", 0, "the event expires this `DURATION` after it was stored (whole seconds, at least 1s; 0: never)")
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
	if f.isSet("max-age") && !create {
		return usagef("--max-age sets the retention of a new tenant: use it with --create")
	}
	if maxAge < 0 || maxAge > 0 && (maxAge < time.Second || maxAge%time.Second != 0) {
		return usagef("--max-age %v: give whole seconds, at least 1s (for example --max-age 720h)", maxAge)
	}
	if ttl < 0 || ttl > 0 && (ttl < time.Second || ttl%time.Second != 0) {
		return usagef("--ttl %v: give whole seconds, at least 1s (for example --ttl 24h)", ttl)
	}
	if binary && !f.isSet("data") {
		return usagef("--binary needs --data (for example --binary --data @image.png, or --binary --data - < blob)")
	}
	payload, err := readPayload(data, f.isSet("data"), binary, sio.stdin)
	if err != nil {
		return err
	}
	c, err := dial(cf, dialOptions{create: create, replicas: replicas, maxAge: maxAge, tenant: key.Tenant})
	if err != nil {
		return err
	}
	defer c.close()
	actx, cancel := c.withTimeout(ctx)
	defer cancel()
	if create {
		if _, err := c.tenantHead(actx, key.Tenant); isNoTenant(err) {
			fmt.Fprintf(sio.stderr, "creating the stream of the new tenant %q\n", key.Tenant)
		}
	}
	ev := sessionlog.Event{ID: id, Type: typ, Data: payload, TTL: ttl}
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
	case errors.Is(err, sessionlog.ErrEventTooLarge):
		return fmt.Errorf("event too large: %d bytes (payload, type, ID and metadata), at most %d fit on this server (store large payloads elsewhere and append a reference)",
			sessionlog.EventSize(&events[0]), c.log.Limits().MaxEventBytes)
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

// readPayload reads --data: inline, @FILE or - for standard input, at most
// maxPayloadRead bytes. Unless binary, the result must be JSON and
// surrounding white space is dropped.
func readPayload(data string, set, binary bool, stdin io.Reader) ([]byte, error) {
	if !set {
		return nil, nil
	}
	var raw []byte
	source := "--data"
	switch {
	case data == "-":
		source = "--data - (standard input)"
		var err error
		if raw, err = io.ReadAll(io.LimitReader(stdin, maxPayloadRead)); err != nil {
			return nil, fmt.Errorf("reading the payload from standard input: %v", err)
		}
	case strings.HasPrefix(data, "@"):
		source = "--data " + data
		f, err := os.Open(data[1:])
		if err != nil {
			return nil, usagef("cannot read the payload file: %v (check the path after --data @)", err)
		}
		raw, err = io.ReadAll(io.LimitReader(f, maxPayloadRead))
		f.Close()
		if err != nil {
			return nil, usagef("cannot read the payload file: %v (check the path after --data @)", err)
		}
	default:
		raw = []byte(data)
	}
	if len(raw) >= maxPayloadRead {
		return nil, usagef("%s holds more than %d bytes, more than an event can (store large payloads elsewhere and append a reference)", source, maxPayloadRead-1)
	}
	if binary {
		return raw, nil
	}
	raw = bytes.TrimSpace(raw)
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, usagef("%s is not valid JSON: %v at byte %d (quote it for the shell, for example --data '{\"text\":\"hi\"}', or store any bytes with --binary)", source, err, se.Offset)
		}
		return nil, usagef("%s is not valid JSON: %v (for example --data '{\"text\":\"hi\"}', or store any bytes with --binary)", source, err)
	}
	return raw, nil
}
