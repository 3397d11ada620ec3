// --devices parsing and execution-provider availability checks.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
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

/**
 * "auto" picks every visible CUDA GPU when the CUDA provider is installed, else one CPU
 * session. WebGPU is never picked automatically: on hosts without a GPU it falls back to a
 * software adapter that is slower than the CPU provider.
 */
export function resolveDevices(spec: string, opts: { cudaInstalled?: boolean; cudaCount?: number } = {}): ResolvedDevices {
  const parts = spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new DeviceConfigError('--devices: empty list');
  const cuda = opts.cudaInstalled ?? cudaProviderInstalled();
  if (parts.length === 1 && parts[0]!.toLowerCase() === 'auto') {
    const gpus = opts.cudaCount ?? visibleCudaDevices();
    if (cuda && gpus > 0) {
      return {
        devices: Array.from({ length: gpus }, (_, i) => ({ name: `cuda:${i}`, provider: 'cuda' as const, deviceId: i })),
        autoReason: `CUDA provider installed and ${gpus} GPU(s) visible`,
      };
    }
    return {
      devices: [{ name: 'cpu', provider: 'cpu', deviceId: 0 }],
      autoReason: cuda ? 'CUDA provider installed but no GPU visible: using the CPU' : 'CUDA provider not installed: using the CPU',
    };
  }
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
