// What a trained ensemble member was trained from: train.py's exact arguments and a digest of the
// shards. `npm run train -- --resume` reuses a member only when its stamp matches the run's, so a
// resumed run exports exactly what an uninterrupted run with the same options would.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemberStamp {
  readonly trainArgs: readonly string[];
  readonly shards: string;
}

/** sha256 over every shard file (names and bytes, in name order). */
export function shardsDigest(shardDir: string): string {
  const h = createHash('sha256');
  for (const name of readdirSync(shardDir).sort()) {
    h.update(name).update('\0').update(readFileSync(join(shardDir, name)));
  }
  return h.digest('hex');
}

export function stampPath(work: string, member: number): string {
  return join(work, `model${member}.stamp.json`);
}

export function writeStamp(work: string, member: number, stamp: MemberStamp): void {
  writeFileSync(stampPath(work, member), JSON.stringify(stamp, null, 2) + '\n');
}

/** True when member's checkpoint, summary and a stamp equal to `stamp` are all in `work`. */
export function canReuseMember(work: string, member: number, stamp: MemberStamp): boolean {
  const files = [`model${member}.pt`, `model${member}.json`].map((f) => join(work, f));
  if (!files.every(existsSync) || !existsSync(stampPath(work, member))) return false;
  const old = JSON.parse(readFileSync(stampPath(work, member), 'utf8')) as MemberStamp;
  return old.shards === stamp.shards && JSON.stringify(old.trainArgs) === JSON.stringify(stamp.trainArgs);
}
