// In-process scoring (the CLI's --model mode): the same Scorer (core/ + batch scheduler) the
// server runs, behind the same windowed stream as the gRPC client. Rows take the same path a
// server sees (row -> wire message -> core Comparison) and predictions the same conversion back,
// so both modes give identical numbers. Not exported from client/index.ts: it loads onnxruntime.
import { fromWire, toWire } from '../server/grpc-service.ts';
import { loadScorer, type Scorer, type ScorerOptions } from '../server/scorer.ts';
import { comparisonToWire, predictionFromWire, type Row, type StreamPrediction } from './rows.ts';
import type { StreamOptions } from './sdk.ts';
import { windowedScore } from './window.ts';

export interface LocalClient {
  readonly scorer: Scorer;
  scoreStream(rows: AsyncIterable<Row> | Iterable<Row>, opts?: Omit<StreamOptions, 'deadlineMs'>): AsyncGenerator<StreamPrediction>;
  close(): Promise<void>;
}

export function localClient(scorer: Scorer): LocalClient {
  return {
    scorer,
    scoreStream(rows, opts = {}) {
      const swapTta = opts.swapTta ?? false;
      return windowedScore(rows, { window: opts.window, ordered: opts.ordered }, (sink) => {
        let cancelled = false;
        return {
          async send(index, row) {
            scorer.scoreOne(fromWire(comparisonToWire(row)), { swapTta }).then(
              (r) => cancelled || sink.result(index, predictionFromWire(toWire(r))),
              (e: unknown) => sink.fail(e instanceof Error ? e : new Error(String(e))),
            );
          },
          end() {},
          cancel() {
            cancelled = true;
          },
        };
      });
    },
    close: () => scorer.close(),
  };
}

export async function openLocal(opts: ScorerOptions): Promise<LocalClient> {
  return localClient(await loadScorer(opts));
}
