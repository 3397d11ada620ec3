// Messages between the main thread (worker-runner.ts) and a device worker (device-worker.ts).
import type { GraphSignature } from '../../core/graph.ts';
import type { EncodedRow, PreferenceConfig } from '../../core/types.ts';

export interface WorkerInit {
  readonly modelPath: string;
  /** Plain-data onnxruntime SessionOptions (structured-cloned into the worker). */
  readonly sessionOptions: Record<string, unknown>;
  readonly config: PreferenceConfig;
}

/**
 * close: release the session once the running batch is done, then exit. crash: exit with code 1
 * once the running batch is done, as a crashed worker would (fault tests).
 */
export type WorkerRequest =
  | { readonly type: 'run'; readonly seq: number; readonly rows: readonly EncodedRow[] }
  | { readonly type: 'close' }
  | { readonly type: 'crash' };

export type WorkerReply =
  | { readonly type: 'ready'; readonly signature: GraphSignature }
  | { readonly type: 'failed'; readonly message: string }
  /** Row i's probabilities at [3i, 3i + 3). */
  | { readonly type: 'result'; readonly seq: number; readonly probs: Float64Array }
  | { readonly type: 'error'; readonly seq: number; readonly message: string };
