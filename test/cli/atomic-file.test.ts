// The submission writer: renamed into place on success, nothing left behind on failure,
// and a body that fails while its first writes are still in flight does not crash the process.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeFileAtomically } from '../../cli/atomic-file.ts';
import { tempDir } from '../client/helpers.ts';

const tmp = tempDir();

test('a finished body is renamed into place and no temp file remains', async () => {
  const path = join(tmp.dir, 'ok.csv');
  await writeFileAtomically(path, async (write) => {
    for (let i = 0; i < 20_000; i++) await write(`${i},0.5\n`);
  });
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 20_000);
  assert.equal(lines[19_999], '19999,0.5');
  assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.includes('.tmp-')), []);
});

test('a body failing right after its first write rejects with its error and leaves no file', async () => {
  // Before the fix this raced: the stream was destroyed while its open and first write were
  // still pending, and the late write callback raised an unhandled 'error' (ERR_STREAM_DESTROYED).
  for (let i = 0; i < 200; i++) {
    const path = join(tmp.dir, `fail-${i}.csv`);
    await assert.rejects(
      writeFileAtomically(path, async (write) => {
        await write('id,winner_model_a,winner_model_b,winner_tie\n');
        if (i % 2) await write('x,1,0,0\n');
        throw new Error(`row ${i} bad`);
      }),
      new RegExp(`row ${i} bad`),
    );
  }
  assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.startsWith('fail-')), []);
});

/** A folder where the temp file would go: opening it for writing fails (EISDIR), even as root. */
function blockTemp(out: string): string {
  mkdirSync(`${out}.tmp-${process.pid}`);
  return out;
}

test('a path that cannot be written is a rejection, not an unhandled error event', async () => {
  await assert.rejects(
    writeFileAtomically(blockTemp(join(tmp.dir, 'out.csv')), async (write) => {
      await write('id\n');
      await write('x\n');
    }),
    /EISDIR/,
  );
});

test('an output folder that does not exist is named before anything is written', async () => {
  await assert.rejects(
    writeFileAtomically(join(tmp.dir, 'no-such-dir', 'out.csv'), async () => assert.fail('the body must not run')),
    /--output .*no-such-dir\/out\.csv: the folder .*no-such-dir does not exist/,
  );
});

test('an open that fails after the last write still rejects (it used to hang waiting for finish)', async () => {
  await assert.rejects(
    writeFileAtomically(blockTemp(join(tmp.dir, 'late.csv')), async (write) => {
      await write('id,winner_model_a,winner_model_b,winner_tie\n');
      await new Promise((r) => setTimeout(r, 50)); // the open fails while the body is idle
    }),
    /EISDIR/,
  );
});
