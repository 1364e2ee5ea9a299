// A jetsession client for Node.js on the published nats.js packages. It
// follows PROTOCOL.md (protocol version 1) and nothing else: it knows no Go
// code, only subjects, headers and the JetStream API. It is small on purpose,
// so that each step of the protocol can be read next to its section.
import { createInbox, headers as natsHeaders, errors as natsErrors, nuid, RequestError } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { randomFillSync } from "node:crypto";

export const PROTOCOL_VERSION = 1;

// Limits of PROTOCOL.md, "Limits".
export const LIMITS = Object.freeze({
  tenantBytes: 64,
  threadBytes: 256,
  idBytes: 128,
  typeBytes: 128,
  metaEntries: 64,
  metaBytes: 4096,
  eventBytes: 1_000_000,
  batchEvents: 1000,
  batchBytes: 8 << 20,
});

export const DEFAULT_SCHEME = Object.freeze({ subjectPrefix: "jetsession", streamPrefix: "jetsession-" });

// Headers of PROTOCOL.md, "Headers".
const H_MSG_ID = "Nats-Msg-Id";
const H_TYPE = "Jetsession-Type";
const H_TIME = "Jetsession-Time";
const H_META = "Jetsession-Meta";

const te = new TextEncoder();
const lenient = new TextDecoder(); // invalid bytes become U+FFFD, as Go's JSON decoder does
const strict = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

// Server error codes (err_code) the protocol names.
export const CODES = Object.freeze({
  wrongLastSequence: 10071,
  wrongLastSequenceConst: 10164,
  wrongLastMsgID: 10070,
  streamNotFound: 10059,
  noMessageFound: 10037,
  streamNameInUse: 10058,
  batchDuplicate: 10201,
  batchIncomplete: 10176,
  batchTooManyInflight: 10210,
  duplicateInProcess: 10158,
});

export class ApiError extends Error {
  constructor(e, where) {
    super(`${where}: ${e.description} (code ${e.code}, error ${e.err_code})`);
    this.code = e.code;
    this.errCode = e.err_code;
  }
}
export class ConflictError extends Error {}
export class PartialRetryError extends Error {}
export class InvalidError extends Error {}

// ---- Names (PROTOCOL.md, "Names") ----

function keep(b, upper) {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || (upper && b >= 0x41 && b <= 0x5a);
}

function encodeToken(s, upper) {
  let out = "";
  for (const b of te.encode(s)) {
    out += keep(b, upper) ? String.fromCharCode(b) : "_" + b.toString(16).padStart(2, "0");
  }
  return out;
}

/** encodeTenant is the stream-name token of a tenant: a-z 0-9 - kept, every other byte _hh. */
export const encodeTenant = (tenant) => encodeToken(tenant, false);
/** encodeThread is the subject token of a thread: like encodeTenant, A-Z kept too. */
export const encodeThread = (thread) => encodeToken(thread, true);

function decodeToken(tok, upper) {
  if (tok === "") return null;
  const out = [];
  for (let i = 0; i < tok.length; i++) {
    const c = tok.charCodeAt(i);
    if (c < 0x80 && keep(c, upper)) {
      out.push(c);
      continue;
    }
    if (c !== 0x5f || i + 2 >= tok.length) return null;
    const hex = tok.slice(i + 1, i + 3);
    if (!/^[0-9a-f]{2}$/.test(hex)) return null;
    const v = parseInt(hex, 16);
    if (keep(v, upper)) return null; // not how the encoding writes a kept byte
    out.push(v);
    i += 2;
  }
  try {
    return strict.decode(Uint8Array.from(out));
  } catch {
    return null;
  }
}

/** decodeThread reverses encodeThread; it returns null unless a valid thread encodes to tok. */
export function decodeThread(tok) {
  const thread = decodeToken(tok, true);
  return thread !== null && keyPartProblem(thread, LIMITS.threadBytes) === null ? thread : null;
}

export function streamName(tenant, scheme = DEFAULT_SCHEME) {
  return scheme.streamPrefix + encodeTenant(tenant);
}
export function threadSubject(tenant, thread, scheme = DEFAULT_SCHEME) {
  return `${scheme.subjectPrefix}.${encodeTenant(tenant)}.${encodeThread(thread)}`;
}
export function tenantFilter(tenant, scheme = DEFAULT_SCHEME) {
  return `${scheme.subjectPrefix}.${encodeTenant(tenant)}.*`;
}

// ---- Validation (PROTOCOL.md, "Limits") ----

const utf8Len = (s) => te.encode(s).length;
const wellFormed = (s) => lenient.decode(te.encode(s)) === s; // no lone surrogates
// Go's unicode.IsControl: C0, DEL and C1.
const hasControl = (s) => /[\u0000-\u001f\u007f-\u009f]/u.test(s);
// Go's unicode.IsSpace (not JavaScript's \s, which also matches U+FEFF).
const SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;

function keyPartProblem(s, max) {
  if (typeof s !== "string" || s === "") return "is empty";
  if (!wellFormed(s)) return "is not valid UTF-8";
  if (utf8Len(s) > max) return `is ${utf8Len(s)} bytes, longer than ${max}`;
  if (hasControl(s)) return "contains a control character";
  return null;
}

