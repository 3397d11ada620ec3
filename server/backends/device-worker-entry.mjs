// Worker threads do not inherit tsx's loader hooks from the main thread: register them here.
import { register } from 'tsx/esm/api';

register();
await import('./device-worker.ts');
