// Runs bench/torch_peer.py (PyTorch eager, same weights) on the token ids core/ produced.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EncodedRow } from '../core/types.ts';
import { PYTHON, pythonEnv } from '../platform/python.ts';
import { REPO_ROOT } from './processes.ts';

export type PeerDevice = 'auto' | 'cpu' | 'cuda';
export const PEER_DEVICES: readonly PeerDevice[] = ['auto', 'cpu', 'cuda'];

/**
 * Largest |p_torch - p_onnx| over the check rows for the weights to count as model.onnx's. Weights
 * mapped from model.onnx give about 1e-6 on the CPU; a different checkpoint gives 1e-2 and more.
 * The slack above 1e-6 is for GPU kernels (TF32 matmuls on either side).
 */
export const PARITY_TOLERANCE = 1e-3;

export interface TorchPeerResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  readonly batch: number;
  readonly threads: number;
  readonly torch: string;
  /** torch's device string: `cpu` or `cuda:0`. */
  readonly device: string;
  readonly device_name: string;
  readonly cuda_available: boolean;
  /** model.onnx's path, or the checkpoint files. */
  readonly weights: string;
  readonly check_probs: number[][];
}

/** Where the peer's weights come from: the bundle's model.onnx (always there), or checkpoints. */
export type TorchWeights =
  | { readonly kind: 'onnx'; readonly bundle: string }
  | { readonly kind: 'checkpoint'; readonly files: readonly string[] };

/**
 * `--torch-checkpoint` files (comma-separated for an ensemble), else the bundle's *.pt files, else
 * model.onnx's own initializers mapped onto training/model.py (training/onnx_to_torch.py), which
 * every bundle exported by training/export.py has, so a fresh clone runs the peer. Whatever the
 * source, the harness checks the probabilities against onnxruntime's before it reports a ratio.
 */
export function findTorchWeights(modelDir: string, explicit: string | undefined): { weights: TorchWeights | null; why: string } {
  if (explicit) {
    const files = explicit.split(',').map((f) => f.trim()).filter(Boolean);
    const missing = files.filter((f) => !existsSync(f));
    return missing.length === 0 ? { weights: { kind: 'checkpoint', files }, why: '' } : { weights: null, why: `--torch-checkpoint ${missing.join(', ')} does not exist` };
  }
  const pts = existsSync(modelDir) ? readdirSync(modelDir).filter((f) => f.endsWith('.pt')).sort() : [];
  if (pts.length > 0) return { weights: { kind: 'checkpoint', files: pts.map((f) => join(modelDir, f)) }, why: '' };
  if (existsSync(join(modelDir, 'model.onnx'))) return { weights: { kind: 'onnx', bundle: resolve(modelDir) }, why: '' };
  return { weights: null, why: `no PyTorch weights for ${modelDir} (no model.onnx, no .pt; pass --torch-checkpoint FILE.pt[,FILE.pt])` };
}

export function describeWeights(w: TorchWeights): string {
  return w.kind === 'onnx' ? `${join(w.bundle, 'model.onnx')} (initializers mapped onto training/model.py)` : w.files.join(',');
}

export interface TorchPeerRun {
  readonly weights: TorchWeights;
  readonly rows: readonly EncodedRow[];
  readonly padId: number;
  readonly threads: number;
  readonly rowsFile: string;
  readonly device?: PeerDevice;
  readonly batch?: number;
  /** Rows (from the first) whose probabilities come back for the parity check (default 8). */
  readonly checkRows?: number;
  readonly timeoutMs?: number;
}

export async function runTorchPeer(o: TorchPeerRun): Promise<TorchPeerResult> {
  writeFileSync(o.rowsFile, JSON.stringify({ pad_id: o.padId, rows: o.rows.map((r) => ({ ids: Array.from(r.ids), features: r.features ? Array.from(r.features) : null })) }));
  const source = o.weights.kind === 'onnx' ? ['--onnx-bundle', o.weights.bundle] : ['--ckpt', ...o.weights.files];
  const args = [join(REPO_ROOT, 'bench/torch_peer.py'), ...source, '--rows', o.rowsFile, '--threads', String(o.threads), '--device', o.device ?? 'auto'];
  if (o.batch !== undefined) args.push('--batch', String(o.batch));
  if (o.checkRows !== undefined) args.push('--check-rows', String(o.checkRows));
  const child = spawn(PYTHON, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: pythonEnv(), // the peer at its best settings: tcmalloc like training
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const kill = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 600_000);
  const code = await new Promise<number | null>((resolveExit) => {
    child.once('exit', resolveExit);
    child.once('error', (e) => {
      err += e.message;
      resolveExit(-1);
    });
  });
  clearTimeout(kill);
  if (code !== 0) throw new Error(`PyTorch peer failed (${PYTHON}, code ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(out.trim().split('\n').pop()!) as TorchPeerResult;
}

/** max |a - b| over every probability of every row; a missing row or value, or a NaN, counts as Infinity. */
export function maxAbsProbDiff(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  a.forEach((row, i) => {
    const other = b[i]!;
    if (other.length !== row.length) m = Infinity;
    row.forEach((v, j) => {
      const d = Math.abs(v - other[j]!);
      m = Number.isNaN(d) ? Infinity : Math.max(m, d);
    });
  });
  return m;
}
