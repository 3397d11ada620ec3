// Load generator, run as its own process (`node --import tsx bench/loadgen.ts SPEC.json`) so the
// clients' CPU is not the server's. Prints one JSON LoadResult on stdout. Every mode is bounded:
// it sends the rows it was given and stops, and a deadline cancels whatever is left.
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { PairwisePreferenceClient, type Comparison, type Prediction, type ScoreStreamRequest } from '../proto/gen/pairpref/v1/preference.ts';
import { summarize, type LatencySummary } from './stats.ts';

export interface LoadSpec {
  readonly address: string;
  /** stream: N clients, one ScoreStream each, `window` rows in flight per client (closed loop).
   *  unary: N clients, one row per Score call, one call at a time each (closed loop).
   *  open: unary one-row calls fired on a fixed schedule at `rate` rows/s, whatever the answers (open loop). */
  readonly mode: 'stream' | 'unary' | 'open';
  readonly clients: number;
  readonly window?: number;
  readonly rate?: number;
  /** JSON file: Comparison[] in the gRPC (wire) form. */
  readonly rowsFile: string;
  /** Rows sent untimed first (same mode), e.g. to touch common shapes. */
  readonly warmRows?: number;
  /** Send only the first limitRows rows of the file. */
  readonly limitRows?: number;
  readonly deadlineMs: number;
}

export interface LoadResult {
  readonly mode: LoadSpec['mode'];
  readonly rows: number;
  readonly errors: number;
  readonly first_error: string | null;
  readonly seconds: number;
  readonly rows_per_s: number;
  readonly tokens: number;
  readonly tokens_per_s: number;
  readonly latency: LatencySummary;
}

interface Tally {
  latencies: number[];
  tokens: number;
  errors: number;
  firstError: string | null;
}

function fail(t: Tally, msg: string): void {
  t.errors += 1;
  t.firstError ??= msg;
}

function onPrediction(t: Tally, p: Prediction, latency: number): void {
  if (p.error) fail(t, p.error.message);
  else {
    t.latencies.push(latency);
    t.tokens += p.numTokens;
  }
}

/** One client's stream: keeps `window` rows in flight, matches answers by id. */
function streamClient(client: PairwisePreferenceClient, rows: readonly Comparison[], window: number, t: Tally): Promise<void> {
  return new Promise((resolve) => {
    const call: ClientDuplexStream<ScoreStreamRequest, Prediction> = client.scoreStream();
    const sentAt = new Map<string, number[]>();
    let next = 0;
    let inflight = 0;
    const pump = (): void => {
      while (inflight < window && next < rows.length) {
        const c = rows[next++]!;
        const times = sentAt.get(c.id) ?? [];
        times.push(performance.now());
        sentAt.set(c.id, times);
        inflight += 1;
        call.write({ comparison: c, options: { swapTta: false } });
      }
      if (next >= rows.length && inflight === 0) call.end();
    };
    call.on('data', (p: Prediction) => {
      const t0 = sentAt.get(p.id)?.shift();
      inflight -= 1;
      onPrediction(t, p, t0 === undefined ? NaN : performance.now() - t0);
      pump();
    });
    call.on('error', (e: Error) => {
      fail(t, e.message);
      resolve();
    });
    call.on('end', () => resolve());
    pump();
  });
}

function unaryCall(client: PairwisePreferenceClient, c: Comparison, t: Tally): Promise<void> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    client.score({ comparisons: [c], options: { swapTta: false } }, (err, res) => {
      if (err) fail(t, err.message);
      else for (const p of res.predictions) onPrediction(t, p, performance.now() - t0);
      resolve();
    });
  });
}

async function unaryClient(client: PairwisePreferenceClient, rows: readonly Comparison[], t: Tally): Promise<void> {
  for (const c of rows) await unaryCall(client, c, t);
}

async function openLoop(clients: readonly PairwisePreferenceClient[], rows: readonly Comparison[], rate: number, t: Tally): Promise<void> {
  const start = performance.now();
  const calls: Promise<void>[] = [];
  for (let i = 0; i < rows.length; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    calls.push(unaryCall(clients[i % clients.length]!, rows[i]!, t));
  }
  await Promise.all(calls);
}

function deal<T>(rows: readonly T[], n: number): T[][] {
  const parts: T[][] = Array.from({ length: n }, () => []);
  rows.forEach((r, i) => parts[i % n]!.push(r));
  return parts;
}

async function drive(spec: LoadSpec, clients: PairwisePreferenceClient[], rows: readonly Comparison[], t: Tally): Promise<void> {
  if (spec.mode === 'open') return openLoop(clients, rows, spec.rate ?? 1, t);
  const parts = deal(rows, clients.length);
  await Promise.all(
    parts.map((p, i) => (spec.mode === 'stream' ? streamClient(clients[i]!, p, spec.window ?? 32, t) : unaryClient(clients[i]!, p, t))),
  );
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const all = JSON.parse(readFileSync(spec.rowsFile, 'utf8')) as Comparison[];
  const rows = spec.limitRows ? all.slice(0, spec.limitRows) : all;
  // One channel per client, as separate client processes would have.
  const clients = Array.from({ length: Math.max(1, spec.clients) }, (_, i) =>
    new PairwisePreferenceClient(spec.address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'bench.client': i }),
  );
  const deadline = setTimeout(() => {
    process.stderr.write(`loadgen: deadline of ${spec.deadlineMs} ms passed, cancelling\n`);
    for (const c of clients) c.close();
    process.exit(3);
  }, spec.deadlineMs);
  try {
    if (spec.warmRows) await drive(spec, clients, rows.slice(0, spec.warmRows), { latencies: [], tokens: 0, errors: 0, firstError: null });
    const t: Tally = { latencies: [], tokens: 0, errors: 0, firstError: null };
    const t0 = performance.now();
    await drive(spec, clients, rows, t);
    const seconds = (performance.now() - t0) / 1000;
    const ok = t.latencies.length;
    return {
      mode: spec.mode,
      rows: ok,
      errors: t.errors,
      first_error: t.firstError,
      seconds,
      rows_per_s: ok / seconds,
      tokens: t.tokens,
      tokens_per_s: t.tokens / seconds,
      latency: summarize(t.latencies),
    };
  } finally {
    clearTimeout(deadline);
    for (const c of clients) c.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadSpec;
  const result = await runLoad(spec);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}
