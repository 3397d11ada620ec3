// The browser demo end to end in real headless Chromium: the production build served offline,
// WebGPU (Chromium's SwiftShader adapter here) and the wasm fallback, parity with the real
// server (onnxruntime-node, CPU), the typed-in and CSV paths of the UI, and bad input.
// Run with `npm run test:web` (not part of `npm test`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import type { Probs } from '../../core/postprocess.ts';
import type { Comparison } from '../../core/types.ts';
import { loadBundle } from '../../runtime/node/index.ts';
import { probsOf, type Prediction } from '../../core/result.ts';
import { serveModel } from '../../cli/wiring.ts';
import type { RunningServer } from '../../server/server.ts';
import type { EngineInfo, ScoredRow } from '../../browser/page-engine.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { referenceFor } from '../helpers/reference.ts';
import { readArena, type RawRow } from '../helpers/shared-data.ts';
import { ARTIFACTS, buildAndPreview, bundleForTests, launchBrowser, openPage, startDev, type WebServer } from './harness.ts';

const NUM_ROWS = 50;
const WEBGPU_TOL = 1e-3;
const WASM_TOL = 1e-5;
// SwiftShader runs WebGPU on the CPU: seconds per row for a real model on this 2-core machine.
const TIMEOUT = 900_000;
const CSV_ROWS = 3;

const bundle = bundleForTests();
const arena: RawRow[] = await readArena('alpaca-pairs-dev.csv.gz', NUM_ROWS);
const rows: Comparison[] = arena;
const artifacts = fileURLToPath(ARTIFACTS);
const outDir = mkdtempSync(join(tmpdir(), 'pairpref-web-dist-'));

let web: WebServer;
let server: RunningServer;
let serverResults: Prediction[];
const cleanup: Array<() => Promise<void> | void> = [];

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  console.log(`# web tests use the ${bundle.kind} bundle at ${bundle.dir}`);
  if (bundle.kind === 'fixture') cleanup.push(() => rmSync(bundle.dir, { recursive: true, force: true }));
  web = await buildAndPreview(bundle.dir, outDir);
  cleanup.push(() => web.close(), () => rmSync(outDir, { recursive: true, force: true }));
  server = await serveModel({ modelDir: bundle.dir, port: 0, devices: 'cpu' });
  cleanup.push(async () => void (await server.close()));
  serverResults = await server.scorer.score(rows);
  for (const r of serverResults) assert.equal(r.error, undefined, `server failed on row ${r.id}: ${r.error?.message}`);
});

after(async () => {
  for (const f of cleanup.reverse()) await f();
});

/** Token ids of core/ in Node: what the browser must have fed its model. */
function nodeIds(rs: readonly Comparison[]): number[][] {
  const pre = loadBundle(bundle.dir).preprocessor;
  return rs.map((r) => Array.from(pre.encode(r).ids));
}

function assertParity(got: readonly ScoredRow[], want: readonly Prediction[], tol: number, provider: string): void {
  assert.equal(got.length, want.length);
  const ids = nodeIds(rows);
  let worst = 0;
  got.forEach((g, i) => {
    const w = want[i]!;
    assert.equal(g.id, w.id);
    assert.equal(g.error, undefined, `row ${g.id}: ${g.error?.message}`);
    assert.equal(g.provider, provider);
    assert.deepEqual(g.ids, ids[i], `row ${g.id}: token ids differ from core/ in Node`);
    assert.equal(g.num_tokens, w.num_tokens);
    for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(probsOf(g)[k]! - probsOf(w)[k]!));
  });
  console.log(`# ${provider}: max |browser - server| over ${got.length} rows = ${worst.toExponential(2)} (tolerance ${tol})`);
  assert.ok(worst <= tol, `${provider}: max probability difference ${worst} exceeds ${tol}`);
}

const scoreInPage = (page: Page, rs: readonly Comparison[]): Promise<ScoredRow[]> => page.evaluate((r) => window.pairpref!.scoreRows(r), rs);

