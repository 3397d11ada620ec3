// Streaming Arena readers: CSV, CSV.gz, JSONL; line numbers on every record and error.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ArenaFileError, countRecords, readArenaFile, type FileRecord } from '../../datasets/arena-file.ts';
import { tempDir } from '../client/helpers.ts';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
function file(name: string, text: string | Buffer): string {
  const p = join(tmp.dir, `${n++}-${name}`);
  writeFileSync(p, text);
  return p;
}

async function all(path: string, labels = false): Promise<FileRecord[]> {
  const out: FileRecord[] = [];
  for await (const r of readArenaFile(path, { labels })) out.push(r);
  return out;
}

const HEADER = 'id,prompt,response_a,response_b';
const GOOD = [HEADER, '1,"[""hi""]","[""a""]","[""b""]"', '', '2,"[""one"",\n""two""]","[""x"", null]","[""y""]"', '3,"[""q""]","[""a""]","[""b""]"'].join('\n') + '\n';

test('CSV and CSV.gz: raw JSON-list strings byte for byte, line numbers where each record starts', async () => {
  for (const path of [file('ok.csv', GOOD), file('ok.csv.gz', gzipSync(GOOD))]) {
    const rows = await all(path);
    assert.deepEqual(
      rows.map((r) => (r.ok ? [r.line, r.comparison.id] : null)),
      [
        [2, '1'],
        [4, '2'],
        [6, '3'],
      ],
    );
    const second = rows[1];
    assert.ok(second?.ok);
    assert.deepEqual(second.comparison, { id: '2', kind: 'raw', prompt: '["one",\n"two"]', response_a: '["x", null]', response_b: '["y"]' });
    assert.equal(await countRecords(path), 3);
  }
});

test('unterminated quote: a fatal error naming the line where the record starts', async () => {
  const path = file('quote.csv', [HEADER, '1,"[""hi""]","[""a""]","[""b""]"', '2,"[""oops]","[""a""]","[""b""]', '3,"[""q""]","[""a""]","[""b""]"'].join('\n'));
  const err = await all(path).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ArenaFileError, String(err));
  assert.equal(err.line, 3);
  assert.match(err.message, /:3: unterminated or stray quote/);
  // In the last record the quote runs to the end of the file.
  const atEnd = file('quote-end.csv', [HEADER, '1,"[""hi""]","[""a""]","[""b""]"', '', '2,"[""a""]","[""b""]","[""c""]', '3,4,5'].join('\n'));
  await assert.rejects(all(atEnd), (e: unknown) => e instanceof ArenaFileError && e.line === 4 && /:4: unterminated quoted field \(runs to the end of the file\)/.test(e.message));
});

test('missing column: in the header a fatal error at line 1, in a record a bad record naming the field', async () => {
  await assert.rejects(all(file('hdr.csv', 'id,prompt,response_a\n1,"[""a""]","[""b""]"\n')), (e: unknown) => e instanceof ArenaFileError && e.line === 1 && e.field === 'response_b' && /lacks column/.test(e.message));
  const rows = await all(file('short.csv', [HEADER, '1,"[""a""]","[""b""]"', '2,"[""a""]","[""b""]","[""c""]"'].join('\n')));
  assert.deepEqual(rows[0], { ok: false, line: 2, id: '1', field: 'response_b', message: 'record has 3 field(s), the header has 4 (missing response_b)' });
  assert.equal(rows[1]?.ok, true);
});

test('a field that is not a JSON list of strings/nulls: a bad record naming line and field', async () => {
  const rows = await all(file('json.csv', [HEADER, '1,"[""a""]","not json","[""c""]"', '2,"[""a""]","[""b""]","{""x"": 1}"', '3,"[""a"", 3]","[""b""]","[""c""]"'].join('\n')));
  assert.deepEqual(
    rows.map((r) => (r.ok ? null : [r.line, r.field, r.message.replace(/\(.*\)/, '(...)')])),
    [
      [2, 'response_a', 'response_a is not valid JSON (...)'],
      [3, 'response_b', 'response_b is not a JSON list of strings (...)'],
      [4, 'prompt', 'prompt is element 1 is number, not a string or null'],
    ],
  );
});

test('labels: read when asked; a labeled read of an unlabeled file fails on the header', async () => {
  const labeled = file('lab.csv', [`${HEADER},winner_model_a,winner_model_b,winner_tie`, '1,"[""a""]","[""b""]","[""c""]",0,0,1', '2,"[""a""]","[""b""]","[""c""]",1,1,0'].join('\n'));
  const rows = await all(labeled, true);
  assert.ok(rows[0]?.ok && rows[0].label === 2);
  assert.deepEqual(rows[1] && !rows[1].ok && [rows[1].line, rows[1].field], [3, 'winner_model_a']);
  await assert.rejects(all(file('nolab.csv', GOOD), true), /lacks column\(s\) winner_model_a, winner_model_b, winner_tie/);
});

test('JSONL (plain and .gz): JSON-list strings stay raw, arrays become turns, bad lines are bad records', async () => {
  const text = [
    JSON.stringify({ id: 'a', prompt: '["hi"]', response_a: '["x"]', response_b: '["y"]', winner_model_a: 1, winner_model_b: 0, winner_tie: 0 }),
    '',
    JSON.stringify({ id: 7, prompt: ['hi', null], response_a: ['x', 'z'], response_b: ['y', 'w'], winner_model_a: 0, winner_model_b: 1, winner_tie: 0 }),
    '{"id": "broken"',
    JSON.stringify({ id: 'c', prompt: '["hi"]', response_a: 'nope', response_b: '["y"]', winner_model_a: 0, winner_model_b: 0, winner_tie: 1 }),
  ].join('\n');
  for (const path of [file('x.jsonl', text), file('x.jsonl.gz', gzipSync(text))]) {
    const rows = await all(path, true);
    assert.equal(rows.length, 4);
    assert.ok(rows[0]?.ok && rows[0].comparison.kind === 'raw' && rows[0].line === 1 && rows[0].label === 0);
    assert.ok(rows[1]?.ok && rows[1].comparison.kind === 'turns' && rows[1].comparison.id === '7' && rows[1].line === 3 && rows[1].label === 1);
    assert.ok(rows[2] && !rows[2].ok && rows[2].line === 4 && /not valid JSON/.test(rows[2].message));
    assert.ok(rows[3] && !rows[3].ok && rows[3].line === 5 && rows[3].field === 'response_a');
  }
});
