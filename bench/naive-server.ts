// The naive peer: what a thin wrapper does. A grpc-js server on the same proto, one session.run
// per request on the main thread, no batching, no queue, no workers. Run as its own process:
//   node --import tsx bench/naive-server.ts --model DIR --threads N [--device cpu|cuda:N|webgpu]
// prints `listening PORT` on stdout when ready; exits on SIGTERM or when stdin closes.
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { runBatch } from '../core/run-batch.ts';
import { PairwisePreferenceService, type PairwisePreferenceServer, type Prediction } from '../proto/gen/pairpref/v1/preference.ts';
import { fromWire } from '../protocol/wire.ts';
import { loadBundle } from '../runtime/node/index.ts';
import { createCpuSession } from './inprocess.ts';

const { values } = parseArgs({ options: { model: { type: 'string' }, threads: { type: 'string', default: '1' }, device: { type: 'string', default: 'cpu' } } });
const bundle = loadBundle(values.model ?? 'models/default');
const config = bundle.config;
// The same execution provider as pairpref's headline device (runtime/node's session options).
const session = await createCpuSession(bundle, Number(values.threads), 'all', values.device);

async function predict(c: Parameters<typeof fromWire>[0]): Promise<Prediction> {
  const enc = bundle.preprocessor.encode(fromWire(c));
  const [p] = await runBatch(session, config, [enc]);
  if (!p) throw new Error('the model returned no row');
  return { id: c.id, winnerModelA: p[0], winnerModelB: p[1], winnerTie: p[2], numTokens: enc.ids.length, truncated: enc.truncated, error: undefined };
}

const server = new Server();
server.addService(PairwisePreferenceService, {
  score: (call, cb) => {
    (async () => {
      const predictions: Prediction[] = [];
      for (const c of call.request.comparisons) predictions.push(await predict(c));
      return predictions;
    })().then(
      (predictions) => cb(null, { predictions }),
      (e: unknown) => cb({ code: status.INTERNAL, details: e instanceof Error ? e.message : String(e) }),
    );
  },
  scoreStream: (call) => {
    // One row at a time, in order: the naive wrapper has one session and no queue.
    let chain: Promise<unknown> = Promise.resolve();
    call.on('data', (req: { comparison?: Parameters<typeof fromWire>[0] }) => {
      const c = req.comparison;
      if (c) chain = chain.then(() => predict(c)).then((p) => void call.write(p), (e: unknown) => call.destroy(e instanceof Error ? e : new Error(String(e))));
    });
    call.on('end', () => void chain.then(() => void call.end()));
  },
  scoreBatchStream: (call) => call.emit('error', { code: status.UNIMPLEMENTED, details: 'naive peer' }),
  getModelInfo: (_call, cb) => cb({ code: status.UNIMPLEMENTED, details: 'naive peer' }),
} satisfies PairwisePreferenceServer);
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);
const stop = (): void => {
  server.forceShutdown();
  void session.release().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
process.stdout.write(`listening ${port}\n`);