function csvCell(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
function arenaCsv(rs: readonly RawRow[]): string {
  return ['id,prompt,response_a,response_b', ...rs.map((r) => [r.id, r.prompt, r.response_a, r.response_b].map(csvCell).join(','))].join('\n') + '\n';
}

async function uploadCsv(page: Page, name: string, text: string): Promise<void> {
  await page.setInputFiles('#csv', { name, mimeType: 'text/csv', buffer: Buffer.from(text, 'utf8') });
}

/** Page errors other than the optional tokenizer_config.json probe's 404. */
function realErrors(errors: readonly string[]): string[] {
  return errors.filter((e) => !(e.includes('status of 404') && /tokenizer_config\.json\)$/.test(e)));
}

const TYPED = {
  prompt: ['What is the capital of France?', 'And roughly how many people live there?'],
  response_a: ['Paris.', 'About 2.1 million people live in the city proper, and over 12 million in the metropolitan area.'],
  response_b: ['The capital of France is Berlin.', 'I am not sure.'],
};

describe('browser demo, WebGPU', () => {
  let page: Page;
  let errors: string[];

  before(async () => {
    const { browser, context } = await launchBrowser({ webgpu: true });
    cleanup.push(() => browser.close());
    // ?ep=webgpu: the only adapter here is SwiftShader's, a software one the page would skip for wasm.
    const opened = await openPage(context, `${web.url}?ep=webgpu`);
    page = opened.page;
    errors = opened.errors;
    assert.equal(opened.info.provider, 'webgpu', `expected the WebGPU provider, fell back: ${opened.info.fallbackReason}`);
  });

  test(`${NUM_ROWS} dev rows: provider webgpu, probabilities within ${WEBGPU_TOL} of the server, same token ids`, { timeout: TIMEOUT }, async () => {
    assert.equal(await page.locator('#fallback').isVisible(), false, 'no fallback notice on WebGPU');
    assert.match((await page.locator('#engine').textContent()) ?? '', /WebGPU/);
    assertParity(await scoreInPage(page, rows), serverResults, WEBGPU_TOL, 'webgpu');
    assert.deepEqual(realErrors(errors), []);
  });

  test('typing a two-turn comparison and clicking Score shows the winner, bars, latency and provider', { timeout: TIMEOUT }, async () => {
    await page.locator('#turns textarea[data-field="prompt"]').first().fill(TYPED.prompt[0]!);
    await page.locator('#turns textarea[data-field="response_a"]').first().fill(TYPED.response_a[0]!);
    await page.locator('#turns textarea[data-field="response_b"]').first().fill(TYPED.response_b[0]!);
    await page.click('#add-turn');
    await page.locator('#turns textarea[data-field="prompt"]').nth(1).fill(TYPED.prompt[1]!);
    await page.locator('#turns textarea[data-field="response_a"]').nth(1).fill(TYPED.response_a[1]!);
    await page.locator('#turns textarea[data-field="response_b"]').nth(1).fill(TYPED.response_b[1]!);
    await page.click('#score');
    const card = page.locator('#results .result').first();
    await card.waitFor({ timeout: 120_000 });
    await page.waitForFunction(() => window.pairpref!.lastResults.length === 1);

    const [want] = await server.scorer.score([{ id: 'typed', kind: 'turns', ...TYPED }]);
    const [got] = await page.evaluate(() => window.pairpref!.lastResults);
    const p = probsOf(got!);
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(p[k]! - probsOf(want!)[k]!) <= WEBGPU_TOL, `typed row: ${p} vs ${probsOf(want!)}`);
    const verdict = (await card.locator('.verdict').textContent()) ?? '';
    assert.match(verdict, /^(Response A wins|Response B wins|Tie)$/);
    assert.equal(await card.locator('.bar-row').count(), 3);
    assert.match((await card.locator('.bars').textContent()) ?? '', /Response A.*%.*Response B.*%.*Tie.*%/s);
    assert.match((await card.locator('.meta').textContent()) ?? '', /page · WebGPU \(software\).*ms/);
    await page.screenshot({ path: join(artifacts, 'web-webgpu-typed.png'), fullPage: true });
  });

  test(`a CSV of ${CSV_ROWS} dev rows chosen in the page is scored and summarised`, { timeout: TIMEOUT }, async () => {
    await uploadCsv(page, 'dev-rows.csv', arenaCsv(arena.slice(0, CSV_ROWS)));
    await page.waitForFunction((n) => window.pairpref!.lastResults.length === n && document.querySelectorAll('#results .result').length === n, CSV_ROWS, { timeout: 300_000 });
    const got = await page.evaluate(() => window.pairpref!.lastResults);
    got.forEach((g, i) => {
      assert.equal(g.id, rows[i]!.id);
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(probsOf(g)[k]! - probsOf(serverResults[i]!)[k]!) <= WEBGPU_TOL);
    });
    assert.match((await page.locator('#summary').textContent()) ?? '', new RegExp(`^${CSV_ROWS} of ${CSV_ROWS} rows · A wins \\d+ · B wins \\d+ · tie \\d+$`));
    assert.equal(await page.locator('#error').isVisible(), false);
    await page.screenshot({ path: join(artifacts, 'web-webgpu-csv.png'), fullPage: true });
  });
});

