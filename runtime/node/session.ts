// The one place onnxruntime-node sessions are created: the device workers, the bench's limit and
// naive peer, and training's evaluation all get their sessions here, with the server's options
// (session-options.ts), and run batches through core's runBatch with these tensors.
import './ort-env.ts';
import * as ort from 'onnxruntime-node';
import { dirname } from 'node:path';
import type { TensorMaker } from '../../core/feeds.ts';
import { planServedGraph, servedAsIs, type ServedGraph } from '../../core/graph-edit.ts';
import { signatureOf, type GraphSignature } from '../../core/graph.ts';
import type { OutputTensor, SessionRun } from '../../core/run-batch.ts';
import type { DeviceSpec } from '../../core/runtime.ts';
import type { PreferenceConfig } from '../../core/types.ts';
import { readModelFile } from './model-file.ts';
import { sessionOptions, type SessionTuning } from './session-options.ts';

export const NODE_TENSORS: TensorMaker<ort.Tensor> = {
  int64: (data: BigInt64Array, dims: readonly number[]) => new ort.Tensor('int64', data, dims),
  float32: (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims),
};

export interface NodeSession extends SessionRun<ort.Tensor> {
  /** The graph as the bundle ships it (what validateGraph checks), before any edit at load. */
  readonly signature: GraphSignature;
  readonly graph: ServedGraph;
  /** The edits applied at load (core/graph-edit.ts), one line each; empty when none. */
  readonly edits: readonly string[];
  release(): Promise<void>;
}

export const CPU: DeviceSpec = { name: 'cpu', provider: 'cpu', deviceId: 0 };

/**
 * The session options travel as plain data (into a worker thread), hence the separate step. With
 * the bundle's config, the graph is planned first (core/graph-edit.ts): an edited model is created
 * from its bytes, with onnxruntime told where the external data files are (next to model.onnx; from
 * bytes it would look in the working directory); an unedited one from its path, as before.
 */
export async function openSession(modelPath: string, options: Record<string, unknown>, config?: PreferenceConfig): Promise<NodeSession> {
  const p = config ? readModelFile(modelPath, (src) => planServedGraph(src, config)) : null;
  let session: ort.InferenceSession;
  if (p?.bytes) {
    const extra = (options['extra'] ?? {}) as Record<string, unknown>;
    const sessionExtra = (extra['session'] ?? {}) as Record<string, unknown>;
    const withFolder = { ...options, extra: { ...extra, session: { ...sessionExtra, model_external_initializers_file_folder_path: dirname(modelPath) } } };
    session = await ort.InferenceSession.create(p.bytes, withFolder as ort.InferenceSession.SessionOptions);
  } else {
    session = await ort.InferenceSession.create(modelPath, options as ort.InferenceSession.SessionOptions);
  }
  return {
    tensors: NODE_TENSORS,
    signature: p ? p.signature : signatureOf(session),
    graph: p ? p.served : servedAsIs(session.inputNames),
    edits: p?.notes ?? [],
    async run(feeds, output): Promise<OutputTensor> {
      const t = (await session.run(feeds, [output]))[output];
      if (!t) throw new Error(`the model returned no "${output}" output`);
      return { type: t.type, data: t.data, dims: t.dims };
    },
    release: () => session.release(),
  };
}

/** The bundle's model as the server serves it (graph edits applied), with the server's session options. */
export function createSession(bundle: { readonly modelPath: string; readonly config: PreferenceConfig }, device: DeviceSpec, intraOpThreads: number, tuning: SessionTuning = {}): Promise<NodeSession> {
  return openSession(bundle.modelPath, sessionOptions(device, intraOpThreads, tuning), bundle.config);
}

export const ORT_VERSION: string = ort.env.versions.common;
