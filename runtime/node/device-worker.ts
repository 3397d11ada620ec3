// Runs in a worker thread: owns one onnxruntime-node session and runs whole batches through core's
// runBatch (pad -> feeds -> run -> head). onnxruntime-node's session.run is synchronous on its
// calling thread, so each device gets its own thread; that keeps the gRPC event loop free, lets
// several devices compute at once, and keeps padding and the head off the main thread too.
import { parentPort, workerData } from 'node:worker_threads';
import { runBatch } from '../../core/run-batch.ts';
import { openSession, type NodeSession } from './session.ts';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('device-worker must run in a worker thread');
const init = (workerData as { init: WorkerInit }).init;

function post(reply: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(reply, transfer);
}

let session: NodeSession;
try {
  session = await openSession(init.modelPath, init.sessionOptions, init.config);
  post({ type: 'ready', signature: session.signature });
} catch (e) {
  post({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  process.exit(0);
}

/** The batch in progress: close and crash wait for it (a session released mid-run aborts the process). */
let running: Promise<unknown> = Promise.resolve();
let stopping = false;

port.on('message', (req: WorkerRequest) => {
  if (req.type === 'close' || req.type === 'crash') {
    stopping = true;
    void running.then(async () => {
      if (req.type === 'crash') process.exit(1);
      await session.release();
      process.exit(0);
    });
    return;
  }
  if (stopping) return post({ type: 'error', seq: req.seq, message: 'the device is stopping' });
  running = run(req.seq, req.rows);
});

async function run(seq: number, rows: Parameters<typeof runBatch>[2]): Promise<void> {
  try {
    const probs = await runBatch(session, init.config, rows);
    const flat = new Float64Array(probs.length * 3);
    probs.forEach((p, i) => flat.set(p, 3 * i));
    post({ type: 'result', seq, probs: flat }, [flat.buffer]);
  } catch (e) {
    post({ type: 'error', seq, message: e instanceof Error ? e.message : String(e) });
  }
}
