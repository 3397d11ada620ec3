// onnxruntime-web as a pairpref runtime: a bundle fetched over HTTP, a WebGPU session with a wasm
// fallback, and core's batch path. The page (web/src) uses this; no model logic lives here.
import * as ort from 'onnxruntime-web/webgpu';
import { resolvePreferenceConfig } from '../../core/config.ts';
import type { TensorMaker } from '../../core/feeds.ts';
import { planServedGraph, servedAsIs, type GraphPlan } from '../../core/graph-edit.ts';
import { signatureOf, type GraphSignature } from '../../core/graph.ts';
import { byteSource, externalDataFiles, OnnxFormatError, readOnnxModel } from '../../core/onnx-proto.ts';
import { createPreprocessor } from '../../core/preprocess.ts';
import type { OutputTensor, SessionRun } from '../../core/run-batch.ts';
import type { Bundle } from '../../core/runtime.ts';
import { createTokenizer } from '../../core/tokenizer.ts';
import type { PreferenceConfig } from '../../core/types.ts';

export type Provider = 'webgpu' | 'wasm';

/** What the page asks for: 'auto' is WebGPU on a hardware adapter, else wasm; 'webgpu' takes a software adapter too. */
export type ProviderPreference = 'auto' | Provider;

/** The WebGPU adapter the browser offers. */
export interface AdapterInfo {
  /** vendor, architecture, device and description as GPUAdapterInfo gives them (what is not empty). */
  readonly description: string;
  /**
   * A fallback or software adapter (GPUAdapterInfo.isFallbackAdapter, GPUAdapter.isFallbackAdapter, or
   * a known CPU implementation: SwiftShader, llvmpipe, lavapipe, WARP): WebGPU emulated on the CPU,
   * slower than wasm for these models.
   */
  readonly software: boolean;
}

export interface WebBundle extends Bundle {
  /** model.onnx, fetched. */
  readonly model: Uint8Array;
  /**
   * The external data files model.onnx keeps its weights in (checked to be there), as
   * onnxruntime-web's externalData option takes them: their path in the model and their URL, which
   * onnxruntime-web fetches itself.
   */
  readonly externalData: ReadonlyArray<{ readonly path: string; readonly data: string }>;
}

export interface WebSession extends SessionRun<ort.Tensor> {
  readonly signature: GraphSignature;
  /** The execution provider every run of this session uses. */
  readonly provider: Provider;
  /** Why WebGPU is not used (null when it is). */
  readonly fallbackReason: string | null;
  /** The browser's WebGPU adapter, when it has one (also when wasm runs). */
  readonly adapter: AdapterInfo | null;
}

/** "WebGPU", "WebGPU (software)" or "wasm (CPU)": what the page calls the provider it runs on. */
export function providerLabel(provider: Provider, adapter: AdapterInfo | null): string {
  if (provider === 'wasm') return 'wasm (CPU)';
  return adapter?.software ? 'WebGPU (software)' : 'WebGPU';
}

export const WEB_TENSORS: TensorMaker<ort.Tensor> = {
  int64: (data: BigInt64Array, dims: readonly number[]) => new ort.Tensor('int64', data, dims),
  float32: (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims),
};

/** Where onnxruntime-web finds its wasm files (a URL ending in '/'). */
export function configureWasm(ortBase: string): void {
  ort.env.wasm.wasmPaths = ortBase;
  ort.env.logLevel = 'error';
}

async function fetchOk(url: string, what: string, optional = false): Promise<Response | null> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${what} from ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Static servers with an SPA fallback answer a missing file with index.html.
  const html = (res.headers.get('content-type') ?? '').includes('text/html');
  if (optional && (res.status === 404 || (res.ok && html))) return null;
  if (res.ok) return res;
  throw new Error(`cannot fetch ${what} from ${url}: HTTP ${res.status}`);
}

