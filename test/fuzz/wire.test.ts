// Mutated protobuf bytes against the real server (fixture bundle, --devices cpu, loopback),
// sent through a grpc-js Client with passthrough serializers so the bytes reach the server as
// generated: valid ScoreRequest / ScoreStreamRequest encodings, then bit flips, truncation,
// insertion, overwrites, deletion, random bytes, invalid UTF-8 in string fields, huge length
// prefixes and one oversized message, chosen by fast-check.
//
// Property: every call answers, within its deadline, either OK with bytes that decode as a
// ScoreResponse (one prediction per comparison when the request decodes; each prediction either
// finite probabilities summing to 1 within 1e-6, or a row error with code 3 INVALID_ARGUMENT),
// or a call-level INVALID_ARGUMENT (3) or RESOURCE_EXHAUSTED (8); never INTERNAL (13), UNKNOWN
// (2) or a hang. A string field holding invalid UTF-8 is refused (its row, or the call) with
// INVALID_ARGUMENT, never silently replaced. Afterwards health still answers SERVING and a
// valid row still scores.
//
// Replay a failure with the seed fast-check prints: PAIRPREF_FUZZ_SEED=<seed>.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { serveModel } from '../../cli/wiring.ts';
import { turnsToRaw } from '../../core/parse.ts';
import { Prediction, ScoreResponse } from '../../proto/gen/pairpref/v1/preference.ts';
import { SERVICE_NAME, type RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';

const SEED = process.env.PAIRPREF_FUZZ_SEED === undefined ? 20_240_612 : Number(process.env.PAIRPREF_FUZZ_SEED);
const RUNS = Math.max(1, Number(process.env.PAIRPREF_FUZZ_RUNS ?? 1));
/** Shrinking talks to the server too: cap the whole property (runs + shrinking) in time. */
const params = <T,>(numRuns: number, limitMs: number): fc.Parameters<T> => ({
  seed: SEED,
  numRuns: Math.ceil(numRuns * RUNS),
  includeErrorInReport: true,
  plugins: [fc.interruptAfterTimeLimit(limitMs * RUNS)],
});

const SCORE = '/pairpref.v1.PairwisePreference/Score';
const SCORE_STREAM = '/pairpref.v1.PairwisePreference/ScoreStream';
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
/** The server's largest request in these tests, so one mutation can exceed it. */
const MAX_MESSAGE_BYTES = 256 * 1024;
const CALL_DEADLINE_MS = 10_000;
const MAX_LENGTH = 256; // fixture bundle truncation.max_length

const passthrough = (b: Buffer): Buffer => b;

// ---- building request bytes ----------------------------------------------------------------

/** A string field's content: text (encoded as UTF-8) or raw bytes (possibly invalid UTF-8). */
type Text = string | Uint8Array;

interface RawRow {
  readonly prompt: Text;
  readonly responseA: Text;
  readonly responseB: Text;
}
interface Row {
  readonly id: Text;
  readonly prompt: readonly Text[];
  readonly responseA: readonly Text[];
  readonly responseB: readonly Text[];
  readonly raw: RawRow | null;
}

function putText(w: BinaryWriter, tag: number, t: Text): void {
  w.uint32(tag);
  if (typeof t === 'string') w.string(t);
  else w.bytes(t);
}

/** Comparison: id=1, prompt=2, response_a=3, response_b=4, raw=5 {prompt=1, response_a=2, response_b=3}. */
function putComparison(w: BinaryWriter, r: Row): void {
  if (!(typeof r.id === 'string' && r.id === '')) putText(w, 10, r.id);
  for (const t of r.prompt) putText(w, 18, t);
  for (const t of r.responseA) putText(w, 26, t);
  for (const t of r.responseB) putText(w, 34, t);
  if (r.raw) {
    w.uint32(42).fork();
    putText(w, 10, r.raw.prompt);
    putText(w, 18, r.raw.responseA);
    putText(w, 26, r.raw.responseB);
    w.join();
  }
}

function putOptions(w: BinaryWriter, swapTta: boolean | null): void {
  if (swapTta === null) return;
  w.uint32(18).fork();
  if (swapTta) w.uint32(8).bool(true);
  w.join();
}

/** ScoreRequest: comparisons=1 (repeated), options=2. */
function scoreRequestBytes(rows: readonly Row[], swapTta: boolean | null): Uint8Array {
  const w = new BinaryWriter();
  for (const r of rows) {
    w.uint32(10).fork();
    putComparison(w, r);
    w.join();
  }
  putOptions(w, swapTta);
  return w.finish();
}

/** ScoreStreamRequest: comparison=1, options=2. */
function streamRequestBytes(row: Row | null, swapTta: boolean | null): Uint8Array {
  const w = new BinaryWriter();
  if (row) {
    w.uint32(10).fork();
    putComparison(w, row);
    w.join();
  }
  putOptions(w, swapTta);
  return w.finish();
}

function varint(v: bigint): number[] {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

// ---- arbitraries ---------------------------------------------------------------------------

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', 'hi', '😀 ok?', '["a"]', 'null', '\u0000', 'a'.repeat(300)),
);

/** Byte sequences that are not UTF-8: stray continuation, overlong, surrogate, truncated, out of range, 0xFE/0xFF. */
const badUtf8Core = fc.constantFrom(
  [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xe2, 0x82],
  [0xf0, 0x9f, 0x98], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfe], [0xff], [0xc3], [0xc3, 0x28],
);
const badUtf8: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.string({ unit: 'grapheme-ascii', maxLength: 6 }), badUtf8Core, fc.string({ unit: 'grapheme', maxLength: 6 }))
  .map(([pre, bad, post]) => {
    const enc = new TextEncoder();
    return Uint8Array.from([...enc.encode(pre), ...bad, ...enc.encode(post)]);
  });

