// In-process scoring (the CLI's --model mode): the same Scorer the server runs, behind the same
// windowed stream (core/window.ts) as the gRPC client, so both modes take rows and give
// predictions in one shape and with the same window, ordering and duplicate-id rules.
import type { StreamPrediction } from '../core/result.ts';
import type { Row } from '../core/rows.ts';
import { windowedScore, type WindowOptions } from '../core/window.ts';
import type { Scorer } from './scorer.ts';

export interface LocalStreamOptions extends WindowOptions {
  readonly swapTta?: boolean;
}

export interface LocalClient {
  readonly scorer: Scorer;
  scoreStream(rows: AsyncIterable<Row> | Iterable<Row>, opts?: LocalStreamOptions): AsyncGenerator<StreamPrediction>;
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
            scorer.scoreOne(row, { swapTta }).then(
              (r) => cancelled || sink.result(index, r),
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
