// Runs in a worker thread: loads the bundle's preprocessing and encodes rows sent to it.
import { parentPort, workerData } from 'node:worker_threads';
import { loadBundle } from './bundle.ts';
import { encodeRow, type Encoded } from './encoder.ts';
import type { EncoderReply, EncoderRequest } from './encoder-pool.ts';

const port = parentPort;
if (!port) throw new Error('encoder-worker must run in a worker thread');
const { bundleDir } = (workerData as { init: { bundleDir: string } }).init;
const pre = loadBundle(bundleDir).preprocessor;

function buffers(e: Encoded): ArrayBuffer[] {
  if (!e.ok) return [];
  const out = [e.direct.ids.buffer as ArrayBuffer];
  if (e.direct.features) out.push(e.direct.features.buffer as ArrayBuffer);
  if (e.swapped) out.push(e.swapped.ids.buffer as ArrayBuffer);
  if (e.swapped?.features) out.push(e.swapped.features.buffer as ArrayBuffer);
  return out;
}

port.on('message', (req: EncoderRequest) => {
  const results = req.rows.map((r) => encodeRow(pre, r, req.swapTta));
  port.postMessage({ seq: req.seq, results } satisfies EncoderReply, results.flatMap(buffers));
});
port.postMessage({ seq: -1, results: [] } satisfies EncoderReply);