const turnsArb = fc.array(text, { maxLength: 3 });
const idArb = fc.oneof({ weight: 9, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }) }, { weight: 1, arbitrary: fc.constant('') });
const rawTextArb = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.option(text, { nil: null, freq: 5 }), { maxLength: 3 }).map(turnsToRaw) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 2 }) },
  { weight: 1, arbitrary: text },
);
const validRow: fc.Arbitrary<Row> = fc.oneof(
  fc.record({ id: idArb, prompt: turnsArb, responseA: turnsArb, responseB: turnsArb, raw: fc.constant(null) }),
  fc.record({
    id: idArb,
    prompt: fc.constant([]),
    responseA: fc.constant([]),
    responseB: fc.constant([]),
    raw: fc.record({ prompt: rawTextArb, responseA: rawTextArb, responseB: rawTextArb }),
  }),
);

/** Which string field of a row holds the invalid UTF-8. */
const BAD_SLOTS = ['id', 'prompt', 'responseA', 'responseB', 'raw.prompt', 'raw.responseA', 'raw.responseB'] as const;
type BadSlot = (typeof BAD_SLOTS)[number];

function withBadField(r: Row, slot: BadSlot, bad: Uint8Array): Row {
  if (slot === 'id') return { ...r, id: bad };
  if (slot.startsWith('raw.')) {
    const key = slot.slice(4) as keyof RawRow;
    const raw: RawRow = r.raw ?? { prompt: '[]', responseA: '[]', responseB: '[]' };
    return { ...r, prompt: [], responseA: [], responseB: [], raw: { ...raw, [key]: bad } };
  }
  const key = slot as 'prompt' | 'responseA' | 'responseB';
  return { ...r, raw: null, [key]: [...r[key], bad] };
}

/** A well-typed, decodable, valid row (non-empty id, JSON lists) that must score. */
const goodRow: fc.Arbitrary<Row> = fc.oneof(
  fc.record({
    id: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }),
    prompt: turnsArb,
    responseA: turnsArb,
    responseB: turnsArb,
    raw: fc.constant(null),
  }),
  fc.record({
    id: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }),
    prompt: fc.constant([]),
    responseA: fc.constant([]),
    responseB: fc.constant([]),
    raw: fc.record({ prompt: turnsArb.map(turnsToRaw), responseA: turnsArb.map(turnsToRaw), responseB: turnsArb.map(turnsToRaw) }),
  }),
);

