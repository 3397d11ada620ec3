// Four times more load than the server can take, for a minute: `pairpref serve` (a child process,
// fixture model) measured first at saturation, then offered 4x that rate in open-loop unary calls.
// What must hold: excess calls are refused (RESOURCE_EXHAUSTED, not left to their deadline), every
// call that is accepted completes with all its rows scored, health keeps answering, and the server's RSS stays bounded
// (no growth between the first and the last third of the minute). Loopback only; every loop is
// bounded in count and time.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { loadPackageDefinition, type Client } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PairwisePreferenceClient, type Comparison, type Prediction } from '../../proto/gen/pairpref/v1/preference.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { wire } from '../helpers/grpc-client.ts';
import { killChildren, spawnServe } from '../helpers/serve-child.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-overload-'));
const dir = writeFixtureBundle(join(work, 'bundle'), { preference: { truncation: { max_length: 256 } } }).dir;
after(() => {
  killChildren();
  rmSync(work, { recursive: true, force: true });
});

const RUN_MS = 60_000;
const ROWS_PER_CALL = 16;
const words = 'a server answers questions about pairs of responses and which one is better '.repeat(8);
const rowsFor = (tag: string): Comparison[] =>
  Array.from({ length: ROWS_PER_CALL }, (_, i) => wire({ id: `${tag}-${i}`, prompt: [`question ${tag}`], responseA: [words.slice(0, 100 + ((i * 37) % 400))], responseB: [words.slice(0, 120)] }));

async function start(): Promise<{ address: string; pid: number }> {
  const c = spawnServe(['--model', dir, '--max-queue-tokens', '20000', '--drain-grace-ms', '0']);
  const m = await c.waitFor(/serving .* on (\S+) \(devices/);
  return { address: m[1]!, pid: c.proc.pid! };
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

function score(client: PairwisePreferenceClient, rows: Comparison[], deadlineMs: number): Promise<{ preds: Prediction[] } | { err: ServiceError }> {
  return new Promise((resolve) =>
    client.score({ comparisons: rows, options: undefined }, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => resolve(err ? { err } : { preds: res!.predictions })),
  );
}

/** Rows per second at saturation: 24 concurrent calls for a few seconds. */
async function capacity(client: PairwisePreferenceClient): Promise<number> {
  let rows = 0;
  const end = Date.now() + 4000;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: 24 }, async (_, w) => {
      for (let k = 0; Date.now() < end; k++) {
        const r = await score(client, rowsFor(`cap-${w}-${k}`), 30_000);
        if ('preds' in r) rows += r.preds.length;
      }
    }),
  );
  return rows / ((Date.now() - t0) / 1000);
}

function healthChecker(address: string): { check(): Promise<string>; close(): void } {
  const pkg = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & { check: Function } } } };
  };
  const h = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  return {
    check: () =>
      new Promise((resolve) => h.check({ service: '' }, new Metadata(), { deadline: Date.now() + 3000 }, (err: ServiceError | null, r?: { status: string }) => resolve(err ? `error ${err.code}` : r!.status))),
    close: () => h.close(),
  };
}

test('4x overload for a minute: excess refused with RESOURCE_EXHAUSTED, accepted calls complete, health answers, RSS bounded', { timeout: 180_000 }, async () => {
  const { address, pid } = await start();
  const client = new PairwisePreferenceClient(address, credentials.createInsecure());
  const health = healthChecker(address);
  const cap = await capacity(client);
  const callsPerSecond = (4 * cap) / ROWS_PER_CALL;
  const tally = { accepted: 0, refused: 0, other: [] as string[], rowErrors: 0, inflightMax: 0 };
  const rss: Array<[number, number]> = [];
  const healthAnswers: string[] = [];
  const pending = new Set<Promise<void>>();
  const t0 = Date.now();
  let sent = 0;
  const sampler = setInterval(() => rss.push([Date.now() - t0, rssMiB(pid)]), 1000);
  const healthLoop = setInterval(() => void health.check().then((s) => healthAnswers.push(s)), 1000);
  try {
    // Open loop: calls go out on schedule whatever the answers; at most 2,000 in flight.
    while (Date.now() - t0 < RUN_MS) {
      const due = Math.floor(((Date.now() - t0) / 1000) * callsPerSecond);
      for (; sent < due && pending.size < 2000; sent++) {
        const p = score(client, rowsFor(`o-${sent}`), 30_000).then((r) => {
          if ('preds' in r) {
            tally.accepted++;
            tally.rowErrors += r.preds.filter((x) => x.error).length;
          } else if (r.err.code === status.RESOURCE_EXHAUSTED) tally.refused++;
          else tally.other.push(`${r.err.code} ${r.err.details}`);
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
        tally.inflightMax = Math.max(tally.inflightMax, pending.size);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
  } finally {
    clearInterval(sampler);
    clearInterval(healthLoop);
  }
  const third = RUN_MS / 3;
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const early = avg(rss.filter(([t]) => t < third).map(([, m]) => m));
  const late = avg(rss.filter(([t]) => t >= 2 * third).map(([, m]) => m));
  console.log(
    `# capacity ${cap.toFixed(0)} rows/s; offered ${(4 * cap).toFixed(0)} rows/s for ${RUN_MS / 1000} s: ${sent} calls, ${tally.accepted} accepted, ${tally.refused} refused; ` +
      `RSS ${early.toFixed(0)} MiB (first third) -> ${late.toFixed(0)} MiB (last third), max ${Math.max(...rss.map(([, m]) => m)).toFixed(0)} MiB; ` +
      `health: ${healthAnswers.filter((s) => s === 'SERVING').length}/${healthAnswers.length} SERVING`,
  );
  assert.deepEqual(tally.other, [], 'every call was either accepted and completed, or refused with RESOURCE_EXHAUSTED');
  assert.equal(tally.rowErrors, 0, 'every row of an accepted call was scored');
  assert.ok(tally.accepted > 0 && tally.refused > 0, 'the server was overloaded and still served');
  assert.ok(healthAnswers.length >= 30, `health answered ${healthAnswers.length} checks`);
  assert.ok(healthAnswers.every((s) => s === 'SERVING'), `health answers: ${[...new Set(healthAnswers)].join(', ')}`);
  assert.ok(late - early < 100, `RSS grew from ${early.toFixed(0)} to ${late.toFixed(0)} MiB`);
  health.close();
  client.close();
});
