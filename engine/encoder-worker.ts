// Runs in a worker thread: builds the bundle's preprocessing and encodes rows sent to it.
import { parentPort, workerData } from 'node:worker_threads';
import { createPreprocessor } from '../core/preprocess.ts';
import type { BundleSource } from '../core/runtime.ts';
import { createTokenizer } from '../core/tokenizer.ts';
import { encodeTimed, type Encoded } from './encoder.ts';
import type { EncoderReply, EncoderRequest } from './tokenizer-lanes.ts';

const port = parentPort;
if (!port) throw new Error('encoder-worker must run in a worker thread');
const source = (workerData as { init: BundleSource }).init;
const pre = createPreprocessor(source.config, createTokenizer(source.tokenizerJson, source.tokenizerConfig));

function buffers(e: Encoded): ArrayBuffer[] {
  if (!e.ok) return [];
  const out = [e.direct.ids.buffer as ArrayBuffer];
  if (e.direct.features) out.push(e.direct.features.buffer as ArrayBuffer);
  if (e.swapped) out.push(e.swapped.ids.buffer as ArrayBuffer);
  if (e.swapped?.features) out.push(e.swapped.features.buffer as ArrayBuffer);
  return out;
}

port.on('message', (req: EncoderRequest) => {
  const { results, ms } = encodeTimed(pre, req.rows, req.swapTta);
  port.postMessage({ seq: req.seq, results, ms } satisfies EncoderReply, results.flatMap(buffers));
});
port.postMessage({ seq: -1, results: [], ms: [] } satisfies EncoderReply);
