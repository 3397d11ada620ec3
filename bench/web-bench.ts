// Rows per second of the browser demo in headless Chromium, batch sizes 1 and 8, WebGPU vs
// wasm. Serves the production build (`npm run web:build`'s output, built to a temp dir).
//   npm run bench:web -- [--rows 16] [--model models/default]
// Without --model: PAIRPREF_WEB_MODEL_DIR, else models/default.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Provider } from '../browser/page-engine.ts';
import { readRawRows } from '../datasets/arena-file.ts';
import { buildAndPreview, launchBrowser, openPage } from '../web/harness.ts';
import { DEFAULT_MODEL_DIR } from '../web/vite.config.ts';

const BATCH_SIZES = [1, 8] as const;

const { values } = parseArgs({ options: { rows: { type: 'string', default: '16' }, model: { type: 'string' } } });
const numRows = Number(values.rows);
if (!Number.isInteger(numRows) || numRows < 8) throw new Error(`--rows must be an integer >= 8 (got ${values.rows})`);
const bundle = values.model
  ? { dir: values.model, kind: '--model' }
  : process.env['PAIRPREF_WEB_MODEL_DIR']
    ? { dir: process.env['PAIRPREF_WEB_MODEL_DIR'], kind: 'PAIRPREF_WEB_MODEL_DIR' }
    : { dir: DEFAULT_MODEL_DIR, kind: 'models/default' };
const rows = await readRawRows('../shared/data/alpaca-pairs-dev.csv.gz', numRows);
const outDir = mkdtempSync(join(tmpdir(), 'pairpref-web-bench-'));

interface Result {
  readonly provider: Provider;
  readonly batch: number;
  readonly rowsPerS: number;
  readonly msPerRow: number;
  readonly meanTokens: number;
}

const results: Result[] = [];
let adapter = 'none';
let isolated = false;
const web = await buildAndPreview(bundle.dir, outDir);
const { browser, context } = await launchBrowser({ webgpu: true });
try {
  for (const provider of ['webgpu', 'wasm'] as const) {
    // ?ep=webgpu: the page's default skips a software adapter (SwiftShader here) for wasm; the bench measures both.
    const { page, info } = await openPage(context, `${web.url}?ep=${provider}`);
    if (info.provider !== provider) throw new Error(`asked for ${provider}, the page runs ${info.provider}: ${info.fallbackReason}`);
    isolated = await page.evaluate(() => crossOriginIsolated);
    if (provider === 'webgpu') {
      adapter = await page.evaluate(async () => {
        const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ info: { vendor: string; architecture: string; isFallbackAdapter?: boolean } } | null> } }).gpu;
        const a = await gpu?.requestAdapter();
        return a ? `${a.info.vendor} ${a.info.architecture}${a.info.isFallbackAdapter ? ' (software fallback adapter)' : ''}` : 'none';
      });
    }
    for (const batch of BATCH_SIZES) {
      // Timed in the page: preprocessing, session.run and softmax, as a user of the page waits for them.
      const r = await page.evaluate(
        async ({ rs, b }) => {
          await window.pairpref!.scoreRows(rs.slice(0, b), { maxBatch: b }); // warm-up: first-run kernels and shaders
          const t0 = performance.now();
          const out = await window.pairpref!.scoreRows(rs, { maxBatch: b });
          const s = (performance.now() - t0) / 1000;
          const bad = out.find((o) => o.error);
          if (bad) throw new Error(`row ${bad.id}: ${bad.error!.message}`);
          return { s, tokens: out.reduce((n, o) => n + o.num_tokens, 0) / out.length };
        },
        { rs: rows, b: batch },
      );
      const res = { provider, batch, rowsPerS: rows.length / r.s, msPerRow: (1000 * r.s) / rows.length, meanTokens: r.tokens };
      results.push(res);
      console.error(`${provider} batch ${batch}: ${res.rowsPerS.toFixed(2)} rows/s`);
    }
    await page.close();
  }
} finally {
  await browser.close();
  await web.close();
  rmSync(outDir, { recursive: true, force: true });
}

console.log(`bundle: ${bundle.kind} ${bundle.dir}`);
console.log(`rows: ${rows.length} of alpaca-pairs-dev.csv.gz, mean ${results[0]!.meanTokens.toFixed(0)} tokens per row`);
console.log(`browser: Chromium headless (/usr/bin/chromium); WebGPU adapter: ${adapter}; wasm: ${isolated ? 'multi-threaded (cross-origin isolated)' : 'one thread (the page is not cross-origin isolated)'}`);
console.log('');
console.log('| provider | batch size | rows/s | ms per row |');
console.log('|---|---:|---:|---:|');
for (const r of results) console.log(`| ${r.provider} | ${r.batch} | ${r.rowsPerS.toFixed(2)} | ${r.msPerRow.toFixed(1)} |`);
