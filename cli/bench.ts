// `pairpref bench`: throughput and latency of the server against the limit and the peers.
import type { Command } from 'commander';
import { formatReport } from '../bench/report.ts';
import { BENCH_DEFAULTS as D, runBench } from '../bench/run.ts';
import { intArg } from './args.ts';

interface BenchFlags {
  model: string;
  input?: string[];
  clients: number;
  window: number;
  rows: number;
  devices: string;
  webgpuRows: number;
  naiveClients: number;
  peerRows: number;
  torchCheckpoint?: string;
  json?: boolean;
  skipPeers?: boolean;
  tune?: boolean;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('Benchmark the server (child process, loopback) against the in-process limit, a naive server, fixed padding and PyTorch eager.')
    .option('--model <dir>', 'model bundle directory', 'models/default')
    .option('--input <file...>', 'Arena-schema CSV(.gz) inputs; the first is the long one the comparisons use (default: arena-hard pairs, then the alpaca dev split)')
    .option('--rows <n>', 'rows read from each input', intArg('--rows', 1), D.rows)
    .option('--clients <n>', 'concurrent streaming clients in the saturation runs', intArg('--clients', 1), D.clients)
    .option('--window <n>', 'rows each streaming client keeps in flight', intArg('--window', 1), D.window)
    .option('--devices <lists>', 'semicolon-separated --devices lists for the scaling runs; the first is the headline', D.devices.join(';'))
    .option('--webgpu-rows <n>', 'rows of the webgpu scaling run', intArg('--webgpu-rows', 1), D.webgpuRows)
    .option('--naive-clients <n>', 'unary clients against the naive peer (and pairpref for the same ratio)', intArg('--naive-clients', 1), D.naiveClients)
    .option('--peer-rows <n>', 'rows of the naive and PyTorch peers (slow; rows/s does not depend on the count)', intArg('--peer-rows', 1), D.peerRows)
    .option('--torch-checkpoint <file>', 'PyTorch checkpoint(s) of the bundle for the PyTorch peer, comma-separated for an ensemble (default: the .pt files in the bundle, else training/out/run/model*.pt if they match model.onnx)')
    .option('--skip-peers', 'skip the naive server and PyTorch peers')
    .option('--tune', 'also run the tuning sweeps (graph optimisation, token budget, threads, queue delay, warm-up)')
    .option('--json', 'print one JSON object on stdout instead of the table')
    .action(async (o: BenchFlags) => {
      const tty = Boolean(process.stderr.isTTY);
      const started = performance.now();
      let n = 0;
      const result = await runBench({
        model: o.model,
        inputs: o.input,
        rows: o.rows,
        clients: o.clients,
        window: o.window,
        devices: o.devices.split(';').map((s) => s.trim()).filter(Boolean),
        webgpuRows: o.webgpuRows,
        naiveClients: o.naiveClients,
        peerRows: o.peerRows,
        torchCheckpoint: o.torchCheckpoint,
        skipPeers: o.skipPeers ?? false,
        tune: o.tune ?? false,
        onPhase: tty ? (p) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${++n}. ${p}\n`) : undefined,
      });
      process.stdout.write(o.json ? JSON.stringify(result) + '\n' : formatReport(result) + '\n');
    });
}
