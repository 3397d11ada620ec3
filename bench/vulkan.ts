// Which Vulkan driver (ICD) the webgpu runs get. onnxruntime-node's WebGPU provider (Dawn) runs on
// Vulkan here and does not tell which adapter it chose, so the bench decides what the Vulkan loader
// may see (VK_ICD_FILENAMES) and reports that: the ICD files, whether they are a software
// rasteriser, and, where `vulkaninfo` is installed, the device names the loader enumerates with them.
//
// A hardware ICD file alone proves nothing: Debian's mesa-vulkan-drivers installs the Intel and
// Radeon ICDs on machines with neither, so an ICD counts only when its device nodes exist
// (/dev/nvidia<N> for NVIDIA's, /dev/dri/renderD<N> for the others).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

export const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/share/vulkan/icd.d'];
/** Chromium's SwiftShader, the software adapter this project's earlier runs used (bench:web too). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export type IcdKind = 'software' | 'nvidia' | 'hardware';

export interface IcdFile {
  readonly path: string;
  /** library_path from the JSON ('' when unreadable). */
  readonly library: string;
  readonly kind: IcdKind;
  /** Short driver name: swiftshader, lvp, nvidia, intel, radeon, ... */
  readonly driver: string;
}

export interface WebgpuAdapter {
  /** VK_ICD_FILENAMES for the webgpu servers, or null: the loader's own search, unchanged. */
  readonly vk_icd_filenames: string | null;
  /** hardware: every chosen ICD drives a device present on this host; software: SwiftShader/lavapipe (the CPU). */
  readonly kind: 'hardware' | 'software' | 'unknown';
  readonly icd_files: readonly IcdFile[];
  /** From `vulkaninfo --summary` with the same VK_ICD_FILENAMES, when vulkaninfo is installed; else empty. */
  readonly device_names: readonly string[];
  /** environment: the caller set VK_ICD_FILENAMES (kept as is); detected: chosen here. */
  readonly source: 'environment' | 'detected';
  readonly why: string;
}

/** What chooseWebgpuAdapter looks at; tests pass a fake host. */
export interface VulkanHost {
  readonly env: NodeJS.ProcessEnv;
  readonly icdDirs: readonly string[];
  readonly swiftshaderIcd: string;
  exists(path: string): boolean;
  list(dir: string): string[];
  read(path: string): string;
  /** deviceName lines of `vulkaninfo --summary` under this VK_ICD_FILENAMES (null = loader default); [] when unavailable. */
  vulkaninfo(icdFilenames: string | null): string[];
}

export function classifyIcd(path: string, json: string): IcdFile {
  let library = '';
  try {
    library = String((JSON.parse(json) as { ICD?: { library_path?: unknown } }).ICD?.library_path ?? '');
  } catch {
    // an unreadable ICD file is classified by its name alone
  }
  const both = `${basename(path)} ${basename(library)}`.toLowerCase();
  if (/swiftshader/.test(both)) return { path, library, kind: 'software', driver: 'swiftshader' };
  if (/lvp|lavapipe/.test(both)) return { path, library, kind: 'software', driver: 'lvp' };
  if (/mock/.test(both)) return { path, library, kind: 'software', driver: 'mock' };
  if (/nvidia/.test(both)) return { path, library, kind: 'nvidia', driver: 'nvidia' };
  return { path, library, kind: 'hardware', driver: driverName(path, library) };
}

/** libvulkan_intel.so -> intel; else the file name: radeon_icd.x86_64.json -> radeon. */
function driverName(path: string, library: string): string {
  const lib = /^lib(?:vulkan_)?(.+?)\.so/.exec(basename(library).toLowerCase())?.[1];
  return lib ?? (basename(path).toLowerCase().replace(/(_icd)?(\.[a-z0-9_]+)*\.json$/, '') || 'unknown');
}

function readIcd(host: VulkanHost, path: string): IcdFile {
  let json = '';
  try {
    json = host.exists(path) ? host.read(path) : '';
  } catch {
    json = '';
  }
  return classifyIcd(path, json);
}

const describe = (files: readonly IcdFile[]): string => files.map((f) => `${f.driver} (${f.path})`).join(', ');

/**
 * The adapter for `--devices webgpu`: VK_ICD_FILENAMES from the environment when set (reported, not
 * changed); else every hardware ICD whose device is present; else SwiftShader (then lavapipe), named
 * as software. Never SwiftShader while a hardware adapter exists.
 */