export function validateKey(tenant, thread) {
  const t = keyPartProblem(tenant, LIMITS.tenantBytes);
  if (t) throw new InvalidError(`tenant ${JSON.stringify(tenant)} ${t}`);
  if (thread !== undefined && thread !== null) {
    const h = keyPartProblem(thread, LIMITS.threadBytes);
    if (h) throw new InvalidError(`thread ${JSON.stringify(thread)} ${h}`);
  }
}

function labelProblem(s, max) {
  if (!wellFormed(s)) return "is not valid UTF-8";
  if (utf8Len(s) > max) return `is ${utf8Len(s)} bytes, longer than ${max}`;
  if (hasControl(s)) return "contains a control character";
  const cps = [...s];
  if (SPACE.test(cps[0]) || SPACE.test(cps[cps.length - 1])) return "starts or ends with white space";
  return null;
}

// eventProblem returns why e = {id, type, time, meta} is not an event the
// protocol allows, or null. time is a parsed time ({sec, nsec}).
function eventProblem(e) {
  if (!e.id) return "ID is empty";
  let p = labelProblem(e.id, LIMITS.idBytes);
  if (p) return `ID ${JSON.stringify(e.id)} ${p}`;
  if (!e.time) return "time is missing";
  if (isZeroTime(e.time)) return "time is zero";
  if (!timeInRange(e.time)) return `time ${formatTime(e.time)} is outside years 1 to 9999 UTC`;
  if (!e.type) return "type is empty";
  p = labelProblem(e.type, LIMITS.typeBytes);
  if (p) return `type ${JSON.stringify(e.type)} ${p}`;
  const meta = e.meta || {};
  const keys = Object.keys(meta);
  if (keys.length > LIMITS.metaEntries) return `has ${keys.length} metadata entries, at most ${LIMITS.metaEntries}`;
  let bytes = 0;
  for (const k of keys) {
    const v = meta[k];
    if (typeof v !== "string") return `metadata value of ${JSON.stringify(k)} is not a string`;
    bytes += utf8Len(k) + utf8Len(v);
    if (k === "") return "has an empty metadata key";
    if (!wellFormed(k) || hasControl(k)) return `metadata key ${JSON.stringify(k)} is not UTF-8 text without control characters`;
    if (!wellFormed(v)) return `metadata value of ${JSON.stringify(k)} is not valid UTF-8`;
  }
  if (bytes > LIMITS.metaBytes) return `metadata is ${bytes} bytes, at most ${LIMITS.metaBytes}`;
  return null;
}

const eventSize = (e) =>
  utf8Len(e.id) + utf8Len(e.type) + e.data.length + Object.entries(e.meta || {}).reduce((n, [k, v]) => n + utf8Len(k) + utf8Len(v), 0);

// ---- Times (PROTOCOL.md, "Jetsession-Time") ----
// A time is {sec: BigInt seconds since 1970 UTC, nsec: 0..999999999}:
// JavaScript's Date keeps only milliseconds.

