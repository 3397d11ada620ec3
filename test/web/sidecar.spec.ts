// The page with a sidecar, in real headless Chromium: the production build served by `vite preview`,
// a real `serve --http-port` (onnxruntime-node, CPU) with CORS for the page's origin. A 50-row CSV
// goes to the sidecar (its metrics count the 50 rows) and a 1-row comparison stays in the page; with
// the sidecar stopped the same CSV is scored in the page, with a notice, within 1e-3 of the sidecar's
// answers. The results download as CSV; each card shows where its row ran and a snippet of its
// prompt. A software WebGPU adapter (SwiftShader here) is labelled "WebGPU (software)" and skipped
// for wasm unless ?ep=webgpu asks for it. Run with `npm run test:web`.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import type { RoutedRow } from '../../browser/router.ts';
import { serveModel } from '../../cli/wiring.ts';
import { probsOf } from '../../core/result.ts';
import type { RunningServer } from '../../server/server.ts';
import { RESULTS_CSV_HEADER } from '../../web/src/results-csv.ts';
import { readArena, type RawRow } from '../helpers/shared-data.ts';
import { ARTIFACTS, buildAndPreview, bundleForTests, launchBrowser, openPage, type WebServer } from './harness.ts';

const NUM_ROWS = 50;
const TOL = 1e-3;
const TIMEOUT = 900_000;

const bundle = bundleForTests();
const arena: RawRow[] = await readArena('alpaca-pairs-dev.csv.gz', NUM_ROWS);
const artifacts = fileURLToPath(ARTIFACTS);
const outDir = mkdtempSync(join(tmpdir(), 'pairpref-web-sidecar-'));
const cleanup: Array<() => Promise<void> | void> = [];

let web: WebServer;
let server: RunningServer;
let sidecarUrl: string;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  console.log(`# sidecar web tests use the ${bundle.kind} bundle at ${bundle.dir}`);
  if (bundle.kind === 'fixture') cleanup.push(() => rmSync(bundle.dir, { recursive: true, force: true }));
  web = await buildAndPreview(bundle.dir, outDir);
  cleanup.push(() => web.close(), () => rmSync(outDir, { recursive: true, force: true }));
  server = await serveModel({ modelDir: bundle.dir, port: 0, devices: 'cpu', httpPort: 0, metricsPort: 0, httpCorsOrigins: [new URL(web.url).origin] });
  cleanup.push(async () => void (await server.close()));
  sidecarUrl = `http://127.0.0.1:${server.httpPort}`;
});

after(async () => {
  for (const f of cleanup.reverse()) await f();
});

function csvCell(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
const CSV = ['id,prompt,response_a,response_b', ...arena.map((r) => [r.id, r.prompt, r.response_a, r.response_b].map(csvCell).join(','))].join('\n') + '\n';

async function uploadCsv(page: Page, name: string): Promise<RoutedRow[]> {
  await page.evaluate(() => (window.pairpref!.lastResults = []));
  await page.setInputFiles('#csv', { name, mimeType: 'text/csv', buffer: Buffer.from(CSV, 'utf8') });
  await page.waitForFunction((n) => window.pairpref!.lastResults.length === n && document.querySelectorAll('#results .result').length === n, NUM_ROWS, { timeout: 600_000 });
  return page.evaluate(() => [...window.pairpref!.lastResults]);
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.split(' ')[0] === name);
  return line ? Number(line.split(' ')[1]) : 0;
}

/** The metric once it reads `want` (a call is counted when the server has closed it, a moment after the page has its answers). */
async function metricReaches(name: string, want: number): Promise<number> {
  let got = await metric(name);
  for (const end = Date.now() + 5000; got !== want && Date.now() < end; got = await metric(name)) await new Promise((r) => setTimeout(r, 50));
  return got;
}