export function chooseWebgpuAdapter(host: VulkanHost = hostAt()): WebgpuAdapter {
  const fromEnv = host.env['VK_ICD_FILENAMES'] || host.env['VK_DRIVER_FILES'];
  const names = (icd: string | null): string[] => host.vulkaninfo(icd);
  if (fromEnv) {
    const files = fromEnv.split(':').filter(Boolean).map((p) => readIcd(host, p));
    const kind = files.length > 0 && files.every((f) => f.kind === 'software') ? 'software' : files.some((f) => f.kind === 'software') ? 'unknown' : 'hardware';
    return { vk_icd_filenames: fromEnv, kind, icd_files: files, device_names: names(fromEnv), source: 'environment', why: `VK_ICD_FILENAMES set by the caller: ${describe(files)}` };
  }
  const dev = host.exists('/dev') ? host.list('/dev') : [];
  const nvidia = dev.some((f) => /^nvidia\d+$/.test(f));
  const render = host.exists('/dev/dri') && host.list('/dev/dri').some((f) => /^renderD\d+$/.test(f));
  const icds = host.icdDirs.filter((d) => host.exists(d)).flatMap((d) => host.list(d).filter((f) => f.endsWith('.json')).sort().map((f) => readIcd(host, join(d, f))));
  const present = icds.filter((f) => (f.kind === 'nvidia' ? nvidia : f.kind === 'hardware' ? render : false));
  if (present.length > 0) {
    const env = present.map((f) => f.path).join(':');
    return { vk_icd_filenames: env, kind: 'hardware', icd_files: present, device_names: names(env), source: 'detected', why: `hardware Vulkan ICD with its device present: ${describe(present)}` };
  }
  const skipped = icds.filter((f) => f.kind !== 'software');
  const absent = skipped.length > 0 ? `; ${describe(skipped)} installed without their devices (no ${skipped.some((f) => f.kind === 'nvidia') ? '/dev/nvidia<N>' : '/dev/dri/renderD<N>'})` : '';
  if (nvidia) {
    return {
      vk_icd_filenames: null,
      kind: 'unknown',
      icd_files: icds,
      device_names: names(null),
      source: 'detected',
      why: `an NVIDIA GPU is present but no nvidia ICD file in ${host.icdDirs.join(', ')} (the driver's Vulkan part is not installed?): the loader's default search is used, which may pick a software adapter${absent}`,
    };
  }
  const soft = [host.swiftshaderIcd, ...icds.filter((f) => f.driver === 'lvp').map((f) => f.path)].find((p) => host.exists(p));
  if (soft) {
    const file = readIcd(host, soft);
    return { vk_icd_filenames: soft, kind: 'software', icd_files: [file], device_names: names(soft), source: 'detected', why: `no hardware Vulkan adapter on this host: ${file.driver}, a software rasteriser on the CPU${absent}` };
  }
  return { vk_icd_filenames: null, kind: 'unknown', icd_files: icds, device_names: names(null), source: 'detected', why: `no hardware Vulkan adapter and no SwiftShader or lavapipe ICD: the loader's default search is used${absent}` };
}

/**
 * This host, or (tests, `bash bench/gpu.sh --dry-run` with GPU_SH_FAKE_ROOT) a fake one whose /dev
 * and ICD folders live under `root`; paths are reported as the host would see them.
 */
export function hostAt(root = '/', env: NodeJS.ProcessEnv = process.env): VulkanHost {
  const at = (p: string): string => (root === '/' ? p : join(root, p));
  return {
    env,
    icdDirs: ICD_DIRS,
    swiftshaderIcd: SWIFTSHADER_ICD,
    exists: (p) => existsSync(at(p)),
    list: (d) => readdirSync(at(d)),
    read: (p) => readFileSync(at(p), 'utf8'),
    vulkaninfo: (icd) => {
      if (root !== '/') return [];
      const e = { ...env };
      if (icd) e['VK_ICD_FILENAMES'] = icd;
      const r = spawnSync('vulkaninfo', ['--summary'], { encoding: 'utf8', timeout: 15_000, env: e });
      if (r.error || r.status !== 0) return [];
      return [...r.stdout.matchAll(/deviceName\s*=\s*(.+)/g)].map((m) => m[1]!.trim());
    },
  };
}

/** The environment a webgpu server gets: VK_ICD_FILENAMES when one was chosen, nothing otherwise. */
export function webgpuEnv(a: WebgpuAdapter): NodeJS.ProcessEnv {
  return a.vk_icd_filenames ? { VK_ICD_FILENAMES: a.vk_icd_filenames } : {};
}
