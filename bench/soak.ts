// Soak test (not in CI): `node --import tsx bench/soak.ts [--minutes 10] [--model models/default]`.
//
// Starts `pairpref serve` as a child process (bench/processes.ts) on loopback and runs mixed traffic
// against it, concurrently and bounded, for the given minutes: streaming clients keeping a window of
// rows in flight, unary calls of various sizes, calls cancelled mid-flight, calls with tiny deadlines,
// oversized rows (a 2 MB field), bad rows, and a stream client that writes rows but never reads its
// answers. Every few seconds it samples the server's RSS (/proc/<pid>/status VmRSS) and main-thread
// V8 heap (`pairpref_process_nodejs_heap_size_used_bytes` from --metrics-port). At the end it prints
// the samples, the least-squares slope of RSS and heap in MiB/min over the second half of the run,
// and the count of every outcome. Every loop stops at the end time; every call has a deadline; the
// server is stopped at the end (and killed with the harness if it dies).
import { Metadata, credentials, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PairwisePreferenceClient, type Comparison, type Prediction, type ScoreResponse, type ScoreStreamRequest } from '../proto/gen/pairpref/v1/preference.ts';
import { startPairpref, type Served } from './processes.ts';

const MiB = 1024 * 1024;

// ---- options -------------------------------------------------------------------------------

const { values: argv } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    model: { type: 'string', default: 'models/default' },
    devices: { type: 'string', default: 'cpu' },
    'sample-seconds': { type: 'string', default: '' },
    seed: { type: 'string', default: '1' },
  },
  strict: true,
});
const minutes = Number(argv.minutes);
if (!(minutes > 0 && minutes <= 24 * 60)) throw new Error(`--minutes must be in (0, 1440] (got ${argv.minutes})`);
const durationMs = minutes * 60_000;
/** Default: every 5 s, but at least ~24 samples on short runs. */
const sampleMs = argv['sample-seconds'] ? Number(argv['sample-seconds']) * 1000 : Math.max(1000, Math.min(5000, durationMs / 24));
const modelDir = resolve(argv.model);
if (!existsSync(resolve(modelDir, 'preference.json'))) throw new Error(`--model ${modelDir}: no preference.json there`);

// ---- rows ----------------------------------------------------------------------------------

/** xorshift32: reproducible traffic for a given --seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}
const rand = rng(Number(argv.seed));
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

const WORDS = (
  'the a of to and in is it that for you with as on be this are or by not an can use model answer code ' +
  'function value list data user question response better example first second because however which ' +
  'python return error memory stream server token batch 😀 naïve café ß 東京 données Ελληνικά'
).split(' ');

function prose(words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    let w = pick(WORDS);
    if (i % 12 === 0) w = w[0]!.toUpperCase() + w.slice(1);
    out.push(w);
    if (rand() < 0.08) out.push(pick(['.', ',', '?', '\n', '\n\n- ', '\n```\n', '**']));
  }
  return out.join(' ');
}

let rowSeq = 0;
const nextId = (tag: string): string => `${tag}-${(rowSeq++).toString(36)}`;

/** A row of Arena-like shape: short to long texts, sometimes multi-turn, sometimes raw JSON. */
function row(tag: string): Comparison {
  const turns = rand() < 0.2 ? int(2, 4) : 1;
  const texts = (lo: number, hi: number): string[] => Array.from({ length: turns }, () => prose(int(lo, hi)));
  const id = nextId(tag);
  const prompt = texts(3, rand() < 0.1 ? 400 : 30);
  const a = texts(5, rand() < 0.2 ? 900 : 60);
  const b = texts(5, rand() < 0.2 ? 900 : 60);
  if (rand() < 0.3) {
    return { id, prompt: [], responseA: [], responseB: [], raw: { prompt: JSON.stringify(prompt), responseA: JSON.stringify(a), responseB: JSON.stringify(b) } };
  }
  return { id, prompt, responseA: a, responseB: b, raw: undefined };
}

/** A row the server must refuse with a per-row INVALID_ARGUMENT. */
function badRow(tag: string): Comparison {
  return rand() < 0.5
    ? { id: nextId(tag), prompt: [], responseA: [], responseB: [], raw: { prompt: 'not json', responseA: '["a"]', responseB: '["b"]' } }
    : { id: '', prompt: ['empty id'], responseA: ['a'], responseB: ['b'], raw: undefined };
}

