// Messages between the main thread (worker-runner.ts) and a device worker (device-worker.ts).
import type { FeedBatch } from './ort-feeds.ts';
import type { FeedNames, GraphSignature } from './runner.ts';

export interface WorkerInit {
  readonly modelPath: string;
  /** Plain-data onnxruntime SessionOptions (structured-cloned into the worker). */
  readonly sessionOptions: Record<string, unknown>;
}

export type WorkerRequest =
  | ({ readonly type: 'run'; readonly seq: number; readonly names: FeedNames } & FeedBatch)
  | { readonly type: 'close' };

export type WorkerReply =
  | { readonly type: 'ready'; readonly signature: GraphSignature }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'result'; readonly seq: number; readonly data: Float32Array; readonly dims: number[] }
  | { readonly type: 'error'; readonly seq: number; readonly message: string };
