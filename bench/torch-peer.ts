// Runs bench/torch_peer.py (PyTorch eager, same weights) on the token ids core/ produced.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EncodedRow } from '../core/types.ts';
import { PYTHON, pythonEnv } from '../platform/python.ts';
import { REPO_ROOT } from './processes.ts';


export interface TorchPeerResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  readonly batch: number;
  readonly threads: number;
  readonly torch: string;
  readonly check_probs: number[][];
}

/** Where training/pipeline.ts leaves the checkpoints (ensemble members model0.pt, model1.pt, ...) it exports models/default from. */
export const TRAINING_RUN = join(REPO_ROOT, 'training/out/run');

function trainingCheckpoints(): string[] {
  if (!existsSync(TRAINING_RUN)) return [];
  return readdirSync(TRAINING_RUN).filter((f) => /^model\d*\.pt$/.test(f)).sort().map((f) => join(TRAINING_RUN, f));
}

/**
 * The bundle's PyTorch checkpoints (comma-separated for an ensemble): explicit files, else the
 * *.pt files in the bundle directory, else the training pipeline's. `guessed` marks the last
 * case: the harness then requires the parity check against model.onnx before it uses them.
 */
export function findCheckpoint(modelDir: string, explicit: string | undefined): { path: string | null; guessed: boolean; why: string } {
  if (explicit) {
    const missing = explicit.split(',').filter((f) => !existsSync(f));
    return missing.length === 0 ? { path: explicit, guessed: false, why: '' } : { path: null, guessed: false, why: `--torch-checkpoint ${missing.join(', ')} does not exist` };
  }
  const pts = existsSync(modelDir) ? readdirSync(modelDir).filter((f) => f.endsWith('.pt')).sort() : [];
  if (pts.length > 0) return { path: pts.map((f) => join(modelDir, f)).join(','), guessed: false, why: '' };
  const trained = trainingCheckpoints();
  if (trained.length > 0) return { path: trained.join(','), guessed: true, why: '' };
  return { path: null, guessed: false, why: `no PyTorch weights for ${modelDir} (no .pt in the bundle, none in training/out/run; pass --torch-checkpoint FILE.pt[,FILE.pt])` };
}

export async function runTorchPeer(ckpt: string, rows: readonly EncodedRow[], padId: number, threads: number, rowsFile: string): Promise<TorchPeerResult> {
  writeFileSync(rowsFile, JSON.stringify({ pad_id: padId, rows: rows.map((r) => ({ ids: Array.from(r.ids), features: r.features ? Array.from(r.features) : null })) }));
  const child = spawn(PYTHON, [join(REPO_ROOT, 'bench/torch_peer.py'), '--ckpt', ...ckpt.split(','), '--rows', rowsFile, '--threads', String(threads)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: pythonEnv(), // the peer at its best settings: tcmalloc like training
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const kill = setTimeout(() => child.kill('SIGKILL'), 600_000);
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', resolve);
    child.once('error', (e) => {
      err += e.message;
      resolve(-1);
    });
  });
  clearTimeout(kill);
  if (code !== 0) throw new Error(`PyTorch peer failed (${PYTHON}, code ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(out.trim().split('\n').pop()!) as TorchPeerResult;
}
