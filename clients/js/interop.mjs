// The program the Go interoperability tests run (interop_test.go): one
// command as a JSON object on standard input, results as JSON lines on
// standard output. Every step goes through jetsession.mjs, which follows
// PROTOCOL.md only. A broken promise of the protocol exits with status 1 and
// says which on standard error.
//
//   write    create a tenant, append singles and batches (each retried with
//            the same IDs), conditional appends, a conflict, a partial retry,
//            refused events; read each append back at once (read-your-writes)
//   read     load threads with batched direct gets
//   tail     follow a thread or a tenant: prints {"ready":true} once the
//            consumer exists, then one line per event, until count events
//   archive  archive a thread up to a watermark
import { connect } from "@nats-io/transport-node";
import { Client, ConflictError, InvalidError, PartialRetryError, LIMITS, streamName } from "./jetsession.mjs";

const fail = (msg) => {
  throw new Error(`protocol check failed: ${msg}`);
};
const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");
const fromB64 = (s) => Uint8Array.from(Buffer.from(s || "", "base64"));
const toJSON = (r) => ({ ordinal: r.ordinal, id: r.id, type: r.type, time: r.time, data: Buffer.from(r.data).toString("base64"), meta: r.meta });
const event = (e) => ({ id: e.id, type: e.type, time: e.time, data: fromB64(e.data), meta: e.meta || undefined });

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function expectError(kind, what, fn) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof kind) return err.message;
    fail(`${what}: ${err.constructor.name} ${err.message}, want ${kind.name}`);
  }
  fail(`${what} succeeded`);
}

async function write(cmd, client, reader) {
  const { tenant } = cmd;
  await client.createTenant(tenant, { replicas: cmd.replicas || 1 });
  await client.createTenant(tenant, { replicas: cmd.replicas || 1 }); // creating twice is harmless
  const result = { threads: [] };
  for (const th of cmd.threads) {
    let last = 0;
    const appends = [];
    for (const a of th.appends) {
      const events = a.events.map(event);
      const opts = a.conditional ? { expectLast: last } : {};
      const got = await client.append(tenant, th.thread, events, opts);
      if (!(got > last)) fail(`append to ${th.thread} returned ${got} after ${last}`);
      // The same events again (same IDs, same condition): stores nothing,
      // reports the original ordinal. A batch meets 10201 and is resolved.
      const again = await client.append(tenant, th.thread, events, opts);
      if (again !== got) fail(`retry of an append to ${th.thread} returned ${again}, want the original ${got}`);
      // Read-your-writes, through another connection (another server on a cluster).
      const { records, corrupt } = await reader.load(tenant, th.thread, last);
      if (corrupt.length) fail(`reading back ${th.thread}: corrupt ${JSON.stringify(corrupt)}`);
      const ids = records.map((r) => r.id).join(",");
      if (ids !== events.map((e) => e.id).join(",") || records.at(-1).ordinal !== got) {
        fail(`reading back ${th.thread} after ${last}: ${ids} ending at ${records.at(-1)?.ordinal}, want ${events.map((e) => e.id)} ending at ${got}`);
      }
      appends.push({ last: got, ids: events.map((e) => e.id), times: events.map((e) => e.time) });
      last = got;
    }
    result.threads.push({ thread: th.thread, appends });
  }

  // A conditional append on a stale ordinal is a conflict and stores nothing.
  const t0 = cmd.threads[0];
  const first = result.threads[0].appends[0].last;
  result.conflict = await expectError(ConflictError, "append expecting a stale last ordinal", () =>
    client.append(tenant, t0.thread, [{ id: "conflict-1", type: "note", data: new Uint8Array(0) }], { expectLast: first }),
  );
  // A batch repeating one event of an earlier append is a partial retry.
  const old = t0.appends.find((a) => a.events.length > 1) || t0.appends[0];
  result.partial = await expectError(PartialRetryError, "batch repeating one stored event", () =>
    client.append(tenant, t0.thread, [{ id: "partial-new", type: "note" }, event(old.events[0])]),
  );
  // What the protocol's limits refuse is refused before anything is sent.
  const refusals = {
    "empty type": [{ type: "" }],
    "ID over 128 bytes": [{ id: "i".repeat(LIMITS.idBytes + 1), type: "t" }],
    "type over 128 bytes": [{ type: "t".repeat(LIMITS.typeBytes + 1) }],
    "ID with surrounding space": [{ id: " x", type: "t" }],
    "65 metadata entries": [{ type: "t", meta: Object.fromEntries([...Array(65).keys()].map((i) => ["k" + i, "v"])) }],
    "metadata over 4096 bytes": [{ type: "t", meta: { k: "v".repeat(4096) } }],
    "metadata key with a control character": [{ type: "t", meta: { "a\u0001": "v" } }],
    "time in year 10000": [{ type: "t", time: "10000-01-01T00:00:00Z" }],
    "time of year 0": [{ type: "t", time: "0000-12-31T23:59:59Z" }],
    "event over 1,000,000 bytes": [{ type: "t", data: new Uint8Array(LIMITS.eventBytes) }],
    "1,001 events": [...Array(1001).keys()].map(() => ({ type: "t" })),
    "two events sharing an ID": [{ id: "same", type: "t" }, { id: "same", type: "t" }],
  };
  result.refused = [];
  for (const [what, events] of Object.entries(refusals)) {
    await expectError(InvalidError, what, () => client.append(tenant, t0.thread, events));
    result.refused.push(what);
  }
  await expectError(InvalidError, "tenant over 64 bytes", () => client.append("t".repeat(65), "x", [{ type: "t" }]));
  await expectError(InvalidError, "thread with a control character", () => client.append(tenant, "a\nb", [{ type: "t" }]));

  // Nothing but the appends above was stored: the stream's last sequence is
  // the last ordinal handed out.
  const info = await client.apiRequest(`STREAM.INFO.${streamName(tenant)}`);
  result.last_seq = info.state.last_seq;
  result.messages = info.state.messages;
  out(result);
}

