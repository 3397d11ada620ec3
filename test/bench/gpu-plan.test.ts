// bench/gpu.sh without a GPU: which Vulkan adapter the webgpu runs get (never SwiftShader while a
// hardware adapter is present, and a hardware ICD file counts only with its device), what a
// faked one- or two-GPU host would measure (`bash bench/gpu.sh --dry-run`), and the check that two
// GPUs each ran about half of the tokens.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkTokenSplit, planGpuRun, type GpuHost } from '../../bench/gpu-plan.ts';
import type { ServerRun } from '../../bench/run.ts';
import { chooseWebgpuAdapter, hostAt, SWIFTSHADER_ICD, webgpuEnv, type WebgpuAdapter } from '../../bench/vulkan.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'pairpref-gpu-plan-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

const ICD = {
  nvidia: ['usr/share/vulkan/icd.d/nvidia_icd.json', 'libGLX_nvidia.so.0'],
  intel: ['usr/share/vulkan/icd.d/intel_icd.x86_64.json', '/usr/lib/x86_64-linux-gnu/libvulkan_intel.so'],
  radeon: ['usr/share/vulkan/icd.d/radeon_icd.x86_64.json', '/usr/lib/x86_64-linux-gnu/libvulkan_radeon.so'],
  lvp: ['usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so'],
  swiftshader: [SWIFTSHADER_ICD.slice(1), './libvk_swiftshader.so'],
} as const;

/** A fake host root: device nodes under dev/, ICD files where the loader looks. */
function fakeRoot(o: { icds?: (keyof typeof ICD)[]; dev?: string[] }): string {
  const root = join(tmp, `root${n++}`);
  mkdirSync(join(root, 'dev'), { recursive: true });
  for (const d of o.dev ?? []) {
    mkdirSync(dirname(join(root, 'dev', d)), { recursive: true });
    writeFileSync(join(root, 'dev', d), '');
  }
  for (const k of o.icds ?? []) {
    const [path, lib] = ICD[k];
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: lib, api_version: '1.3.0' } }));
  }
  return root;
}

const adapter = (root: string, env: NodeJS.ProcessEnv = {}): WebgpuAdapter => chooseWebgpuAdapter(hostAt(root, env));

test('webgpu adapter: SwiftShader only when no hardware adapter is present, named as software', () => {
  // This project's dev machine: Debian's mesa ICDs for Intel and Radeon installed, no GPU, Chromium's SwiftShader.
  const dev = adapter(fakeRoot({ icds: ['intel', 'radeon', 'lvp', 'swiftshader'] }));
  assert.equal(dev.kind, 'software');
  assert.equal(dev.vk_icd_filenames, SWIFTSHADER_ICD);
  assert.deepEqual(dev.icd_files.map((f) => f.driver), ['swiftshader']);
  assert.match(dev.why, /intel .*radeon .*installed without their devices/);
  assert.deepEqual(webgpuEnv(dev), { VK_ICD_FILENAMES: SWIFTSHADER_ICD });

  // No SwiftShader: lavapipe, still software.
  const lvp = adapter(fakeRoot({ icds: ['intel', 'lvp'] }));
  assert.equal(lvp.kind, 'software');
  assert.equal(lvp.vk_icd_filenames, `/${ICD.lvp[0]}`);

  // An NVIDIA GPU with its ICD: that ICD, not SwiftShader, though SwiftShader is installed.
  const nv = adapter(fakeRoot({ icds: ['nvidia', 'lvp', 'swiftshader', 'intel'], dev: ['nvidia0', 'nvidiactl'] }));
  assert.equal(nv.kind, 'hardware');
  assert.equal(nv.vk_icd_filenames, `/${ICD.nvidia[0]}`);
  assert.equal(nv.source, 'detected');

  // A render node makes the mesa ICDs count.
  const amd = adapter(fakeRoot({ icds: ['radeon', 'swiftshader'], dev: ['dri/renderD128'] }));
  assert.equal(amd.kind, 'hardware');
  assert.deepEqual(amd.icd_files.map((f) => f.driver), ['radeon']);

  // An NVIDIA GPU without the driver's Vulkan ICD: neither SwiftShader nor a claim of hardware.
  const noIcd = adapter(fakeRoot({ icds: ['lvp', 'swiftshader'], dev: ['nvidia0'] }));
  assert.equal(noIcd.kind, 'unknown');
  assert.equal(noIcd.vk_icd_filenames, null);
  assert.deepEqual(webgpuEnv(noIcd), {});
  assert.match(noIcd.why, /no nvidia ICD file/);

  // The caller's VK_ICD_FILENAMES is kept and classified.
  const own = adapter(fakeRoot({ icds: ['nvidia', 'swiftshader'], dev: ['nvidia0'] }), { VK_ICD_FILENAMES: SWIFTSHADER_ICD });
  assert.equal(own.source, 'environment');
  assert.equal(own.vk_icd_filenames, SWIFTSHADER_ICD);
  assert.equal(own.kind, 'software');
});

const host = (o: Partial<GpuHost>): GpuHost => ({
  cudaProvider: true,
  nvidiaNodes: 2,
  cudaVisible: undefined,
  adapter: adapter(fakeRoot({ icds: ['nvidia'], dev: ['nvidia0', 'nvidia1'] })),
  torchCuda: true,
  ...o,
});

