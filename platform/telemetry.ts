// Tracing for `pairpref serve`: the OpenTelemetry SDK (NodeTracerProvider, W3C trace-context
// propagation), the OTLP/HTTP exporter and the grpc-js instrumentation (a SERVER span per call).
//
// bin/pairpref.mjs starts it before anything imports @grpc/grpc-js: under ESM the instrumentation
// only sees grpc-js through import-in-the-middle's loader hook, which must be registered
// (module.register) before the module is first imported, or it silently instruments nothing
// (open-telemetry/opentelemetry-js#5301). The SDK packages are imported here lazily, so a serve
// without tracing (and every other command) does not load them.
import { register as registerLoaderHook } from 'node:module';

/** Where spans go: a base URL (OTLP/HTTP `/v1/traces` is appended) or, from the env, what the exporter reads. */
export interface TracingTarget {
  /** The traces URL, or null when the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT itself. */
  readonly url: string | null;
  /** As the user gave it (for the log line). */
  readonly described: string;
}

const FLAG = '--otlp-endpoint';

/** `--otlp-endpoint http://host:4318` -> http://host:4318/v1/traces (a URL already ending in /v1/traces is kept). */
function tracesUrl(endpoint: string): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new Error(`${FLAG}: "${endpoint}" is not a URL (e.g. http://otel-collector:4318)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${FLAG}: "${endpoint}" must be an http:// or https:// URL (OTLP/HTTP)`);
  return u.pathname.replace(/\/+$/, '').endsWith('/v1/traces') ? u.href : `${u.href.replace(/\/+$/, '')}/v1/traces`;
}

/**
 * Whether `pairpref ARGS` should trace, and where to: `serve` with `--otlp-endpoint URL` (or
 * `--otlp-endpoint=URL`), or `serve` with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
 * OTEL_EXPORTER_OTLP_ENDPOINT set; never with OTEL_SDK_DISABLED=true or for other commands.
 */
export function tracingTarget(args: readonly string[], env: Readonly<Record<string, string | undefined>>): TracingTarget | null {
  if (args[0] !== 'serve' || env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return null;
  let flag: string | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === FLAG && i + 1 < args.length) flag = args[++i];
    else if (a.startsWith(`${FLAG}=`)) flag = a.slice(FLAG.length + 1);
  }
  if (flag !== undefined && flag !== '') return { url: tracesUrl(flag), described: tracesUrl(flag) };
  const fromEnv = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  return fromEnv ? { url: null, described: `${fromEnv} (from the OTEL_EXPORTER_OTLP_* environment)` } : null;
}

/** gRPC methods that get no span: load balancer and kubelet health checks would drown the rest. */
const UNTRACED_METHODS = ['Check', 'Watch'];

let running: { target: TracingTarget; shutdown: () => Promise<void> } | null = null;

/** The target tracing was started with, or null when it is off. */
export function tracingStarted(): TracingTarget | null {
  return running?.target ?? null;
}

/**
 * Registers the loader hook, the tracer provider (global; AsyncLocalStorage context, W3C
 * trace-context and baggage propagators) and the grpc-js instrumentation. Call it before
 * @grpc/grpc-js is imported. Span batching, limits and sampling follow the usual OTEL_BSP_*,
 * OTEL_TRACES_SAMPLER(_ARG) variables; OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override the
 * service name "pairpref".
 */
export async function startTracing(target: TracingTarget, serviceVersion: string): Promise<void> {
  if (running) return;
  // Only grpc-js is wrapped: every other module (our .ts through tsx included) loads untouched.
  registerLoaderHook('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: ['@grpc/grpc-js'] } });
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, res, { registerInstrumentations }, { GrpcInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/instrumentation'),
    import('@opentelemetry/instrumentation-grpc'),
  ]);
  const resource = res
    .defaultResource()
    .merge(res.resourceFromAttributes({ 'service.name': 'pairpref', 'service.version': serviceVersion }))
    .merge(res.detectResources({ detectors: [res.envDetector] }));
  const exporter = new OTLPTraceExporter(target.url ? { url: target.url } : {});
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  provider.register();
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_METHODS })] });
  running = { target, shutdown: () => provider.shutdown() };
}

/**
 * Sends the SDK's own warnings and errors (a collector that cannot be reached, spans dropped from a
 * full queue) to `warn`, prefixed "tracing: ": without this they are silent.
 */
export async function reportTracingProblems(warn: (msg: string) => void): Promise<void> {
  if (!running) return;
  const { diag, DiagLogLevel } = await import('@opentelemetry/api');
  const say = (message: string, ...args: unknown[]): void => {
    const extra = args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).filter((s) => s && s !== '{}');
    warn(`tracing: ${[message, ...extra].join(' ')}`);
  };
  const quiet = (): void => undefined;
  diag.setLogger({ error: say, warn: say, info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

/** Exports the spans still buffered and stops the provider (before the process exits); at most timeoutMs. */
export async function stopTracing(timeoutMs = 5000): Promise<void> {
  const r = running;
  if (!r) return;
  running = null;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([r.shutdown().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs).unref()))]);
  clearTimeout(timer);
}
