// The human-readable bench table (the JSON is the machine-readable form).
import type { BenchResult } from './run.ts';

const f = (x: number | null | undefined, d = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

export function formatReport(r: BenchResult): string {
  const lines: string[] = [];
  const m = r.model;
  lines.push(`model ${m.name} ${m.version} (${m.dir}), max_length ${m.max_length}, truncation ${m.truncation}`);
  lines.push(`machine: ${r.machine.cpus} cores, load average ${r.machine.loadavg_start[0]} -> ${r.machine.loadavg_end[0]}, node ${r.machine.node}, onnxruntime ${r.machine.onnxruntime}`);
  lines.push(`settings: ${r.settings.rows_per_input} rows/input, ${r.settings.clients} streaming clients x ${r.settings.window} in flight, ${r.settings.intra_op_threads} intra-op threads, batching ${JSON.stringify(r.settings.batching)}`);
  lines.push(`headline --devices ${r.settings.headline_devices}; limit and naive peer on ${r.settings.limit_device}; ${r.settings.gpu_host ? 'GPU host targets' : 'CPU targets'}; PyTorch peer --peer-device ${r.settings.peer_device}`);
  lines.push('');
  lines.push('| input | mean tokens | pairpref rows/s | tokens/s | p50 ms | p95 ms | p99 ms | limit rows/s | vs limit |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  r.throughput.forEach((t, i) => {
    const p = t.pairpref;
    lines.push(`| ${t.input} | ${f(r.tokenization[i]?.mean_tokens, 0)} | ${f(p.rows_per_s)} | ${f(p.tokens_per_s, 0)} | ${f(p.latency.p50_ms)} | ${f(p.latency.p95_ms)} | ${f(p.latency.p99_ms)} | ${f(t.limit_rows_per_s)} | ${f(t.vs_limit, 2)} |`);
  });
  lines.push('');
  lines.push('| comparison | pairpref | other | ratio | target |');
  lines.push('|---|---|---|---|---|');
  const tg = r.targets;
  const met = (k: keyof typeof tg | 'vs_fixed_padding'): string => {
    if (k === 'vs_fixed_padding') return 'no target (measures the input)';
    const t = tg[k];
    const goal = t.goal ? `, goal ${t.goal} ${t.goal_met ? 'met' : 'not met'}` : '';
    return `${t.target} ${t.met === null ? (t.value === null ? '(not run)' : '(not like for like)') : t.met ? 'met' : 'NOT met'}${goal}`;
  };
  // The ratio is the worst input's, so show that input's own figures beside it.
  const worst = r.throughput.reduce((a, t) => (t.vs_limit < a.vs_limit ? t : a), r.throughput[0]!);
  lines.push(`| limit (in-process session.run, sorted dynamic batches; ${worst.input}, the worst input) | ${f(worst.pairpref.rows_per_s)} rows/s | ${f(worst.limit_rows_per_s)} rows/s | ${f(r.ratios.vs_limit, 2)} | ${met('vs_limit')} |`);
  if ('naive_rows_per_s' in r.naive) {
    lines.push(`| naive server on ${r.naive.device}, ${r.naive.clients} unary clients, ${r.naive.rows} rows | ${f(r.naive.pairpref_unary_rows_per_s)} rows/s | ${f(r.naive.naive_rows_per_s)} rows/s | ${f(r.ratios.vs_naive, 2)} | ${met('vs_naive')} |`);
  } else lines.push(`| naive server | | skipped: ${r.naive.skipped} | - | ${met('vs_naive')} |`);
  const fp = r.fixed_padding;
  lines.push(`| fixed max_length padding (${fp.input}: ${fp.rows} rows, ${fp.p10_tokens} / ${fp.p50_tokens} / ${fp.p90_tokens} tokens at p10 / p50 / p90, in-process) | ${f(fp.dynamic_rows_per_s)} rows/s | ${f(fp.fixed_rows_per_s)} rows/s | ${f(r.ratios.vs_fixed_padding, 2)} | ${met('vs_fixed_padding')} |`);
  if ('rows_per_s' in r.pytorch) {
    const pt = r.pytorch;
    lines.push(`| PyTorch ${pt.torch} eager on ${pt.device === 'cpu' ? 'the CPU' : `${pt.device} (${pt.device_name})`}, batches of ${pt.batch}, ${pt.threads} threads, ${pt.rows} rows, weights from ${pt.weights_source === 'onnx' ? 'model.onnx' : 'checkpoints'} (max |dp| vs onnx ${pt.max_abs_prob_diff_vs_onnx.toExponential(1)} on ${pt.parity_rows} rows) | ${f(r.pairpref.rows_per_s)} rows/s | ${f(r.pytorch.rows_per_s)} rows/s | ${f(r.ratios.vs_pytorch, 2)} | ${met('vs_pytorch')} |`);
  } else lines.push(`| PyTorch eager | | not run: ${r.pytorch.skipped} | - | ${met('vs_pytorch')} |`);
  lines.push('');
  const l = r.latency;
  lines.push(`latency at half of peak (${f(l.half_peak_rate)} rows/s open loop): p50 ${f(l.half_peak.p50_ms)} ms, p95 ${f(l.half_peak.p95_ms)} ms, p99 ${f(l.half_peak.p99_ms)} ms; p99/p50 ${f(l.p99_over_p50, 2)} (${met('half_peak_p99_over_p50')})`);
  lines.push(`single-row unary: p50 ${f(l.single_row_unary.p50_ms)} ms, p99 ${f(l.single_row_unary.p99_ms)} ms`);
  lines.push(`peak RSS of the server (VmHWM): ${f(r.pairpref.peak_rss_mib)} MiB`);
  lines.push('');
  lines.push('| --devices | rows/s | p50 ms | p99 ms | busy share per device | rows/batch | peak RSS MiB |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const s of r.scaling) {
    const busy = Object.entries(s.busy_share).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ');
    lines.push(`| ${s.devices} | ${f(s.rows_per_s)} | ${f(s.latency.p50_ms)} | ${f(s.latency.p99_ms)} | ${busy} | ${f(s.mean_batch_rows)} | ${f(s.peak_rss_mib)} |`);
  }
  lines.push('');
  lines.push(`tokenization, the server's default (one worker thread): ${r.tokenization.map((t) => `${t.input} ${f(t.rows_per_s, 0)} rows/s with ${t.tokenizer} (${f(t.truncated_share * 100, 0)}% truncated)`).join('; ')}`);
  const tw = r.tokenization_workers;
  lines.push(`tokenization through the engine's pool (${tw.input}, ${tw.cores} cores): ${tw.by_workers.map((w) => `${w.workers} worker${w.workers === 1 ? '' : 's'} ${f(w.rows_per_s, 0)} rows/s`).join(', ')}`);
  if (r.webgpu_adapter) {
    const a = r.webgpu_adapter;
    lines.push(`webgpu adapter: ${a.kind} (${a.icd_files.map((i) => i.driver).join(', ') || 'loader default'}${a.device_names.length ? `: ${a.device_names.join('; ')}` : ''}), VK_ICD_FILENAMES=${a.vk_icd_filenames ?? '(unset)'}`);
  }
  for (const [k, t] of Object.entries(r.targets)) if (t.reason) lines.push(`target ${k} ${t.target}: ${t.met === false ? 'not met' : 'not judged'}: ${t.reason}`);
  if (r.tuning) lines.push(`tuning: ${JSON.stringify(r.tuning)}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(`(${f(r.seconds)} s)`);
  return lines.join('\n');
}