describe('the page with a sidecar (wasm in the page)', () => {
  let page: Page;
  let bySidecar: RoutedRow[];

  before(async () => {
    const { browser, context } = await launchBrowser({ webgpu: false });
    cleanup.push(() => browser.close());
    ({ page } = await openPage(context, `${web.url}?sidecar=${encodeURIComponent(sidecarUrl)}`));
    await page.locator('#sidecar-status[data-state="reachable"]').waitFor({ timeout: 60_000 });
  });

  test(`with the sidecar up: a ${NUM_ROWS}-row CSV is scored by the sidecar (its metrics count ${NUM_ROWS} rows), a 1-row comparison in the page`, { timeout: TIMEOUT }, async () => {
    assert.equal(await page.inputValue('#sidecar-url'), sidecarUrl);
    assert.match((await page.locator('#sidecar-status').textContent()) ?? '', /Reachable: .* serves .*Batches of more than 8 rows go there/);
    bySidecar = await uploadCsv(page, 'dev-50.csv');
    assert.deepEqual(bySidecar.map((r) => r.id), arena.map((r) => r.id));
    for (const r of bySidecar) {
      assert.equal(r.scoredBy, 'sidecar', `row ${r.id}`);
      assert.equal(r.error, undefined, `row ${r.id}: ${r.error?.message}`);
    }
    assert.equal(await metric('pairpref_rows_total{outcome="ok"}'), NUM_ROWS, 'the sidecar scored the 50 rows');
    assert.equal(await metricReaches('pairpref_requests_total{method="ScoreBatchStream",code="OK"}', 1), 1, 'in one ScoreBatchStream');
    assert.equal(await page.locator('#results .result[data-scored-by="sidecar"]').count(), NUM_ROWS);
    assert.equal(await page.locator('#results .result .where').first().textContent(), 'sidecar');
    assert.equal(await page.locator('#route-notice').isVisible(), false);
    assert.match((await page.locator('#summary').textContent()) ?? '', new RegExp(`^${NUM_ROWS} of ${NUM_ROWS} rows · .* · ${NUM_ROWS} by the sidecar · 0 in the page$`));
    // Each card shows a snippet of its row's prompt: the first turn of the JSON list.
    const first = (JSON.parse(arena[0]!.prompt) as string[])[0]!.replace(/\s+/g, ' ').trim();
    const snippet = (await page.locator('#results .result .snippet').first().textContent()) ?? '';
    assert.ok(snippet.length > 0 && first.startsWith(snippet.replace(/…$/, '')), `snippet "${snippet}" is not the start of "${first}"`);
    await page.screenshot({ path: join(artifacts, 'web-sidecar-csv.png'), fullPage: true });

    // The results as a CSV file.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    assert.equal(download.suggestedFilename(), 'pairpref-results.csv');
    const lines = readFileSync((await download.path())!, 'utf8').trim().split('\n');
    assert.equal(lines[0], RESULTS_CSV_HEADER.join(','));
    assert.equal(lines.length, NUM_ROWS + 1);
    const cells = lines[1]!.split(',');
    assert.equal(cells[0], arena[0]!.id);
    assert.equal(Number(cells[1]), bySidecar[0]!.winner_model_a);
    assert.equal(cells[6], 'sidecar');

    // One row is at most localMaxRows: the page scores it, and the sidecar sees nothing.
    await page.click('#example');
    await page.click('#score');
    await page.waitForFunction(() => window.pairpref!.lastResults.length === 1, undefined, { timeout: 120_000 });
    const [one] = await page.evaluate(() => [...window.pairpref!.lastResults]);
    assert.equal(one!.scoredBy, 'page');
    assert.equal(one!.provider, 'wasm');
    assert.equal(await page.locator('#results .result .where').textContent(), 'page · wasm (CPU)');
    assert.match((await page.locator('#results .result .snippet').textContent()) ?? '', /^Give me three tips for staying focused/);
    assert.equal(await metric('pairpref_rows_total{outcome="ok"}'), NUM_ROWS, 'the 1-row comparison did not reach the sidecar');
  });

  test(`with the sidecar stopped: the same ${NUM_ROWS} rows are scored in the page, with a visible notice, within ${TOL} of the sidecar`, { timeout: TIMEOUT }, async () => {
    assert.ok(bySidecar, 'the first test ran');
    await server.close();
    const inPage = await uploadCsv(page, 'dev-50.csv');
    const notice = page.locator('#route-notice');
    assert.equal(await notice.isVisible(), true, 'a notice says the sidecar did not score the batch');
    assert.match((await notice.textContent()) ?? '', new RegExp(`The sidecar did not score this batch \\(cannot reach ${sidecarUrl.replace(/[.]/g, '\\.')}.*\\)\\. ${NUM_ROWS} rows were scored in this page on wasm \\(CPU\\) instead\\.`));
    assert.equal(await page.locator('#sidecar-status').getAttribute('data-state'), 'unreachable');
    let worst = 0;
    inPage.forEach((r, i) => {
      assert.equal(r.scoredBy, 'page');
      assert.equal(r.id, bySidecar[i]!.id);
      assert.equal(r.error, undefined);
      assert.equal(r.num_tokens, bySidecar[i]!.num_tokens);
      for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(probsOf(r)[k]! - probsOf(bySidecar[i]!)[k]!));
    });
    console.log(`# max |page (wasm) - sidecar| over ${NUM_ROWS} rows = ${worst.toExponential(2)} (tolerance ${TOL})`);
    assert.ok(worst <= TOL, `switching paths changed a probability by ${worst}`);
    assert.equal(await page.locator('#results .result[data-scored-by="page"]').count(), NUM_ROWS);
    await page.screenshot({ path: join(artifacts, 'web-sidecar-down.png'), fullPage: true });
  });
});

describe('a software WebGPU adapter (SwiftShader)', () => {
  test('is labelled "WebGPU (software)"; the page prefers wasm on it and says why; ?ep=webgpu uses it', { timeout: TIMEOUT }, async () => {
    const { browser, context } = await launchBrowser({ webgpu: true });
    cleanup.push(() => browser.close());
    const auto = await openPage(context, web.url);
    assert.equal(auto.info.provider, 'wasm');
    assert.equal(auto.info.adapter?.software, true, `adapter: ${auto.info.adapter?.description}`);
    assert.match(auto.info.adapter?.description ?? '', /swiftshader/i);
    assert.match(auto.info.fallbackReason ?? '', /software one .*slower than wasm/);
    assert.equal(await auto.page.locator('#engine').getAttribute('data-software'), 'true');
    assert.match((await auto.page.locator('#engine').textContent()) ?? '', /wasm \(CPU\)/);
    const notice = (await auto.page.locator('#fallback').textContent()) ?? '';
    assert.match(notice, /^Running on wasm \(CPU\): the only WebGPU adapter here is WebGPU \(software\) \(.*swiftshader.*\), which is slower than wasm\. Add \?ep=webgpu/);
    assert.doesNotMatch(notice, /scoring is slower/);
    await auto.page.screenshot({ path: join(artifacts, 'web-software-adapter.png'), fullPage: true });

    const forced = await openPage(context, `${web.url}?ep=webgpu`);
    assert.equal(forced.info.provider, 'webgpu');
    assert.equal(forced.info.label, 'WebGPU (software)');
    assert.match((await forced.page.locator('#engine').textContent()) ?? '', /WebGPU \(software\)/);
    assert.equal(await forced.page.locator('#fallback').isVisible(), false, 'asked for: no fallback notice');
  });
});