async function fetchJson(url: string, what: string, optional = false): Promise<unknown> {
  const res = await fetchOk(url, what, optional);
  if (res === null) return undefined;
  try {
    return (await res.json()) as unknown;
  } catch (e) {
    throw new Error(`${what} at ${url} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A bundle directory served over HTTP: `base` ends in '/'. */
export async function fetchBundle(base: string): Promise<WebBundle> {
  const [prefJson, tokenizerJson, tokenizerConfig, modelRes] = await Promise.all([
    fetchJson(`${base}preference.json`, 'preference.json'),
    fetchJson(`${base}tokenizer.json`, 'tokenizer.json'),
    fetchJson(`${base}tokenizer_config.json`, 'tokenizer_config.json', true),
    fetchOk(`${base}model.onnx`, 'model.onnx'),
  ]);
  const config = resolvePreferenceConfig(prefJson);
  const preprocessor = createPreprocessor(config, createTokenizer(tokenizerJson, tokenizerConfig));
  const model = new Uint8Array(await modelRes!.arrayBuffer());
  const externalData = await externalDataOf(base, model);
  return { location: base, modelPath: `${base}model.onnx`, config, tokenizerJson, tokenizerConfig, preprocessor, model, externalData };
}

/** The external data files of a fetched model.onnx, each checked to be there (a HEAD request) and named when it is not. */
async function externalDataOf(base: string, model: Uint8Array): Promise<WebBundle['externalData']> {
  let files;
  try {
    files = externalDataFiles(readOnnxModel(byteSource(model)).graph);
  } catch (e) {
    if (e instanceof OnnxFormatError) return []; // onnxruntime-web says what is wrong when the session opens
    throw e;
  }
  return Promise.all(
    files.map(async (f) => {
      if (f.location === '' || f.location.startsWith('/') || f.location.split(/[\\/]/).includes('..') || /^[a-z]+:/i.test(f.location)) {
        throw new Error(`model.onnx keeps ${f.tensors} tensor(s) in external data "${f.location}", which is not a file of the bundle`);
      }
      const url = `${base}${f.location}`;
      const missing = `model.onnx keeps ${f.tensors} tensor(s) in the external data file "${f.location}", which cannot be fetched from ${url}`;
      let res: Response;
      try {
        res = await fetch(url, { method: 'HEAD' });
      } catch (e) {
        throw new Error(`${missing}: ${e instanceof Error ? e.message : String(e)}`);
      }
      // A server without HEAD (405) is left to onnxruntime-web's own fetch; an SPA fallback's index.html is a missing file.
      if ((!res.ok && res.status !== 405) || (res.headers.get('content-type') ?? '').includes('text/html')) throw new Error(`${missing}: HTTP ${res.status}`);
      return { path: f.location, data: url };
    }),
  );
}

/** The parts of GPUAdapter read here (lib.dom of TypeScript 5.9 has no WebGPU types). */
interface GpuAdapterLike {
  readonly info?: { readonly vendor?: string; readonly architecture?: string; readonly device?: string; readonly description?: string; readonly isFallbackAdapter?: boolean };
  /** The older place of the flag (Chrome before GPUAdapterInfo.isFallbackAdapter). */
  readonly isFallbackAdapter?: boolean;
}

interface GpuNavigator {
  readonly gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> };
}

/** CPU implementations of WebGPU/Vulkan/D3D12 by the names their adapters give. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|\bwarp\b|basic render|software/i;

/** An adapter's identity and whether it is a software one. */
export function describeAdapter(a: GpuAdapterLike): AdapterInfo {
  const i = a.info ?? {};
  const description = [i.vendor, i.architecture, i.device, i.description].filter((x): x is string => typeof x === 'string' && x !== '').join(' ') || 'unknown adapter';
  const software = i.isFallbackAdapter === true || a.isFallbackAdapter === true || SOFTWARE_ADAPTER.test(description);
  return { description, software };
}

/** The browser's WebGPU adapter, or why there is none (shown on the page). */
async function webgpuAdapter(): Promise<{ adapter: AdapterInfo } | { missing: string }> {
  const gpu = (navigator as Navigator & GpuNavigator).gpu;
  if (gpu === undefined) return { missing: 'this browser does not expose WebGPU (navigator.gpu is undefined)' };
  try {
    const a = await gpu.requestAdapter();
    if (a === null) return { missing: 'navigator.gpu.requestAdapter() found no GPU adapter' };
    return { adapter: describeAdapter(a) };
  } catch (e) {
    return { missing: `navigator.gpu.requestAdapter() failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}

function wrap(session: ort.InferenceSession, provider: Provider, fallbackReason: string | null, adapter: AdapterInfo | null, plan: GraphPlan | null): WebSession {
  return {
    tensors: WEB_TENSORS,
    signature: plan ? plan.signature : signatureOf(session),
    graph: plan ? plan.served : servedAsIs(session.inputNames),
    provider,
    fallbackReason,
    adapter,
    async run(feeds, output): Promise<OutputTensor> {
      const t = (await session.run(feeds, [output]))[output];
      if (!t) throw new Error(`the model returned no "${output}" output`);
      // The typed array stays valid after dispose; dispose frees what onnxruntime-web holds for it.
      const out = { type: t.type, data: t.data, dims: t.dims };
      t.dispose();
      return out;
    },
  };
}

/**
 * WebGPU when the browser has an adapter and the session starts on it, else wasm (and why). With
 * 'auto' a software adapter counts as none: emulated on the CPU, WebGPU is slower than wasm (one
 * short row took 24 s on SwiftShader's WebGPU and 0.56 s on wasm); 'webgpu' uses it anyway.
 */
export async function createSession(
  model: Uint8Array,
  prefer: ProviderPreference,
  bundle?: { readonly config: PreferenceConfig; readonly externalData?: WebBundle['externalData'] },
): Promise<WebSession> {
  // The graph served is the one the server serves (core/graph-edit.ts): label-token gather, bfloat16 cast.
  let plan: GraphPlan | null = null;
  try {
    plan = bundle ? planServedGraph(byteSource(model), bundle.config) : null;
  } catch (e) {
    if (!(e instanceof OnnxFormatError)) throw e;
  }
  const bytes = plan?.bytes ?? model;
  const external = bundle?.externalData?.length ? { externalData: bundle.externalData.map((f) => ({ path: f.path, data: f.data })) } : {};
  const probe = prefer === 'wasm' ? null : await webgpuAdapter();
  const adapter = probe && 'adapter' in probe ? probe.adapter : null;
  let fallbackReason: string | null =
    probe === null
      ? 'wasm was requested (?ep=wasm)'
      : 'missing' in probe
        ? probe.missing
        : prefer === 'auto' && probe.adapter.software
          ? `the only WebGPU adapter is a software one (${probe.adapter.description}), which is slower than wasm; ?ep=webgpu uses it anyway`
          : null;
  if (fallbackReason === null) {
    try {
      // webgpu only: a session that silently fell back would misreport the provider.
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3, ...external });
      return wrap(session, 'webgpu', null, adapter, plan);
    } catch (e) {
      fallbackReason = `the WebGPU session failed to start: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3, ...external });
  return wrap(session, 'wasm', fallbackReason, adapter, plan);
}
