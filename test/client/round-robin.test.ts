// connect() with several targets spreads calls over the replicas (grpc-js round_robin).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, resolveTarget } from '../../client/index.ts';
import type { RunningServer } from '../../server/server.ts';
import { fixtureBundle, startFixtureServer, tempDir } from './helpers.ts';

const tmp = tempDir();
const bundle = fixtureBundle(tmp.dir);
let servers: RunningServer[] = [];

const rowsDone = (s: RunningServer): number => s.scorer.loads().reduce((n, l) => n + l.rows, 0);

before(async () => {
  servers = await Promise.all([0, 1, 2].map(() => startFixtureServer(bundle)));
});
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  tmp.cleanup();
});

test('several HOST:PORT targets become one ipv4: address list; host names are resolved', async () => {
  assert.equal(await resolveTarget(['127.0.0.1:1', '127.0.0.1:2']), 'ipv4:127.0.0.1:1,127.0.0.1:2');
  assert.equal(await resolveTarget(['[::1]:1', '[::1]:2']), 'ipv6:[::1]:1,[::1]:2');
  assert.equal(await resolveTarget(['dns:///localhost:7']), 'dns:///localhost:7');
  assert.match(await resolveTarget(['localhost:1', '127.0.0.1:2']), /^ipv(4|6):/);
});

test('round robin over three local servers: every server receives calls', async () => {
  const before = servers.map(rowsDone);
  const client = connect(servers.map((s) => s.address));
  try {
    await client.waitForReady(5000);
    for (let call = 0; call < 30; call++) {
      const preds = await client.score([{ id: `c${call}`, prompt: ['hi'], response_a: ['a'], response_b: ['b'] }]);
      assert.equal(preds[0]?.error, undefined);
    }
  } finally {
    client.close();
  }
  const got = servers.map((s, i) => rowsDone(s) - before[i]!);
  assert.equal(got.reduce((a, b) => a + b, 0), 30);
  for (const [i, n] of got.entries()) assert.ok(n > 0, `server ${i} got no rows (per-server rows: ${got.join(', ')})`);
});