const rowMaybeBad: fc.Arbitrary<Row> = fc.oneof(
  { weight: 5, arbitrary: validRow },
  { weight: 1, arbitrary: fc.tuple(validRow, fc.constantFrom(...BAD_SLOTS), badUtf8).map(([r, slot, bad]) => withBadField(r, slot, bad)) },
);
const swapArb = fc.constantFrom(null, false, true);

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'huge-length'; at: number; tag: number; len: bigint; tail: Uint8Array }
  | { kind: 'bad-varint'; at: number }
  | { kind: 'stray-tag'; at: number; bytes: Uint8Array }
  | { kind: 'oversize' };

const HUGE_LENGTHS = [2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n + 7n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(MAX_MESSAGE_BYTES) + 1n];
const smallBytes = fc.uint8Array({ minLength: 1, maxLength: 12 });

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: smallBytes }),
  fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: smallBytes }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant('huge-length' as const),
    at: fc.nat(),
    // Known fields (comparisons/comparison=1, options=2, Comparison's string fields) and others.
    tag: fc.oneof(fc.constantFrom(10, 18, 26, 34, 42), fc.integer({ min: 1, max: 2 ** 29 - 1 }).map((f) => f * 8 + 2)),
    len: fc.constantFrom(...HUGE_LENGTHS),
    tail: fc.uint8Array({ maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('bad-varint' as const), at: fc.nat() }),
  // Tags no message may hold where they land: field number 0, an end-group without its group, a group never closed, wire types 6/7.
  fc.record({
    kind: fc.constant('stray-tag' as const),
    at: fc.nat(),
    bytes: fc.constantFrom([0x00], [0x02, 0x00], [0x0c], [0x04], [0xac, 0x03], [0x0b], [0x1b, 0x08, 0x01], [0x0e], [0x0f]).map((b) => Uint8Array.from(b)),
  }),
);

function mutate(base: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b: Uint8Array = Uint8Array.from(base);
  const cat = (...parts: ArrayLike<number>[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
  for (const m of muts) {
    const at = m.kind === 'oversize' ? 0 : m.at % (b.length + 1);
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[m.at % b.length]! ^= 1 << m.bit;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert':
      case 'stray-tag':
        b = cat(b.slice(0, at), m.bytes, b.slice(at));
        break;
      case 'overwrite':
        b = cat(b.slice(0, at), m.bytes, b.slice(Math.min(b.length, at + m.bytes.length)));
        break;
      case 'delete':
        b = cat(b.slice(0, at), b.slice(at + m.len));
        break;
      case 'huge-length':
        b = cat(b.slice(0, at), varint(BigInt(m.tag)), varint(m.len), m.tail, b.slice(at));
        break;
      case 'bad-varint': // an 11-byte varint after a length-delimited tag: longer than any varint may be
        b = cat(b.slice(0, at), [10], new Array<number>(10).fill(0xff), [0x01], b.slice(at));
        break;
      case 'oversize': // a valid unknown field (number 15, bytes) that takes the message past the server's limit
        b = cat(b, varint(15n * 8n + 2n), varint(BigInt(MAX_MESSAGE_BYTES)), new Uint8Array(MAX_MESSAGE_BYTES));
        break;
    }
  }
  return b;
}

const mutations: fc.Arbitrary<Mutation[]> = fc.oneof(
  { weight: 12, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
  { weight: 3, arbitrary: fc.constant<Mutation[]>([]) }, // the (possibly invalid UTF-8) request as built
  { weight: 1, arbitrary: fc.constant<Mutation[]>([{ kind: 'oversize' }]) },
);

/** Request bytes: a built request, mutated, or entirely random bytes. */
const scoreBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.array(rowMaybeBad, { maxLength: 4 }), swapArb, mutations).map(([rows, s, m]) => mutate(scoreRequestBytes(rows, s), m)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
);
const streamMessageBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.option(rowMaybeBad, { nil: null, freq: 8 }), swapArb, mutations).map(([row, s, m]) => mutate(streamRequestBytes(row, s), m)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }) },
);

