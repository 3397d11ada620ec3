// The system Python (Debian python3-torch / python3-onnx) for training's PyTorch steps and the
// bench's PyTorch peer: which interpreter, its environment, and a line-by-line runner.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PYTHON = process.env.PAIRPREF_PYTHON ?? '/usr/bin/python3';

export const PYTHON_HELP =
  'training needs /usr/bin/python3 with PyTorch and ONNX: apt-get install python3-torch python3-onnx libopenblas0-pthread libtcmalloc-minimal4';

/**
 * tcmalloc, when installed (Debian libtcmalloc-minimal4). With glibc malloc every attention-sized
 * tensor is a fresh mmap whose pages fault in on first touch; on this VM a 256-token training step
 * took 0.66 s instead of 0.43 s (training/step_time.py, with and without it).
 */
const TCMALLOC = ['x86_64-linux-gnu', 'aarch64-linux-gnu']
  .map((arch) => `/usr/lib/${arch}/libtcmalloc_minimal.so.4`)
  .find((p) => existsSync(p));

/** Environment for a PyTorch process: the caller's, plus tcmalloc preloaded when available. */
export function pythonEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!TCMALLOC) return env;
  return { ...env, LD_PRELOAD: [TCMALLOC, env.LD_PRELOAD].filter(Boolean).join(':') };
}

/** Throws with the install command when torch or onnx cannot be imported. */
export function assertPythonTorch(): void {
  const r = spawnSync(PYTHON, ['-c', 'import torch, onnx, numpy'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop();
    throw new Error(`${PYTHON_HELP} (${PYTHON}: ${why})`);
  }
}

/** Runs the Python script at `script` with args; each output line goes to `onLine`. Rejects on a non-zero exit. */
export function runPython(script: string, args: readonly string[], onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-u', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: pythonEnv(),
    });
    // One line buffer per stream: a partial stdout line must not be glued to stderr output.
    const tails = { stdout: '', stderr: '' };
    const pipe = (stream: keyof typeof tails) => (chunk: Buffer): void => {
      const lines = (tails[stream] + chunk.toString('utf8')).split('\n');
      tails[stream] = lines.pop() ?? '';
      for (const l of lines) if (!/UserWarning|_jit_pass_onnx|^\s*_C\._jit/.test(l)) onLine(l);
    };
    child.stdout.on('data', pipe('stdout'));
    child.stderr.on('data', pipe('stderr'));
    child.on('error', reject);
    child.on('close', (code) => {
      for (const t of Object.values(tails)) if (t) onLine(t);
      if (code === 0) resolve();
      else reject(new Error(`${script} exited with ${code}`));
    });
  });
}