describe('browser demo, WebGPU unavailable', () => {
  let page: Page;
  let errors: string[];
  let info: EngineInfo;

  before(async () => {
    const { browser, context } = await launchBrowser({ webgpu: false });
    cleanup.push(() => browser.close());
    ({ page, info, errors } = await openPage(context, web.url));
  });

  test(`falls back to wasm, says so, and matches the server within ${WASM_TOL}`, { timeout: TIMEOUT }, async () => {
    assert.equal(info.provider, 'wasm');
    assert.match(info.fallbackReason ?? '', /navigator\.gpu is undefined/);
    const notice = page.locator('#fallback');
    assert.equal(await notice.isVisible(), true, 'the page shows the fallback');
    assert.match((await notice.textContent()) ?? '', /Running on wasm \(CPU\) instead of WebGPU: this browser does not expose WebGPU/);
    assert.match((await page.locator('#engine').textContent()) ?? '', /wasm/);
    assertParity(await scoreInPage(page, rows), serverResults, WASM_TOL, 'wasm');
    await page.click('#example');
    await page.click('#score');
    await page.waitForFunction(() => window.pairpref!.lastResults.length === 1, undefined, { timeout: 120_000 });
    assert.match((await page.locator('#results .result .meta').textContent()) ?? '', /page · wasm \(CPU\)/);
    await page.screenshot({ path: join(artifacts, 'web-wasm-fallback.png'), fullPage: true });
    assert.deepEqual(realErrors(errors), []);
  });

  test('bad input shows a readable error and the page still scores afterwards', { timeout: TIMEOUT }, async () => {
    const errorText = async (): Promise<string> => {
      await page.locator('#error').waitFor({ state: 'visible' });
      return (await page.locator('#error-text').textContent()) ?? '';
    };
    // Empty field.
    await page.locator('#turns textarea[data-field="response_b"]').first().fill('');
    await page.click('#score');
    assert.match(await errorText(), /^response B is empty\. Fill in the prompt and both responses\.$/);
    await page.screenshot({ path: join(artifacts, 'web-error-empty.png'), fullPage: true });

    // A CSV with an unclosed quote.
    await page.click('#error-close');
    await uploadCsv(page, 'broken.csv', 'id,prompt,response_a,response_b\n1,"["hi"]","["a"]","["b"]\n2,"unclosed\n');
    assert.match(await errorText(), /broken\.csv is not valid CSV: .*(quote|Quote)/);
    await page.screenshot({ path: join(artifacts, 'web-error-csv.png'), fullPage: true });

    // A CSV without the Arena columns.
    await page.click('#error-close');
    await uploadCsv(page, 'wrong.csv', 'question,answer\nhi,there\n');
    assert.match(await errorText(), /wrong\.csv lacks the columns prompt, response_a, response_b/);

    // A good CSV with one row whose prompt is not a JSON list: that row is marked, the other scored.
    const good = arena[0]!;
    await page.click('#error-close');
    await uploadCsv(page, 'mixed.csv', arenaCsv([good, { ...good, id: 'bad-row', prompt: 'not a json list' }]));
    await page.waitForFunction(() => window.pairpref!.lastResults.length === 2 && document.querySelectorAll('#results .result').length === 2, undefined, { timeout: 120_000 });
    assert.match(await errorText(), /1 of 2 rows could not be scored.*raw\.prompt is not a JSON list/);
    assert.equal(await page.locator('#results .result.failed').count(), 1);
    assert.match((await page.locator('#results .result.failed').textContent()) ?? '', /bad-row.*Not scored/);

    // Still usable: a good typed row scores and clears the error.
    await page.click('#example');
    await page.click('#score');
    await page.waitForFunction(() => window.pairpref!.lastResults.length === 1 && window.pairpref!.lastResults[0]!.id === 'typed', undefined, { timeout: 120_000 });
    assert.equal(await page.locator('#error').isVisible(), false);
    assert.equal(await page.locator('#results .result:not(.failed)').count(), 1);
    assert.equal(await page.locator('#score').isEnabled(), true);
  });
});

