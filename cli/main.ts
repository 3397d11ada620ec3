// The `pairpref` command line: one bin, one subcommand per job.
import { Command } from 'commander';
import { registerBench } from './bench.ts';
import { registerServe } from './serve.ts';
import { registerScore } from './score.ts';
import { registerEval } from './eval.ts';

const program = new Command()
  .name('pairpref')
  .description('Serve and use pairwise-preference models: [winner_model_a, winner_model_b, winner_tie] from an ONNX model.')
  .showHelpAfterError();

registerServe(program);
registerBench(program);
registerScore(program);
registerEval(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Expected failures (bad bundle, bad flags, unreachable server) get one clear line, not a stack.
  process.stderr.write(`pairpref: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env['PAIRPREF_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
