// `pairpref score` end to end: the real bin, a real server on an ephemeral port, and in-process
// mode with the fixture bundle; arena-hard-pairs.csv.gz (1,500 rows) from ../shared/data.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readArenaFile } from '../../datasets/arena-file.ts';
import type { RunningServer } from '../../server/server.ts';
import { fixtureServerForFile, SHARED_DATA } from '../client/helpers.ts';
import { readSubmission, runCli } from './run-cli.ts';

const ARENA_HARD = join(SHARED_DATA, 'arena-hard-pairs.csv.gz');
const fixture = fixtureServerForFile();
const { tmp, bundle } = fixture;

describe('score arena-hard-pairs.csv.gz', () => {
  test('through a server and in-process: 1,500 rows, input ids in input order, rows sum to 1, modes agree within 1e-6', async () => {
    const inputIds: string[] = [];
    for await (const r of readArenaFile(ARENA_HARD)) {
      assert.ok(r.ok);
      inputIds.push(r.comparison.id);
    }
    assert.equal(inputIds.length, 1500);

    const viaServer = join(tmp.dir, 'server.csv');
    const inProcess = join(tmp.dir, 'local.csv');
    const s = await runCli(['score', '--input', ARENA_HARD, '--output', viaServer, '--server', fixture.server.address]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout, '');
    assert.equal(s.stderr, '', 'quiet when not a terminal');
    const l = await runCli(['score', '--input', ARENA_HARD, '--output', inProcess, '--model', bundle, '--devices', 'cpu', '--window', '32']);
    assert.equal(l.code, 0, l.stderr);

    const a = readSubmission(viaServer);
    const b = readSubmission(inProcess);
    assert.equal(a.header, 'id,winner_model_a,winner_model_b,winner_tie');
    assert.equal(b.header, a.header);
    assert.deepEqual(a.rows.map((r) => r.id), inputIds);
    assert.deepEqual(b.rows.map((r) => r.id), inputIds);
    let maxDiff = 0;
    for (const [i, r] of a.rows.entries()) {
      const q = b.rows[i]!;
      for (const p of [r.probs, q.probs]) {
        assert.ok(p.every((x) => Number.isFinite(x) && x >= 0 && x <= 1), `row ${r.id}: ${p}`);
        assert.ok(Math.abs(p[0] + p[1] + p[2] - 1) < 1e-6, `row ${r.id} sums to ${p[0] + p[1] + p[2]}`);
      }
      for (let k = 0; k < 3; k++) maxDiff = Math.max(maxDiff, Math.abs(r.probs[k]! - q.probs[k]!));
    }
    assert.ok(maxDiff < 1e-6, `server and in-process differ by up to ${maxDiff}`);
  });
});

describe('bad rows', () => {
  const header = 'id,prompt,response_a,response_b';
  const good = (id: string): string => `${id},"[""hello ${id}""]","[""a""]","[""b""]"`;

  test('--limit N scores the first N usable rows, in order', async () => {
    const input = join(tmp.dir, 'five.csv');
    writeFileSync(input, [header, good('1'), good('2'), good('3'), good('4'), good('5')].join('\n') + '\n');
    const output = join(tmp.dir, 'three.csv');
    const r = await runCli(['score', '--input', input, '--output', output, '--server', fixture.server.address, '--limit', '3']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readSubmission(output).rows.map((x) => x.id), ['1', '2', '3']);
  });

  test('an output folder that does not exist is named as such before any work, not as a temp file', async () => {
    const input = join(tmp.dir, 'one.csv');
    writeFileSync(input, [header, good('1')].join('\n') + '\n');
    const output = join(tmp.dir, 'no-such-folder', 'out.csv');
    const r = await runCli(['score', '--input', input, '--output', output, '--server', fixture.server.address]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--output .*no-such-folder\/out\.csv: the folder .*no-such-folder does not exist/);
    assert.doesNotMatch(r.stderr, /tmp-\d+/);
  });

  test('default: stops at the first bad row with its line number, exit 1, no output file', async () => {
    const input = join(tmp.dir, 'bad.csv');
    writeFileSync(input, [header, good('1'), good('2'), '3,"[""x""]","{""not"": ""a list""}","[""b""]"', good('4')].join('\n') + '\n');
    const output = join(tmp.dir, 'bad-out.csv');
    const r = await runCli(['score', '--input', input, '--output', output, '--server', fixture.server.address]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /pairpref score: error: .*bad\.csv:4: response_a: response_a is not a JSON list of strings \(got object\) \(id "3"\)/);
    assert.equal(existsSync(output), false);
    assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.startsWith('bad-out')), [], 'no temp file left behind');
  });

  test('unterminated quote and missing column fail with their line numbers', async () => {
    const quote = join(tmp.dir, 'quote.csv');
    writeFileSync(quote, [header, good('1'), '2,"[""oops]","[""a""]","[""b""]', good('3')].join('\n') + '\n');
    const q = await runCli(['score', '--input', quote, '--output', join(tmp.dir, 'q.csv'), '--server', fixture.server.address]);
    assert.equal(q.code, 1);
    assert.match(q.stderr, /quote\.csv:3: unterminated or stray quote/);
    const missing = join(tmp.dir, 'missing.csv');
    writeFileSync(missing, [header, good('1'), '2,"[""x""]","[""a""]"'].join('\n') + '\n');
    const m = await runCli(['score', '--input', missing, '--output', join(tmp.dir, 'm.csv'), '--server', fixture.server.address]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /missing\.csv:3: response_b: record has 3 field\(s\), the header has 4/);
  });

  test('--skip-bad writes the other rows in order and lists the skipped ids with lines and reasons', async () => {
    const input = join(tmp.dir, 'skip.jsonl');
    const row = (id: string, prompt = '["q"]') => JSON.stringify({ id, prompt, response_a: '["a"]', response_b: '["b"]' });
    const turns = JSON.stringify({ id: 'd', prompt: ['turn', null], response_a: ['a', 'x'], response_b: ['b', 'y'] });
    writeFileSync(input, [row('a'), row('b', 'not json'), '{oops', row('c'), row('a'), turns].join('\n') + '\n');
    const output = join(tmp.dir, 'skip.csv');
    const r = await runCli(['score', '--input', input, '--output', output, '--server', fixture.server.address, '--skip-bad']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readSubmission(output).rows.map((x) => x.id), ['a', 'c', 'd']);
    assert.match(r.stderr, /skipped 3 bad row\(s\):/);
    assert.match(r.stderr, /line 2 id "b": prompt: prompt is not valid JSON/);
    assert.match(r.stderr, /line 3: not valid JSON/);
    assert.match(r.stderr, /line 5 id "a": id: duplicate id \(first seen at line 1\)/);
  });
});

describe('help', () => {
  test('every flag is explained with its default', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /score \[options\]/);
    assert.match(top.stdout, /eval \[options\]/);
    const s = await runCli(['score', '--help']);
    for (const flag of ['--input', '--output', '--server', '--model', '--devices', '--tta', '--skip-bad', '--window']) assert.match(s.stdout, new RegExp(flag));
    assert.match(s.stdout, /--window <n>[\s\S]*\(default:\s+64\)/);
    assert.match(s.stdout, /--devices <list>[\s\S]*\(default:\s+"auto"\)/);
    assert.match(s.stdout, /default:\s+models\/default when --server is not given/);
    const e = await runCli(['eval', '--help']);
    assert.match(e.stdout, /--json[\s\S]*\(default:\s+false\)/);
  });
});
