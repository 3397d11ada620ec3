// `pairpref score`: an Arena CSV / CSV.gz / JSONL file in, the submission CSV out
// (id,winner_model_a,winner_model_b,winner_tie; every usable input id once, in input order).
import { status as grpcStatus } from '@grpc/grpc-js';
import { Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { connect, DEFAULT_IDLE_TIMEOUT_MS, type ConnectOptions, type ReplicaFailure } from '../client/index.ts';
import { DEFAULT_WINDOW } from '../core/window.ts';
import { countRecords } from '../datasets/arena-file.ts';
import { scoreFile, type ScoredRow, type ScoreFileOptions, type SkippedRow, type StreamScorer } from '../datasets/score-file.ts';
import { intArg, tokenizerOption } from './args.ts';
import { csvField } from '../core/csv.ts';
import { exitOnSignals, writeFileAtomically } from './atomic-file.ts';
import { progressWanted, startProgress } from './progress.ts';
import { openLocal } from './wiring.ts';

export const DEFAULT_MODEL_DIR = 'models/default';

/** Flags shared by score and eval. */
export interface SourceFlags {
  input: string;
  server?: string;
  model?: string;
  devices: string;
  tokenizer: 'native' | 'js';
  tta: boolean;
  skipBad: boolean;
  window: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  limit?: number;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  authTokenFile?: string;
}

export function addSourceOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--input <file>', 'Arena-schema input: .csv, .csv.gz, .jsonl or .jsonl.gz (columns/keys id, prompt, response_a, response_b; text fields are JSON lists like ["hi"])')
    .addOption(
      new Option('--server <host:port>', 'score through a running pairpref server; rows are spread over several comma-separated replicas, and the unanswered rows of a replica that fails go to the others').conflicts('model'),
    )
    .option('--model <dir>', `score in-process with this model bundle (default: ${DEFAULT_MODEL_DIR} when --server is not given)`)
    .option('--devices <list>', 'in-process devices, as for serve: auto, cpu, cpu,cpu, cuda:0, ... (only with --model)', 'auto')
    .addOption(tokenizerOption())
    .option('--tta', 'swap test-time augmentation: also score with the responses swapped and average', false)
    .option('--skip-bad', 'leave malformed rows out and list them (with line numbers) on stderr instead of stopping at the first', false)
    .option('--window <n>', 'rows in flight at once (bounds memory)', intArg('--window', 1), DEFAULT_WINDOW)
    .option('--limit <n>', 'only the first N usable rows (note: the shared dev split is grouped by source, hardest rows first: its first rows are not a sample)', intArg('--limit', 1))
    .option('--connect-timeout-ms <ms>', 'how long to wait for --server to be ready', intArg('--connect-timeout-ms', 1), 30_000)
    .option('--idle-timeout-ms <ms>', 'with --server: a replica that owes answers and sends nothing for this long counts as failed (0: never)', intArg('--idle-timeout-ms', 0), DEFAULT_IDLE_TIMEOUT_MS)
    .option('--tls-ca <file>', 'with --server: connect with TLS, trusting this PEM CA bundle')
    .option('--tls-cert <file>', 'with --server and --tls-ca: client certificate for mutual TLS (with --tls-key)')
    .option('--tls-key <file>', 'private key of --tls-cert')
    .option('--tls-server-name <name>', "with --tls-ca: name to check the server's certificate against (when --server names an IP)")
    .option('--auth-token-file <file>', 'with --server: send the bearer token in this file (default: the PAIRPREF_TOKEN environment variable, when set)');
}

function readFlagFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${flag}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** --tls-* and --auth-token-file / PAIRPREF_TOKEN -> the SDK's connection settings. */
export function securityFromFlags(f: Pick<SourceFlags, 'tlsCa' | 'tlsCert' | 'tlsKey' | 'tlsServerName' | 'authTokenFile'>): Pick<ConnectOptions, 'tls' | 'token'> {
  if ((f.tlsCert || f.tlsKey || f.tlsServerName) && !f.tlsCa) throw new Error('--tls-cert, --tls-key and --tls-server-name need --tls-ca');
  if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) throw new Error('--tls-cert and --tls-key go together');
  const tls = f.tlsCa
    ? {
        ca: readFlagFile(f.tlsCa, '--tls-ca'),
        ...(f.tlsCert && f.tlsKey ? { cert: readFlagFile(f.tlsCert, '--tls-cert'), key: readFlagFile(f.tlsKey, '--tls-key') } : {}),
        ...(f.tlsServerName ? { serverName: f.tlsServerName } : {}),
      }
    : undefined;
  const token = f.authTokenFile ? readFlagFile(f.authTokenFile, '--auth-token-file').toString('utf8').trim() : process.env['PAIRPREF_TOKEN']?.trim();
  if (f.authTokenFile && !token) throw new Error(`--auth-token-file: ${f.authTokenFile} is empty`);
  return { ...(tls ? { tls } : {}), ...(token ? { token } : {}) };
}

