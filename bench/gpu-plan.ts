// What `bash bench/gpu.sh` measures on this host, and the checks of its result. Run by gpu.sh:
//   node --import tsx bench/gpu-plan.ts plan [--dry-run]   device lists on stdout (one `--devices` value),
//                                                          the plan on stderr; exit 2 when a GPU run cannot work
//   node --import tsx bench/gpu-plan.ts check FILE.json    the report, then the two-GPU token split; exit 1 if off
// A faked host for tests and dry runs (never read otherwise): GPU_SH_FAKE_ROOT=DIR reads /dev and the
// Vulkan ICD folders under DIR; GPU_SH_FAKE_CUDA_PROVIDER=0|1 stands for the installed CUDA provider;
// GPU_SH_FAKE_TORCH_CUDA=0|1 for `torch.cuda.is_available()` of the PyTorch peer's Python.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PYTHON } from '../platform/python.ts';
import { countVisibleCuda, cudaProviderInstalled, probeCudaProvider } from '../runtime/node/devices.ts';
import { formatReport } from './report.ts';
import type { BenchResult } from './run.ts';
import { chooseWebgpuAdapter, hostAt, type WebgpuAdapter } from './vulkan.ts';

export interface GpuHost {
  readonly cudaProvider: boolean;
  /** /dev/nvidia<N> nodes. */
  readonly nvidiaNodes: number;
  readonly cudaVisible: string | undefined;
  readonly adapter: WebgpuAdapter;
  /** Whether the peer's torch has CUDA; null when unknown. */
  readonly torchCuda: boolean | null;
}

export interface GpuPlan {
  /** The `--devices` value for `pairpref bench` (semicolon-separated lists); '' when nothing can run. */
  readonly devices: string;
  readonly gpus: number;
  /** What will be measured and what will not, one line each. */
  readonly lines: string[];
  /** Why the run cannot work; empty when it can. */
  readonly problems: string[];
}

export function planGpuRun(h: GpuHost): GpuPlan {
  const gpus = countVisibleCuda(h.cudaVisible, h.nvidiaNodes);
  const lines: string[] = [];
  const problems: string[] = [];
  if (!h.cudaProvider) problems.push('the CUDA execution provider is not installed: run `npm run install:cuda` (again after every npm ci), see README "GPU hosts"');
  if (gpus === 0) {
    problems.push(
      h.nvidiaNodes === 0 ? 'no NVIDIA GPU on this host (no /dev/nvidia<N>)' : `CUDA_VISIBLE_DEVICES=${JSON.stringify(h.cudaVisible)} hides all ${h.nvidiaNodes} GPU(s)`,
    );
  }
  const lists: string[] = [];
  if (problems.length === 0) {
    lists.push('cuda:0');
    lines.push('cuda:0: the headline; the in-process limit, the naive server and the PyTorch peer run on the same GPU');
    if (gpus >= 2) {
      lists.push('cuda:0,cuda:1');
      lines.push('cuda:0,cuda:1: two sessions; the check expects each GPU to get about half of the tokens');
    } else lines.push(`cuda:0,cuda:1: not measured (${gpus} GPU visible${h.cudaVisible !== undefined ? `, CUDA_VISIBLE_DEVICES=${h.cudaVisible}` : ''})`);
  }
  if (h.adapter.kind === 'hardware') {
    lists.push('webgpu');
    lines.push(`webgpu: hardware adapter, VK_ICD_FILENAMES=${h.adapter.vk_icd_filenames} (${h.adapter.why})`);
  } else lines.push(`webgpu: not measured, no hardware Vulkan adapter (${h.adapter.why})`);
  if (h.torchCuda === false) lines.push(`PyTorch peer: its torch (${PYTHON}) has no CUDA, so it runs on the CPU; the report says so and does not judge vs_pytorch as a GPU figure`);
  else if (h.torchCuda === true) lines.push('PyTorch peer: on cuda:0 (torch has CUDA)');
  else lines.push('PyTorch peer: --peer-device auto (whether its torch has CUDA is not known)');
  return { devices: problems.length === 0 ? lists.join(';') : '', gpus, lines, problems };
}

const multiGpu = (list: string): boolean => list.split(',').filter((d) => d.trim().startsWith('cuda')).length >= 2;

/**
 * Tokens per device of the multi-GPU scaling row: each device should have run about 1/n of them.
 * ok null: no multi-GPU list was asked for; false: asked for and missing (its run failed), or off.
 */
