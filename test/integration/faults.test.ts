// Faults: a device whose batches fail is taken out of rotation, its batch retried on a healthy
// device, its worker restarted with backoff and brought back after a probe; health follows (SERVING
// while one device is up). The same for tokenizer workers. Failing runners are injected by wrapping
// the real onnxruntime-node runtime; worker threads are killed for real.
import { credentials, loadPackageDefinition, status, type Client } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { serveModel } from '../../cli/wiring.ts';
import type { ModelRunner, Runtime } from '../../core/runtime.ts';
import type { Comparison } from '../../core/types.ts';
import { loadScorer, type Health, type Scorer } from '../../engine/scorer.ts';
import { loadBundle, nodeRuntime } from '../../runtime/node/index.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';
import { waitUntil } from '../helpers/wait.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-faults-'));
const dir = writeFixtureBundle(join(work, 'bundle')).dir;
after(() => rmSync(work, { recursive: true, force: true }));

const rows = (n: number, tag: string): Comparison[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, kind: 'turns', prompt: [`question ${i}`], response_a: ['a'.repeat(1 + (i % 40))], response_b: ['b'] }));

const until = (what: string, cond: () => boolean): Promise<void> => waitUntil(what, cond, 30_000);


/** The real runtime, except that runners of `device` fail their first `failures` batches after warm-up. */
function flakyRuntime(device: string, failures: number): Runtime & { started: number } {
  let left = failures;
  const rt = {
    ...nodeRuntime,
    started: 0,
    async startRunner(bundle, spec, threads): Promise<ModelRunner> {
      const real = await nodeRuntime.startRunner(bundle, spec, threads);
      rt.started++;
      if (spec.name !== device) return real;
      let warmedUp = false;
      return {
        ...real,
        device: real.device,
        intraOpThreads: real.intraOpThreads,
        signature: real.signature,
        run(batch) {
          if (warmedUp && left > 0) {
            left--;
            return Promise.reject(new Error('injected device failure'));
          }
          warmedUp = true;
          return real.run(batch);
        },
        close: () => real.close(),
      };
    },
  } satisfies Runtime & { started: number };
  return rt;
}

function record(scorer: Scorer): Health[] {
  const seen: Health[] = [];
  scorer.onHealthChange((h) => seen.push(h));
  return seen;
}

