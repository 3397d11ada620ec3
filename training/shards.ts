// Encodes a split through core/ (the exact ids and features serving produces) and writes flat
// binary shards that training/*.py memory-maps: both orientations, (P, A, B) and (P, B, A),
// because 'budget' truncation is not side-symmetric and swap augmentation needs the real ids.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EncodedRow } from '../core/types.ts';
import { readArenaCsv, swapRow, type LabeledRow } from './arena-csv.ts';

export interface RowEncoder {
  encode(c: LabeledRow['comparison']): EncodedRow;
}

export interface ShardMeta {
  readonly split: string;
  readonly rows: number;
  readonly tokens: number;
  readonly truncated: number;
  readonly featureCount: number;
  readonly ids: string[];
}

class ShardWriter {
  private ids: Int32Array[] = [];
  private offsets: number[] = [0];
  private feats: Float32Array[] = [];
  private labels: number[] = [];
  tokens = 0;
  truncated = 0;

  add(row: EncodedRow, label: number, featureCount: number): void {
    this.ids.push(row.ids);
    this.tokens += row.ids.length;
    this.offsets.push(this.tokens);
    if (row.truncated) this.truncated++;
    if (featureCount > 0) {
      if (!row.features || row.features.length !== featureCount) throw new Error('feature count mismatch');
      this.feats.push(row.features);
    }
    this.labels.push(label);
  }

  write(prefix: string): void {
    const ids = new Int32Array(this.tokens);
    let at = 0;
    for (const a of this.ids) {
      ids.set(a, at);
      at += a.length;
    }
    writeFileSync(`${prefix}.ids.i32`, ids);
    writeFileSync(`${prefix}.offsets.i64`, new BigInt64Array(this.offsets.map(BigInt)));
    const f = new Float32Array(this.feats.reduce((n, x) => n + x.length, 0));
    at = 0;
    for (const x of this.feats) {
      f.set(x, at);
      at += x.length;
    }
    writeFileSync(`${prefix}.feats.f32`, f);
    // 255 = unlabeled (test-schema rows).
    writeFileSync(`${prefix}.labels.u8`, Uint8Array.from(this.labels));
  }
}

/** Writes <dir>/<split>.{ids.i32,offsets.i64,feats.f32,labels.u8} and <split>.swap.* plus <split>.meta.json. */
export async function writeShards(opts: {
  csv: string;
  dir: string;
  split: string;
  encoder: RowEncoder;
  featureCount: number;
  limit?: number;
  onProgress?: (rows: number) => void;
}): Promise<ShardMeta> {
  mkdirSync(opts.dir, { recursive: true });
  const fwd = new ShardWriter();
  const swp = new ShardWriter();
  const ids: string[] = [];
  for await (const row of readArenaCsv(opts.csv, opts.limit ?? Infinity)) {
    const s = swapRow(row);
    fwd.add(opts.encoder.encode(row.comparison), row.label ?? 255, opts.featureCount);
    swp.add(opts.encoder.encode(s.comparison), s.label ?? 255, opts.featureCount);
    ids.push(row.comparison.id);
    if (ids.length % 2000 === 0) opts.onProgress?.(ids.length);
  }
  fwd.write(join(opts.dir, opts.split));
  swp.write(join(opts.dir, `${opts.split}.swap`));
  const meta: ShardMeta = {
    split: opts.split,
    rows: ids.length,
    tokens: fwd.tokens,
    truncated: fwd.truncated,
    featureCount: opts.featureCount,
    ids,
  };
  writeFileSync(join(opts.dir, `${opts.split}.meta.json`), JSON.stringify(meta));
  return meta;
}
