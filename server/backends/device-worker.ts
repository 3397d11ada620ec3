// Runs in a worker thread: owns one onnxruntime-node session. onnxruntime-node's session.run
// is synchronous on its calling thread, so each device gets its own thread; that keeps the gRPC
// event loop free and lets several devices compute at the same time.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ortFeeds } from './ort-feeds.ts';
import type { GraphValue } from './runner.ts';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('device-worker must run in a worker thread');
const init = (workerData as { init: WorkerInit }).init;

function describe(meta: readonly ort.InferenceSession.ValueMetadata[]): GraphValue[] {
  return meta.map((m) =>
    m.isTensor
      ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] }
      : { name: m.name, isTensor: false, type: '', shape: [] },
  );
}

function post(reply: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(reply, transfer);
}

let session: ort.InferenceSession;
try {
  session = await ort.InferenceSession.create(init.modelPath, init.sessionOptions as ort.InferenceSession.SessionOptions);
  post({ type: 'ready', signature: { inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) } });
} catch (e) {
  post({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  process.exit(0);
}

port.on('message', async (req: WorkerRequest) => {
  if (req.type === 'close') {
    await session.release();
    port.close();
    return;
  }
  try {
    const result = await session.run(ortFeeds(req, req.names), [req.names.output]);
    const t = result[req.names.output];
    if (!t || t.type !== 'float32') throw new Error(`output "${req.names.output}" is ${t ? t.type : 'missing'}, expected float32`);
    // Copy out of the session-owned buffer so it can be transferred.
    const data = new Float32Array(t.data as Float32Array);
    post({ type: 'result', seq: req.seq, data, dims: [...t.dims] }, [data.buffer]);
  } catch (e) {
    post({ type: 'error', seq: req.seq, message: e instanceof Error ? e.message : String(e) });
  }
});