// ---- calls and checks ----------------------------------------------------------------------

type Answer = { ok: true; bytes: Buffer } | { ok: false; code: number; details: string };

function unary(client: Client, method: string, bytes: Uint8Array): Promise<Answer> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, passthrough, passthrough, Buffer.from(bytes), { deadline: Date.now() + CALL_DEADLINE_MS }, (err: ServiceError | null, res?: Buffer) =>
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, bytes: res ?? Buffer.alloc(0) }),
    );
  });
}

interface StreamAnswer {
  readonly messages: Buffer[];
  readonly code: number;
  readonly details: string;
}

function bidi(client: Client, messages: readonly Uint8Array[]): Promise<StreamAnswer> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(SCORE_STREAM, passthrough, passthrough, { deadline: Date.now() + CALL_DEADLINE_MS });
    const got: Buffer[] = [];
    call.on('data', (b: Buffer) => got.push(b));
    // 'status' comes once, after the last message, for OK and errors alike; 'error' precedes a non-OK status.
    call.on('error', () => {});
    call.on('status', (s: { code: number; details: string }) => resolve({ messages: got, code: s.code, details: s.details }));
    for (const m of messages) call.write(Buffer.from(m));
    call.end();
  });
}

const hex = (b: Uint8Array): string => (b.length > 96 ? `${Buffer.from(b.subarray(0, 96)).toString('hex')}...(${b.length} bytes)` : Buffer.from(b).toString('hex'));
const CALL_LEVEL_OK: ReadonlySet<number> = new Set([status.INVALID_ARGUMENT, status.RESOURCE_EXHAUSTED]);

function tryDecode<T>(decode: (b: Uint8Array) => T, bytes: Uint8Array): T | null {
  try {
    return decode(bytes);
  } catch {
    return null;
  }
}

/** A prediction is finite probabilities summing to 1, or a code-3 row error with zero probabilities. */
function checkPrediction(p: Prediction, expectedId: string | null, what: string): void {
  const probs = [p.winnerModelA, p.winnerModelB, p.winnerTie];
  if (p.error) {
    assert.equal(p.error.code, status.INVALID_ARGUMENT, `${what}: row error code ${p.error.code} (${p.error.field}: ${p.error.message}), expected 3`);
    assert.deepEqual(probs, [0, 0, 0], `${what}: a row error carries zero probabilities`);
    return;
  }
  for (const x of probs) assert.ok(Number.isFinite(x) && x >= 0 && x <= 1, `${what}: probability ${x}`);
  assert.ok(Math.abs(probs[0]! + probs[1]! + probs[2]! - 1) <= 1e-6, `${what}: probabilities sum to ${probs[0]! + probs[1]! + probs[2]!}`);
  assert.ok(p.numTokens >= 1 && p.numTokens <= MAX_LENGTH, `${what}: num_tokens ${p.numTokens}`);
  if (expectedId !== null) assert.equal(p.id, expectedId, `${what}: id`);
}

// ---- the oracle: a strict protobuf reader, independent of the generated code ----------------
//
// ts-proto's decode stops a message early at field number 0 or an end-group tag and goes on
// reading the outer message from the middle of the inner one, so it cannot say which bytes are a
// request. This reader follows the protobuf encoding spec: field numbers >= 1, wire types 0-5,
// varints of at most 10 bytes, lengths inside the message, groups closed by their own end-group
// tag, known message fields (Comparison, RawComparison, ScoreOptions) parsed strictly as well. A
// known field with another wire type is an unknown field, as in every protobuf runtime.

class Malformed extends Error {}

interface Schema {
  readonly [fieldNo: number]: 'string' | 'bool' | Schema;
}
const RAW_SCHEMA: Schema = { 1: 'string', 2: 'string', 3: 'string' };
const COMPARISON_SCHEMA: Schema = { 1: 'string', 2: 'string', 3: 'string', 4: 'string', 5: RAW_SCHEMA };
const OPTIONS_SCHEMA: Schema = { 1: 'bool' };

