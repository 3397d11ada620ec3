// Runs in a worker thread: builds the bundle's preprocessing (core's JS tokenizer, or the tokenizer
// module the runtime named) and encodes the chunks of rows sent to it. With a batch tokenizer the
// chunks it holds (up to two) are encoded concurrently: one's JS work overlaps the other's native work.
import { parentPort, workerData } from 'node:worker_threads';
import { encodeChunk, jsPreprocessing, modulePreprocessing, type Encoded } from './encoder.ts';
import type { EncoderReply, EncoderRequest, EncoderWorkerInit } from './tokenizer-lanes.ts';

const port = parentPort;
if (!port) throw new Error('encoder-worker must run in a worker thread');
const { source, tokenizerModule } = (workerData as { init: EncoderWorkerInit }).init;
const pre = tokenizerModule === null ? jsPreprocessing(source) : await modulePreprocessing(tokenizerModule, source);

function buffers(e: Encoded): ArrayBuffer[] {
  if (!e.ok) return [];
  const out = [e.direct.ids.buffer as ArrayBuffer];
  if (e.direct.features) out.push(e.direct.features.buffer as ArrayBuffer);
  if (e.swapped) out.push(e.swapped.ids.buffer as ArrayBuffer);
  if (e.swapped?.features) out.push(e.swapped.features.buffer as ArrayBuffer);
  return out;
}

port.on('message', (req: EncoderRequest) => {
  void Promise.resolve(encodeChunk(pre, req.rows, req.swapTta)).then(({ results, ms }) => {
    port.postMessage({ seq: req.seq, results, ms } satisfies EncoderReply, results.flatMap(buffers));
  });
});
port.postMessage({ seq: -1, results: [], ms: [] } satisfies EncoderReply);
