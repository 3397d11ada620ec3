// The browser's one call to score rows: a batch goes to the sidecar when one is configured and
// reachable and the batch has more than `localMaxRows` rows; otherwise, or when the sidecar fails
// or cannot be reached, the page scores it (WebGPU, else wasm). Rows the sidecar answered before it
// failed keep its answer; the rest are scored in the page. Every result says where it ran. Both paths
// run the same bundle through the same core/ preprocessing, so switching never changes a result
// beyond the providers' float differences (1e-5 for wasm, 1e-3 for WebGPU, tested).
import type { Prediction } from '../core/result.ts';
import { Status } from '../core/status.ts';
import type { Comparison } from '../core/types.ts';
import type { Engine, Provider, ScoredRow } from './page-engine.ts';
import { SidecarError, type Sidecar, type SidecarModel } from './sidecar.ts';

export const DEFAULT_LOCAL_MAX_ROWS = 8;

/** One result and where it was scored. */
export interface RoutedRow extends Prediction {
  /** 'sidecar': by the server's engine; 'page': in this page, on `provider`. */
  readonly scoredBy: 'sidecar' | 'page';
  /** The page's execution provider; null for rows the sidecar scored. */
  readonly provider: Provider | null;
  /** Token ids the page's model read; null from the sidecar (it does not send them) or for a rejected row. */
  readonly ids: number[] | null;
  /** Wall time of the batch (page) or of the call until this row's answer (sidecar). */
  readonly latencyMs: number;
  readonly batchSize: number;
}

/** Why a batch went where it went; `fallback` is set when the sidecar was meant to take it and did not. */
export interface RouteReport {
  readonly route: 'sidecar' | 'page';
  readonly reason: string;
  /** The sidecar failed or could not be reached: what happened, for a notice. */
  readonly fallback: string | null;
  /** Rows the page scored after the sidecar failed (0 when it did not). */
  readonly fallbackRows: number;
}

export interface RoutedResult {
  readonly rows: RoutedRow[];
  readonly report: RouteReport;
}

export interface RouterOptions {
  readonly page: Engine;
  /** The sidecar; null or absent: everything is scored in the page. */
  readonly sidecar?: Sidecar | null;
  /** Batches of at most this many rows are scored in the page (default 8). */
  readonly localMaxRows?: number;
  /** How long a successful reachability check is trusted (default 30 s); a failed one is retried at the next batch. */
  readonly checkTtlMs?: number;
}

export interface RouteOptions {
  /** Called with the results so far, in no particular order of completion (undefined: not yet scored). */
  readonly onProgress?: (rows: ReadonlyArray<RoutedRow | undefined>) => void;
}

export interface Router {
  readonly localMaxRows: number;
  readonly sidecar: Sidecar | null;
  /** The last reachability check: the sidecar's model, or why it is not used. */
  status(): { readonly state: 'none' | 'unchecked' | 'reachable' | 'unreachable'; readonly detail: string };
  /** Checks the sidecar now (GetModelInfo, and the model must be the page's). */
  check(): Promise<boolean>;
  scoreRows(rows: readonly Comparison[], o?: RouteOptions): Promise<RoutedResult>;
}

/** Per-row answers worth a second try in the page: the sidecar was overloaded, down or broke, not the row. */
const RETRY_IN_PAGE: ReadonlySet<number> = new Set([Status.RESOURCE_EXHAUSTED, Status.INTERNAL, Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.CANCELLED]);

export function createRouter(o: RouterOptions): Router {
  const page = o.page;
  const sidecar = o.sidecar ?? null;
  const localMaxRows = o.localMaxRows ?? DEFAULT_LOCAL_MAX_ROWS;
  const ttl = o.checkTtlMs ?? 30_000;
  let state: ReturnType<Router['status']> = sidecar ? { state: 'unchecked', detail: sidecar.url } : { state: 'none', detail: 'no sidecar configured' };
  let checkedAt = -Infinity;

  const sameModel = (m: SidecarModel): boolean => m.name === page.info.modelName && m.version === page.info.modelVersion;

  async function check(): Promise<boolean> {
    if (!sidecar) return false;
    try {
      const m = await sidecar.model();
      if (!sameModel(m)) {
        state = { state: 'unreachable', detail: `${sidecar.url} serves ${m.name} ${m.version}, the page ${page.info.modelName} ${page.info.modelVersion}: not used` };
        return false;
      }
      state = { state: 'reachable', detail: `${sidecar.url} serves ${m.name} ${m.version}` };
      checkedAt = performance.now();
      return true;
    } catch (e) {
      state = { state: 'unreachable', detail: e instanceof Error ? e.message : String(e) };
      return false;
    }
  }

  const inPage = (r: ScoredRow): RoutedRow => ({ ...r, scoredBy: 'page' });

  async function scoreInPage(rows: readonly Comparison[], report: RouteReport, onProgress: RouteOptions['onProgress']): Promise<RoutedResult> {
    const out = await page.scoreRows(rows, { onBatch: (done, total) => onProgress?.([...done.map(inPage), ...new Array<undefined>(total - done.length)]) });
    return { rows: out.map(inPage), report };
  }

  return {
    localMaxRows,
    sidecar,
    status: () => state,
    check,
    async scoreRows(rows, ro = {}) {
      if (!sidecar) return scoreInPage(rows, { route: 'page', reason: 'no sidecar is configured', fallback: null, fallbackRows: 0 }, ro.onProgress);
      if (rows.length <= localMaxRows) return scoreInPage(rows, { route: 'page', reason: `${rows.length} row(s), at most localMaxRows (${localMaxRows}): scored in the page`, fallback: null, fallbackRows: 0 }, ro.onProgress);
      const fresh = state.state === 'reachable' && performance.now() - checkedAt < ttl;
      if (!fresh && !(await check())) {
        return scoreInPage(rows, { route: 'page', reason: 'the sidecar is not reachable', fallback: `the sidecar is not used (${state.detail})`, fallbackRows: rows.length }, ro.onProgress);
      }

      const t0 = performance.now();
      const results: Array<RoutedRow | undefined> = new Array(rows.length);
      const fromSidecar = (p: Prediction): RoutedRow => ({ ...p, scoredBy: 'sidecar', provider: null, ids: null, latencyMs: performance.now() - t0, batchSize: rows.length });
      let failure: string | null = null;
      try {
        await sidecar.score(rows, {
          onRow: (i, p) => {
            results[i] = fromSidecar(p);
            ro.onProgress?.(results);
          },
        });
      } catch (e) {
        failure = e instanceof Error ? e.message : String(e);
        if (e instanceof SidecarError && e.code === null) state = { state: 'unreachable', detail: e.message };
      }
      // Rows the sidecar could not answer (it failed, or refused them for its own reasons) are scored here.
      const todo = rows.flatMap((_, i) => {
        const r = results[i];
        return r === undefined || (r.error !== undefined && RETRY_IN_PAGE.has(r.error.code)) ? [i] : [];
      });
      if (todo.length > 0) {
        failure ??= `the sidecar could not score ${todo.length} row(s): ${results[todo[0]!]?.error?.message ?? 'no answer'}`;
        const local = await page.scoreRows(todo.map((i) => rows[i]!));
        todo.forEach((i, k) => (results[i] = inPage(local[k]!)));
        ro.onProgress?.(results);
      }
      const report: RouteReport = { route: 'sidecar', reason: `more than localMaxRows (${localMaxRows}) rows: sent to ${sidecar.url}`, fallback: failure, fallbackRows: todo.length };
      return { rows: results as RoutedRow[], report };
    },
  };
}