function readVarint(b: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new Malformed('varint runs past the end');
    const byte = b[pos++]!;
    v |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return [v, pos];
  }
  throw new Malformed('varint longer than 10 bytes');
}

type Field = { no: number; wt: number; body: Uint8Array | null };

/** Splits one message into its fields; throws Malformed when it cannot be framed. */
function fields(b: Uint8Array, depth = 0): Field[] {
  if (depth > 64) throw new Malformed('groups nested too deep');
  const out: Field[] = [];
  let pos = 0;
  const end = b.length;
  while (pos < end) {
    let tag: bigint;
    [tag, pos] = readVarint(b, pos);
    if (tag > 0xffffffffn) throw new Malformed('tag overflows uint32');
    const no = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (no === 0) throw new Malformed('field number 0');
    switch (wt) {
      case 0:
        [, pos] = readVarint(b, pos);
        out.push({ no, wt, body: null });
        break;
      case 1:
      case 5:
        pos += wt === 1 ? 8 : 4;
        if (pos > end) throw new Malformed('fixed-width field runs past the end');
        out.push({ no, wt, body: null });
        break;
      case 2: {
        let len: bigint;
        [len, pos] = readVarint(b, pos);
        if (len > BigInt(end - pos)) throw new Malformed('length runs past the end');
        out.push({ no, wt, body: b.subarray(pos, pos + Number(len)) });
        pos += Number(len);
        break;
      }
      case 3: {
        // A group: skip to its own end-group tag.
        let depthHere = 0;
        for (;;) {
          let t: bigint;
          [t, pos] = readVarint(b, pos);
          const gno = Number(t >> 3n);
          const gwt = Number(t & 7n);
          if (gno === 0 || gwt > 5 || t > 0xffffffffn) throw new Malformed('bad tag inside a group');
          if (gwt === 4) {
            if (depthHere === 0) {
              if (gno !== no) throw new Malformed('end-group tag of another group');
              break;
            }
            depthHere--;
          } else if (gwt === 3) depthHere++;
          else if (gwt === 0) [, pos] = readVarint(b, pos);
          else if (gwt === 1 || gwt === 5) {
            pos += gwt === 1 ? 8 : 4;
            if (pos > end) throw new Malformed('group runs past the end');
          } else {
            let len: bigint;
            [len, pos] = readVarint(b, pos);
            if (len > BigInt(end - pos)) throw new Malformed('length runs past the end');
            pos += Number(len);
          }
          if (depthHere > 64) throw new Malformed('groups nested too deep');
        }
        out.push({ no, wt, body: null });
        break;
      }
      default:
        throw new Malformed(wt === 4 ? 'end-group tag without a group' : `wire type ${wt}`);
    }
  }
  return out;
}

/** Strictly checks a message against a schema (known message fields recursively). */
function checkMessage(b: Uint8Array, schema: Schema): void {
  for (const f of fields(b)) {
    const kind = schema[f.no];
    if (typeof kind === 'object' && f.wt === 2) checkMessage(f.body!, kind);
  }
}

const lenientUtf8 = new TextDecoder('utf-8');

interface FramedComparison {
  readonly id: string;
  /** Its bytes parse strictly as a Comparison. */
  readonly strict: boolean;
}
interface FramedRequest {
  readonly comparisons: readonly FramedComparison[];
  /** Everything parses strictly (envelope, every comparison, options). */
  readonly strict: boolean;
}

