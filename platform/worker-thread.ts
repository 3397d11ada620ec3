// Starts a TypeScript module in a worker thread (see tsx-worker-entry.mjs).
import { Worker } from 'node:worker_threads';

const ENTRY = new URL('./tsx-worker-entry.mjs', import.meta.url);

/** `module` is a URL of a .ts file; `init` reaches it as workerData.init. */
export function startTsWorker(module: URL, init: unknown): Worker {
  return new Worker(ENTRY, { workerData: { entry: module.href, init } });
}