describe('device faults', () => {
  test('a failing device: its batch is retried on the other, it restarts and rejoins; health stays SERVING', async () => {
    const runtime = flakyRuntime('cpu:1', 1);
    const scorer = await loadScorer({ runtime, bundle: loadBundle(dir), devices: 'cpu,cpu', intraOpThreads: 1, preprocessThreads: 0, batching: { maxBatchTokens: 512 } });
    const seen = record(scorer);
    try {
      const preds = await scorer.score(rows(300, 'a'));
      for (const p of preds) assert.equal(p.error, undefined, `row ${p.id}: ${p.error?.message}`);
      await until('cpu:1 back in rotation', () => scorer.health().devices.find((d) => d.device.name === 'cpu:1')!.status === 'up' && runtime.started === 3);
      const cpu1 = scorer.health().devices.find((d) => d.device.name === 'cpu:1')!;
      assert.equal(cpu1.restarts, 1);
      assert.match(cpu1.lastError, /injected device failure/);
      assert.ok(seen.some((h) => h.devices.some((d) => d.status === 'restarting')), 'the device was seen out of rotation');
      assert.ok(seen.every((h) => h.serving), 'health stayed SERVING: cpu:0 was up throughout');
      const after = await scorer.score(rows(50, 'b'));
      for (const p of after) assert.equal(p.error, undefined);
      assert.ok(scorer.loads().find((l) => l.name === 'cpu:1')!.rows > 0);
    } finally {
      await scorer.close();
    }
  });

  test('the only device failing: its rows fail, health goes NOT_SERVING and calls get UNAVAILABLE until it is back', async () => {
    const runtime = flakyRuntime('cpu', 1);
    const scorer = await loadScorer({ runtime, bundle: loadBundle(dir), devices: 'cpu', intraOpThreads: 1, preprocessThreads: 0 });
    const seen = record(scorer);
    try {
      const [p] = await scorer.score(rows(1, 'x'));
      assert.equal(p!.error?.code, status.INTERNAL, 'no other device to retry on');
      assert.match(p!.error!.message, /injected device failure/);
      assert.ok(seen.some((h) => !h.serving && /no device is up/.test(h.reason)));
      await until('the device back', () => scorer.health().serving);
      const [q] = await scorer.score(rows(1, 'y'));
      assert.equal(q!.error, undefined);
    } finally {
      await scorer.close();
    }
  });

  test('a device worker killed under load: every row answered, the device restarts; GetModelInfo and metrics show it', async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu,cpu', intraOpThreads: 1, metricsPort: 0, batching: { maxBatchTokens: 512 } });
    const client = testClient(server.address);
    try {
      const load = client.score(Array.from({ length: 1500 }, (_, i) => wire({ id: `k-${i}`, prompt: [`question ${i}`], responseA: ['x'.repeat(1 + (i % 40))], responseB: ['y'] })));
      await until('batches running', () => server.scorer.loads().some((l) => l.batches > 2));
      await server.scorer.faults.killDevice('cpu:0');
      const preds = await load;
      for (const p of preds) assert.equal(p.error, undefined, `row ${p.id}: ${p.error?.message}`);
      await until('cpu:0 restarted', () => server.scorer.health().devices[0]!.restarts === 1 && server.scorer.health().devices[0]!.status === 'up');
      const info = await client.modelInfo();
      assert.deepEqual(info.devices.map((d) => [d.name, d.state, d.restarts]), [['cpu:0', 'up', 1], ['cpu:1', 'up', 0]]);
      assert.match(info.devices[0]!.lastError, /worker (exited|crashed)/);
      const metrics = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
      assert.match(metrics, /pairpref_device_up\{device="cpu:0"\} 1/);
      assert.match(metrics, /pairpref_device_restarts\{device="cpu:0"\} 1/);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('idle device faults', () => {
  test('a device worker that dies while idle is noticed at once: out of rotation, restarted, back', async () => {
    const scorer = await loadScorer({ runtime: nodeRuntime, bundle: loadBundle(dir), devices: 'cpu,cpu', intraOpThreads: 1, preprocessThreads: 0 });
    const seen = record(scorer);
    try {
      await scorer.faults.killDevice('cpu:1');
      await until('cpu:1 restarted', () => scorer.health().devices[1]!.restarts === 1 && scorer.health().devices[1]!.status === 'up');
      assert.ok(seen.some((h) => h.devices[1]!.status === 'restarting'), 'seen out of rotation with no batch sent to it');
      assert.ok(seen.every((h) => h.serving), 'cpu:0 kept health SERVING');
      const preds = await scorer.score(rows(100, 'i'));
      for (const p of preds) assert.equal(p.error, undefined);
    } finally {
      await scorer.close();
    }
  });
});

describe('tokenizer worker faults', () => {
  test('a tokenizer worker killed mid-call: its chunks are tokenized again, it restarts, every row answered', async () => {
    const scorer = await loadScorer({ runtime: nodeRuntime, bundle: loadBundle(dir), devices: 'cpu', intraOpThreads: 1, preprocessThreads: 2 });
    try {
      const call = scorer.score(rows(3000, 't'));
      await until('tokenizing', () => scorer.backlog().batchRows > 0 || scorer.loads()[0]!.rows > 0);
      await scorer.faults.killTokenizer(0);
      const preds = await call;
      for (const p of preds) assert.equal(p.error, undefined, `row ${p.id}: ${p.error?.message}`);
      await until('the worker back', () => scorer.health().tokenizers.alive === 2);
      assert.equal(scorer.health().tokenizers.restarts, 1);
    } finally {
      await scorer.close();
    }
  });

  test('the only tokenizer worker killed: health NOT_SERVING until it is back, then SERVING', async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', intraOpThreads: 1, preprocessThreads: 1 });
    const pkg = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
      grpc: { health: { v1: { Health: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & { check: Function } } } };
    };
    const health = new pkg.grpc.health.v1.Health(server.address, credentials.createInsecure());
    const check = (): Promise<string> =>
      new Promise((resolve) => health.check({ service: '' }, (err: Error | null, res?: { status: string }) => resolve(err ? `error ${err.message}` : res!.status)));
    const seen = record(server.scorer);
    try {
      assert.equal(await check(), 'SERVING');
      await server.scorer.faults.killTokenizer(0);
      await until('the worker back', () => server.scorer.health().tokenizers.alive === 1 && server.scorer.health().tokenizers.restarts === 1);
      assert.ok(seen.some((h) => !h.serving && /no tokenizer worker is up/.test(h.reason)), 'NOT_SERVING was reported while it was down');
      assert.equal(await check(), 'SERVING', 'SERVING again');
      const client = testClient(server.address);
      assert.equal((await client.score([wire({ id: 'after', prompt: ['p'], responseA: ['a'], responseB: ['b'] })]))[0]!.error, undefined);
      client.close();
    } finally {
      health.close();
      await server.close();
    }
  });
});
