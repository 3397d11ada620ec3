// `pairpref score`: an Arena CSV / CSV.gz / JSONL file in, the submission CSV out
// (id,winner_model_a,winner_model_b,winner_tie; every usable input id once, in input order).
import { Option, type Command } from 'commander';
import { connect } from '../client/sdk.ts';
import { DEFAULT_WINDOW } from '../core/window.ts';
import { countRecords } from '../datasets/arena-file.ts';
import { scoreFile, type ScoredRow, type ScoreFileOptions, type SkippedRow, type StreamScorer } from '../datasets/score-file.ts';
import { intArg } from './args.ts';
import { writeFileAtomically } from './atomic-file.ts';
import { progressWanted, startProgress } from './progress.ts';
import { openLocal } from './wiring.ts';

export const DEFAULT_MODEL_DIR = 'models/default';

/** Flags shared by score and eval. */
export interface SourceFlags {
  input: string;
  server?: string;
  model?: string;
  devices: string;
  tta: boolean;
  skipBad: boolean;
  window: number;
  connectTimeoutMs: number;
}

export function addSourceOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--input <file>', 'Arena-schema input: .csv, .csv.gz, .jsonl or .jsonl.gz (columns/keys id, prompt, response_a, response_b; text fields are JSON lists like ["hi"])')
    .addOption(new Option('--server <host:port>', 'score through a running pairpref server; several comma-separated replicas are reached round robin').conflicts('model'))
    .option('--model <dir>', `score in-process with this model bundle (default: ${DEFAULT_MODEL_DIR} when --server is not given)`)
    .option('--devices <list>', 'in-process devices, as for serve: auto, cpu, cpu,cpu, cuda:0, ... (only with --model)', 'auto')
    .option('--tta', 'swap test-time augmentation: also score with the responses swapped and average', false)
    .option('--skip-bad', 'leave malformed rows out and list them (with line numbers) on stderr instead of stopping at the first', false)
    .option('--window <n>', 'rows in flight at once (bounds memory)', intArg('--window', 1), DEFAULT_WINDOW)
    .option('--connect-timeout-ms <ms>', 'how long to wait for --server to be ready', intArg('--connect-timeout-ms', 1), 30_000);
}

export interface OpenedSource {
  readonly client: StreamScorer;
  close(): Promise<void>;
}

/** The server client or the in-process scorer, whichever the flags ask for. */
export async function openSource(f: SourceFlags): Promise<OpenedSource> {
  if (f.server) {
    const client = connect(f.server.split(',').map((s) => s.trim()).filter(Boolean));
    try {
      await client.waitForReady(f.connectTimeoutMs);
    } catch (e) {
      client.close();
      throw e;
    }
    return { client, close: async () => client.close() };
  }
  const local = await openLocal({ modelDir: f.model ?? DEFAULT_MODEL_DIR, devices: f.devices });
  return { client: local, close: () => local.close() };
}

export function describeSkipped(s: SkippedRow): string {
  return `  line ${s.line}${s.id !== null ? ` id ${JSON.stringify(s.id)}` : ''}: ${s.field ? `${s.field}: ` : ''}${s.reason}`;
}

/** Scores the input file, with a progress bar on a terminal and skipped rows collected. */
export async function* scoreInput(f: SourceFlags, client: StreamScorer, label: string, opts: Pick<ScoreFileOptions, 'labels' | 'uniqueIds'>, skipped: SkippedRow[]): AsyncGenerator<ScoredRow> {
  // The progress bar's total costs one extra read of the file; only paid when a bar is shown.
  const progress = progressWanted() ? startProgress(label, await countRecords(f.input)) : startProgress(label, 0);
  try {
    for await (const row of scoreFile(client, f.input, {
      window: f.window,
      swapTta: f.tta,
      labels: opts.labels,
      uniqueIds: opts.uniqueIds,
      skipBad: f.skipBad,
      onSkip: (s) => {
        skipped.push(s);
        progress.tick(1);
      },
    })) {
      progress.tick(1);
      yield row;
    }
  } finally {
    progress.stop();
  }
}

export function reportSkipped(skipped: readonly SkippedRow[]): void {
  if (skipped.length === 0) return;
  process.stderr.write(`skipped ${skipped.length} bad row(s):\n${skipped.map(describeSkipped).join('\n')}\n`);
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Runs an action body; any error is one clear line on stderr and exit code 1. */
export async function runCommand(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    process.stderr.write(`pairpref ${name}: error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}

interface ScoreFlags extends SourceFlags {
  output: string;
}

async function score(f: ScoreFlags): Promise<void> {
  const source = await openSource(f);
  const skipped: SkippedRow[] = [];
  let rows = 0;
  const started = performance.now();
  try {
    await writeFileAtomically(f.output, async (write) => {
      await write('id,winner_model_a,winner_model_b,winner_tie\n');
      for await (const r of scoreInput(f, source.client, 'score', {}, skipped)) {
        const p = r.prediction;
        await write(`${csvField(r.id)},${p.winner_model_a},${p.winner_model_b},${p.winner_tie}\n`);
        rows++;
      }
    });
  } finally {
    await source.close();
  }
  reportSkipped(skipped);
  if (progressWanted()) {
    const s = (performance.now() - started) / 1000;
    process.stderr.write(`wrote ${rows} row(s) to ${f.output} in ${s.toFixed(1)} s (${(rows / s).toFixed(1)} rows/s)\n`);
  }
}

export function registerScore(program: Command): void {
  const cmd = program
    .command('score')
    .description('Score an Arena-schema file into a submission CSV: id,winner_model_a,winner_model_b,winner_tie, every input id once, in input order.');
  addSourceOptions(cmd)
    .requiredOption('--output <file>', 'submission CSV to write (written to a temp file and renamed only when every row succeeded)')
    .action((f: ScoreFlags) => runCommand('score', () => score(f)));
}
