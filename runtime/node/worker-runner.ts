// Main-thread side of a device worker: a ModelRunner whose session lives in its own thread.
import type { GraphSignature } from '../../core/graph.ts';
import type { Probs } from '../../core/postprocess.ts';
import type { DeviceSpec, ModelRunner } from '../../core/runtime.ts';
import type { EncodedRow, PreferenceConfig } from '../../core/types.ts';
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../../platform/worker-thread.ts';
import { sessionOptions } from './session-options.ts';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker-protocol.ts';

const MODULE = new URL('./device-worker.ts', import.meta.url);

export interface WorkerRunnerOptions {
  readonly modelPath: string;
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
  readonly config: PreferenceConfig;
}

const WEBGPU_HINT =
  '\nThe WebGPU provider (Dawn) needs the Vulkan loader (Debian: libvulkan1) and a Vulkan driver. Without a GPU, ' +
  "Chromium's software driver works: apt-get install chromium libvulkan1 and set " +
  'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.';

function hintFor(device: DeviceSpec): string {
  return device.provider === 'webgpu' ? WEBGPU_HINT : '';
}

function unflatten(flat: Float64Array): Probs[] {
  const out: Probs[] = new Array(flat.length / 3);
  for (let i = 0; i < out.length; i++) out[i] = [flat[3 * i]!, flat[3 * i + 1]!, flat[3 * i + 2]!];
  return out;
}

/** The worker's first message: its session's signature, or why the session could not be created. */
function sessionReady(worker: Worker, device: DeviceSpec): Promise<GraphSignature> {
  return new Promise<GraphSignature>((resolve, reject) => {
    const onMessage = (m: WorkerReply): void => {
      if (m.type === 'ready') resolve(m.signature);
      else if (m.type === 'failed') reject(new Error(`device ${device.name}: could not create the onnxruntime session: ${m.message}${hintFor(device)}`));
      worker.off('message', onMessage);
    };
    worker.on('message', onMessage);
    worker.once('error', (e) => reject(new Error(`device ${device.name}: worker failed: ${e.message}`)));
  });
}

export async function startWorkerRunner(opts: WorkerRunnerOptions): Promise<ModelRunner> {
  const init: WorkerInit = { modelPath: opts.modelPath, sessionOptions: sessionOptions(opts.device, opts.intraOpThreads), config: opts.config };
  const worker = startTsWorker(MODULE, init);
  const pending = new Map<number, { resolve: (o: Probs[]) => void; reject: (e: Error) => void }>();
  let seq = 0;
  let dead: Error | null = null;

  const signature = await sessionReady(worker, opts.device);

  worker.on('message', (m: WorkerReply) => {
    if (m.type !== 'result' && m.type !== 'error') return;
    const p = pending.get(m.seq);
    if (!p) return;
    pending.delete(m.seq);
    if (m.type === 'result') p.resolve(unflatten(m.probs));
    else p.reject(new Error(`device ${opts.device.name}: ${m.message}`));
  });
  const failureListeners: Array<(e: Error) => void> = [];
  let stopping = false;
  const failAll = (e: Error): void => {
    const first = dead === null;
    dead = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
    if (first && !stopping) for (const l of failureListeners) l(e);
  };
  worker.on('error', (e) => failAll(new Error(`device ${opts.device.name}: worker crashed: ${e.message}`)));
  worker.on('exit', (code) => failAll(new Error(`device ${opts.device.name}: worker exited (code ${code})`)));

  let gone = false;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  void exited.then(() => (gone = true));
  const stopWorker = async (type: 'close' | 'crash'): Promise<void> => {
    if (gone) return;
    if (type === 'close') stopping = true;
    worker.postMessage({ type } satisfies WorkerRequest);
    // A worker wedged for a minute is ended anyway: a stuck shutdown is worse than the abort risk.
    const wedged = setTimeout(() => void worker.terminate(), 60_000);
    await exited;
    clearTimeout(wedged);
  };

  return {
    device: opts.device,
    intraOpThreads: opts.intraOpThreads,
    signature,
    run(rows: readonly EncodedRow[]): Promise<Probs[]> {
      if (dead) return Promise.reject(dead);
      const id = seq++;
      return new Promise<Probs[]>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        // Copied, not transferred: the rows' arrays stay with the caller (numTokens, swap TTA, warm-up).
        worker.postMessage({ type: 'run', seq: id, rows } satisfies WorkerRequest);
      });
    },
    // Never worker.terminate() while onnxruntime runs a batch: its native thread would call back
    // into a dead environment and abort the whole process (Napi::Error, exit 134). The worker is
    // asked to stop instead, and stops once its running batch (if any) is done.
    onFailure(listener) {
      failureListeners.push(listener);
    },
    async terminate(): Promise<void> {
      stopping = true;
      failAll(new Error(`device ${opts.device.name}: stopped`));
      await stopWorker('close');
    },
    // Waits for the thread even when terminate() already failed the runner: exiting the process
    // before the worker's running batch is done would abort it.
    async close(): Promise<void> {
      await stopWorker('close');
    },
    async crash(): Promise<void> {
      await stopWorker('crash');
    },
  };
}