test('gpu plan: device lists for one and two GPUs, CUDA_VISIBLE_DEVICES honoured, refusals with the reason', () => {
  assert.equal(planGpuRun(host({})).devices, 'cuda:0;cuda:0,cuda:1;webgpu');
  assert.equal(planGpuRun(host({ cudaVisible: '1' })).devices, 'cuda:0;webgpu');
  assert.equal(planGpuRun(host({ cudaVisible: '0,1' })).devices, 'cuda:0;cuda:0,cuda:1;webgpu');
  const software = planGpuRun(host({ adapter: adapter(fakeRoot({ icds: ['swiftshader'], dev: ['nvidia0', 'nvidia1'] })) }));
  assert.equal(software.devices, 'cuda:0;cuda:0,cuda:1', 'no webgpu row on a software adapter');
  assert.ok(software.lines.some((l) => /webgpu: not measured/.test(l)));
  const hidden = planGpuRun(host({ cudaVisible: '-1' }));
  assert.equal(hidden.devices, '');
  assert.ok(hidden.problems.some((p) => /hides all 2 GPU/.test(p)), hidden.problems.join('; '));
  const noProvider = planGpuRun(host({ cudaProvider: false }));
  assert.ok(noProvider.problems.some((p) => /npm run install:cuda/.test(p)));
  assert.ok(planGpuRun(host({ torchCuda: false })).lines.some((l) => /runs on the CPU/.test(l)));
});

const run = (devices: string, tokens: Record<string, number>): ServerRun =>
  ({ devices, tokens_per_device: tokens }) as unknown as ServerRun;

test('token split: two GPUs each about half of the tokens', () => {
  const settings = { device_lists: ['cuda:0', 'cuda:0,cuda:1'] } as never;
  assert.equal(checkTokenSplit({ settings, scaling: [run('cuda:0', { 'cuda:0': 9 }), run('cuda:0,cuda:1', { 'cuda:0': 5200, 'cuda:1': 4800 })] }).ok, true);
  const off = checkTokenSplit({ settings, scaling: [run('cuda:0,cuda:1', { 'cuda:0': 8000, 'cuda:1': 2000 })] });
  assert.equal(off.ok, false);
  assert.match(off.line, /cuda:0 80\.0 %, cuda:1 20\.0 %/);
  assert.equal(checkTokenSplit({ settings, scaling: [run('cuda:0,cuda:1', { 'cuda:0': 100 })] }).ok, false, 'a device that ran nothing');
  assert.equal(checkTokenSplit({ settings, scaling: [run('cuda:0', { 'cuda:0': 9 })] }).ok, false, 'asked for and missing');
  assert.equal(checkTokenSplit({ settings: { device_lists: ['cuda:0'] } as never, scaling: [run('cuda:0', { 'cuda:0': 9 })] }).ok, null);
});

/** bench/gpu.sh --dry-run with this environment on top of ours, less the variables the plan reads. */
function dryRun(env: NodeJS.ProcessEnv): { status: number | null; stdout: string; out: string } {
  const base = { ...process.env };
  for (const k of ['CUDA_VISIBLE_DEVICES', 'VK_ICD_FILENAMES', 'VK_DRIVER_FILES']) delete base[k];
  const r = spawnSync('bash', ['bench/gpu.sh', '--dry-run', '--rows', '100'], { cwd: ROOT, encoding: 'utf8', env: { ...base, ...env }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, out: r.stdout + r.stderr };
}

test('bash bench/gpu.sh --dry-run on faked hosts prints what it would measure', { timeout: 120_000 }, () => {
  const two = fakeRoot({ icds: ['nvidia', 'swiftshader'], dev: ['nvidia0', 'nvidia1', 'nvidiactl'] });
  const fake = { GPU_SH_FAKE_ROOT: two, GPU_SH_FAKE_CUDA_PROVIDER: '1', GPU_SH_FAKE_TORCH_CUDA: '1' };
  const both = dryRun(fake);
  assert.equal(both.status, 0, both.out);
  assert.match(both.stdout, /device lists: cuda:0 \| cuda:0,cuda:1 \| webgpu/);
  assert.match(both.stdout, /would run: node bin\/pairpref\.mjs bench --devices cuda:0\\;cuda:0\\,cuda:1\\;webgpu .*--peer-device auto --json --rows 100 > /);
  assert.match(both.out, /VK_ICD_FILENAMES=\/usr\/share\/vulkan\/icd\.d\/nvidia_icd\.json/);

  const one = dryRun({ ...fake, CUDA_VISIBLE_DEVICES: '1' });
  assert.equal(one.status, 0, one.out);
  assert.match(one.stdout, /device lists: cuda:0 \| webgpu\n/);
  assert.match(one.out, /cuda:0,cuda:1: not measured \(1 GPU visible, CUDA_VISIBLE_DEVICES=1\)/);

  const none = dryRun({ ...fake, CUDA_VISIBLE_DEVICES: '-1' });
  assert.equal(none.status, 2, none.out);
  assert.match(none.out, /cannot run: CUDA_VISIBLE_DEVICES="-1" hides all 2 GPU/);
  assert.match(none.out, /would not run/);

  const noProvider = dryRun({ ...fake, GPU_SH_FAKE_CUDA_PROVIDER: '0' });
  assert.equal(noProvider.status, 2);
  assert.match(noProvider.out, /npm run install:cuda/);
});
