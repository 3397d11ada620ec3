// The `pairpref` command line: one bin, one subcommand per job.
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerBench } from './bench.ts';
import { registerServe } from './serve.ts';
import { registerScore } from './score.ts';
import { registerEval } from './eval.ts';

// grpc-js logs its own errors (e.g. "No address added") to stderr; ours say the same in one line.
setLogVerbosity(logVerbosity.NONE);
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('pairpref')
  .version(version, '-V, --version', 'print the pairpref version')
  .description('Serve and use pairwise-preference models: [winner_model_a, winner_model_b, winner_tie] from an ONNX model.')
  .showHelpAfterError();

registerServe(program);
registerBench(program);
registerScore(program);
registerEval(program);

/**
 * A startup error as one line: lists joined with "; ", and onnxruntime's C++ source locations
 * ("...onnxruntime/core/graph/model.cc:123 ...") left out: they say nothing to a user.
 */
function oneLine(message: string): string {
  return message
    .replace(/\s*\S*onnxruntime\/\S+\.(cc|cpp|h):\d+\S*( \S+\([^)]*\))?/g, '')
    .split('\n')
    .map((l) => l.trim().replace(/^- /, ''))
    .filter((l) => l !== '')
    .reduce((line, l) => (line === '' ? l : line.endsWith(':') ? `${line} ${l}` : `${line}; ${l}`), '');
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Expected failures (bad bundle, bad flags, unreachable server) get one clear line, not a stack.
  process.stderr.write(`pairpref: ${oneLine(e instanceof Error ? e.message : String(e))}\n`);
  if (process.env['PAIRPREF_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