async function read(cmd, client) {
  const threads = [];
  for (const th of cmd.threads) {
    const { records, corrupt } = await client.load(cmd.tenant, th.thread, th.cursor || 0);
    threads.push({ thread: th.thread, records: records.map(toJSON), corrupt: corrupt.map((c) => ({ ordinal: c.ordinal, reason: c.reason })) });
  }
  out({ threads });
}

async function tail(cmd, client) {
  const ac = new AbortController();
  let n = 0;
  for await (const item of client.tail(cmd.tenant, cmd.thread ?? null, cmd.cursor || 0, { signal: ac.signal, onReady: () => out({ ready: true }) })) {
    if (item.record) out({ thread: item.thread, record: toJSON(item.record) });
    else out({ corrupt: { ordinal: item.corrupt.ordinal, reason: item.corrupt.reason } });
    if (++n >= cmd.count) ac.abort();
  }
}

async function archive(cmd, client) {
  out({ purged: await client.archive(cmd.tenant, cmd.thread, cmd.watermark) });
  out({ again: await client.archive(cmd.tenant, cmd.thread, cmd.watermark) });
}

const cmd = await readStdin();
const servers = cmd.servers;
const nc = await connect({ servers: servers[0] });
const nc2 = servers.length > 1 ? await connect({ servers: servers[1] }) : nc;
const opts = { readBatch: cmd.read_batch || undefined, timeout: 10_000 };
const client = new Client(nc, opts);
const reader = new Client(nc2, opts);
try {
  switch (process.argv[2]) {
    case "write":
      await write(cmd, client, reader);
      break;
    case "read":
      await read(cmd, client);
      break;
    case "tail":
      await tail(cmd, client);
      break;
    case "archive":
      await archive(cmd, client);
      break;
    default:
      throw new Error(`unknown command ${process.argv[2]}`);
  }
} catch (err) {
  process.stderr.write(`${err.stack || err}\n`);
  process.exitCode = 1;
} finally {
  await nc.close();
  if (nc2 !== nc) await nc2.close();
}
