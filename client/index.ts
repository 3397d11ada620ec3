// Public SDK surface: connect to pairpref servers and score rows. Only gRPC here; the in-process
// engine (engine/, wired by cli/wiring.ts) and the dataset readers (datasets/) are their own layers.
// This is also the entry of the @pairpref/client package (packages/client), so every export here is
// public API: what a caller needs to connect, build rows and read predictions, not the SDK's
// plumbing (the streaming window, wire conversions), which the package keeps free to change.
export {
  connect,
  resolveTarget,
  PairprefError,
  type ConnectOptions,
  type CallOptions,
  type StreamOptions,
  type RetryOptions,
  type PairprefClient,
  type ModelInfo,
  type ScoreStream,
  type StreamStats,
  type ReplicaStats,
  type ReplicaState,
  type ReplicaFailure,
} from './sdk.ts';
export { DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS, type TlsSettings } from './channels.ts';
export { DEFAULT_IDLE_TIMEOUT_MS } from './failover.ts';
export { RowInputError } from '../core/errors.ts';
export { toComparison, type Row } from '../core/rows.ts';
export { probsOf, type Prediction, type RowError, type RowError as PredictionError, type StreamPrediction } from '../core/result.ts';
export { Status, type StatusCode } from '../core/status.ts';
export { LABELS, type LabelIndex } from '../core/types.ts';
export { DEFAULT_WINDOW } from '../core/window.ts';
