// Transport security: TLS, mutual TLS, the bearer token, the plaintext health port, and the
// `pairpref serve` flags that turn them on. Certificates are made at test time with openssl
// (EC prime256v1 keys, so it takes milliseconds).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadSync } from '@grpc/proto-loader';
import { Client, credentials, loadPackageDefinition, Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient, type Comparison, type Prediction } from '../../proto/gen/pairpref/v1/preference.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { killChildren, spawnServe, type ServeChild } from '../helpers/serve-child.ts';
import { wire } from '../helpers/grpc-client.ts';
import { makePki, type Pki } from '../helpers/pki.ts';

const BIN = new URL('../../bin/pairpref.mjs', import.meta.url).pathname;
/** Every call gets a deadline, so a refused connection can never hang the suite. */
const CALL_DEADLINE_MS = 30_000;
const ROWS: Comparison[] = [
  wire({ id: 'r1', prompt: ['hi'], responseA: ['hello'], responseB: ['hey'] }),
  wire({ id: 'r2', prompt: ['2+2?'], responseA: ['4'], responseB: ['5'] }),
];

// ---- clients -------------------------------------------------------------------------------

const deadline = (): { deadline: number } => ({ deadline: Date.now() + CALL_DEADLINE_MS });

function bearer(token: string | null, header = token === null ? null : `Bearer ${token}`): Metadata {
  const md = new Metadata();
  if (header !== null) md.set('authorization', header);
  return md;
}

function score(address: string, creds: ChannelCredentials, md = new Metadata(), rows = ROWS): Promise<Prediction[]> {
  const c = new PairwisePreferenceClient(address, creds);
  return new Promise<Prediction[]>((resolve, reject) =>
    c.score({ comparisons: rows, options: { swapTta: false } }, md, deadline(), (err, res) => (err ? reject(err) : resolve(res.predictions))),
  ).finally(() => c.close());
}

function scoreStream(address: string, creds: ChannelCredentials, md = new Metadata(), rows = ROWS): Promise<Prediction[]> {
  const c = new PairwisePreferenceClient(address, creds);
  return new Promise<Prediction[]>((resolve, reject) => {
    const out: Prediction[] = [];
    const call = c.scoreStream(md, deadline());
    call.on('data', (p: Prediction) => out.push(p));
    call.on('error', reject);
    call.on('end', () => resolve(out));
    for (const r of rows) call.write({ comparison: r, options: undefined });
    call.end();
  }).finally(() => c.close());
}

function modelInfo(address: string, creds: ChannelCredentials, md = new Metadata()): Promise<string> {
  const c = new PairwisePreferenceClient(address, creds);
  return new Promise<string>((resolve, reject) => c.getModelInfo({}, md, deadline(), (err, res) => (err ? reject(err) : resolve(res.name)))).finally(() => c.close());
}

/**
 * One server-reflection request (list_services) as raw protobuf bytes, to v1 or v1alpha; resolves
 * with the raw response bytes. Field 7 (list_services) = "" is 0x3a 0x00.
 */
function reflectionList(address: string, creds: ChannelCredentials, version: 'v1' | 'v1alpha', md = new Metadata()): Promise<Buffer> {
  const c = new Client(address, creds);
  const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`;
  return new Promise<Buffer>((resolve, reject) => {
    const call = c.makeBidiStreamRequest(path, (b: Buffer) => b, (b: Buffer) => b, md, deadline());
    call.on('data', (b: Buffer) => {
      resolve(b);
      call.end();
    });
    call.on('error', reject);
    call.write(Buffer.from([0x3a, 0x00]));
  }).finally(() => c.close());
}

type HealthCtor = new (address: string, creds: ChannelCredentials) => Client & {
  check(req: { service: string }, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res: { status: string }) => void): void;
};
const Health = (loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as { grpc: { health: { v1: { Health: HealthCtor } } } }).grpc.health.v1.Health;

function healthCheck(address: string, creds: ChannelCredentials, service = ''): Promise<string> {
  const c = new Health(address, creds);
  return new Promise<string>((resolve, reject) => c.check({ service }, new Metadata(), deadline(), (err, res) => (err ? reject(err) : resolve(res.status)))).finally(() => c.close());
}

/** Asserts the promise rejects with this gRPC status code; returns the error. */
async function rejectsWith(p: Promise<unknown>, code: status, what: string): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as ServiceError;
    assert.equal(err.code, code, `${what}: expected ${status[code]}, got ${status[err.code] ?? err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`${what}: expected ${status[code]}, but the call succeeded`);
}

