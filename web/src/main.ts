// Wires the page: loads the engine, routes each batch (browser/router.ts: the sidecar for batches over
// localMaxRows when one is set and reachable, else the page), shows results with where each row ran,
// errors and notices, offers the results as CSV, and exposes window.pairpref for tests and benchmarks.
import type { EngineInfo, ScoredRow, ScoreOptions } from '../../browser/page-engine.ts';
import { loadEngine, type Engine } from '../../browser/page-engine.ts';
import { createRouter, type RoutedResult, type RoutedRow, type Router, type RouteReport } from '../../browser/router.ts';
import { connectSidecar } from '../../browser/sidecar.ts';
import type { Comparison } from '../../core/types.ts';
import { comparisonsFromCsv, CsvInputError } from './csv.ts';
import { renderResults, summaryText, type WhereLabel } from './render.ts';
import { resultsCsv } from './results-csv.ts';
import { createTurnsForm, FormInputError } from './turns-form.ts';

/** The test/benchmark hook; numbers come from here, never from the DOM. */
export interface PairprefHook {
  /** Resolves when the model is loaded (rejects when it cannot be). */
  readonly ready: Promise<EngineInfo>;
  /** Scores in the page alone (no routing): benchmarks and parity tests. */
  scoreRows(rows: readonly Comparison[], opts?: Pick<ScoreOptions, 'maxBatch'>): Promise<ScoredRow[]>;
  /** What the Score button and a CSV do: the router's one call. */
  route(rows: readonly Comparison[]): Promise<RoutedResult>;
  /** Sets (or, with null or '', clears) the sidecar URL and checks it; resolves with its status. */
  setSidecar(url: string | null): Promise<ReturnType<Router['status']>>;
  /** Results of the last scoring started from the UI, and how it was routed. */
  lastResults: readonly RoutedRow[];
  lastReport: RouteReport | null;
}

