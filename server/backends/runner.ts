// The contract between the scheduler and a model runtime: run one padded batch on one device.
import type { PaddedBatch } from '../../core/batch.ts';
import type { InputNames } from '../../core/feeds.ts';

/** One execution target from --devices. */
export interface DeviceSpec {
  /** As the user wrote it: "cpu", "cuda:1", "webgpu". */
  readonly name: string;
  readonly provider: 'cpu' | 'cuda' | 'webgpu';
  /** CUDA device ordinal; 0 otherwise. */
  readonly deviceId: number;
}

/** An input or output of the ONNX graph, as onnxruntime reports it. */
export interface GraphValue {
  readonly name: string;
  readonly isTensor: boolean;
  /** onnxruntime tensor type, e.g. "int64", "float32"; "" for non-tensors. */
  readonly type: string;
  /** Static dims as numbers, symbolic dims as names; [] when unknown. */
  readonly shape: ReadonlyArray<number | string>;
}

export interface GraphSignature {
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
}

/** Which graph inputs get which part of the batch, and which output to fetch. */
/** The graph's input names (core/feeds.ts) and the output read back. */
export interface FeedNames extends InputNames {
  readonly output: string;
}

export interface RunOutput {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export interface ModelRunner {
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
  readonly signature: GraphSignature;
  run(batch: PaddedBatch, names: FeedNames): Promise<RunOutput>;
  close(): Promise<void>;
}