const OVERSIZED_FIELD = prose(400_000).slice(0, 2 * MiB); // ~2 MB of text in one response
function oversizedRow(tag: string): Comparison {
  return { id: nextId(tag), prompt: [prose(20)], responseA: [OVERSIZED_FIELD], responseB: [prose(100)], raw: undefined };
}

function mixedRow(tag: string): Comparison {
  return rand() < 0.03 ? badRow(tag) : row(tag);
}

// ---- outcomes ------------------------------------------------------------------------------

const outcomes = new Map<string, number>();
const firstDetails = new Map<string, string>();
function count(key: string, n = 1, detail?: string): void {
  outcomes.set(key, (outcomes.get(key) ?? 0) + n);
  if (detail !== undefined && !firstDetails.has(key)) firstDetails.set(key, detail.slice(0, 160));
}
const codeName = (code: number): string => status[code] ?? `CODE_${code}`;
function countPrediction(kind: string, p: Prediction): void {
  if (p.error) count(`${kind} row error ${codeName(p.error.code)}`, 1, p.error.message);
  else if (![p.winnerModelA, p.winnerModelB, p.winnerTie].every(Number.isFinite)) count(`${kind} row NON-FINITE`);
  else count(`${kind} row ok${p.truncated ? ' (truncated)' : ''}`);
}

// ---- traffic -------------------------------------------------------------------------------

const startedAt = Date.now();
const endAt = startedAt + durationMs;
const remaining = (): number => endAt - Date.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** Deadline for one call: its own cap, but never far past the end of the run. */
const deadline = (capMs: number): Date => new Date(Date.now() + Math.max(1, Math.min(capMs, remaining() + 15_000)));

function newClient(address: string): PairwisePreferenceClient {
  // Each traffic kind on its own connection, like separate client processes (a client that never
  // reads stalls only its own HTTP/2 connection's flow control).
  return new PairwisePreferenceClient(address, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 64 * MiB,
  });
}

function unaryCall(client: PairwisePreferenceClient, comparisons: Comparison[], deadlineAt: Date, cancelAfterMs?: number): Promise<{ res?: ScoreResponse; err?: ServiceError }> {
  return new Promise((resolveCall) => {
    const call = client.score({ comparisons, options: { swapTta: rand() < 0.2 } }, new Metadata(), { deadline: deadlineAt }, (err, res) =>
      resolveCall(err ? { err } : { res }),
    );
    if (cancelAfterMs !== undefined) setTimeout(() => call.cancel(), cancelAfterMs);
  });
}

/** Unary Score calls of 1 to 64 rows, one at a time, back to back. */
async function unaryWorker(address: string, kind: string): Promise<void> {
  const client = newClient(address);
  try {
    while (remaining() > 0) {
      const n = pick([1, 1, 2, 4, 8, 16, 32, 64]);
      const rows = Array.from({ length: n }, () => mixedRow(kind));
      const { res, err } = await unaryCall(client, rows, deadline(60_000));
      if (err) count(`${kind} call ${codeName(err.code)}`, 1, err.details);
      else {
        count(`${kind} call OK`);
        for (const p of res!.predictions) countPrediction(kind, p);
      }
    }
  } finally {
    client.close();
  }
}

/** A ScoreStream session: `window` rows in flight, `total` rows, then end; bounded by its deadline. */
function streamSession(client: PairwisePreferenceClient, kind: string, total: number, window: number, cancelAfterMs?: number): Promise<void> {
  return new Promise((done) => {
    const call: ClientDuplexStream<ScoreStreamRequest, Prediction> = client.scoreStream({ deadline: deadline(120_000) });
    let sent = 0;
    let answered = 0;
    let finished = false;
    const pump = (): void => {
      while (!finished && sent - answered < window && sent < total && remaining() > 0) {
        sent++;
        call.write({ comparison: mixedRow(kind), options: { swapTta: rand() < 0.1 } });
      }
      if (!finished && (sent >= total || remaining() <= 0) && sent === answered) {
        finished = true;
        call.end();
      }
    };
    call.on('data', (p: Prediction) => {
      answered++;
      countPrediction(kind, p);
      pump();
    });
    call.on('error', () => {}); // the status below says it
    call.on('status', (s: { code: number; details: string }) => {
      finished = true;
      count(`${kind} stream ${codeName(s.code)}`, 1, s.details);
      done();
    });
    if (cancelAfterMs !== undefined) setTimeout(() => call.cancel(), cancelAfterMs);
    pump();
  });
}

async function streamWorker(address: string, kind: string): Promise<void> {
  const client = newClient(address);
  try {
    while (remaining() > 0) await streamSession(client, kind, int(20, 400), pick([4, 16, 32, 64]));
  } finally {
    client.close();
  }
}