export interface OpenedSource {
  readonly client: StreamScorer;
  /** Rows re-sent so far because a replica failed (always 0 in-process). */
  resent(): number;
  close(): Promise<void>;
}

/** One line per replica failure that moved rows (or began a run of failures), not per retry. */
function reportReplicaFailure(command: string, f: ReplicaFailure): void {
  if (f.resent === 0 && f.consecutive > 1) return;
  const code = grpcStatus[f.code] ?? String(f.code);
  process.stderr.write(`pairpref ${command}: replica ${f.target} failed (${code}: ${f.message}); ${f.resent} unanswered row(s) re-sent, retrying it in ${f.retryInMs} ms\n`);
}

/** The server client or the in-process scorer, whichever the flags ask for. */
export async function openSource(f: SourceFlags, command: string): Promise<OpenedSource> {
  if (f.server) {
    let resent = 0;
    const client = connect(
      f.server.split(',').map((s) => s.trim()).filter(Boolean),
      {
        ...securityFromFlags(f),
        idleTimeoutMs: f.idleTimeoutMs,
        onReplicaFailure: (e) => {
          resent += e.resent;
          reportReplicaFailure(command, e);
        },
      },
    );
    try {
      await client.waitForReady(f.connectTimeoutMs);
    } catch (e) {
      client.close();
      throw e;
    }
    return { client, resent: () => resent, close: async () => client.close() };
  }
  const local = await openLocal({ modelDir: f.model ?? DEFAULT_MODEL_DIR, devices: f.devices, tokenizer: f.tokenizer });
  return { client: local, resent: () => 0, close: () => local.close() };
}

/**
 * The run's summary line on stderr: always on a terminal; otherwise only when rows had to be
 * re-sent (piped runs stay quiet unless there is something to know).
 */
export function reportSummary(what: string, rows: number, startedMs: number, resent: number): void {
  if (!progressWanted() && resent === 0) return;
  const s = (performance.now() - startedMs) / 1000;
  const again = resent > 0 ? `; ${resent} row${resent === 1 ? '' : 's'} re-sent after a replica failed` : '';
  process.stderr.write(`${what} in ${s.toFixed(1)} s (${(rows / s).toFixed(1)} rows/s)${again}\n`);
}

export function describeSkipped(s: SkippedRow): string {
  return `  line ${s.line}${s.id !== null ? ` id ${JSON.stringify(s.id)}` : ''}: ${s.field ? `${s.field}: ` : ''}${s.reason}`;
}

/** Scores the input file, with a progress bar on a terminal and skipped rows collected. */
export async function* scoreInput(f: SourceFlags, client: StreamScorer, label: string, opts: Pick<ScoreFileOptions, 'labels' | 'uniqueIds'>, skipped: SkippedRow[]): AsyncGenerator<ScoredRow> {
  // The progress bar's total costs one extra read of the file; only paid when a bar is shown.
  const total = progressWanted() ? await countRecords(f.input) : 0;
  const progress = startProgress(label, f.limit !== undefined ? Math.min(total, f.limit) : total);
  try {
    for await (const row of scoreFile(client, f.input, {
      window: f.window,
      swapTta: f.tta,
      labels: opts.labels,
      uniqueIds: opts.uniqueIds,
      skipBad: f.skipBad,
      limit: f.limit,
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
  // From here on SIGINT/SIGTERM remove the temp output and exit 130/143 (a model load included).
  const restoreSignals = exitOnSignals('score');
  try {
    const source = await openSource(f, 'score');
    const skipped: SkippedRow[] = [];
    let rows = 0;
    const started = performance.now();
    try {
      const onStaleTemp = (p: string): void => void process.stderr.write(`pairpref score: removed ${p}, left by a run that was killed\n`);
      await writeFileAtomically(
        f.output,
        async (write) => {
          await write('id,winner_model_a,winner_model_b,winner_tie\n');
          for await (const r of scoreInput(f, source.client, 'score', {}, skipped)) {
            const p = r.prediction;
            await write(`${csvField(r.id)},${p.winner_model_a},${p.winner_model_b},${p.winner_tie}\n`);
            rows++;
          }
        },
        { onStaleTemp },
      );
    } finally {
      await source.close();
    }
    reportSkipped(skipped);
    reportSummary(`wrote ${rows} row(s) to ${f.output}`, rows, started, source.resent());
  } finally {
    restoreSignals();
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
