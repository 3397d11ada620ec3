// `pairpref eval` on 500 labeled dev rows (in-process, fixture bundle): its log loss must equal
// one computed here from the `score` predictions and the labels.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readArenaFile, type LabelIndex } from '../../datasets/arena-file.ts';
import { fixtureBundle, SHARED_DATA, tempDir } from '../client/helpers.ts';
import { readSubmission, runCli } from './run-cli.ts';

const DEV = join(SHARED_DATA, 'alpaca-pairs-dev.csv.gz');
const tmp = tempDir();
after(() => tmp.cleanup());

describe('eval on 500 dev rows', () => {
  test('--json log loss equals a reference computed from the score predictions; counts and confusion add up', async () => {
    assert.ok(existsSync(DEV), `${DEV} is absent: this test reads dev rows from ../shared/data`);
    const bundle = fixtureBundle(tmp.dir);
    // The first 500 dev rows as JSONL (raw JSON-list strings, labels as numbers).
    const labels = new Map<string, LabelIndex>();
    const lines: string[] = [];
    for await (const r of readArenaFile(DEV, { labels: true })) {
      assert.ok(r.ok && r.comparison.kind === 'raw' && r.label !== null);
      const c = r.comparison;
      labels.set(c.id, r.label);
      const onehot = [0, 0, 0];
      onehot[r.label] = 1;
      lines.push(JSON.stringify({ id: c.id, prompt: c.prompt, response_a: c.response_a, response_b: c.response_b, winner_model_a: onehot[0], winner_model_b: onehot[1], winner_tie: onehot[2] }));
      if (lines.length === 500) break;
    }
    const input = join(tmp.dir, 'dev500.jsonl');
    writeFileSync(input, lines.join('\n') + '\n');

    const [ev, sc] = await Promise.all([
      runCli(['eval', '--input', input, '--model', bundle, '--devices', 'cpu', '--json']),
      runCli(['score', '--input', input, '--output', join(tmp.dir, 'dev500.csv'), '--model', bundle, '--devices', 'cpu']),
    ]);
    assert.equal(ev.code, 0, ev.stderr);
    assert.equal(sc.code, 0, sc.stderr);
    const report = JSON.parse(ev.stdout) as { log_loss: number; accuracy: number; n: number; class_counts: Record<string, number>; confusion: number[][] };

    // Reference: sklearn.metrics.log_loss semantics (clip to [1e-15, 1-1e-15], renormalise rows).
    const preds = readSubmission(join(tmp.dir, 'dev500.csv')).rows;
    assert.equal(preds.length, 500);
    let loss = 0;
    let correct = 0;
    const counts = [0, 0, 0];
    for (const { id, probs } of preds) {
      const y = labels.get(id);
      assert.ok(y !== undefined);
      const clipped = probs.map((p) => Math.min(1 - 1e-15, Math.max(1e-15, p)));
      loss -= Math.log(clipped[y]! / (clipped[0]! + clipped[1]! + clipped[2]!));
      const best = probs.indexOf(Math.max(...probs));
      if (best === y) correct++;
      counts[y]!++;
    }
    assert.equal(report.n, 500);
    // Two separate runs: rows may share batches differently, which moves float32 outputs by ~1e-7.
    assert.ok(Math.abs(report.log_loss - loss / 500) < 1e-6, `eval ${report.log_loss} vs reference ${loss / 500}`);
    assert.equal(report.accuracy, correct / 500);
    assert.deepEqual(report.class_counts, { winner_model_a: counts[0], winner_model_b: counts[1], winner_tie: counts[2] });
    assert.deepEqual(report.confusion.map((row) => row.reduce((a, b) => a + b, 0)), counts);
    assert.equal(report.confusion.reduce((a, row, i) => a + row[i]!, 0), correct);
  });

  test('the table names each metric; an unlabeled file is a clear error', async () => {
    const bundle = join(tmp.dir, 'bundle');
    const input = join(tmp.dir, 'dev500.jsonl');
    assert.ok(existsSync(input), 'written by the previous test');
    const t = await runCli(['eval', '--input', input, '--model', bundle, '--devices', 'cpu']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^n\s+500$/m);
    assert.match(t.stdout, /^log loss\s+\d+\.\d{6}/m);
    assert.match(t.stdout, /^accuracy\s+0\.\d{6}/m);
    assert.match(t.stdout, /confusion matrix/);
    const unlabeled = join(tmp.dir, 'u.csv');
    writeFileSync(unlabeled, 'id,prompt,response_a,response_b\n1,"[""a""]","[""b""]","[""c""]"\n');
    const u = await runCli(['eval', '--input', unlabeled, '--model', bundle, '--devices', 'cpu', '--json']);
    assert.equal(u.code, 1);
    assert.equal(u.stdout, '');
    assert.match(u.stderr, /u\.csv:1: winner_model_a: header lacks column\(s\) winner_model_a, winner_model_b, winner_tie/);
  });
});

test('eval scores rows that repeat an id (the dev split has two); score still refuses them', async () => {
  const bundle = fixtureBundle(tmp.dir);
  const row = (id: string, label: number) =>
    JSON.stringify({ id, prompt: '["q"]', response_a: '["a"]', response_b: '["bb"]', winner_model_a: label === 0 ? 1 : 0, winner_model_b: label === 1 ? 1 : 0, winner_tie: label === 2 ? 1 : 0 });
  const input = join(tmp.dir, 'dup.jsonl');
  writeFileSync(input, [row('x', 0), row('y', 1), row('x', 0)].join('\n') + '\n');
  const ev = await runCli(['eval', '--input', input, '--model', bundle, '--devices', 'cpu', '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal((JSON.parse(ev.stdout) as { n: number }).n, 3);
  const sc = await runCli(['score', '--input', input, '--output', join(tmp.dir, 'dup.csv'), '--model', bundle, '--devices', 'cpu']);
  assert.equal(sc.code, 1);
  assert.match(sc.stderr, /dup\.jsonl:3: id: duplicate id \(first seen at line 1\)/);
  assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.startsWith('dup.csv')), [], 'no partial submission left behind');
});
