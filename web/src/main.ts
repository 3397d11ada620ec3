// Wires the page: loads the engine, scores the typed comparison or a CSV, shows results and
// errors, and exposes window.pairpref for tests and benchmarks.
import type { Comparison } from '../../core/types.ts';
import { comparisonsFromCsv, CsvInputError } from './csv.ts';
import { loadEngine, type Engine, type EngineInfo, type ScoredRow, type ScoreOptions } from './engine.ts';
import { renderResults, summaryText } from './render.ts';
import { createTurnsForm, FormInputError } from './turns-form.ts';

/** The test/benchmark hook; numbers come from here, never from the DOM. */
export interface PairprefHook {
  /** Resolves when the model is loaded (rejects when it cannot be). */
  readonly ready: Promise<EngineInfo>;
  scoreRows(rows: readonly Comparison[], opts?: Pick<ScoreOptions, 'maxBatch'>): Promise<ScoredRow[]>;
  /** Results of the last scoring started from the UI. */
  lastResults: readonly ScoredRow[];
}

declare global {
  interface Window {
    pairpref?: PairprefHook;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const params = new URLSearchParams(location.search);
// ?model=<url of a bundle directory> picks another bundle; ?ep=wasm skips WebGPU.
const modelParam = params.get('model');
const modelBase = new URL(modelParam === null ? './model/' : modelParam.endsWith('/') ? modelParam : `${modelParam}/`, document.baseURI).href;
const ortBase = new URL('./ort/', document.baseURI).href;

const engineBox = $('engine');
const engineText = $('engine-text');
const fallback = $('fallback');
const errorBox = $('error');
const errorText = $('error-text');
const scoreButton = $<HTMLButtonElement>('score');
const csvInput = $<HTMLInputElement>('csv');
const drop = $('drop');
const resultsPanel = $('results-panel');
const results = $('results');
const summary = $('summary');
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
let busy = false;
function setBusy(b: boolean): void {
  busy = b;
  scoreButton.disabled = b || engine === null;
  scoreButton.textContent = b ? 'Scoring…' : 'Score';
  csvInput.disabled = b || engine === null;
}

const ready = loadEngine({ modelBase, ortBase, prefer: params.get('ep') === 'wasm' ? 'wasm' : 'webgpu', onStatus: (t) => (engineText.textContent = t) });
ready.then(
  (e) => {
    engine = e;
    const { info } = e;
    engineBox.dataset['state'] = info.provider;
    engineBox.dataset['provider'] = info.provider;
    engineText.textContent = `${info.modelName} ${info.modelVersion} · ${info.provider === 'webgpu' ? 'WebGPU' : 'wasm (CPU)'}`;
    engineBox.title = `bundle ${info.modelBase}, loaded in ${Math.round(info.loadMs)} ms`;
    if (info.fallbackReason !== null) {
      fallback.textContent = `Running on wasm (CPU) instead of WebGPU: ${info.fallbackReason}. Results are the same; scoring is slower.`;
      fallback.hidden = false;
    }
    setBusy(false);
  },
  (err: unknown) => {
    engineBox.dataset['state'] = 'failed';
    engineText.textContent = 'Model not loaded';
    showError(`${modelBase}: ${err instanceof Error ? err.message : String(err)}`, 'The model could not be loaded.');
  },
);

async function scoreFromUi(rows: readonly Comparison[]): Promise<void> {
  if (engine === null || busy) return;
  clearError();
  setBusy(true);
  resultsPanel.hidden = false;
  results.replaceChildren();
  resultsPanel.scrollIntoView({ block: 'start' });
  summary.textContent = `Scoring ${rows.length} row${rows.length === 1 ? '' : 's'}…`;
  try {
    const scored = await engine.scoreRows(rows, {
      onBatch: (done, total) => {
        renderResults(results, done);
        summary.textContent = summaryText(done, total);
      },
    });
    hook.lastResults = scored;
    const failed = scored.filter((r) => r.error);
    if (failed.length > 0) showError(`${failed.length} of ${scored.length} rows could not be scored; see the rows marked "Not scored". First: ${failed[0]!.error!.message}`);
  } catch (e) {
    showError(`Scoring failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    setBusy(false);
  }
}

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
  lastResults: [],
};
window.pairpref = hook;
