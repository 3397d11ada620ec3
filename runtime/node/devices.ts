// --devices parsing and execution-provider availability checks.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeviceSpec, ResolvedDevices } from '../../core/runtime.ts';
import { usableCpus } from '../../platform/cpus.ts';

export class DeviceConfigError extends Error {
  override name = 'DeviceConfigError';
}

export const CUDA_INSTALL_HINT =
  'The CUDA execution provider is not installed: onnxruntime-node ships only the CPU and WebGPU providers in its npm ' +
  'package, and this project runs no dependency install scripts (.npmrc ignore-scripts), so its CUDA download is ' +
  'skipped. On a host with an NVIDIA GPU, CUDA 12 and cuDNN 9, run `npm run install:cuda` (onnxruntime-node\'s ' +
  'installer, forced to fetch its CUDA 12 provider; again after every npm ci), then start again. See README "GPU hosts".';

/** Folder holding onnxruntime-node's native libraries for this platform. */
function ortBinDir(): string | null {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  const base = join(pkg, 'bin');
  if (!existsSync(base)) return null;
  for (const napi of readdirSync(base)) {
    const dir = join(base, napi, process.platform, process.arch);
    if (existsSync(dir)) return dir;
  }
  return null;
}

/** True when the CUDA provider library sits next to onnxruntime-node's binding. */
export function cudaProviderInstalled(): boolean {
  const dir = ortBinDir();
  return dir !== null && readdirSync(dir).some((f) => f.startsWith('libonnxruntime_providers_cuda'));
}

function parseOne(token: string): DeviceSpec {
  const t = token.trim().toLowerCase();
  if (t === 'cpu') return { name: 'cpu', provider: 'cpu', deviceId: 0 };
  if (t === 'webgpu') return { name: 'webgpu', provider: 'webgpu', deviceId: 0 };
  const m = /^cuda(?::(\d+))?$/.exec(t);
  if (m) {
    const id = Number(m[1] ?? 0);
    return { name: `cuda:${id}`, provider: 'cuda', deviceId: id };
  }
  throw new DeviceConfigError(`--devices: unknown device "${token}" (use auto, cpu, webgpu, cuda or cuda:N, comma-separated)`);
}

const CPU_ONLY: DeviceSpec = { name: 'cpu', provider: 'cpu', deviceId: 0 };

function resolveAuto(cuda: boolean, opts: ResolveOptions): ResolvedDevices {
  if (!cuda) return { devices: [CPU_ONLY], autoReason: 'CUDA provider not installed: using the CPU' };
  const gpus = opts.cudaCount ?? visibleCudaDevices();
  if (gpus === 0) return { devices: [CPU_ONLY], autoReason: 'CUDA provider installed but no GPU visible (CUDA_VISIBLE_DEVICES, /dev/nvidia*): using the CPU' };
  const probe = (opts.probeCuda ?? probeCudaProvider)();
  if (!probe.ok) {
    return { devices: [CPU_ONLY], autoReason: `CUDA provider installed and ${gpus} GPU(s) visible, but a test session on cuda:0 failed (${probe.reason ?? 'no reason given'}): using the CPU` };
  }
  return {
    devices: Array.from({ length: gpus }, (_, i) => ({ name: `cuda:${i}`, provider: 'cuda' as const, deviceId: i })),
    autoReason: `CUDA provider installed, ${gpus} GPU(s) visible, a test session on cuda:0 ran`,
  };
}

/** The outcome of a test session on a CUDA device (probeCudaProvider). */
export interface CudaProbe {
  readonly ok: boolean;
  /** Why the test session failed (onnxruntime's message and, when it logged one, the library that failed to load). */
  readonly reason?: string;
}

const PROBE_SCRIPT = fileURLToPath(new URL('./cuda-probe.mjs', import.meta.url));

/**
 * Creates and runs a one-node session on cuda:<deviceId> in a child process (cuda-probe.mjs): an
 * installed provider whose CUDA or cuDNN libraries are missing fails there, and a driver fault
 * cannot take this process down with it.
 */
