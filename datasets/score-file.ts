// Scores an Arena file through any windowed stream (server or in-process) and yields one result
// per usable row in input order. Bad rows stop the run with a line-numbered ArenaFileError, or
// with skipBad are reported through onSkip and left out.
import { ArenaFileError, readArenaFile, type LabelIndex } from './arena-file.ts';
import type { Prediction, StreamPrediction } from '../core/result.ts';
import type { Row } from '../core/rows.ts';
import { Status } from '../core/status.ts';

/** What score-file needs from a client: the SDK's PairprefClient and the in-process LocalClient both fit. */
export interface StreamScorer {
  scoreStream(rows: AsyncIterable<Row>, opts: { window?: number; ordered?: boolean; swapTta?: boolean }): AsyncIterable<StreamPrediction>;
}

export interface ScoredRow {
  readonly line: number;
  readonly id: string;
  readonly label: LabelIndex | null;
  readonly prediction: Prediction;
}

export interface SkippedRow {
  readonly line: number;
  readonly id: string | null;
  readonly field: string;
  readonly reason: string;
}

export interface ScoreFileOptions {
  readonly window?: number;
  readonly swapTta?: boolean;
  readonly labels?: boolean;
  /** Leave bad rows out (reported through onSkip) instead of stopping at the first. */
  readonly skipBad?: boolean;
  readonly onSkip?: (row: SkippedRow) => void;
  /** Reject a row whose id was seen before (default true: a submission has each id once). */
  readonly uniqueIds?: boolean;
  /** Score only the first `limit` usable rows (bad rows skipped with skipBad do not count). */
  readonly limit?: number;
}

export async function* scoreFile(client: StreamScorer, path: string, opts: ScoreFileOptions = {}): AsyncGenerator<ScoredRow> {
  // Only rows in the window are kept here; firstLine (ids seen) is the one per-file structure.
  const meta = new Map<number, { line: number; label: LabelIndex | null }>();
  const firstLine = new Map<string, number>();
  const reject = (s: SkippedRow): void => {
    if (!opts.skipBad) throw new ArenaFileError(path, s.line, s.field, `${s.reason}${s.id !== null ? ` (id ${JSON.stringify(s.id)})` : ''}`);
    opts.onSkip?.(s);
  };

  async function* rows(): AsyncGenerator<Row> {
    let index = 0;
    for await (const rec of readArenaFile(path, { labels: opts.labels ?? false })) {
      if (opts.limit !== undefined && index >= opts.limit) return;
      if (!rec.ok) {
        reject({ line: rec.line, id: rec.id, field: rec.field, reason: rec.message });
        continue;
      }
      const id = rec.comparison.id;
      const seen = opts.uniqueIds === false ? undefined : firstLine.get(id);
      if (seen !== undefined) {
        // A submission has each id once; a second row with it cannot be told apart.
        reject({ line: rec.line, id, field: 'id', reason: `duplicate id (first seen at line ${seen})` });
        continue;
      }
      if (opts.uniqueIds !== false) firstLine.set(id, rec.line);
      meta.set(index++, { line: rec.line, label: rec.label });
      yield rec.comparison;
    }
  }

  for await (const p of client.scoreStream(rows(), { window: opts.window, ordered: true, swapTta: opts.swapTta })) {
    const m = meta.get(p.index);
    if (!m) throw new Error(`internal: prediction for unknown row index ${p.index}`);
    meta.delete(p.index);
    const { index: _index, ...prediction } = p;
    if (prediction.error) {
      const e = prediction.error;
      if (e.code !== Status.INVALID_ARGUMENT) throw new Error(`line ${m.line}: the model failed on row ${JSON.stringify(p.id)}: ${e.message}`);
      reject({ line: m.line, id: p.id, field: e.field, reason: e.message });
      continue;
    }
    yield { line: m.line, id: p.id, label: m.label, prediction };
  }
}
