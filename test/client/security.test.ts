// The SDK and the CLI against a server with TLS and a bearer token: `connect(..., { tls, token })`,
// and `pairpref score --server` with --tls-ca / --auth-token-file or PAIRPREF_TOKEN.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { connect, PairprefError } from '../../client/index.ts';
import { serveModel } from '../../cli/wiring.ts';
import type { RunningServer } from '../../server/server.ts';
import { runCli } from '../cli/run-cli.ts';
import { makePki, type Pki } from '../helpers/pki.ts';
import { fixtureBundle, tempDir } from './helpers.ts';

const tmp = tempDir();
const TOKEN = 'sdk-token-42';
let pki: Pki;
let server: RunningServer;
const rows = [{ id: 'a', prompt: ['hi'], response_a: ['hello'], response_b: ['hey'] }];

before(async () => {
  pki = makePki();
  server = await serveModel({ modelDir: fixtureBundle(tmp.dir), port: 0, devices: 'cpu', intraOpThreads: 1, tls: { cert: pki.serverCert, key: pki.serverKey }, authToken: TOKEN });
});
after(async () => {
  await server.close();
  tmp.cleanup();
});

describe('SDK with TLS and a token', () => {
  test('scores with the CA and the token; without the token it is UNAUTHENTICATED, not retried', async () => {
    const ok = connect(server.address, { tls: { ca: pki.ca }, token: TOKEN });
    const [p] = await ok.score(rows);
    assert.equal(p!.error, undefined);
    const streamed = [];
    for await (const q of ok.scoreStream(rows)) streamed.push(q);
    assert.equal(streamed[0]!.error, undefined);
    ok.close();
    const noToken = connect(server.address, { tls: { ca: pki.ca }, retry: { maxRetries: 3 } });
    await assert.rejects(noToken.score(rows), (e: PairprefError) => e.code === status.UNAUTHENTICATED && e.attempts === 1);
    noToken.close();
  });

  test('several replicas given by IP check the certificate against tls.serverName', async () => {
    const c = connect([server.address, server.address.replace('127.0.0.1', 'localhost')], { tls: { ca: pki.ca, serverName: 'localhost' }, token: TOKEN });
    const out = [];
    for await (const q of c.scoreStream([...rows, { ...rows[0]!, id: 'b' }])) out.push(q);
    assert.deepEqual(out.map((q) => q.error?.message ?? 'ok'), ['ok', 'ok']);
    c.close();
  });
});

describe('pairpref score --server with TLS and a token', () => {
  const input = join(tmp.dir, 'in.jsonl');
  before(() => writeFileSync(input, JSON.stringify({ id: 'x1', prompt: ['hi'], response_a: ['a'], response_b: ['b'] }) + '\n'));

  test('--tls-ca with --auth-token-file, and with PAIRPREF_TOKEN', async () => {
    const tokenFile = join(tmp.dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const caFile = join(pki.dir, 'ca.pem');
    const out1 = join(tmp.dir, 'out1.csv');
    const r1 = await runCli(['score', '--input', input, '--output', out1, '--server', server.address, '--tls-ca', caFile, '--auth-token-file', tokenFile]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(readFileSync(out1, 'utf8'), /^id,winner_model_a,winner_model_b,winner_tie\nx1,/);
    const out2 = join(tmp.dir, 'out2.csv');
    const r2 = await runCli(['score', '--input', input, '--output', out2, '--server', server.address, '--tls-ca', caFile], 120_000, { PAIRPREF_TOKEN: TOKEN });
    assert.equal(r2.code, 0, r2.stderr);
    const r3 = await runCli(['score', '--input', input, '--output', join(tmp.dir, 'out3.csv'), '--server', server.address, '--tls-ca', caFile], 120_000, { PAIRPREF_TOKEN: undefined });
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /UNAUTHENTICATED|bearer token/);
  });
});
