// onnxruntime-node as a pairpref runtime: bundles from disk, --devices on this host, one session
// per device in its own worker thread. The engine reaches it only through core's Runtime contract;
// the CLI, the bench and tests are the places that wire it in.
import type { Runtime } from '../../core/runtime.ts';
import { defaultIntraOpThreads, defaultPreprocessThreads, resolveDevices } from './devices.ts';
import { startWorkerRunner } from './worker-runner.ts';

export const nodeRuntime: Runtime = {
  resolveDevices: (spec) => resolveDevices(spec),
  defaultIntraOpThreads,
  defaultPreprocessThreads,
  startRunner: (bundle, device, intraOpThreads) => startWorkerRunner({ modelPath: bundle.modelPath, device, intraOpThreads, config: bundle.config }),
  // The native tokenizer (the Rust `tokenizers` binding); the engine's tokenizer workers import it by URL.
  tokenizerModule: new URL('./tokenizer.ts', import.meta.url).href,
};

export { loadBundle, BundleError, type NodeBundle } from './bundle.ts';
export { createBatchTokenizer, loadNativeTokenizers } from './tokenizer.ts';
export { CUDA_INSTALL_HINT, DeviceConfigError, cudaProviderInstalled, resolveDevices, defaultIntraOpThreads, defaultPreprocessThreads } from './devices.ts';
export { createSession, openSession, NODE_TENSORS, CPU, ORT_VERSION, type NodeSession } from './session.ts';
export { sessionOptions, type GraphOptLevel, type SessionTuning } from './session-options.ts';
