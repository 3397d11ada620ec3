// Step 2 of the pipeline: writes preference.json next to tokenizer.json and encodes the splits
// through core/ (createPreprocessor) into shards. A memo in front of the tokenizer lets the
// swapped orientation reuse the forward row's tokenizations; ids are unchanged by it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPreprocessor, createTokenizer, resolvePreferenceConfig } from '../core/index.ts';
import type { PreferenceConfig, TextTokenizer } from '../core/types.ts';
import { preferenceJson, segmentIds, type TokenizerJsonLike } from './preference.ts';
import { writeShards, type ShardMeta } from './shards.ts';

function memoTokenizer(tok: TextTokenizer, maxEntries = 20000): TextTokenizer {
  const memo = new Map<string, number[]>();
  return {
    encode(text: string): number[] {
      const hit = memo.get(text);
      if (hit) return hit;
      const ids = tok.encode(text);
      if (memo.size >= maxEntries) memo.clear();
      memo.set(text, ids);
      return ids;
    },
  };
}

export interface SplitSpec {
  readonly split: string;
  readonly csv: string;
  readonly limit?: number;
}

export async function encodeSplits(opts: {
  bundleDir: string;
  shardDir: string;
  maxLength: number;
  /** Write preference.json (with this max_length) into bundleDir. */
  writePreference: boolean;
  name: string;
  version: string;
  splits: readonly SplitSpec[];
  log?: (msg: string) => void;
}): Promise<{ config: PreferenceConfig; metas: ShardMeta[] }> {
  const tokJson = JSON.parse(readFileSync(join(opts.bundleDir, 'tokenizer.json'), 'utf8')) as TokenizerJsonLike;
  const pref = preferenceJson(tokJson, { name: opts.name, version: opts.version, maxLength: opts.maxLength });
  if (opts.writePreference) writeFileSync(join(opts.bundleDir, 'preference.json'), JSON.stringify(pref, null, 2) + '\n');
  const config = resolvePreferenceConfig(pref);
  const pre = createPreprocessor(config, memoTokenizer(createTokenizer(tokJson)));
  const featureCount = config.features?.names.length ?? 0;
  writeFileSync(
    join(opts.shardDir, 'model-inputs.json'),
    JSON.stringify({ segments: segmentIds(tokJson), feature_names: config.features?.names ?? [], max_length: opts.maxLength,
      vocab_size: vocabSize(tokJson) }),
  );
  const metas: ShardMeta[] = [];
  for (const s of opts.splits) {
    const t0 = Date.now();
    const meta = await writeShards({
      csv: s.csv,
      dir: opts.shardDir,
      split: s.split,
      encoder: pre,
      featureCount,
      ...(s.limit === undefined ? {} : { limit: s.limit }),
      onProgress: (n) => opts.log?.(`  ${s.split}: ${n} rows (${((Date.now() - t0) / 1000).toFixed(0)} s)`),
    });
    opts.log?.(`${s.split}: ${meta.rows} rows, ${meta.tokens} tokens, ${meta.truncated} truncated, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    metas.push(meta);
  }
  return { config, metas };
}

/** Embedding rows the model needs: every BPE id and every added token. */
export function vocabSize(tok: TokenizerJsonLike & { model?: { vocab?: Record<string, number> } }): number {
  const ids = [...Object.values(tok.model?.vocab ?? {}), ...tok.added_tokens.map((t) => t.id)];
  return Math.max(...ids) + 1;
}