const daysIn = (y, m) => [31, (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];

function daysFromCivil(y, m, d) {
  // Howard Hinnant's algorithm, exact for any proleptic Gregorian date.
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z) {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [era * 400 + yoe + (m <= 2 ? 1 : 0), m, d];
}

/** parseTime parses the RFC 3339 form of PROTOCOL.md, or returns null. */
export function parseTime(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || se > 59) return null;
  const nsec = m[7] ? Number(m[7].slice(1, 10).padEnd(9, "0")) : 0;
  let off = 0;
  if (m[8] !== "Z") {
    const oh = Number(m[8].slice(1, 3));
    const om = Number(m[8].slice(4, 6));
    if (oh > 23 || om > 59) return null;
    off = (m[8][0] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const sec = BigInt(daysFromCivil(y, mo, d)) * 86400n + BigInt(h * 3600 + mi * 60 + se - off);
  return { sec, nsec };
}

/** formatTime writes a time as Go's RFC3339Nano does in UTC (trailing zeros dropped). */
export function formatTime(t) {
  const days = t.sec >= 0n ? t.sec / 86400n : -((-t.sec + 86399n) / 86400n);
  let rem = Number(t.sec - days * 86400n);
  const [y, mo, d] = civilFromDays(Number(days));
  const h = Math.floor(rem / 3600);
  rem -= h * 3600;
  const p2 = (n) => String(n).padStart(2, "0");
  let frac = "";
  if (t.nsec > 0) frac = "." + String(t.nsec).padStart(9, "0").replace(/0+$/, "");
  return `${String(y).padStart(4, "0")}-${p2(mo)}-${p2(d)}T${p2(h)}:${p2(Math.floor(rem / 60))}:${p2(rem % 60)}${frac}Z`;
}

const MIN_SEC = BigInt(daysFromCivil(1, 1, 1)) * 86400n;
const MAX_SEC = BigInt(daysFromCivil(9999, 12, 31)) * 86400n + 86399n;
const isZeroTime = (t) => t.sec === MIN_SEC && t.nsec === 0; // Go's zero time.Time
const timeInRange = (t) => t.sec >= MIN_SEC && t.sec <= MAX_SEC;

function nowTime() {
  const ms = Date.now();
  return { sec: BigInt(Math.floor(ms / 1000)), nsec: (ms % 1000) * 1e6 };
}

// newID returns a UUID version 7, as the Go library's IDs.
export function newID() {
  const b = new Uint8Array(16);
  randomFillSync(b);
  let ms = BigInt(Date.now());
  for (let i = 5; i >= 0; i--) {
    b[i] = Number(ms & 0xffn);
    ms >>= 8n;
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- Header blocks (PROTOCOL.md, "Reading a header block") ----

// parseHeaderBlock reads a header block the way nats.go does: lines end at
// LF (a CR before it is dropped), the first line starts with NATS/1.0, then
// "Name: value" lines (white space after the colon skipped, names kept
// exactly) up to the first empty line. It returns null when the block does
// not parse. Values stay bytes; atEnd tells whether the empty line ends the
// block (nothing is hidden after it).
export function parseHeaderBlock(bytes) {
  let pos = 0;
  const line = () => {
    const i = bytes.indexOf(0x0a, pos);
    if (i < 0) return null;
    let end = i;
    if (end > pos && bytes[end - 1] === 0x0d) end--;
    const l = bytes.subarray(pos, end);
    pos = i + 1;
    return l;
  };
  const first = line();
  if (first === null || first.length < 8 || latin1.decode(first.subarray(0, 8)) !== "NATS/1.0") return null;
  let status = "";
  if (first.length > 8) {
    status = latin1.decode(first.subarray(8)).trim();
    if (status.length < 3) return null;
  }
  const fields = new Map();
  for (;;) {
    const l = line();
    if (l === null) return null;
    if (l.length === 0) return { status, fields, atEnd: pos === bytes.length };
    const c = l.indexOf(0x3a);
    if (c < 0) return null;
    if (c === 0) continue;
    const key = latin1.decode(l.subarray(0, c));
    let v = c + 1;
    while (v < l.length && (l[v] === 0x20 || l[v] === 0x09)) v++;
    if (!fields.has(key)) fields.set(key, []);
    fields.get(key).push(l.subarray(v));
  }
}

const firstValue = (fields, k) => (fields.get(k) || [])[0];
const lastValue = (fields, k) => {
  const vs = fields.get(k) || [];
  return vs.length ? latin1.decode(vs[vs.length - 1]) : undefined;
};

// rawParts returns the header block bytes (null without headers) and the
// payload of a received message. nats.js parses headers its own way (it
// skips empty lines and trims values), so the protocol's checks read the
// bytes as received; 3.4.0 keeps them in these fields.
function rawParts(m) {
  if (!m._msg || !(m._rdata instanceof Uint8Array || m._rdata === undefined || m._rdata === null)) {
    throw new Error("nats.js internals changed: cannot read raw header bytes");
  }
  const hdrLen = m._msg.hdr;
  const all = m._rdata || new Uint8Array(0);
  if (hdrLen === undefined || hdrLen < 0) return { hdr: null, data: all };
  return { hdr: all.subarray(0, hdrLen), data: all.subarray(hdrLen) };
}

// ---- Decoding an event (PROTOCOL.md, "Read policy") ----

const b64 = (u8) => Buffer.from(u8).toString("base64");

// decodeEvent turns a served message {seq, subject, time, hdr, data} of the
// thread whose token is token into {record} or {corrupt}.
function decodeEvent(thread, token, m) {
  const corrupt = (reason) => ({
    corrupt: { ordinal: m.seq, thread, subject: m.subject, reason, time: m.time ? formatTime(m.time) : "", data: b64(m.data) },
  });
  if (m.hdr === null || m.hdr.length === 0) return corrupt(`no ${H_MSG_ID} header`);
  const h = parseHeaderBlock(m.hdr);
  if (!h) return corrupt("unreadable headers");
  const rawID = firstValue(h.fields, H_MSG_ID);
  if (!rawID || rawID.length === 0) return corrupt(`no ${H_MSG_ID} header`);
  const colon = rawID.indexOf(0x3a);
  if (colon < 0 || latin1.decode(rawID.subarray(0, colon)) !== token || colon === rawID.length - 1) {
    return corrupt(`${H_MSG_ID} does not name an event of this thread`);
  }
  const text = (u8) => {
    try {
      return strict.decode(u8);
    } catch {
      return null;
    }
  };
  const id = text(rawID.subarray(colon + 1));
  if (id === null) return corrupt("ID is not valid UTF-8");
  const rawType = firstValue(h.fields, H_TYPE);
  if (!rawType || rawType.length === 0) return corrupt(`no ${H_TYPE} header`);
  const type = text(rawType);
  if (type === null) return corrupt("type is not valid UTF-8");
  let time = m.time;
  const rawTime = firstValue(h.fields, H_TIME);
  if (rawTime && rawTime.length > 0) {
    time = parseTime(latin1.decode(rawTime));
    if (!time) return corrupt(`bad ${H_TIME} header`);
  }
  let meta = null;
  const rawMeta = firstValue(h.fields, H_META);
  if (rawMeta && rawMeta.length > 0) {
    let v;
    try {
      v = JSON.parse(lenient.decode(rawMeta));
    } catch (err) {
      return corrupt(`bad ${H_META} header: ${err.message}`);
    }
    if (v !== null) {
      if (typeof v !== "object" || Array.isArray(v)) return corrupt(`bad ${H_META} header: not an object`);
      meta = {};
      for (const [k, x] of Object.entries(v)) {
        if (x !== null && typeof x !== "string") return corrupt(`bad ${H_META} header: value of ${JSON.stringify(k)} is not a string`);
        // Lone surrogates from \ud800 escapes become U+FFFD, as in Go.
        meta[lenient.decode(te.encode(k))] = x === null ? "" : lenient.decode(te.encode(x));
      }
      if (Object.keys(meta).length === 0) meta = null;
    }
  }
  const p = eventProblem({ id, type, time, meta });
  if (p) return corrupt(p);
  return { record: { ordinal: m.seq, id, type, time: formatTime(time), data: m.data, meta } };
}

// ---- The client ----

export class Client {
  /**
   * @param nc a connection from @nats-io/transport-node's connect
   * @param opts.scheme subject and stream prefixes (DEFAULT_SCHEME)
   * @param opts.timeout request timeout in milliseconds
   * @param opts.readBatch, opts.readBytes bounds of one batched direct get
   * @param opts.createStreams create a tenant's stream on its first append
   *   (default true) with opts.streamOptions (see streamConfig)
   */
  constructor(nc, opts = {}) {
    this.nc = nc;
    this.js = jetstream(nc, { timeout: opts.timeout || 5000 });
    this.scheme = opts.scheme || DEFAULT_SCHEME;
    this.timeout = opts.timeout || 5000;
    this.readBatch = opts.readBatch || 10000;
    this.readBytes = opts.readBytes || 16 << 20;
    this.api = "$JS.API";
    this.streams = new Map();
    this.createStreams = opts.createStreams ?? true;
    this.streamOptions = opts.streamOptions || {};
  }

  // apiRequest sends a JetStream API request and returns its JSON reply;
  // an error reply is thrown as an ApiError. Every request this client
  // sends is idempotent, so one that times out or meets JetStream briefly
  // unavailable (a meta or stream leader being elected) is sent again, for
  // up to 30 seconds.
  async apiRequest(subject, body) {
    const payload = body === undefined ? undefined : te.encode(JSON.stringify(body));
    const until = Date.now() + 30_000;
    for (let wait = 10; ; wait = Math.min(2 * wait, 500)) {
      let v;
      try {
        const m = await this.nc.request(`${this.api}.${subject}`, payload, { timeout: this.timeout });
        v = JSON.parse(lenient.decode(m.data));
      } catch (err) {
        if (!(isTimeout(err) || noResponders(err)) || Date.now() > until) throw err;
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (v.error && v.error.code === 503 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (v.error) throw new ApiError(v.error, subject);
      return v;
    }
  }

  /** streamConfig is the tenant stream of PROTOCOL.md, "Creating a tenant". */
  streamConfig(tenant, o = {}) {
    return {
      name: streamName(tenant, this.scheme),
      description: "jetsession tenant " + tenant,
      subjects: [tenantFilter(tenant, this.scheme)],
      retention: "limits",
      max_consumers: 0,
      max_msgs: -1,
      max_bytes: o.quotaBytes ?? -1,
      discard: "new",
      max_age: 0,
      max_msgs_per_subject: 0,
      max_msg_size: (o.maxEventBytes ?? LIMITS.eventBytes) + 32768,
      storage: o.storage ?? "file",
      num_replicas: o.replicas ?? 1,
      duplicate_window: o.duplicateWindowNs ?? 120_000_000_000,
      deny_delete: true,
      compression: o.compression ?? "none",
      allow_direct: true,
      mirror_direct: false,
      consumer_limits: {},
      metadata: { "jetsession.tenant": tenant, "jetsession.protocol": "1" },
      allow_atomic: true,
      allow_msg_ttl: true,
    };
  }

  /** createTenant creates the tenant's stream; an existing one is used as it is. */
  async createTenant(tenant, o = {}) {
    validateKey(tenant);
    const cfg = this.streamConfig(tenant, o);
    try {
      await this.apiRequest(`STREAM.CREATE.${cfg.name}`, cfg);
    } catch (err) {
      if (!(err instanceof ApiError && err.errCode === CODES.streamNameInUse)) throw err;
    }
  }

  // streamState returns {replicas, clustered} of a stream, or null when it
  // does not exist.
  async streamState(stream) {
    const cached = this.streams.get(stream);
    if (cached && Date.now() - cached.at < 30_000) return cached;
    let info;
    try {
      info = await this.apiRequest(`STREAM.INFO.${stream}`);
    } catch (err) {
      if (err instanceof ApiError && err.errCode === CODES.streamNotFound) return null;
      throw err;
    }
    const st = { replicas: Math.max(info.config.num_replicas || 1, 1), clustered: !!info.cluster?.raft_group, at: Date.now() };
    this.streams.set(stream, st);
    return st;
  }

  // ---- Append (PROTOCOL.md, "Appending") ----

  /**
   * append stores events ({id?, type, time? (RFC 3339 string), data?
   * (Uint8Array), meta?}) on the thread atomically and returns the last
   * ordinal. Missing IDs and times are filled in the caller's objects, so
   * calling append again with the same objects is an idempotent retry.
   * opts.expectLast makes it conditional.
   */
  async append(tenant, thread, events, opts = {}) {
    validateKey(tenant, thread);
    if (events.length > LIMITS.batchEvents) throw new InvalidError(`${events.length} events, at most ${LIMITS.batchEvents}`);
    const ids = new Set();
    let total = 0;
    for (const [i, e] of events.entries()) {
      e.data = e.data || new Uint8Array(0);
      const time = e.time === undefined ? nowTime() : parseTime(e.time);
      if (!time) throw new InvalidError(`event ${i}: bad time ${JSON.stringify(e.time)}`);
      const p = eventProblem({ id: e.id ?? "x", type: e.type, time, meta: e.meta });
      if (p) throw new InvalidError(`event ${i}: ${p}`);
      if (e.id !== undefined && ids.has(e.id)) throw new InvalidError(`events share the ID ${JSON.stringify(e.id)}`);
      if (e.id !== undefined) ids.add(e.id);
      const size = eventSize({ ...e, id: e.id ?? newID() });
      if (size > LIMITS.eventBytes) throw new InvalidError(`event ${i} is ${size} bytes, at most ${LIMITS.eventBytes}`);
      total += size;
    }
    if (total > LIMITS.batchBytes) throw new InvalidError(`${total} bytes, at most ${LIMITS.batchBytes} per append`);
    for (const e of events) {
      e.id = e.id ?? newID();
      e.time = e.time ?? formatTime(nowTime());
    }
    const subject = threadSubject(tenant, thread, this.scheme);
    if (events.length === 0) return (await this.leaderGet(streamName(tenant, this.scheme), { last_by_subj: subject }))?.seq ?? 0;
    const token = encodeThread(thread);
    const msgs = events.map((e) => {
      const h = natsHeaders();
      h.set(H_MSG_ID, `${token}:${e.id}`);
      h.set(H_TYPE, e.type);
      h.set(H_TIME, formatTime(parseTime(e.time)));
      if (e.meta && Object.keys(e.meta).length > 0) h.set(H_META, JSON.stringify(e.meta));
      return { h, data: e.data };
    });
    if (opts.expectLast !== undefined) msgs[0].h.set("Nats-Expected-Last-Subject-Sequence", String(opts.expectLast));

    // Transient failures are retried with the same IDs, which is safe, for
    // up to 30 seconds.
    let created = false;
    const until = Date.now() + 30_000;
    const pause = (attempt) => new Promise((r) => setTimeout(r, Math.min(100, 2 ** Math.min(attempt, 7))));
    for (let attempt = 0; ; attempt++) {
      let reply;
      try {
        reply = events.length === 1 ? await this.publishOne(subject, msgs[0]) : await this.publishBatch(subject, msgs);
      } catch (err) {
        if (noResponders(err) && Date.now() < until) {
          // No stream listens on the subject: the tenant has none yet, or
          // its new stream has no leader yet.
          if (!created) {
            if (!this.createStreams) throw new Error(`tenant ${JSON.stringify(tenant)} has no stream`);
            await this.createTenant(tenant, this.streamOptions);
            created = true;
          } else await pause(attempt);
          continue;
        }
        if (isTimeout(err) && Date.now() < until) continue; // outcome unknown: the same IDs again are safe
        throw err;
      }
      if (reply.seq) return reply.seq;
      const e = reply.error;
      if (e.err_code === CODES.batchDuplicate) return this.resolveDuplicates(tenant, subject, msgs);
      if ((e.err_code === CODES.wrongLastSequence || e.err_code === CODES.wrongLastSequenceConst) && opts.expectLast !== undefined) {
        // A retry of a conditional append that succeeded fails its condition
        // on a single server: see whether our events are the ones there.
        const last = await this.alreadyAppended(tenant, thread, opts.expectLast, events);
        if (last) return last;
        throw new ConflictError(`expected last ordinal ${opts.expectLast}: ${e.description}`);
      }
      const transient = [CODES.batchIncomplete, CODES.batchTooManyInflight, CODES.duplicateInProcess].includes(e.err_code);
      if (transient && Date.now() < until) {
        await pause(attempt);
        continue;
      }
      throw new ApiError(e, `append to ${subject}`);
    }
  }

  // publishOne sends one event with nats.js's JetStream publish and returns
  // {seq} or {error}.
  async publishOne(subject, msg) {
    try {
      const ack = await this.js.publish(subject, msg.data, { headers: msg.h, timeout: this.timeout });
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      if (typeof err.apiError === "function") return { error: err.apiError() };
      throw err;
    }
  }

  // publishBatch sends an atomic batch by hand (PROTOCOL.md, "Several events
  // atomically"): the first message as a request (the server answers it
  // with an empty message, or an error), the middle ones as plain
  // publishes, the last with Nats-Batch-Commit as a request answered by the
  // batch's acknowledgement.
  async publishBatch(subject, msgs) {
    const id = nuid.next();
    for (const [i, m] of msgs.entries()) {
      m.h.set("Nats-Batch-Id", id);
      m.h.set("Nats-Batch-Sequence", String(i + 1));
      if (i === msgs.length - 1) m.h.set("Nats-Batch-Commit", "1");
      else m.h.delete("Nats-Batch-Commit");
    }
    const first = await this.nc.request(subject, msgs[0].data, { headers: msgs[0].h, timeout: this.timeout });
    if (first.data.length > 0) {
      const v = JSON.parse(lenient.decode(first.data));
      if (v.error) return { error: v.error };
    }
    for (const m of msgs.slice(1, -1)) this.nc.publish(subject, m.data, { headers: m.h });
    const last = msgs[msgs.length - 1];
    const r = await this.nc.request(subject, last.data, { headers: last.h, timeout: this.timeout });
    const ack = JSON.parse(lenient.decode(r.data));
    if (ack.error) return { error: ack.error };
    if (ack.count !== msgs.length) throw new Error(`batch acknowledged ${ack.count} of ${msgs.length} messages`);
    return { seq: ack.seq };
  }

  // resolveDuplicates learns the original ordinals of a batch refused with
  // 10201 (PROTOCOL.md, "Retrying"): each ID is probed with a message that
  // carries it and a condition that never holds, which the server answers
  // as a duplicate (with the original ordinal) or refuses; nothing is stored.
  async resolveDuplicates(tenant, subject, msgs) {
    const st = await this.streamState(streamName(tenant, this.scheme));
    if (!st) throw new Error("stream vanished while resolving a duplicate batch");
    const seqs = await Promise.all(
      msgs.map(async (m) => {
        const h = natsHeaders();
        h.set(H_MSG_ID, m.h.get(H_MSG_ID));
        let refusal;
        if (st.clustered) {
          h.set("Nats-Expected-Last-Sequence", "18446744073709551615");
          refusal = CODES.wrongLastSequence;
        } else {
          h.set("Nats-Expected-Last-Msg-Id", "never-" + newID());
          refusal = CODES.wrongLastMsgID;
        }
        const r = await this.publishOne(subject, { h, data: new Uint8Array(0) });
        if (r.seq && r.duplicate) return r.seq;
        if (r.seq) throw new Error(`duplicate probe was stored as ${r.seq}`);
        if (r.error.err_code === refusal) return 0;
        throw new ApiError(r.error, "duplicate probe");
      }),
    );
    const dups = seqs.filter((s) => s > 0);
    if (dups.length === msgs.length) return Math.max(...dups);
    if (dups.length === 0) throw new Error("batch refused as a duplicate, but no event is one any more; retry");
    throw new PartialRetryError(`${dups.length} of ${msgs.length} events were already appended`);
  }

  async alreadyAppended(tenant, thread, expectLast, events) {
    const { records, corrupt } = await this.load(tenant, thread, expectLast);
    const firstCorrupt = corrupt.length ? corrupt[0].ordinal : Infinity;
    if (records.length < events.length) return 0;
    for (const [i, e] of events.entries()) {
      if (records[i].id !== e.id || records[i].ordinal > firstCorrupt) return 0;
    }
    return records[events.length - 1].ordinal;
  }

  // ---- Read (PROTOCOL.md, "Reading") ----

  // leaderGet reads one message through the stream leader
  // (STREAM.MSG.GET); it returns a served message or null.
  async leaderGet(stream, req) {
    let v;
    try {
      v = await this.apiRequest(`STREAM.MSG.GET.${stream}`, req);
    } catch (err) {
      if (err instanceof ApiError && (err.errCode === CODES.noMessageFound || err.errCode === CODES.streamNotFound)) return null;
      throw err;
    }
    const m = v.message;
    return {
      seq: m.seq,
      subject: m.subject,
      time: parseTime(m.time),
      hdr: m.hdrs ? Uint8Array.from(Buffer.from(m.hdrs, "base64")) : null,
      data: m.data ? Uint8Array.from(Buffer.from(m.data, "base64")) : new Uint8Array(0),
    };
  }

  // directGet sends one batched direct get and returns the verified
  // messages in order, the server's pending count at the end of the batch,
  // and whether it stopped at a reply that is not provably the server's
  // (unverified) or found no replica serving direct gets (unavailable).
  async directGet(stream, filter, seq) {
    const inbox = createInbox();
    const sub = this.nc.subscribe(inbox);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      sub.unsubscribe();
    }, this.timeout);
    const out = { msgs: [], pending: 0, unverified: false, unavailable: false };
    try {
      const body = { seq, next_by_subj: filter, batch: this.readBatch, max_bytes: this.readBytes };
      this.nc.publish(`${this.api}.DIRECT.GET.${stream}`, te.encode(JSON.stringify(body)), { reply: inbox });
      let prev = 0;
      for await (const m of sub) {
        const { hdr, data } = rawParts(m);
        const st = serverStatus(hdr, data);
        if (st) {
          if (st.code === "204") {
            if (st.lastSeq !== prev) out.unverified = true;
            else out.pending = st.pending;
          } else if (st.code === "404") {
            if (prev !== 0) out.unverified = true;
          } else if (st.code === "503") {
            out.unavailable = true;
          } else {
            throw new Error(`direct get of ${stream}: status ${st.code}`);
          }
          return out;
        }
        const sm = serverMessage(hdr, data, stream, filter, prev);
        if (!sm || sm.seq < seq) {
          out.unverified = true;
          return out;
        }
        out.msgs.push(sm);
        prev = sm.seq;
      }
      if (timedOut) throw new natsErrors.TimeoutError();
      return out;
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
  }

  /**
   * load returns the thread's live events after cursor, in order, as
   * {records, corrupt}: records are valid events, corrupt the messages that
   * are not (PROTOCOL.md, "Read policy"), each with its ordinal.
   */
  async load(tenant, thread, cursor = 0) {
    validateKey(tenant, thread);
    const stream = streamName(tenant, this.scheme);
    const subject = threadSubject(tenant, thread, this.scheme);
    const token = encodeThread(thread);
    const out = { records: [], corrupt: [] };
    const add = (m) => {
      const r = decodeEvent(thread, token, m);
      if (r.record) out.records.push(r.record);
      else out.corrupt.push(r.corrupt);
      cursor = m.seq;
    };
    const st = await this.streamState(stream);
    if (!st) return out;
    const fromLeader = async () => {
      const m = await this.leaderGet(stream, { seq: cursor + 1, next_by_subj: subject });
      if (!m || m.seq <= cursor || m.subject !== subject) return false;
      add(m);
      return true;
    };
    if (st.replicas === 1) {
      // One server: it is always current.
      for (;;) {
        const r = await this.directGet(stream, subject, cursor + 1);
        r.msgs.forEach(add);
        if (r.unverified || r.unavailable) {
          if (!(await fromLeader())) return out;
          continue;
        }
        if (r.pending === 0 || r.msgs.length === 0) return out;
      }
    }
    // A replicated stream: ask the leader where the thread starts and ends
    // while a replica answers the direct get, and read until the leader's
    // last event.
    const start = cursor;
    const [first, last, r] = await Promise.all([
      this.leaderGet(stream, { seq: start + 1, next_by_subj: subject }),
      this.leaderGet(stream, { last_by_subj: subject }),
      this.directGet(stream, subject, start + 1),
    ]);
    if (!first || first.seq <= start) return out;
    const head = Math.max(first.seq, last ? last.seq : 0);
    const kept = r.msgs.filter((m) => m.seq >= first.seq); // a lagging replica may still hold archived events
    let leaderNext = r.unverified;
    if (kept.length === 0) {
      add(first);
      leaderNext = false;
    } else kept.forEach(add);
    let stale = 0;
    while (cursor < head) {
      if (leaderNext || stale >= 8) {
        leaderNext = false;
        if (!(await fromLeader())) return out;
        stale = 0;
        continue;
      }
      const r = await this.directGet(stream, subject, cursor + 1);
      r.msgs.forEach(add);
      leaderNext = r.unverified;
      if (r.msgs.length === 0 && !leaderNext) {
        stale++;
        await new Promise((res) => setTimeout(res, stale));
      } else stale = 0;
    }
    return out;
  }

  // ---- Tail (PROTOCOL.md, "Tailing") ----

  /**
   * tail follows a thread (or, with thread null, every thread of the
   * tenant) from cursor, yielding {record, thread} or {corrupt} until
   * signal aborts. onReady is called once the first consumer exists.
   */
  async *tail(tenant, thread, cursor, { signal, onReady } = {}) {
    validateKey(tenant, thread);
    const stream = streamName(tenant, this.scheme);
    const filter = thread === null ? tenantFilter(tenant, this.scheme) : threadSubject(tenant, thread, this.scheme);
    let last = cursor;
    while (!signal?.aborted) {
      const inbox = createInbox();
      const sub = this.nc.subscribe(inbox);
      const name = "jstail_" + newID().replaceAll("-", "");
      const config = {
        name,
        deliver_subject: inbox,
        deliver_policy: "by_start_sequence",
        opt_start_seq: last + 1,
        ack_policy: "none",
        replay_policy: "instant",
        filter_subject: filter,
        flow_control: true,
        idle_heartbeat: 500_000_000,
        mem_storage: true,
        num_replicas: 1,
        inactive_threshold: 30_000_000_000,
      };
      try {
        await this.apiRequest(`CONSUMER.CREATE.${stream}.${name}.${filter}`, { stream_name: stream, action: "create", config });
      } catch (err) {
        sub.unsubscribe();
        if (err instanceof ApiError && err.errCode === CODES.streamNotFound) {
          await new Promise((r) => setTimeout(r, 250)); // the tenant has no stream yet
          continue;
        }
        throw err;
      }
      if (onReady) {
        onReady();
        onReady = null;
      }
      let delivered = 0;
      let silence;
      const arm = () => {
        clearTimeout(silence);
        silence = setTimeout(() => sub.unsubscribe(), 1500); // no message nor heartbeat: recreate
      };
      const stop = () => sub.unsubscribe();
      signal?.addEventListener("abort", stop);
      arm();
      try {
        for await (const m of sub) {
          arm();
          if (!m.reply.startsWith("$JS.ACK.")) {
            // A status message of the consumer: only these carry no ack reply.
            const { hdr } = rawParts(m);
            const h = hdr ? parseHeaderBlock(hdr) : null;
            if (!h || !h.status.startsWith("100")) {
              if (h && /^(404|409|503)/.test(h.status)) break;
              continue;
            }
            if (m.reply) m.respond(); // flow control request
            const stalled = lastValue(h.fields, "Nats-Consumer-Stalled");
            if (stalled) this.nc.publish(stalled);
            const lc = lastValue(h.fields, "Nats-Last-Consumer");
            if (lc !== undefined && Number(lc) !== delivered) break; // a message was lost: recreate
            continue;
          }
          const meta = parseAckReply(m.reply);
          if (!meta || meta.cseq !== delivered + 1) break; // a gap: recreate after the last one yielded
          delivered = meta.cseq;
          if (meta.sseq <= last) continue;
          const { hdr, data } = rawParts(m);
          const served = { seq: meta.sseq, subject: m.subject, time: meta.time, hdr, data };
          last = meta.sseq;
          let th = thread;
          if (th === null) {
            const prefix = `${this.scheme.subjectPrefix}.${encodeTenant(tenant)}.`;
            th = m.subject.startsWith(prefix) ? decodeThread(m.subject.slice(prefix.length)) : null;
            if (th === null) {
              yield { corrupt: { ordinal: meta.sseq, thread: "", subject: m.subject, reason: "subject names no valid thread", time: formatTime(meta.time), data: b64(data) } };
              continue;
            }
          }
          const r = decodeEvent(th, encodeThread(th), served);
          yield r.record ? { record: r.record, thread: th } : { corrupt: r.corrupt };
        }
      } finally {
        clearTimeout(silence);
        signal?.removeEventListener("abort", stop);
        sub.unsubscribe();
        this.apiRequest(`CONSUMER.DELETE.${stream}.${name}`).catch(() => {});
      }
    }
  }

  // ---- Archive (PROTOCOL.md, "Archiving") ----

  /** archive purges the thread's events up to watermark and returns how many the server removed. */
  async archive(tenant, thread, watermark) {
    validateKey(tenant, thread);
    if (watermark <= 0) return 0;
    const stream = streamName(tenant, this.scheme);
    try {
      const r = await this.apiRequest(`STREAM.PURGE.${stream}`, { filter: threadSubject(tenant, thread, this.scheme), seq: watermark + 1 });
      return r.purged;
    } catch (err) {
      if (err instanceof ApiError && err.errCode === CODES.streamNotFound) return 0;
      throw err;
    }
  }
}

// serverStatus returns {code, pending, lastSeq} when the reply is a status
// reply exactly as the server writes it, else null. A writer cannot store a
// status line (the server strips it), so a stored message never matches.
function serverStatus(hdr, data) {
  if (!hdr || data.length !== 0) return null;
  const s = latin1.decode(hdr);
  let m = /^NATS\/1\.0 204 EOB\r\nNats-Num-Pending: (\d+)\r\nNats-Last-Sequence: (\d+)\r\n(?:Nats-UpTo-Sequence: \d+\r\n)?\r\n$/.exec(s);
  if (m) return { code: "204", pending: Number(m[1]), lastSeq: Number(m[2]) };
  m = /^NATS\/1\.0 (404|408|503)(?: [A-Za-z ]+)?\r\n\r\n$/.exec(s);
  if (m) return { code: m[1] };
  return null;
}

// serverMessage verifies a message reply of a batched direct get and returns
// it as a served message, or null: the block must end at its first empty
// line (nothing hidden after it), and the last values of the server's
// headers must name the stream asked, a subject in the filter, a sequence
// after prev, and chain to prev by Nats-Last-Sequence.
function serverMessage(hdr, data, stream, filter, prev) {
  if (!hdr) return null;
  const h = parseHeaderBlock(hdr);
  if (!h || !h.atEnd || h.status !== "") return null;
  if (lastValue(h.fields, "Nats-Stream") !== stream) return null;
  const subject = lastValue(h.fields, "Nats-Subject");
  if (subject === undefined || !inFilter(subject, filter)) return null;
  const seq = uint(lastValue(h.fields, "Nats-Sequence"));
  if (seq === null || seq <= prev) return null;
  if (uint(lastValue(h.fields, "Nats-Last-Sequence")) !== prev) return null;
  const time = parseTime(lastValue(h.fields, "Nats-Time-Stamp") ?? "");
  if (!time) return null;
  return { seq, subject, time, hdr, data };
}

function isTimeout(err) {
  for (let e = err; e; e = e.cause) if (e instanceof natsErrors.TimeoutError) return true;
  return false;
}

// noResponders recognises a request nobody answered: nats.js reports a
// JetStream publish to a subject no stream listens on as JetStreamNotEnabled.
function noResponders(err) {
  for (let e = err; e; e = e.cause) {
    if (e instanceof RequestError && e.isNoResponders()) return true;
    if (e instanceof natsErrors.NoRespondersError || e.name === "JetStreamNotEnabled") return true;
  }
  return false;
}

function uint(s) {
  if (s === undefined || !/^\d{1,16}$/.test(s)) return null; // ordinals JavaScript numbers hold exactly
  return Number(s);
}

function inFilter(subject, filter) {
  if (filter.endsWith(".*")) {
    const prefix = filter.slice(0, -1);
    const rest = subject.startsWith(prefix) ? subject.slice(prefix.length) : "";
    return rest !== "" && !rest.includes(".");
  }
  return subject === filter;
}

// parseAckReply reads the server's sequences and time from a consumer
// delivery's reply subject: $JS.ACK.<stream>.<consumer>.<delivered>.
// <stream seq>.<consumer seq>.<time ns>.<pending> (or, with a domain and an
// account hash after $JS.ACK, the same fields and a trailing token).
function parseAckReply(reply) {
  const t = reply.split(".");
  let f;
  if (t.length === 9) f = t.slice(2);
  else if (t.length >= 12) f = t.slice(4);
  else return null;
  const ns = /^\d+$/.test(f[5]) ? BigInt(f[5]) : null;
  const sseq = uint(f[3]);
  const cseq = uint(f[4]);
  if (ns === null || sseq === null || cseq === null) return null;
  return { stream: f[0], sseq, cseq, time: { sec: ns / 1_000_000_000n, nsec: Number(ns % 1_000_000_000n) } };
}

export { RequestError };
