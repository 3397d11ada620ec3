// Entry of every worker thread. Workers do not inherit tsx's loader hooks from the main thread,
// so register them here, then load the TypeScript module named in workerData.entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
