// Runs bench/torch_peer.py (PyTorch eager, same weights) on the token ids core/ produced.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EncodedRow } from '../core/types.ts';
import { REPO_ROOT } from './processes.ts';

export const PYTHON = process.env['PAIRPREF_PYTHON'] ?? '/usr/bin/python3';

export interface TorchPeerResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  readonly batch: number;
  readonly threads: number;
  readonly torch: string;
  readonly check_probs: number[][];
}

/** Where training/pipeline.ts leaves the checkpoint it exports models/default from. */
export const TRAINING_CHECKPOINT = join(REPO_ROOT, 'training/out/run/model.pt');

/**
 * The bundle's PyTorch checkpoint: an explicit file, else the only *.pt in the bundle directory,
 * else the training pipeline's checkpoint. `guessed` marks the last case: the harness then
 * requires the parity check against model.onnx to pass before it uses it.
 */
export function findCheckpoint(modelDir: string, explicit: string | undefined): { path: string | null; guessed: boolean; why: string } {
  if (explicit) return existsSync(explicit) ? { path: explicit, guessed: false, why: '' } : { path: null, guessed: false, why: `--torch-checkpoint ${explicit} does not exist` };
  const pts = existsSync(modelDir) ? readdirSync(modelDir).filter((f) => f.endsWith('.pt')) : [];
  if (pts.length === 1) return { path: join(modelDir, pts[0]!), guessed: false, why: '' };
  if (pts.length > 1) return { path: null, guessed: false, why: `${modelDir} holds several .pt files (${pts.join(', ')}): pass --torch-checkpoint` };
  if (existsSync(TRAINING_CHECKPOINT)) return { path: TRAINING_CHECKPOINT, guessed: true, why: '' };
  return { path: null, guessed: false, why: `no PyTorch weights for ${modelDir} (no .pt in the bundle, none at training/out/run/model.pt; pass --torch-checkpoint FILE.pt)` };
}

export async function runTorchPeer(ckpt: string, rows: readonly EncodedRow[], padId: number, threads: number, rowsFile: string): Promise<TorchPeerResult> {
  writeFileSync(rowsFile, JSON.stringify({ pad_id: padId, rows: rows.map((r) => ({ ids: Array.from(r.ids), features: r.features ? Array.from(r.features) : null })) }));
  const child = spawn(PYTHON, [join(REPO_ROOT, 'bench/torch_peer.py'), '--ckpt', ckpt, '--rows', rowsFile, '--threads', String(threads)], {
    stdio: ['ignore', 'pipe', 'pipe'],
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
