// How much the in-process limit loses when other work shares the cores, which the server always has
// (the load generator, gRPC, its tokenizer worker): the limit loop of `pairpref bench` (session.run
// over prepared sorted batches) alone, then next to a child process busy a given share of one core.
//
//   node --import tsx bench/contention.ts [--model models/default] [--rows 400] [--busy 0.4] [--repeat 3]
//
// Prints one JSON object: rows/s of each repeat alone and with the busy neighbour.
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { DEFAULT_BATCHING } from '../core/batch.ts';
import { readRawRows } from '../datasets/arena-file.ts';
import { loadBundle } from '../runtime/node/index.ts';
import { sortedBatches } from './batches.ts';
import { createCpuSession, prepare, runPreparedLoop, warm } from './inprocess.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    input: { type: 'string', default: '../shared/data/arena-hard-pairs.csv.gz' },
    rows: { type: 'string', default: '400' },
    busy: { type: 'string', default: '0.4' },
    repeat: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    neighbour: { type: 'boolean', default: false },
  },
});

/** The neighbour: busy `share` of every 10 ms, asleep the rest, until killed. */
function neighbour(share: number): never {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const t = performance.now();
    while (performance.now() - t < 10 * share);
    Atomics.wait(sleeper, 0, 0, 10 * (1 - share));
  }
}

async function main(): Promise<void> {
  if (values.neighbour) neighbour(Number(values.busy));
  const bundle = loadBundle(values.model);
  const enc = (await readRawRows(values.input, Number(values.rows))).map((r) => bundle.preprocessor.encode(r));
  const session = await createCpuSession(bundle, Number(values.threads));
  const plan = sortedBatches(enc, DEFAULT_BATCHING);
  await warm(session, plan, bundle.config);
  const loop = async (): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < Number(values.repeat); i++) out.push((await runPreparedLoop(session, prepare(session, plan, bundle.config), bundle.config)).rows_per_s);
    return out;
  };
  const alone = await loop();
  const child = fork(new URL(import.meta.url).pathname, ['--neighbour', '--busy', values.busy!], { execArgv: ['--import', 'tsx'] });
  await new Promise((r) => setTimeout(r, 500));
  const withNeighbour = await loop();
  child.kill();
  await session.release();
  console.log(JSON.stringify({ rows: enc.length, threads: Number(values.threads), neighbour_busy_share: Number(values.busy), alone_rows_per_s: alone, with_neighbour_rows_per_s: withNeighbour }));
}

await main();
