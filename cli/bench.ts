// `pairpref bench`: throughput and latency of the server against the limit and the peers.
import { InvalidArgumentError, type Command } from 'commander';
import { formatReport } from '../bench/report.ts';
import { BENCH_DEFAULTS as D, runBench } from '../bench/run.ts';
import { PEER_DEVICES, type PeerDevice } from '../bench/torch-peer.ts';
import { intArg } from './args.ts';

function peerDeviceArg(value: string): PeerDevice {
  if (!PEER_DEVICES.includes(value as PeerDevice)) throw new InvalidArgumentError(`--peer-device must be one of ${PEER_DEVICES.join(', ')} (got "${value}")`);
  return value as PeerDevice;
}

function countsArg(value: string): number[] {
  const counts = value.split(',').map((x) => Number(x.trim()));
  if (!counts.every((n) => Number.isInteger(n) && n >= 1)) throw new InvalidArgumentError(`--tokenizer-workers must be comma-separated integers >= 1 (got "${value}")`);
  return counts;
}

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
  peerDevice: PeerDevice;
  fixedPaddingInput: string;
  tokenizerWorkers?: number[];
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
    .option('--torch-checkpoint <file>', 'PyTorch checkpoint(s) for the PyTorch peer, comma-separated for an ensemble (default: the .pt files in the bundle, else the weights of its model.onnx mapped onto training/model.py); checked against model.onnx either way')
    .option('--peer-device <device>', 'where the PyTorch peer runs: auto (CUDA when its torch has it, else the CPU), cpu or cuda', peerDeviceArg, D.peerDevice)
    .option('--fixed-padding-input <file>', 'input of the fixed-padding comparison (rows evenly spaced over it)', D.fixedPaddingInput)
    .option('--tokenizer-workers <list>', 'comma-separated tokenizer worker counts of the tokenization figure (default: 1, 2, 4, ... up to the cores)', countsArg)
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
        peerDevice: o.peerDevice,
        fixedPaddingInput: o.fixedPaddingInput,
        tokenizerWorkers: o.tokenizerWorkers,
        skipPeers: o.skipPeers ?? false,
        tune: o.tune ?? false,
        onPhase: tty ? (p) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${++n}. ${p}\n`) : undefined,
      });
      process.stdout.write(o.json ? JSON.stringify(result) + '\n' : formatReport(result) + '\n');
    });
}
