// CPU latency of one row through core/ + onnxruntime-node: a real dev row at the bundle's
// max_length, and a synthetic 512-token row (same graph, longer input) for comparison.
//   npx tsx training/latency.ts [bundleDir] [threads]
import { readArenaCsv } from './arena-csv.ts';
import { openBundle } from './onnx-eval.ts';
import type { EncodedRow } from '../core/types.ts';

async function medianMs(run: () => Promise<unknown>, n = 30): Promise<number> {
  for (let i = 0; i < 3; i++) await run();
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await run();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(n / 2)]!;
}

const dir = process.argv[2] ?? 'models/default';
const threads = Number(process.argv[3] ?? 1);
const bundle = await openBundle(dir, { threads });
let longest: EncodedRow | null = null;
for await (const r of readArenaCsv('../shared/data/alpaca-pairs-dev.csv.gz', 200)) {
  const e = bundle.preprocessor.encode(r.comparison);
  if (!longest || e.ids.length > longest.ids.length) longest = e;
}
if (!longest) throw new Error('no dev rows');
const row = longest;
const ids512 = new Int32Array(512);
for (let i = 0; i < 512; i++) ids512[i] = row.ids[i % row.ids.length]!;
const synthetic: EncodedRow = { ids: ids512, truncated: false, features: row.features };
const real = await medianMs(() => bundle.score([row]));
const long = await medianMs(() => bundle.score([synthetic]));
console.log(JSON.stringify({ bundle: dir, threads, max_length_row_tokens: row.ids.length, median_ms: real, tokens_512_median_ms: long }));
await bundle.close();