declare global {
  interface Window {
    pairpref?: PairprefHook;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const params = new URLSearchParams(location.search);
// ?model=<url of a bundle directory> picks another bundle; ?ep=wasm skips WebGPU, ?ep=webgpu uses a
// software adapter too; ?sidecar=<url of pairpref serve --http-port> fills the sidecar field.
const modelParam = params.get('model');
const modelBase = new URL(modelParam === null ? './model/' : modelParam.endsWith('/') ? modelParam : `${modelParam}/`, document.baseURI).href;
const ortBase = new URL('./ort/', document.baseURI).href;
const ep = params.get('ep');
const prefer = ep === 'wasm' || ep === 'webgpu' ? ep : 'auto';

const engineBox = $('engine');
const engineText = $('engine-text');
const fallback = $('fallback');
const routeNotice = $('route-notice');
const errorBox = $('error');
const errorText = $('error-text');
const scoreButton = $<HTMLButtonElement>('score');
const csvInput = $<HTMLInputElement>('csv');
const drop = $('drop');
const resultsPanel = $('results-panel');
const results = $('results');
const summary = $('summary');
const download = $<HTMLButtonElement>('download');
const sidecarInput = $<HTMLInputElement>('sidecar-url');
const sidecarStatus = $('sidecar-status');
const form = createTurnsForm($('turns'));

const errorTitle = $('error-title');
function showError(message: string, title = 'Cannot score this input.'): void {
  errorTitle.textContent = title;
  errorText.textContent = message;
  errorBox.hidden = false;
}
function clearError(): void {
  errorBox.hidden = true;
}
$('error-close').addEventListener('click', clearError);

let engine: Engine | null = null;
let router: Router | null = null;
let busy = false;
function setBusy(b: boolean): void {
  busy = b;
  scoreButton.disabled = b || engine === null;
  scoreButton.textContent = b ? 'Scoring…' : 'Score';
  csvInput.disabled = b || engine === null;
}

const where: WhereLabel = (r) => (r.scoredBy === 'sidecar' ? 'sidecar' : `page · ${engine?.info.label ?? r.provider ?? ''}`);

function showSidecarStatus(s: ReturnType<Router['status']>): void {
  sidecarStatus.dataset['state'] = s.state;
  sidecarStatus.textContent =
    s.state === 'none'
      ? 'Not set: every row is scored in this page.'
      : s.state === 'reachable'
        ? `Reachable: ${s.detail}. Batches of more than ${router?.localMaxRows ?? 8} rows go there.`
        : s.state === 'unreachable'
          ? `Not reachable: ${s.detail}. Rows are scored in this page.`
          : `Checking ${s.detail}…`;
}

/** A router over the engine and the sidecar in the field (none when it is empty): in place at once, then checked. */
async function configureSidecar(e: Engine, url: string | null): Promise<ReturnType<Router['status']>> {
  const trimmed = (url ?? '').trim();
  sidecarInput.value = trimmed;
  const r = createRouter({ page: e, sidecar: trimmed === '' ? null : connectSidecar({ url: trimmed }) });
  router = r;
  showSidecarStatus(r.status());
  await r.check();
  if (router === r) showSidecarStatus(r.status()); // unless a newer URL replaced it meanwhile
  return r.status();
}

const ready = loadEngine({ modelBase, ortBase, prefer, onStatus: (t) => (engineText.textContent = t) });
ready.then(
  (e) => {
    engine = e;
    const { info } = e;
    engineBox.dataset['state'] = info.provider;
    engineBox.dataset['provider'] = info.provider;
    engineBox.dataset['software'] = String(info.adapter?.software ?? false);
    engineText.textContent = `${info.modelName} ${info.modelVersion} · ${info.label}`;
    engineBox.title = `bundle ${info.modelBase}, loaded in ${Math.round(info.loadMs)} ms${info.adapter ? `; WebGPU adapter: ${info.adapter.description}${info.adapter.software ? ' (software)' : ''}` : ''}`;
    if (info.fallbackReason !== null) {
      // A software adapter is skipped because wasm is faster on it; a missing one costs speed on a machine with a GPU.
      fallback.textContent = info.adapter?.software
        ? `Running on wasm (CPU): the only WebGPU adapter here is WebGPU (software) (${info.adapter.description}, a GPU emulated on the CPU), which is slower than wasm. Add ?ep=webgpu to the address to use it anyway.`
        : `Running on wasm (CPU) instead of WebGPU: ${info.fallbackReason}. Results are the same (within 1e-3); WebGPU on a hardware GPU is usually faster.`;
      fallback.hidden = false;
    }
    setBusy(false);
    void configureSidecar(e, params.get('sidecar'));
  },
  (err: unknown) => {
    engineBox.dataset['state'] = 'failed';
    engineText.textContent = 'Model not loaded';
    showError(`${modelBase}: ${err instanceof Error ? err.message : String(err)}`, 'The model could not be loaded.');
  },
);

function showRoute(report: RouteReport): void {
  if (report.fallback === null) {
    routeNotice.hidden = true;
    return;
  }
  routeNotice.textContent = `The sidecar did not score this batch (${report.fallback}). ${report.fallbackRows} row${report.fallbackRows === 1 ? ' was' : 's were'} scored in this page on ${engine?.info.label ?? 'the page'} instead.`;
  routeNotice.hidden = false;
  if (router) showSidecarStatus(router.status());
}

async function scoreFromUi(rows: readonly Comparison[]): Promise<void> {
  if (engine === null || router === null || busy) return;
  clearError();
  setBusy(true);
  download.hidden = true;
  resultsPanel.hidden = false;
  results.replaceChildren();
  resultsPanel.scrollIntoView({ block: 'start' });
  summary.textContent = `Scoring ${rows.length} row${rows.length === 1 ? '' : 's'}…`;
  try {
    const routed = await router.scoreRows(rows, {
      onProgress: (done) => {
        renderResults(results, done, rows, where);
        summary.textContent = summaryText(done, rows.length);
      },
    });
    renderResults(results, routed.rows, rows, where);
    summary.textContent = summaryText(routed.rows, rows.length);
    hook.lastResults = routed.rows;
    hook.lastReport = routed.report;
    showRoute(routed.report);
    download.hidden = false;
    const failed = routed.rows.filter((r) => r.error);
    if (failed.length > 0) showError(`${failed.length} of ${routed.rows.length} rows could not be scored; see the rows marked "Not scored". First: ${failed[0]!.error!.message}`);
  } catch (e) {
    showError(`Scoring failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    setBusy(false);
  }
}

download.addEventListener('click', () => {
  const blob = new Blob([resultsCsv(hook.lastResults)], { type: 'text/csv' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'pairpref-results.csv';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
});

sidecarInput.addEventListener('change', () => void ready.then((e) => configureSidecar(e, sidecarInput.value)));

$('pair-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  let row: Comparison;
  try {
    row = form.read();
  } catch (e) {
    if (e instanceof FormInputError) return showError(e.message);
    throw e;
  }
  void scoreFromUi([row]);
});
$('add-turn').addEventListener('click', () => form.addTurn());
$('example').addEventListener('click', () =>
  form.fill([
    {
      prompt: 'Give me three tips for staying focused while working from home.',
      response_a: 'Work from home.',
      response_b:
        '1. Keep a dedicated workspace that you only use for work.\n2. Plan the day in time blocks and take short breaks between them.\n3. Silence notifications and check messages at set times.',
    },
  ]),
);

async function scoreFile(file: File): Promise<void> {
  let rows: Comparison[];
  try {
    rows = comparisonsFromCsv(await file.text(), file.name);
  } catch (e) {
    if (e instanceof CsvInputError) return showError(e.message);
    throw e;
  }
  await scoreFromUi(rows);
}

csvInput.addEventListener('change', () => {
  const file = csvInput.files?.[0];
  csvInput.value = ''; // choosing the same file again must fire change again
  if (file) void scoreFile(file);
});
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const file = ev.dataTransfer?.files[0];
  if (file && !busy) void scoreFile(file);
});

const hook: PairprefHook = {
  ready: ready.then((e) => e.info),
  scoreRows: async (rows, opts) => (await ready).scoreRows(rows, opts),
  route: async (rows) => {
    await ready; // ready's first reaction (above) has put the router in place by now
    return router!.scoreRows(rows);
  },
  setSidecar: async (url) => configureSidecar(await ready, url),
  lastResults: [],
  lastReport: null,
};
window.pairpref = hook;