function assertScored(preds: Prediction[], what: string): void {
  assert.deepEqual(preds.map((p) => p.id).sort(), ROWS.map((r) => r.id).sort(), what);
  for (const p of preds) {
    assert.equal(p.error, undefined, `${what}: row ${p.id} failed: ${p.error?.message}`);
    assert.ok(Math.abs(p.winnerModelA + p.winnerModelB + p.winnerTie - 1) < 1e-6, `${what}: row ${p.id} probabilities sum to 1`);
  }
}

// ---- child processes -----------------------------------------------------------------------


/** `pairpref serve` run to completion (startup failures): never longer than 60 s. */
function serveSync(args: readonly string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'serve', '--port', '0', '--devices', 'cpu', ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  return { status: r.status, stderr: r.stderr };
}

after(() => {
  killChildren();
});

// ---- tests ---------------------------------------------------------------------------------

let pki: Pki;
let bundleDir: string;
before(() => {
  pki = makePki();
  bundleDir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
});

describe('TLS', () => {
  let server: RunningServer;
  before(async () => {
    server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', tls: { cert: pki.serverCert, key: pki.serverKey } });
  });
  after(async () => {
    await server?.close();
  });

  test('a client that trusts the CA scores, streams and reads the model info', async () => {
    const creds = credentials.createSsl(pki.ca);
    assertScored(await score(server.address, creds), 'Score over TLS');
    assertScored(await scoreStream(server.address, creds), 'ScoreStream over TLS');
    assert.equal(await modelInfo(server.address, creds), 'fixture');
    assert.equal(await healthCheck(server.address, creds), 'SERVING');
  });

  test('a plaintext client and a client that does not trust the CA get UNAVAILABLE', async () => {
    await rejectsWith(score(server.address, credentials.createInsecure()), status.UNAVAILABLE, 'plaintext client');
    await rejectsWith(healthCheck(server.address, credentials.createInsecure()), status.UNAVAILABLE, 'plaintext health check');
    await rejectsWith(score(server.address, credentials.createSsl(pki.otherCa)), status.UNAVAILABLE, 'client trusting another CA');
    // A client certificate is not asked for without clientCa, and does not hurt.
    assertScored(await score(server.address, credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert)), 'TLS client with a certificate');
  });
});

describe('mutual TLS (clientCa)', () => {
  let server: RunningServer;
  before(async () => {
    server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca } });
  });
  after(async () => {
    await server?.close();
  });

  test('a client with a certificate the CA signed scores', async () => {
    assertScored(await score(server.address, credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert)), 'mutual TLS');
  });

  test('a client without a certificate, or with one another CA signed, fails', async () => {
    await rejectsWith(score(server.address, credentials.createSsl(pki.ca)), status.UNAVAILABLE, 'TLS client without a certificate');
    await rejectsWith(score(server.address, credentials.createSsl(pki.ca, pki.otherClientKey, pki.otherClientCert)), status.UNAVAILABLE, 'client certificate from another CA');
    await rejectsWith(score(server.address, credentials.createInsecure()), status.UNAVAILABLE, 'plaintext client');
  });
});