/** ScoreRequest / ScoreStreamRequest envelope (comparison(s) = 1, options = 2); null when it cannot be framed. */
function frameRequest(b: Uint8Array): FramedRequest | null {
  let top: Field[];
  try {
    top = fields(b);
  } catch (e) {
    if (e instanceof Malformed) return null;
    throw e;
  }
  let strict = true;
  const comparisons: FramedComparison[] = [];
  for (const f of top) {
    if (f.no === 1 && f.wt === 2) {
      let ok = true;
      let id = '';
      try {
        for (const cf of fields(f.body!)) {
          if (cf.no === 1 && cf.wt === 2) id = lenientUtf8.decode(cf.body!);
          if (cf.no === 5 && cf.wt === 2) checkMessage(cf.body!, RAW_SCHEMA);
        }
      } catch (e) {
        if (!(e instanceof Malformed)) throw e;
        ok = false;
      }
      strict &&= ok;
      comparisons.push({ id, strict: ok });
    } else if (f.no === 2 && f.wt === 2) {
      try {
        checkMessage(f.body!, OPTIONS_SCHEMA);
      } catch (e) {
        if (!(e instanceof Malformed)) throw e;
        strict = false;
      }
    }
  }
  return { comparisons, strict };
}

function checkUnaryAnswer(req: Uint8Array, a: Answer): void {
  const what = `Score(${hex(req)})`;
  if (!a.ok) {
    assert.ok(CALL_LEVEL_OK.has(a.code), `${what}: call status ${a.code} (${status[a.code]}: ${a.details}); expected OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED`);
    return;
  }
  const res = tryDecode((b) => ScoreResponse.decode(b), a.bytes);
  assert.ok(res !== null, `${what}: OK answer does not decode as a ScoreResponse: ${hex(a.bytes)}`);
  const framed = frameRequest(req);
  if (framed !== null) {
    assert.equal(res.predictions.length, framed.comparisons.length, `${what}: one prediction per comparison`);
  }
  res.predictions.forEach((p, i) => {
    const c = framed?.comparisons[i];
    checkPrediction(p, c?.strict ? c.id : null, `${what} row ${i}`);
  });
}

function isValidUtf8(b: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Reads one HealthCheckResponse (status = field 1, enum; SERVING = 1). */
function healthStatus(bytes: Uint8Array): number {
  const r = new BinaryReader(bytes);
  let s = 0;
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === 0) s = r.int32();
    else r.skip(wireType);
  }
  return s;
}

