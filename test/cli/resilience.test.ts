// `pairpref score` / `eval` when things go wrong mid-run: SIGINT/SIGTERM remove the temp output and
// exit 130/143; a stale temp file of a killed run is removed by the next run; a replica killed
// mid-run costs re-sent rows (counted in the summary line), not the run. The input is a FIFO the
// test feeds, so it decides exactly where the run is when the signal or the kill lands.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, createWriteStream, existsSync, openSync, readdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningServer } from '../../server/server.ts';
import { spawnServer } from '../client/child-server.ts';
import { fixtureServerForFile } from '../client/helpers.ts';
import { waitUntil } from '../helpers/wait.ts';
import { readSubmission, spawnCli, type SpawnedCli } from './run-cli.ts';

const fixture = fixtureServerForFile();
const { tmp, bundle } = fixture;

const rowsDone = (s: RunningServer): number => s.scorer.loads().reduce((n, l) => n + l.rows, 0);
const line = (i: number, labeled = false): string =>
  JSON.stringify({ id: `r${i}`, prompt: `["question ${i}"]`, response_a: '["a"]', response_b: '["bb"]', ...(labeled ? { winner_model_a: 1, winner_model_b: 0, winner_tie: 0 } : {}) }) + '\n';

/** A named pipe the CLI reads its input from, fed by the test. */
class Feed {
  readonly path: string;
  private readonly w: WriteStream;
  constructor(name: string) {
    this.path = join(tmp.dir, name);
    execFileSync('mkfifo', [this.path]);
    this.w = createWriteStream(this.path);
    this.w.on('error', () => undefined); // EPIPE once the CLI has exited: expected here
  }
  write(text: string): Promise<void> {
    return new Promise((resolve) => this.w.write(text, () => resolve()));
  }
  end(): void {
    this.w.end();
  }
  /** If the CLI never opened the pipe, our pending open would keep the test alive: open the other end. */
  dispose(): void {
    if (this.w.pending) closeSync(openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK));
    this.w.destroy();
  }
}

/** Data lines in the CLI's temp output (its header excluded), or -1 before it exists. */
function tempRows(dir: string, output: string): number {
  const name = readdirSync(dir).find((n) => n.startsWith(`${output}.tmp-`));
  if (!name) return -1;
  return readFileSync(join(dir, name), 'utf8').split('\n').length - 2;
}

/**
 * Once the CLI has said it is exiting, closes the input as a producer hit by the same Ctrl-C
 * would. (A process blocked reading a pipe cannot finish exiting before the pipe's writer closes:
 * Node's exit waits for the thread blocked in read().)
 */
async function closeAfterExitLine(feed: Feed, cli: SpawnedCli): Promise<void> {
  await waitUntil('the exit line', () => /interrupted by/.test(cli.stderr()));
  feed.end();
}

for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`score: ${sig} mid-run removes the temp output and exits ${code} with one line`, async () => {
    const feed = new Feed(`in-${sig}.jsonl`);
    const output = `out-${sig}.csv`;
    const cli = spawnCli(['score', '--input', feed.path, '--output', join(tmp.dir, output), '--server', fixture.server.address]);
    try {
      for (let i = 0; i < 10; i++) await feed.write(line(i));
      // Ten rows scored and written to the temp file; the eleventh has not been fed: mid-run.
      await waitUntil('ten rows in the temp output', () => tempRows(tmp.dir, output) === 10);
      cli.proc.kill(sig);
      await closeAfterExitLine(feed, cli);
      const r = await cli.done;
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, new RegExp(`^pairpref score: interrupted by ${sig}; removed the partial output \\S+${output}\\.tmp-${cli.proc.pid}\\n$`));
      assert.deepEqual(readdirSync(tmp.dir).filter((n) => n.startsWith(output)), [], 'no output and no temp file');
    } finally {
      feed.dispose();
      cli.proc.kill('SIGKILL');
    }
  });
}

test('eval: SIGINT mid-run exits 130 with one line and prints no report', async () => {
  const feed = new Feed('eval-in.jsonl');
  const before = rowsDone(fixture.server);
  const cli = spawnCli(['eval', '--input', feed.path, '--server', fixture.server.address, '--json']);
  try {
    for (let i = 0; i < 10; i++) await feed.write(line(i, true));
    await waitUntil('ten rows scored by the server', () => rowsDone(fixture.server) - before >= 10);
    cli.proc.kill('SIGINT');
    await closeAfterExitLine(feed, cli);
    const r = await cli.done;
    assert.equal(r.code, 130, r.stderr);
    assert.equal(r.stderr, 'pairpref eval: interrupted by SIGINT\n');
    assert.equal(r.stdout, '');
  } finally {
    feed.dispose();
    cli.proc.kill('SIGKILL');
  }
});

test("score: a killed run's stale temp file is removed by the next run; a live process's is kept", async () => {
  const output = join(tmp.dir, 'stale.csv');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid as number; // exited: its pid is free
  const stale = `${output}.tmp-${deadPid}`;
  const live = `${output}.tmp-${process.pid}`; // this test process is alive
  writeFileSync(stale, 'id,winner_model_a\npartial');
  writeFileSync(live, 'in progress');
  const input = join(tmp.dir, 'stale-in.jsonl');
  writeFileSync(input, line(1) + line(2));
  const r = await spawnCli(['score', '--input', input, '--output', output, '--server', fixture.server.address]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, `pairpref score: removed ${stale}, left by a run that was killed\n`);
  assert.equal(existsSync(stale), false);
  assert.equal(existsSync(live), true);
  assert.deepEqual(readSubmission(output).rows.map((x) => x.id), ['r1', 'r2']);
});

test('score --server A,B: A killed mid-run; every row written once, in order; re-sent rows in the summary line', async () => {
  const child = await spawnServer(bundle);
  const feed = new Feed('failover-in.jsonl');
  const output = 'failover.csv';
  // The child is listed first: when both replicas owe nothing, the first one gets the next row.
  const cli = spawnCli(['score', '--input', feed.path, '--output', join(tmp.dir, output), '--server', `${child.address},${fixture.server.address}`, '--window', '16']);
  try {
    for (let i = 0; i < 50; i++) await feed.write(line(i));
    await waitUntil('the first 50 rows written', () => tempRows(tmp.dir, output) === 50);
    // Neither replica owes anything now, so row r50 goes to the child (listed first), which,
    // stopped, keeps it. Once the other replica scores a later row, r50 has certainly been dealt.
    child.signal('SIGSTOP');
    const base = rowsDone(fixture.server);
    for (let i = 50; i < 100; i++) await feed.write(line(i));
    await waitUntil('a row after r50 scored by the other replica', () => rowsDone(fixture.server) > base);
    // Killed, the child leaves r50 (and whatever else it was dealt) to be re-sent to the other replica.
    child.signal('SIGKILL');
    feed.end();
    const r = await cli.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readSubmission(join(tmp.dir, output)).rows.map((x) => x.id), Array.from({ length: 100 }, (_, i) => `r${i}`));
    assert.match(r.stderr, new RegExp(`pairpref score: replica ${child.address} failed \\(UNAVAILABLE: [^)]*\\); [1-9]\\d* unanswered row\\(s\\) re-sent`));
    const m = /^wrote 100 row\(s\) to \S+ in [\d.]+ s \([\d.]+ rows\/s\); (\d+) rows? re-sent after a replica failed$/m.exec(r.stderr);
    assert.ok(m && Number(m[1]) > 0, r.stderr);
  } finally {
    feed.dispose();
    cli.proc.kill('SIGKILL');
    await child.dispose();
  }
});