describe('bearer token (authToken)', () => {
  const TOKEN = 's3cret-token-for-tests';
  let server: RunningServer;
  before(async () => {
    server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', authToken: TOKEN, metricsPort: 0 });
  });
  after(async () => {
    await server?.close();
  });

  const rejectedMetric = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    const m = /^pairpref_rejected_total\{reason="unauthenticated"\} (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  };

  test('without the right token every call but health is UNAUTHENTICATED, and the metric counts each refusal', async () => {
    const insecure = credentials.createInsecure();
    const before = await rejectedMetric();
    let refused = 0;
    const refuse = async (p: Promise<unknown>, what: string): Promise<void> => {
      const err = await rejectsWith(p, status.UNAUTHENTICATED, what);
      assert.match(err.details, /bearer token/, `${what}: the message says what is missing`);
      refused++;
    };
    const wrongs: Array<[string, Metadata]> = [
      ['no token', new Metadata()],
      ['wrong token', bearer('not-the-token')],
      ['token prefix', bearer(TOKEN.slice(0, -1))],
      ['token without "Bearer "', bearer(null, TOKEN)],
      ['other scheme', bearer(null, `Basic ${TOKEN}`)],
      ['empty bearer', bearer(null, 'Bearer ')],
    ];
    for (const [what, md] of wrongs) {
      await refuse(score(server.address, insecure, md), `Score, ${what}`);
      await refuse(scoreStream(server.address, insecure, md), `ScoreStream, ${what}`);
      await refuse(modelInfo(server.address, insecure, md), `GetModelInfo, ${what}`);
      await refuse(reflectionList(server.address, insecure, 'v1', md), `reflection v1, ${what}`);
      await refuse(reflectionList(server.address, insecure, 'v1alpha', md), `reflection v1alpha, ${what}`);
    }
    assert.equal((await rejectedMetric()) - before, refused, 'pairpref_rejected_total{reason="unauthenticated"} counts every refused call');
  });

  test('the right token scores, streams, reads the model info and reflection', async () => {
    const insecure = credentials.createInsecure();
    const before = await rejectedMetric();
    assertScored(await score(server.address, insecure, bearer(TOKEN)), 'Score with the token');
    assertScored(await scoreStream(server.address, insecure, bearer(TOKEN)), 'ScoreStream with the token');
    assert.equal(await modelInfo(server.address, insecure, bearer(TOKEN)), 'fixture');
    for (const v of ['v1', 'v1alpha'] as const) {
      const res = await reflectionList(server.address, insecure, v, bearer(TOKEN));
      assert.ok(res.includes('pairpref.v1.PairwisePreference'), `reflection ${v} lists the service`);
    }
    assert.equal(await rejectedMetric(), before, 'accepted calls are not counted as refusals');
  });

  test('health Check answers without a token', async () => {
    const before = await rejectedMetric();
    assert.equal(await healthCheck(server.address, credentials.createInsecure()), 'SERVING');
    assert.equal(await healthCheck(server.address, credentials.createInsecure(), 'pairpref.v1.PairwisePreference'), 'SERVING');
    assert.equal(await rejectedMetric(), before);
  });
});

describe('TLS, bearer token and a plaintext health port together', () => {
  const TOKEN = 'tls-and-token';
  let server: RunningServer;
  before(async () => {
    server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', tls: { cert: pki.serverCert, key: pki.serverKey }, authToken: TOKEN, healthPort: 0 });
  });
  after(async () => {
    await server?.close();
  });

  test('the health port answers a plaintext Check with SERVING; the main port stays TLS-only', async () => {
    assert.ok(server.healthPort !== null && server.healthPort > 0 && server.healthPort !== server.port);
    const healthAddr = `127.0.0.1:${server.healthPort}`;
    assert.equal(await healthCheck(healthAddr, credentials.createInsecure()), 'SERVING');
    assert.equal(await healthCheck(healthAddr, credentials.createInsecure(), 'pairpref.v1.PairwisePreference'), 'SERVING');
    // The health port serves health alone: no scoring in plaintext through it.
    await rejectsWith(score(healthAddr, credentials.createInsecure(), bearer(TOKEN)), status.UNIMPLEMENTED, 'Score on the health port');
    await rejectsWith(healthCheck(server.address, credentials.createInsecure()), status.UNAVAILABLE, 'plaintext Check on the main port');
    await rejectsWith(score(server.address, credentials.createInsecure(), bearer(TOKEN)), status.UNAVAILABLE, 'plaintext Score on the main port');
  });

  test('TLS with the token in channel credentials scores; TLS without it is UNAUTHENTICATED', async () => {
    const ssl = credentials.createSsl(pki.ca);
    const withToken = credentials.combineChannelCredentials(
      ssl,
      credentials.createFromMetadataGenerator((_params, cb) => cb(null, bearer(TOKEN))),
    );
    assertScored(await score(server.address, withToken), 'TLS + token (channel credentials)');
    assertScored(await scoreStream(server.address, withToken), 'TLS + token stream (channel credentials)');
    await rejectsWith(score(server.address, ssl), status.UNAUTHENTICATED, 'TLS without the token');
    assert.equal(await healthCheck(server.address, ssl), 'SERVING', 'health over TLS needs no token');
  });
});

