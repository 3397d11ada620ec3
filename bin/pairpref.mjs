#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), so there is no build step between a clone and `npm start`.
import { register } from 'tsx/esm/api';

register();
// Tracing (`serve --otlp-endpoint URL`, or OTEL_EXPORTER_OTLP_ENDPOINT) starts here, before the CLI
// imports @grpc/grpc-js: the instrumentation's ESM loader hook only sees modules imported after it.
const { tracingTarget, startTracing } = await import('../platform/telemetry.ts');
let target = null;
try {
  target = tracingTarget(process.argv.slice(2), process.env);
} catch (e) {
  process.stderr.write(`pairpref: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
if (target) {
  const { readFileSync } = await import('node:fs');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  await startTracing(target, version);
}
await import('../cli/main.ts');
