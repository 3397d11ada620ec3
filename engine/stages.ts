// What the engine reports about its stages as the work happens: tokenizing, waiting in the batch
// queue, running on a device. The engine knows nothing of OpenTelemetry or Prometheus; server/ turns
// these reports into spans (per call, through a CallObserver handed in with the call) and into
// histograms (for all work, through an EngineObserver the scorer is given once). Times are
// performance.now() milliseconds.

/** One batch run on one device (a batch retried on another device is reported once per attempt). */
export interface BatchRun {
  /** The batch, numbered from 0 per scorer; a retry keeps its number. */
  readonly id: number;
  readonly device: string;
  /** 0, or 1 for the retry on another device after the first attempt failed. */
  readonly attempt: number;
  readonly rows: number;
  /** Real (unpadded) tokens. */
  readonly tokens: number;
  /** Rows x longest row: what the device computed. */
  readonly paddedTokens: number;
  readonly start: number;
  readonly end: number;
  /** Null when the device answered. */
  readonly error: Error | null;
}

/** A batch as one call sees it: the batch, and the call's share of it. */
export interface CallBatch extends BatchRun {
  /** Rows of this call in the batch (a row scored with swap TTA is two rows). */
  readonly callRows: number;
  /** When the first of those rows entered the batch queue. */
  readonly queuedAt: number;
}

/** Reports about one scoring call (a Score call, or one ScoreStream row); see ScoreOptions.observer. */
export interface CallObserver {
  /** The call's rows (those not refused before work) were tokenized, waiting for a lane included. */
  tokenized(t: { readonly start: number; readonly end: number; readonly rows: number }): void;
  /** A batch that carried rows of the call ran, or failed. */
  batch(b: CallBatch): void;
}

/** Reports about all the work of a scorer (Scorer.observe). */
export interface EngineObserver {
  /** A chunk of rows was tokenized: each row's tokenizing time (both orders with swap TTA). */
  tokenized?(rowMs: readonly number[]): void;
  /**
   * A batch ran, or failed. `waits`: each row's time from entering the batch queue to this batch
   * starting, on the first attempt (empty on a retry, whose rows were reported on the first).
   */
  batch?(b: BatchRun & { readonly waits: readonly number[] }): void;
}
