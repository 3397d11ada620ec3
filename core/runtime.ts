// The contracts between the engine and a model runtime (onnxruntime-node in runtime/node,
// onnxruntime-web in runtime/web). The engine sees a runtime only through these; a runtime
// implements them with core's batch path (run-batch.ts) and holds no model logic of its own.
import type { GraphSignature } from './graph.ts';
import type { Probs } from './postprocess.ts';
import type { Preprocessor } from './preprocess.ts';
import type { EncodedRow, PreferenceConfig } from './types.ts';

/** One execution target from --devices. */
export interface DeviceSpec {
  /** As the user wrote it: "cpu", "cuda:1", "webgpu" ("cpu:0", "cpu:1" when listed twice). */
  readonly name: string;
  readonly provider: 'cpu' | 'cuda' | 'webgpu';
  /** CUDA device ordinal; 0 otherwise. */
  readonly deviceId: number;
}

/** A model bundle as plain data: enough to rebuild its preprocessing anywhere (a worker thread, a page). */
export interface BundleSource {
  readonly config: PreferenceConfig;
  readonly tokenizerJson: unknown;
  /** tokenizer_config.json when the bundle has one. */
  readonly tokenizerConfig: unknown;
}

/** A loaded bundle: its source, its preprocessing, and where the runtime finds the graph. */
export interface Bundle extends BundleSource {
  /** Where the bundle came from (a directory or a URL). */
  readonly location: string;
  /** model.onnx (a path or a URL, as the runtime reads it). */
  readonly modelPath: string;
  /** Bytes of the bundle's files (model.onnx, its external data files, tokenizer and preference files), when known. */
  readonly sizeBytes?: number;
  readonly preprocessor: Preprocessor;
}

/** One session on one device, running batches through core's runBatch. */
export interface ModelRunner {
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
  readonly signature: GraphSignature;
  /** One probability triple per row, in order; rejects when the batch failed. */
  run(rows: readonly EncodedRow[]): Promise<Probs[]>;
  /** Lets the running batch finish, then releases the session. */
  close(): Promise<void>;
  /** Fails what is waiting now and stops the session as soon as its running batch is done (a second signal). */
  terminate?(): Promise<void>;
  /** Ends the session's thread as a crash would, after its running batch (fault tests). */
  crash?(): Promise<void>;
  /** Called once if the session dies by itself (not through close/terminate), even while idle. */
  onFailure?(listener: (error: Error) => void): void;
}

export interface ResolvedDevices {
  readonly devices: readonly DeviceSpec[];
  /** Why auto chose what it chose; null when devices were given explicitly. */
  readonly autoReason: string | null;
}

/** What the engine needs of a runtime to serve a bundle on a list of devices. */
export interface Runtime {
  /** Parses a --devices list; "auto" picks what this runtime finds on the host. */
  resolveDevices(spec: string): ResolvedDevices;
  /** onnxruntime threads per session when not set. */
  defaultIntraOpThreads(devices: readonly DeviceSpec[]): number;
  /** Tokenizer worker threads when not set. */
  defaultPreprocessThreads(devices: readonly DeviceSpec[]): number;
  startRunner(bundle: Bundle, device: DeviceSpec, intraOpThreads: number): Promise<ModelRunner>;
  /**
   * The URL of a module exporting core's TokenizerModule (core/tokenizing.ts): this runtime's own
   * tokenizer (onnxruntime-node's runtime: the native `tokenizers` binding), which the engine's
   * tokenizer workers import. Absent: core's pure-JS tokenizer.
   */
  readonly tokenizerModule?: string;
}
