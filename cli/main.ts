// The `pairpref` command line: one bin, one subcommand per job.
import { Command } from 'commander';
import { registerServe } from './serve.ts';

const program = new Command()
  .name('pairpref')
  .description('Serve and use pairwise-preference models: [winner_model_a, winner_model_b, winner_tie] from an ONNX model.')
  .showHelpAfterError();

registerServe(program);

await program.parseAsync(process.argv);
