// Public SDK surface. The in-process scorer (client/local.ts) is deliberately not re-exported:
// it loads onnxruntime, which a gRPC-only caller should not pay for.
export { connect, resolveTarget, PairprefError, type ConnectOptions, type CallOptions, type StreamOptions, type RetryOptions, type PairprefClient, type ModelInfo } from './sdk.ts';
export { RowInputError } from '../core/errors.ts';
export { toComparison, comparisonToWire, predictionFromWire, type Row, type Prediction, type PredictionError, type StreamPrediction } from './rows.ts';
export { readArenaFile, countRecords, jsonListProblem, formatOf, ArenaFileError, LABEL_COLUMNS, type FileRecord, type GoodRecord, type BadRecord, type LabelIndex, type ReadOptions, type FileFormat } from './arena-file.ts';
export { scoreFile, type ScoredRow, type SkippedRow, type ScoreFileOptions, type StreamScorer } from './score-file.ts';
export { EvalAccumulator, rowLogLoss, argmax3, LOG_LOSS_EPS, CLASS_NAMES, type EvalReport } from './metrics.ts';
export { DEFAULT_WINDOW, windowedScore, type Transport, type TransportSink, type WindowOptions } from './window.ts';