/** Calls cancelled mid-flight (unary and streams) and calls whose deadline is a few ms away. */
async function cancelWorker(address: string): Promise<void> {
  const client = newClient(address);
  try {
    while (remaining() > 0) {
      const r = rand();
      if (r < 0.4) {
        const rows = Array.from({ length: int(4, 48) }, () => row('cancel'));
        const { err } = await unaryCall(client, rows, deadline(60_000), int(0, 80));
        count(`cancel unary ${err ? codeName(err.code) : 'OK (finished first)'}`);
      } else if (r < 0.6) {
        await streamSession(client, 'cancel-stream', 500, 32, int(5, 300));
      } else {
        const rows = Array.from({ length: int(1, 32) }, () => row('tiny'));
        const { err } = await unaryCall(client, rows, new Date(Date.now() + int(1, 5)));
        count(`tiny-deadline unary ${err ? codeName(err.code) : 'OK (finished first)'}`);
      }
      await sleep(int(0, 50));
    }
  } finally {
    client.close();
  }
}

/** One or two rows with a 2 MB field, one call at a time, with a pause between. */
async function oversizedWorker(address: string): Promise<void> {
  const client = newClient(address);
  try {
    while (remaining() > 0) {
      const rows = [oversizedRow('oversized'), ...(rand() < 0.5 ? [row('oversized')] : [])];
      const { res, err } = await unaryCall(client, rows, deadline(60_000));
      if (err) count(`oversized call ${codeName(err.code)}`, 1, err.details);
      else for (const p of res!.predictions) countPrediction('oversized', p);
      await sleep(Math.min(remaining(), int(200, 1500)));
    }
  } finally {
    client.close();
  }
}

/**
 * A stream client that writes rows but never reads an answer: it writes while the transport takes
 * them (until write() asks it to wait), up to 5000 rows, holds the call open for up to 30 s, then
 * cancels it and starts another.
 */
async function nonReaderWorker(address: string): Promise<void> {
  const client = newClient(address);
  try {
    while (remaining() > 0) {
      const holdMs = Math.min(remaining(), 30_000);
      const call: ClientDuplexStream<ScoreStreamRequest, Prediction> = client.scoreStream({ deadline: deadline(holdMs + 5000) });
      let written = 0;
      let blocked = false;
      let statusCode: number | null = null;
      call.on('error', () => {});
      call.on('status', (s: { code: number }) => (statusCode = s.code));
      call.pause(); // never read: no 'data' listener, the readable side stays paused
      const stopAt = Date.now() + holdMs;
      while (Date.now() < stopAt && written < 5000 && statusCode === null) {
        if (blocked) {
          await sleep(200);
          continue;
        }
        const ok = call.write({ comparison: row('non-reader'), options: { swapTta: false } });
        written++;
        if (!ok) {
          count('non-reader writes that had to wait (backpressure)');
          blocked = true;
          call.once('drain', () => (blocked = false));
        }
        if (written % 50 === 0) await sleep(1);
      }
      while (Date.now() < stopAt && statusCode === null) await sleep(200);
      count('non-reader rows written', written);
      count(`non-reader stream ${statusCode === null ? 'cancelled by client' : codeName(statusCode)}`);
      call.cancel();
      await sleep(100);
    }
  } finally {
    client.close();
  }
}

// ---- sampling ------------------------------------------------------------------------------

interface Sample {
  readonly t: number; // seconds since start
  readonly rssMiB: number | null;
  readonly heapMiB: number | null;
  readonly rowsOk: number;
}

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

async function heapMiB(served: Served): Promise<number | null> {
  try {
    const m = await Promise.race([served.metrics(), sleep(3000).then(() => null)]);
    const v = m?.get('pairpref_process_nodejs_heap_size_used_bytes');
    return v === undefined ? null : v / MiB;
  } catch {
    return null;
  }
}

const rowsOk = (): number => [...outcomes].reduce((s, [k, v]) => (/ row ok/.test(k) ? s + v : s), 0);

async function sample(served: Served): Promise<Sample> {
  return { t: (Date.now() - startedAt) / 1000, rssMiB: rssMiB(served.pid), heapMiB: await heapMiB(served), rowsOk: rowsOk() };
}