export function checkTokenSplit(r: Pick<BenchResult, 'scaling' | 'settings'>, tolerance = 0.1): { ok: boolean | null; line: string } {
  const run = r.scaling.find((s) => multiGpu(s.devices));
  if (!run) {
    const asked = (r.settings.device_lists ?? []).find(multiGpu);
    return asked ? { ok: false, line: `token split: --devices ${asked} was asked for but has no result (see the notes)` } : { ok: null, line: 'token split: no multi-GPU list in this run' };
  }
  const entries = Object.entries(run.tokens_per_device ?? {});
  const total = entries.reduce((a, [, v]) => a + v, 0);
  const n = run.devices.split(',').length;
  if (entries.length !== n || total <= 0) return { ok: false, line: `token split (--devices ${run.devices}): tokens per device ${JSON.stringify(run.tokens_per_device)}: not every device ran` };
  const shares = entries.map(([k, v]) => [k, v / total] as const);
  const ok = shares.every(([, s]) => Math.abs(s - 1 / n) <= tolerance);
  const text = shares.map(([k, s]) => `${k} ${(s * 100).toFixed(1)} %`).join(', ');
  return { ok, line: `token split (--devices ${run.devices}, ${total} tokens): ${text}: ${ok ? 'each about' : 'NOT each within'} ${(100 / n).toFixed(0)} +- ${tolerance * 100} %` };
}

function torchHasCuda(): boolean | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(int(torch.cuda.is_available()))'], { encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? r.stdout.trim().endsWith('1') : null;
}

/** This host, with GPU_SH_FAKE_* standing in for what a test cannot install. */
export function hostFromEnv(env: NodeJS.ProcessEnv = process.env): GpuHost {
  const root = env['GPU_SH_FAKE_ROOT'] || '/';
  const dev = join(root, 'dev');
  const flag = (name: string): boolean | undefined => (env[name] === undefined ? undefined : env[name] === '1');
  const torch = flag('GPU_SH_FAKE_TORCH_CUDA');
  return {
    cudaProvider: flag('GPU_SH_FAKE_CUDA_PROVIDER') ?? cudaProviderInstalled(),
    nvidiaNodes: existsSync(dev) ? readdirSync(dev).filter((f) => /^nvidia\d+$/.test(f)).length : 0,
    cudaVisible: env['CUDA_VISIBLE_DEVICES'],
    adapter: chooseWebgpuAdapter(hostAt(root, env)),
    torchCuda: torch ?? (env['GPU_SH_FAKE_ROOT'] ? null : torchHasCuda()),
  };
}

function main(argv: string[]): number {
  const [cmd, arg] = argv;
  if (cmd === 'plan') {
    const dry = arg === '--dry-run';
    const h = hostFromEnv();
    const plan = planGpuRun(h);
    // A real run also proves CUDA works before spending minutes: a one-node session on cuda:0.
    if (!dry && plan.problems.length === 0) {
      const probe = probeCudaProvider(0);
      if (!probe.ok) plan.problems.push(`a test session on cuda:0 failed: ${probe.reason ?? 'no reason given'}`);
    }
    process.stderr.write(`bench/gpu.sh${dry ? ' --dry-run' : ''}: CUDA provider installed: ${h.cudaProvider}, /dev/nvidia<N>: ${h.nvidiaNodes}, CUDA_VISIBLE_DEVICES: ${h.cudaVisible ?? '(unset)'}, GPUs visible: ${plan.gpus}\n`);
    for (const l of plan.lines) process.stderr.write(`  ${l}\n`);
    for (const p of plan.problems) process.stderr.write(`  cannot run: ${p}\n`);
    if (plan.problems.length > 0) return 2;
    process.stdout.write(`${plan.devices}\n`);
    return 0;
  }
  if (cmd === 'check' && arg) {
    const r = JSON.parse(readFileSync(arg, 'utf8')) as BenchResult;
    process.stdout.write(formatReport(r) + '\n');
    const split = checkTokenSplit(r);
    process.stdout.write(split.line + '\n');
    return split.ok === false ? 1 : 0;
  }
  process.stderr.write('usage: node --import tsx bench/gpu-plan.ts plan [--dry-run] | check FILE.json\n');
  return 64;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) process.exitCode = main(process.argv.slice(2));