describe('pairpref serve security flags', () => {
  const SERVING = /serving \S+ \S+ on (\S+) \(devices: cpu; ([^;]+); health: SERVING\)/;

  test('--tls-cert/--tls-key/--auth-token-file/--health-port: serves TLS with a token, health in plaintext', { timeout: 180_000 }, async () => {
    const tokenFile = join(pki.dir, 'token');
    writeFileSync(tokenFile, '  cli-token-123\n'); // trimmed, as documented
    const child = spawnServe([
      '--model', bundleDir,
      '--tls-cert', pki.paths.serverCert,
      '--tls-key', pki.paths.serverKey,
      '--auth-token-file', tokenFile,
      '--health-port', '0',
      '--drain-grace-ms', '0',
    ]);
    const m = await child.waitFor(SERVING);
    assert.equal(m[2], 'TLS, bearer token', child.log());
    const address = m[1]!;
    const healthPort = Number((await child.waitFor(/health checks \(plaintext\) on [^\s:]+:(\d+)/))[1]);
    const creds = credentials.createSsl(pki.ca);
    assertScored(await score(address, creds, bearer('cli-token-123')), 'CLI: TLS + token');
    await rejectsWith(score(address, creds), status.UNAUTHENTICATED, 'CLI: TLS without a token');
    await rejectsWith(score(address, credentials.createInsecure(), bearer('cli-token-123')), status.UNAVAILABLE, 'CLI: plaintext client');
    assert.equal(await healthCheck(`127.0.0.1:${healthPort}`, credentials.createInsecure()), 'SERVING');
    assert.doesNotMatch(child.log(), /without TLS or a token/);
    child.proc.kill('SIGTERM');
    const { code } = await child.exited;
    assert.equal(code, 0, child.log());
  });

  test('--tls-client-ca: logs mutual TLS and scores for a client certificate only', { timeout: 180_000 }, async () => {
    const child = spawnServe(['--model', bundleDir, '--tls-cert', pki.paths.serverCert, '--tls-key', pki.paths.serverKey, '--tls-client-ca', pki.paths.ca, '--drain-grace-ms', '0']);
    const m = await child.waitFor(SERVING);
    assert.equal(m[2], 'mutual TLS', child.log());
    assertScored(await score(m[1]!, credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert)), 'CLI: mutual TLS');
    await rejectsWith(score(m[1]!, credentials.createSsl(pki.ca)), status.UNAVAILABLE, 'CLI: no client certificate');
    child.proc.kill('SIGTERM');
    assert.equal((await child.exited).code, 0, child.log());
  });

  test('--host 0.0.0.0 without TLS or a token logs a warning', { timeout: 180_000 }, async () => {
    const child = spawnServe(['--model', bundleDir, '--host', '0.0.0.0']);
    try {
      await child.waitFor(/listening on 0\.0\.0\.0 without TLS or a token: anyone who can reach this port/);
    } finally {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
  });

  test('bad security flags exit 1 with one clear line', { timeout: 400_000 }, () => {
    const oneLine = (r: { status: number | null; stderr: string }, re: RegExp, what: string): void => {
      assert.equal(r.status, 1, `${what}: exit 1\n${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${what}: one line\n${r.stderr}`);
      assert.match(lines[0]!, re, what);
    };
    const empty = join(pki.dir, 'empty-token');
    writeFileSync(empty, ' \n\n');
    oneLine(serveSync(['--model', bundleDir, '--auth-token-file', empty]), /^pairpref: --auth-token-file: .*empty-token is empty$/, 'empty token file');
    oneLine(serveSync(['--model', bundleDir, '--auth-token-file', join(pki.dir, 'no-such-token')]), /^pairpref: --auth-token-file: cannot read .*no-such-token/, 'missing token file');
    oneLine(serveSync(['--model', bundleDir, '--tls-cert', pki.paths.serverCert]), /^pairpref: --tls-cert and --tls-key go together$/, '--tls-cert without --tls-key');
    oneLine(serveSync(['--model', bundleDir, '--tls-key', pki.paths.serverKey]), /^pairpref: --tls-cert and --tls-key go together$/, '--tls-key without --tls-cert');
    oneLine(serveSync(['--model', bundleDir, '--tls-client-ca', pki.paths.ca]), /^pairpref: --tls-client-ca needs --tls-cert and --tls-key/, '--tls-client-ca alone');
    oneLine(serveSync(['--model', bundleDir, '--tls-cert', join(pki.dir, 'nope.pem'), '--tls-key', pki.paths.serverKey]), /^pairpref: --tls-cert: cannot read .*nope\.pem/, 'missing certificate file');
  });
});