/** Least-squares slope of y over t (seconds), in units per minute; null with fewer than 3 points. */
function slopePerMin(points: ReadonlyArray<readonly [number, number]>): number | null {
  if (points.length < 3) return null;
  const n = points.length;
  const mt = points.reduce((s, [t]) => s + t, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den === 0 ? null : (num / den) * 60;
}

const fmt = (x: number | null, digits = 1): string => (x === null ? '-' : x.toFixed(digits));

// ---- main ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`soak: ${minutes} min against pairpref serve --model ${modelDir} --devices ${argv.devices}; sampling every ${sampleMs / 1000} s`);
  const served = await startPairpref({ model: modelDir, devices: argv.devices });
  console.log(`soak: server pid ${served.pid} on ${served.address}, metrics on :${served.metricsPort}`);
  const samples: Sample[] = [await sample(served)];

  const sampler = (async () => {
    while (remaining() > 0) {
      await sleep(Math.min(sampleMs, remaining()));
      samples.push(await sample(served));
    }
  })();

  const a = served.address;
  const workers = [
    streamWorker(a, 'stream-1'),
    streamWorker(a, 'stream-2'),
    streamWorker(a, 'stream-3'),
    unaryWorker(a, 'unary-1'),
    unaryWorker(a, 'unary-2'),
    cancelWorker(a),
    oversizedWorker(a),
    nonReaderWorker(a),
  ].map((w) => w.catch((e: unknown) => count('HARNESS ERROR', 1, e instanceof Error ? e.stack ?? e.message : String(e))));

  await sampler;
  // Calls still running past the end (within their deadlines) get up to 30 s more; then we go on regardless.
  const settled = await Promise.race([Promise.all(workers).then(() => true), sleep(30_000).then(() => false)]);
  if (!settled) count('HARNESS workers still running 30 s after the end');
  await sleep(2000);
  const idle = await sample(served);
  const alive = rssMiB(served.pid) !== null;
  await served.stop();

  // Samples: all of them when few, else about 30 evenly spaced (the slope uses all).
  const step = Math.max(1, Math.ceil(samples.length / 30));
  console.log('\n    t (s)   RSS (MiB)   heap used (MiB)   rows ok');
  for (const [i, s] of samples.entries()) {
    if (i % step !== 0 && i !== samples.length - 1) continue;
    console.log(`${s.t.toFixed(0).padStart(9)} ${fmt(s.rssMiB).padStart(11)} ${fmt(s.heapMiB).padStart(17)} ${String(s.rowsOk).padStart(9)}`);
  }
  console.log(`${'idle'.padStart(9)} ${fmt(idle.rssMiB).padStart(11)} ${fmt(idle.heapMiB).padStart(17)} ${String(idle.rowsOk).padStart(9)}   (2 s after the traffic stopped)`);

  const secondHalf = samples.filter((s) => s.t >= durationMs / 2000);
  const rssSlope = slopePerMin(secondHalf.filter((s) => s.rssMiB !== null).map((s) => [s.t, s.rssMiB!] as const));
  const heapSlope = slopePerMin(secondHalf.filter((s) => s.heapMiB !== null).map((s) => [s.t, s.heapMiB!] as const));
  const peak = Math.max(...samples.map((s) => s.rssMiB ?? 0));
  console.log(`\nsecond half (${secondHalf.length} samples, t >= ${(durationMs / 2000).toFixed(0)} s): RSS slope ${fmt(rssSlope, 2)} MiB/min, heap slope ${fmt(heapSlope, 2)} MiB/min; peak RSS ${peak.toFixed(1)} MiB`);
  console.log(`server ${alive ? 'alive at the end' : 'NOT ALIVE at the end'}; ${samples.length} samples over ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);

  console.log('\noutcome                                              count');
  for (const [k, v] of [...outcomes].sort(([x], [y]) => x.localeCompare(y))) {
    const d = firstDetails.get(k);
    console.log(`${k.padEnd(48)} ${String(v).padStart(9)}${d && !/ OK$/.test(k) ? `   first: ${d.replace(/\s+/g, ' ')}` : ''}`);
  }
  console.log(
    '\n' +
      JSON.stringify({
        soak: { minutes, model: modelDir, devices: argv.devices },
        rss_slope_mib_per_min: rssSlope,
        heap_slope_mib_per_min: heapSlope,
        peak_rss_mib: peak,
        server_alive: alive,
        outcomes: Object.fromEntries(outcomes),
      }),
  );
  const stuck = outcomes.has('HARNESS workers still running 30 s after the end') || outcomes.has('HARNESS ERROR');
  process.exitCode = alive && !stuck ? 0 : 1;
}

await main();
// Whatever a cancelled call left behind (timers, sockets) must not keep the soak alive.
setTimeout(() => process.exit(), 1000).unref();