describe('fuzz: mutated protobuf bytes against the real server (fixture bundle, cpu)', () => {
  let server: RunningServer;
  let client: Client;
  let bundleDir: string;

  before(async () => {
    bundleDir = mkdtempSync(join(tmpdir(), 'pairpref-fuzz-'));
    writeFixtureBundle(bundleDir);
    server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', maxMessageBytes: MAX_MESSAGE_BYTES });
    client = new Client(server.address, credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await server?.close();
    rmSync(bundleDir, { recursive: true, force: true });
  });

  test('Score: mutated ScoreRequest bytes get a well-formed answer or INVALID_ARGUMENT / RESOURCE_EXHAUSTED', async () => {
    await fc.assert(
      fc.asyncProperty(scoreBytes, async (req) => checkUnaryAnswer(req, await unary(client, SCORE, req))),
      params(600, 30_000),
    );
  });

  test('Score: a string field with invalid UTF-8 is refused with INVALID_ARGUMENT (its row or the call), the other rows score', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(goodRow, { maxLength: 3 }),
        goodRow,
        fc.constantFrom(...BAD_SLOTS),
        badUtf8,
        fc.nat(),
        async (others, row, slot, bad, at) => {
          assert.ok(!isValidUtf8(bad));
          const rows = [...others];
          const k = at % (rows.length + 1);
          rows.splice(k, 0, withBadField(row, slot, bad));
          const req = scoreRequestBytes(rows, null);
          const a = await unary(client, SCORE, req);
          const what = `Score with invalid UTF-8 in row ${k}'s ${slot} (${hex(bad)}; request ${hex(req)})`;
          if (!a.ok) {
            assert.equal(a.code, status.INVALID_ARGUMENT, `${what}: call status ${a.code} (${status[a.code]}: ${a.details})`);
            return;
          }
          const res = ScoreResponse.decode(a.bytes);
          assert.equal(res.predictions.length, rows.length, `${what}: one prediction per row`);
          res.predictions.forEach((p, i) => {
            if (i === k) {
              assert.ok(p.error, `${what}: the row was scored (id ${JSON.stringify(p.id)}, probabilities ${p.winnerModelA}, ${p.winnerModelB}, ${p.winnerTie}) instead of refused`);
              assert.equal(p.error.code, status.INVALID_ARGUMENT, `${what}: row error ${p.error.code} (${p.error.message})`);
            } else {
              assert.equal(p.error, undefined, `${what}: valid row ${i} failed: ${p.error?.message}`);
              checkPrediction(p, typeof rows[i]!.id === 'string' ? (rows[i]!.id as string) : null, `${what} row ${i}`);
            }
          });
        },
      ),
      params(100, 15_000),
    );
  });

  test(
    'Score: a comparison whose bytes are not a valid protobuf Comparison is refused, not scored from the fields before the fault',
    async () => {
      await fc.assert(
        fc.asyncProperty(scoreBytes, async (req) => {
          const framed = frameRequest(req);
          if (framed === null || framed.strict) return;
          const a = await unary(client, SCORE, req);
          if (!a.ok) return;
          ScoreResponse.decode(a.bytes).predictions.forEach((p, i) => {
            const c = framed.comparisons[i];
            if (c && !c.strict) assert.ok(p.error, `Score(${hex(req)}): comparison ${i} is not a valid Comparison but was scored (id ${JSON.stringify(p.id)})`);
          });
        }),
        params(300, 5_000),
      );
    },
  );

  test('ScoreStream: mutated ScoreStreamRequest messages get one well-formed prediction each, or INVALID_ARGUMENT / RESOURCE_EXHAUSTED', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(streamMessageBytes, { minLength: 1, maxLength: 6 }), async (msgs) => {
        const a = await bidi(client, msgs);
        const what = `ScoreStream(${msgs.map(hex).join(' | ')})`;
        if (a.code !== status.OK) {
          assert.ok(CALL_LEVEL_OK.has(a.code), `${what}: stream status ${a.code} (${status[a.code]}: ${a.details}) after ${a.messages.length} predictions`);
        } else {
          assert.equal(a.messages.length, msgs.length, `${what}: one prediction per message`);
        }
        // Ids are checked when every message parses strictly (a stream message's comparison is its last one).
        const framed = msgs.map(frameRequest);
        const ids = framed.every((f) => f?.strict) ? new Set(framed.map((f) => f!.comparisons.at(-1)?.id ?? '')) : null;
        a.messages.forEach((m, i) => {
          const p = tryDecode((b) => Prediction.decode(b), m);
          assert.ok(p !== null, `${what}: streamed message ${i} does not decode as a Prediction: ${hex(m)}`);
          checkPrediction(p, null, `${what} prediction ${i}`);
          if (!p.error && ids) assert.ok(ids.has(p.id), `${what}: prediction ${i} has id ${JSON.stringify(p.id)}, not one of the rows sent`);
        });
      }),
      params(200, 20_000),
    );
  });

  test('afterwards: health answers SERVING and a valid row still scores', async () => {
    for (const service of ['', SERVICE_NAME]) {
      const req = service === '' ? new Uint8Array(0) : new BinaryWriter().uint32(10).string(service).finish();
      const a = await unary(client, HEALTH_CHECK, req);
      assert.ok(a.ok, `health check of "${service}" failed: ${a.ok ? '' : `${a.code} ${a.details}`}`);
      assert.equal(healthStatus(a.bytes), 1, `health of "${service}" is SERVING (1)`);
    }
    const tc = testClient(server.address);
    try {
      const [p] = await tc.score([wire({ id: 'after-fuzz', prompt: ['hi'], responseA: ['hello'], responseB: ['hey'] })]);
      assert.ok(p);
      checkPrediction(p, 'after-fuzz', 'valid row after the fuzzing');
      assert.equal(p.error, undefined);
      const streamed = await tc.scoreStream([wire({ id: 's1', raw: { prompt: '["x"]', responseA: '["y"]', responseB: '["z"]' } })]);
      assert.equal(streamed.length, 1);
      checkPrediction(streamed[0]!, 's1', 'valid streamed row after the fuzzing');
      assert.equal(streamed[0]!.error, undefined);
    } finally {
      tc.close();
    }
  });
});