describe('npm run web (Vite dev server)', () => {
  test('serves the page and the bundle; a row scores like the server', { timeout: TIMEOUT }, async () => {
    const dev = await startDev(bundle.dir);
    cleanup.push(() => dev.close());
    const { browser, context } = await launchBrowser({ webgpu: false });
    cleanup.push(() => browser.close());
    const { page, info } = await openPage(context, dev.url);
    assert.equal(info.provider, 'wasm');
    const [got] = await scoreInPage(page, rows.slice(0, 1));
    const want: Probs = probsOf(serverResults[0]!);
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(probsOf(got!)[k]! - want[k]!) <= WASM_TOL);
  });

  test('a bundle that is not there: the page says the model could not be loaded', { timeout: TIMEOUT }, async () => {
    const dev = await startDev(join(outDir, 'no-such-bundle'));
    cleanup.push(() => dev.close());
    const { browser, context } = await launchBrowser({ webgpu: false });
    cleanup.push(() => browser.close());
    const page = await context.newPage();
    await page.goto(dev.url);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await page.locator('#error-title').textContent(), 'The model could not be loaded.');
    assert.match((await page.locator('#error-text').textContent()) ?? '', /model\/: cannot fetch preference\.json .*HTTP 404/);
    assert.match((await page.locator('#engine').textContent()) ?? '', /Model not loaded/);
    assert.equal(await page.locator('#score').isDisabled(), true);
  });
});

describe('a label-token bundle in the page', () => {
  // The head picks the label tokens' logits at each row's last real position of [batch, seq, vocab]
  // logits; compared with test/helpers/reference.ts, a separate computation in Node.
  for (const webgpu of [false, true]) {
    test(`scores like the Node reference (${webgpu ? 'webgpu' : 'wasm'})`, { timeout: TIMEOUT }, async () => {
      const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-web-lt-')), { head: 'label-token', preference: { truncation: { max_length: 128 } } }).dir;
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      const reference = await referenceFor(dir);
      cleanup.push(() => reference.release());
      const dev = await startDev(dir);
      cleanup.push(() => dev.close());
      const { browser, context } = await launchBrowser({ webgpu });
      cleanup.push(() => browser.close());
      const { page, info } = await openPage(context, webgpu ? `${dev.url}?ep=webgpu` : dev.url);
      assert.equal(info.provider, webgpu ? 'webgpu' : 'wasm', `provider: ${info.fallbackReason}`);
      const some = rows.slice(0, 6);
      const got = await scoreInPage(page, some);
      for (const [i, g] of got.entries()) {
        assert.equal(g.error, undefined, `row ${g.id}: ${g.error?.message}`);
        const want = await reference.score(some[i]!);
        const tol = webgpu ? WEBGPU_TOL : WASM_TOL;
        for (let k = 0; k < 3; k++) assert.ok(Math.abs(probsOf(g)[k]! - want[k]!) <= tol, `row ${g.id}: ${probsOf(g)} vs ${want}`);
      }
    });
  }
});
