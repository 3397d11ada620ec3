// The one place onnxruntime-node sessions are created: the device workers, the bench's limit and
// naive peer, and training's evaluation all get their sessions here, with the server's options
// (session-options.ts), and run batches through core's runBatch with these tensors.
import './ort-env.ts';
import * as ort from 'onnxruntime-node';
import type { TensorMaker } from '../../core/feeds.ts';
import { signatureOf, type GraphSignature } from '../../core/graph.ts';
import type { OutputTensor, SessionRun } from '../../core/run-batch.ts';
import type { DeviceSpec } from '../../core/runtime.ts';
import { sessionOptions, type SessionTuning } from './session-options.ts';

export const NODE_TENSORS: TensorMaker<ort.Tensor> = {
  int64: (data: BigInt64Array, dims: readonly number[]) => new ort.Tensor('int64', data, dims),
  float32: (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims),
};

export interface NodeSession extends SessionRun<ort.Tensor> {
  readonly signature: GraphSignature;
  release(): Promise<void>;
}

export const CPU: DeviceSpec = { name: 'cpu', provider: 'cpu', deviceId: 0 };

/** The session options travel as plain data (into a worker thread), hence the separate step. */
export async function openSession(modelPath: string, options: Record<string, unknown>): Promise<NodeSession> {
  const session = await ort.InferenceSession.create(modelPath, options as ort.InferenceSession.SessionOptions);
  return {
    tensors: NODE_TENSORS,
    signature: signatureOf(session),
    async run(feeds, output): Promise<OutputTensor> {
      const t = (await session.run(feeds, [output]))[output];
      if (!t) throw new Error(`the model returned no "${output}" output`);
      return { type: t.type, data: t.data, dims: t.dims };
    },
    release: () => session.release(),
  };
}

export function createSession(modelPath: string, device: DeviceSpec, intraOpThreads: number, tuning: SessionTuning = {}): Promise<NodeSession> {
  return openSession(modelPath, sessionOptions(device, intraOpThreads, tuning));
}

export const ORT_VERSION: string = ort.env.versions.common;
