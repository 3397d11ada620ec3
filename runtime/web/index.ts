// onnxruntime-web as a pairpref runtime: a bundle fetched over HTTP, a WebGPU session with a wasm
// fallback, and core's batch path. The page (web/src) uses this; no model logic lives here.
import * as ort from 'onnxruntime-web/webgpu';
import { resolvePreferenceConfig } from '../../core/config.ts';
import type { TensorMaker } from '../../core/feeds.ts';
import { signatureOf, type GraphSignature } from '../../core/graph.ts';
import { createPreprocessor } from '../../core/preprocess.ts';
import type { OutputTensor, SessionRun } from '../../core/run-batch.ts';
import type { Bundle } from '../../core/runtime.ts';
import { createTokenizer } from '../../core/tokenizer.ts';

export type Provider = 'webgpu' | 'wasm';

export interface WebBundle extends Bundle {
  /** model.onnx, fetched. */
  readonly model: Uint8Array;
}

export interface WebSession extends SessionRun<ort.Tensor> {
  readonly signature: GraphSignature;
  /** The execution provider every run of this session uses. */
  readonly provider: Provider;
  /** Why WebGPU is not used (null when it is). */
  readonly fallbackReason: string | null;
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
  return { location: base, modelPath: `${base}model.onnx`, config, tokenizerJson, tokenizerConfig, preprocessor, model };
}

interface GpuNavigator {
  readonly gpu?: { requestAdapter(): Promise<unknown> };
}

/** Null when a WebGPU adapter exists, else why not (shown on the page). */
async function webgpuMissingReason(): Promise<string | null> {
  const gpu = (navigator as Navigator & GpuNavigator).gpu;
  if (gpu === undefined) return 'this browser does not expose WebGPU (navigator.gpu is undefined)';
  try {
    if ((await gpu.requestAdapter()) === null) return 'navigator.gpu.requestAdapter() found no GPU adapter';
  } catch (e) {
    return `navigator.gpu.requestAdapter() failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  return null;
}

function wrap(session: ort.InferenceSession, provider: Provider, fallbackReason: string | null): WebSession {
  return {
    tensors: WEB_TENSORS,
    signature: signatureOf(session),
    provider,
    fallbackReason,
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

/** WebGPU when the browser has an adapter and the session starts on it, else wasm (and why). */
export async function createSession(model: Uint8Array, prefer: Provider): Promise<WebSession> {
  let fallbackReason = prefer === 'wasm' ? 'wasm was requested (?ep=wasm)' : await webgpuMissingReason();
  if (fallbackReason === null) {
    try {
      // webgpu only: a session that silently fell back would misreport the provider.
      const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
      return wrap(session, 'webgpu', null);
    } catch (e) {
      fallbackReason = `the WebGPU session failed to start: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  return wrap(session, 'wasm', fallbackReason);
}
