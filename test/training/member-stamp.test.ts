// --resume reuses a member only when its checkpoint came from the same shards and train.py arguments.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { canReuseMember, shardsDigest, writeStamp } from '../../training/member-stamp.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-stamp-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('a member is reused only with matching shards, arguments and files', () => {
  const shards = join(work, 'shards');
  mkdirSync(shards);
  writeFileSync(join(shards, 'train.ids.i32'), Buffer.from([1, 2, 3, 4]));
  writeFileSync(join(shards, 'model-inputs.json'), '{}');
  const digest = shardsDigest(shards);
  const stamp = { trainArgs: ['--seed', '1234', '--lr', '0.001'], shards: digest };

  assert.equal(canReuseMember(work, 0, stamp), false, 'nothing trained yet');
  writeFileSync(join(work, 'model0.pt'), 'weights');
  writeFileSync(join(work, 'model0.json'), '{}');
  assert.equal(canReuseMember(work, 0, stamp), false, 'checkpoint without a stamp (e.g. training was interrupted)');
  writeStamp(work, 0, stamp);
  assert.equal(canReuseMember(work, 0, stamp), true);
  assert.equal(canReuseMember(work, 1, stamp), false, 'another member');
  assert.equal(canReuseMember(work, 0, { ...stamp, trainArgs: ['--seed', '1234', '--lr', '0.002'] }), false);

  appendFileSync(join(shards, 'train.ids.i32'), Buffer.from([5]));
  const changed = shardsDigest(shards);
  assert.notEqual(changed, digest);
  assert.equal(canReuseMember(work, 0, { ...stamp, shards: changed }), false);
});