export function probeCudaProvider(deviceId = 0): CudaProbe {
  const r = spawnSync(process.execPath, [PROBE_SCRIPT, String(deviceId)], { encoding: 'utf8', timeout: 120_000 });
  const line = r.stdout?.trim().split('\n').pop() ?? '';
  let parsed: CudaProbe = { ok: false, reason: r.error ? r.error.message : `probe exited with ${r.status ?? r.signal}` };
  try {
    parsed = JSON.parse(line) as CudaProbe;
  } catch {
    // keep the exit status as the reason
  }
  if (parsed.ok) return parsed;
  // onnxruntime logs the library that failed to load (e.g. libcudnn.so.9) on stderr, not in the error.
  const lib = /with error: ([^\n]+)/.exec(r.stderr ?? '')?.[1]?.trim();
  return { ok: false, reason: lib ? `${parsed.reason ?? 'failed'}: ${lib}` : parsed.reason };
}

export interface ResolveOptions {
  readonly cudaInstalled?: boolean;
  readonly cudaCount?: number;
  /** Test session on cuda:0 before `auto` picks CUDA (default: probeCudaProvider). */
  readonly probeCuda?: () => CudaProbe;
}

/**
 * "auto" picks every visible CUDA GPU when the CUDA provider is installed and a test session on
 * cuda:0 runs, else one CPU session, and says why. WebGPU is never picked automatically: on hosts
 * without a GPU it falls back to a software adapter that is slower than the CPU provider.
 */
export function resolveDevices(spec: string, opts: ResolveOptions = {}): ResolvedDevices {
  const parts = spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new DeviceConfigError('--devices: empty list');
  const cuda = opts.cudaInstalled ?? cudaProviderInstalled();
  if (parts.length === 1 && parts[0]!.toLowerCase() === 'auto') return resolveAuto(cuda, opts);
  const parsed = parts.map(parseOne);
  // Two sessions on one provider need distinct names for logs, metrics and load reports.
  const devices = parsed.map((d, i) =>
    d.provider !== 'cuda' && parsed.filter((o) => o.name === d.name).length > 1
      ? { ...d, name: `${d.name}:${parsed.slice(0, i).filter((o) => o.name === d.name).length}` }
      : d,
  );
  const dupCuda = devices.find((d, i) => d.provider === 'cuda' && devices.findIndex((o) => o.name === d.name) !== i);
  if (dupCuda) throw new DeviceConfigError(`--devices: ${dupCuda.name} is listed twice (one session per GPU)`);
  if (devices.some((d) => d.provider === 'cuda') && !cuda) throw new DeviceConfigError(CUDA_INSTALL_HINT);
  return { devices, autoReason: null };
}

/**
 * GPUs CUDA would enumerate, given CUDA_VISIBLE_DEVICES (undefined when unset) and the number of
 * /dev/nvidia<N> nodes. As in CUDA, the list is read up to its first invalid entry: "-1", "" or
 * "none" hide every GPU, "0,-1,1" shows one; an index at or past the node count is invalid; GPU-
 * and MIG- UUIDs count as one device each.
 */
export function countVisibleCuda(visible: string | undefined, nodes: number): number {
  if (visible === undefined) return nodes;
  let count = 0;
  for (const entry of visible.split(',').map((e) => e.trim())) {
    const valid = /^\d+$/.test(entry) ? Number(entry) < nodes : /^(GPU|MIG)-/i.test(entry);
    if (!valid) break;
    count++;
  }
  return count;
}

/** Counts /dev/nvidia<N> nodes (no driver library needed), honouring CUDA_VISIBLE_DEVICES. */
function visibleCudaDevices(): number {
  const nodes = existsSync('/dev') ? readdirSync('/dev').filter((f) => /^nvidia\d+$/.test(f)).length : 0;
  return countVisibleCuda(process.env['CUDA_VISIBLE_DEVICES'], nodes);
}

/**
 * CPU sessions split the cores between them (two sessions with all cores each would only
 * contend); GPU sessions need one host thread.
 */
export function defaultIntraOpThreads(devices: readonly DeviceSpec[]): number {
  const cpuSessions = devices.filter((d) => d.provider === 'cpu').length;
  if (cpuSessions === 0) return 1;
  return Math.max(1, Math.floor(usableCpus() / cpuSessions));
}

/**
 * Tokenizer worker threads. With CPU sessions one worker keeps tokenizing off the event loop, so
 * gRPC and batch dispatch stay responsive (measured +5% rows/s on 2 cores; the sessions already
 * use every core, so more workers would only contend). GPU sessions leave the cores free, and a
 * fast model would otherwise wait on a single tokenizing thread.
 */
export function defaultPreprocessThreads(devices: readonly DeviceSpec[]): number {
  if (devices.some((d) => d.provider === 'cpu')) return 1;
  return Math.max(1, Math.min(8, usableCpus() - 1));
}
