// `pairpref eval`: score a labeled Arena file and report log loss, accuracy, counts and the
// confusion matrix, as a table (stderr-free, on stdout) or as one JSON object with --json.
import type { Command } from 'commander';
import { EvalAccumulator, LOG_LOSS_EPS, type EvalReport } from '../core/metrics.ts';
import { probsOf } from '../core/result.ts';
import { LABELS } from '../core/types.ts';
import type { SkippedRow } from '../datasets/score-file.ts';
import { exitOnSignals } from './atomic-file.ts';
import { addSourceOptions, openSource, reportSkipped, reportSummary, runCommand, scoreInput, type SourceFlags } from './score.ts';

interface EvalFlags extends SourceFlags {
  json: boolean;
}

const SHORT = ['a', 'b', 'tie'] as const;

export function formatReport(r: EvalReport): string {
  const pad = (s: string | number, w: number): string => String(s).padStart(w);
  const lines = [
    `n          ${r.n}`,
    `log loss   ${r.log_loss.toFixed(6)}   (probabilities clipped to [${LOG_LOSS_EPS}, 1-${LOG_LOSS_EPS}], as sklearn)`,
    `accuracy   ${r.accuracy.toFixed(6)}   (argmax)`,
    `class counts (true labels): ${LABELS.map((c) => `${c} ${r.class_counts[c]}`).join(', ')}`,
    '',
    'confusion matrix (rows: true label, columns: predicted argmax)',
    `${pad('', 10)}${SHORT.map((s) => pad(`pred ${s}`, 10)).join('')}`,
    ...r.confusion.map((row, i) => `${pad(`true ${SHORT[i]}`, 10)}${row.map((v) => pad(v, 10)).join('')}`),
  ];
  return lines.join('\n') + '\n';
}

async function evaluate(f: EvalFlags): Promise<void> {
  // SIGINT/SIGTERM: one line and exit 130/143 (eval writes no file, so there is nothing to remove).
  const restoreSignals = exitOnSignals('eval');
  try {
    await evaluateRows(f);
  } finally {
    restoreSignals();
  }
}

async function evaluateRows(f: EvalFlags): Promise<void> {
  const source = await openSource(f, 'eval');
  const acc = new EvalAccumulator();
  const skipped: SkippedRow[] = [];
  const started = performance.now();
  try {
    // Rows are scored one by one, so a repeated id (the dev split has two) is just another row.
    for await (const r of scoreInput(f, source.client, 'eval', { labels: true, uniqueIds: false }, skipped)) {
      const p = r.prediction;
      acc.add(probsOf(p), r.label ?? 0);
    }
  } finally {
    await source.close();
  }
  reportSkipped(skipped);
  const report = acc.report();
  reportSummary(`scored ${report.n} row(s)`, report.n, started, source.resent());
  if (report.n === 0) throw new Error('no rows were scored');
  process.stdout.write(f.json ? `${JSON.stringify(report)}\n` : formatReport(report));
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('Score a labeled Arena file (winner_model_a, winner_model_b, winner_tie columns) and report log loss, accuracy, class counts and the confusion matrix.');
  addSourceOptions(cmd)
    .option('--json', 'print {"log_loss", "accuracy", "n", "class_counts", "confusion"} as one JSON line on stdout instead of the table', false)
    .action((f: EvalFlags) => runCommand('eval', () => evaluate(f)));
}
