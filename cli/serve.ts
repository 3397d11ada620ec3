// `pairpref serve`: the gRPC sidecar.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { DEFAULT_BATCHING } from '../core/batch.ts';
import { createLogger, type Logger, type LogLevel } from '../core/log.ts';
import { DEFAULT_LIMITS } from '../engine/admission.ts';
import { createProcessLogger, type ProcessLogLevel } from '../platform/log.ts';
import { reportTracingProblems, stopTracing, tracingStarted } from '../platform/telemetry.ts';
import type { TlsOptions } from '../server/security.ts';
import { DEFAULT_CONNECTION_AGE_GRACE_MS, DEFAULT_DRAIN, DEFAULT_SERVER_LIMITS, type RunningServer } from '../server/server.ts';
import { intArg, tokenizerOption } from './args.ts';
import { serveModel } from './wiring.ts';

/** stderr log lines: pretty is core/log.ts's plain line, json is pino's object (platform/log.ts). */
const LOG_FORMATS = ['json', 'pretty'] as const;
type LogFormat = (typeof LOG_FORMATS)[number];

/** Exit code of a drain that had to cancel calls still running at --drain-timeout-ms. */
export const EXIT_DRAIN_CANCELLED = 2;

interface ServeFlags {
  model: string;
  host: string;
  port: number;
  devices: string;
  maxBatchTokens: number;
  maxBatchSize: number;
  maxQueueDelayMs: number;
  intraOpThreads?: number;
  preprocessThreads?: number;
  tokenizer: 'native' | 'js';
  maxInflightPerStream: number;
  maxQueueTokens: number;
  maxRowsPerCall: number;
  maxRowChars: number;
  maxStreams: number;
  maxMessageBytes: number;
  metricsPort?: number;
  httpPort?: number;
  httpCorsOrigin: string[];
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  authTokenFile?: string;
  healthPort?: number;
  drainGraceMs: number;
  drainTimeoutMs: number;
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  logLevel: Exclude<LogLevel, 'silent'>;
  logFormat: LogFormat;
  /** Read by bin/pairpref.mjs, which starts tracing before grpc-js loads; declared here for --help and checking. */
  otlpEndpoint?: string;
}

function readFlagFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${what}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** --tls-cert/--tls-key (both or neither) and --tls-client-ca, read from disk. */
function tlsFromFlags(o: Pick<ServeFlags, 'tlsCert' | 'tlsKey' | 'tlsClientCa'>): TlsOptions | undefined {
  if (!o.tlsCert && !o.tlsKey) {
    if (o.tlsClientCa) throw new Error('--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)');
    return undefined;
  }
  if (!o.tlsCert || !o.tlsKey) throw new Error('--tls-cert and --tls-key go together');
  return {
    cert: readFlagFile(o.tlsCert, '--tls-cert'),
    key: readFlagFile(o.tlsKey, '--tls-key'),
    ...(o.tlsClientCa ? { clientCa: readFlagFile(o.tlsClientCa, '--tls-client-ca') } : {}),
  };
}

/** The token file's content, trimmed; an empty file is an error, not "no auth". */
function tokenFromFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const token = readFlagFile(path, '--auth-token-file').toString('utf8').trim();
  if (token === '') throw new Error(`--auth-token-file: ${path} is empty`);
  return token;
}

/** --http-cors-origin, repeatable and comma-separated: each an origin (scheme://host[:port], no path) or '*'. */
export function collectOrigins(value: string, previous: string[]): string[] {
  const out = [...previous];
  for (const v of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (v !== '*') {
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        throw new InvalidArgumentError(`--http-cors-origin: "${v}" is not an origin such as http://localhost:5173`);
      }
      if (u.origin === 'null') throw new InvalidArgumentError(`--http-cors-origin: "${v}" is not an origin such as http://localhost:5173`);
      if (u.origin !== v) throw new InvalidArgumentError(`--http-cors-origin: "${v}" is not an origin (write it as ${u.origin}: scheme, host and port only)`);
    }
    out.push(v);
  }
  return out;
}

function addFlags(cmd: Command): Command {
  return cmd
    .option('--model <dir>', 'model bundle directory (model.onnx, tokenizer.json, preference.json)', 'models/default')
    .option('--host <host>', 'address to listen on (a non-loopback address without TLS or a token logs a warning)', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', intArg('--port', 0), 50051)
    .option('--devices <list>', 'comma-separated devices, one session each: auto, cpu, cpu,cpu, webgpu, cuda:0,cuda:1 (auto = every visible CUDA GPU when the CUDA provider is installed and a test session on cuda:0 runs, else cpu)', 'auto')
    .option('--max-batch-tokens <n>', 'padded-token budget of one batch (rows x longest row)', intArg('--max-batch-tokens', 1), DEFAULT_BATCHING.maxBatchTokens)
    .option('--max-batch-size <n>', 'most rows in one batch', intArg('--max-batch-size', 1), DEFAULT_BATCHING.maxBatchSize)
    .option('--max-queue-delay-ms <ms>', 'longest a row waits for a fuller batch while a device is free', intArg('--max-queue-delay-ms', 0), DEFAULT_BATCHING.maxQueueDelayMs)
    .option('--intra-op-threads <n>', 'onnxruntime threads per session (default: the cores, or the container\'s CPU quota when lower, split over the CPU sessions)', intArg('--intra-op-threads', 1))
    .option('--preprocess-threads <n>', 'tokenizer worker threads; 0 tokenizes on the event loop (default: 1 with CPU sessions, else cores - 1, at most 8)', intArg('--preprocess-threads', 0))
    .addOption(tokenizerOption())
    .option('--max-queue-tokens <n>', 'tokens waiting (tokenizer backlog, estimated, plus batch queue) beyond which new calls get RESOURCE_EXHAUSTED', intArg('--max-queue-tokens', 1), DEFAULT_LIMITS.maxQueueTokens)
    .option('--max-rows-per-call <n>', 'comparisons in one Score call; more is INVALID_ARGUMENT (use ScoreStream for large jobs)', intArg('--max-rows-per-call', 1), DEFAULT_SERVER_LIMITS.maxRowsPerCall)
    .option('--max-row-chars <n>', 'characters of one field (all its turns); a longer field is a per-row INVALID_ARGUMENT, never tokenized', intArg('--max-row-chars', 1), DEFAULT_LIMITS.maxRowChars)
    .option('--max-streams <n>', 'open ScoreStream calls; one more is RESOURCE_EXHAUSTED', intArg('--max-streams', 1), DEFAULT_SERVER_LIMITS.maxStreams)
    .option('--max-inflight-per-stream <n>', 'rows one ScoreStream may have unanswered (until flushed) before the server stops reading it', intArg('--max-inflight-per-stream', 1), DEFAULT_SERVER_LIMITS.maxInflightPerStream)
    .option('--max-message-bytes <n>', 'largest request or response message; larger is RESOURCE_EXHAUSTED', intArg('--max-message-bytes', 1024), DEFAULT_SERVER_LIMITS.maxMessageBytes)
    .option('--tls-cert <file>', 'PEM certificate chain: serve TLS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'PEM CA bundle: require client certificates it signed (mutual TLS)')
    .option('--auth-token-file <file>', 'require "authorization: Bearer <token>" on every call but health checks (the file holds the token)')
    .option('--health-port <port>', 'also serve grpc.health.v1.Health alone, in plaintext, on this port (for kubelet probes when TLS is on)', intArg('--health-port', 0))
    .option('--drain-grace-ms <ms>', 'on SIGTERM/SIGINT: health NOT_SERVING, still serving, for this long before new calls are refused', intArg('--drain-grace-ms', 0), DEFAULT_DRAIN.graceMs)
    .option('--drain-timeout-ms <ms>', 'then in-flight calls may take this long before they are cancelled (exit code 2)', intArg('--drain-timeout-ms', 0), DEFAULT_DRAIN.timeoutMs)
    .option('--max-connection-age-ms <ms>', 'close each client connection (GOAWAY) after this long so clients re-resolve and spread over replicas added since; 0 = never', intArg('--max-connection-age-ms', 0), 0)
    .option('--max-connection-age-grace-ms <ms>', 'calls on a connection past its age get this long to finish before it is closed', intArg('--max-connection-age-grace-ms', 0), DEFAULT_CONNECTION_AGE_GRACE_MS)
    .option('--metrics-port <port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (off by default)', intArg('--metrics-port', 0))
    .option('--http-port <port>', 'also serve PairwisePreference over Connect, gRPC-Web and JSON on this port (browsers, curl): same engine, limits, TLS and token (off by default)', intArg('--http-port', 0))
    .option('--http-cors-origin <origins>', 'origins whose pages may call --http-port (CORS), comma-separated or repeated, e.g. http://localhost:5173; * allows any', collectOrigins, [])
    .option('--otlp-endpoint <url>', 'export OpenTelemetry traces over OTLP/HTTP to this collector (e.g. http://otel-collector:4318; /v1/traces is appended); OTEL_EXPORTER_OTLP_ENDPOINT does the same (off by default)')
    .addOption(new Option('--log-level <level>', 'log verbosity (debug adds a line per call, with its request id)').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addOption(new Option('--log-format <format>', 'stderr log lines: pretty (ISO-TIME LEVEL message key=value) or json (one object per line)').choices([...LOG_FORMATS]).default('pretty'));
}

/**
 * First signal: drain, then exit 0 (or 2 when calls had to be cancelled). Second signal: stop the
 * worker threads (each after its running batch: a thread ended under a running onnxruntime session
 * aborts the process) and exit 130 (SIGINT) / 143 (SIGTERM). Installed before the model loads: a
 * signal during the load drains as soon as the server is up; a second one exits at once.
 */
function handleSignals(log: Logger): { serving(running: RunningServer): void } {
  let signals = 0;
  let running: RunningServer | null = null;
  let first: NodeJS.Signals | null = null;
  const drain = (r: RunningServer, sig: NodeJS.Signals): void => {
    log.info(`${sig}: draining in-flight calls, then exiting (send again to exit now)`);
    r.close().then(async ({ cancelled }) => {
      await stopTracing(); // the spans still buffered go out before the process does
      process.exit(cancelled ? EXIT_DRAIN_CANCELLED : 0);
    });
  };
  const stop = (sig: NodeJS.Signals): void => {
    const code = sig === 'SIGINT' ? 130 : 143;
    if (++signals > 1) {
      log.warn(`${sig} again: stopping now`);
      if (!running) process.exit(code);
      void running.terminate().finally(() => process.exit(code));
      return;
    }
    first = sig;
    if (running) drain(running, sig);
    else log.info(`${sig}: the model is still loading; draining as soon as it is up (send again to exit now)`);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return {
    serving(r) {
      running = r;
      if (first) drain(r, first);
    },
  };
}

export function registerServe(program: Command): void {
  addFlags(program.command('serve').description('Serve a model bundle over gRPC (PairwisePreference, grpc.health.v1.Health, reflection), and with --http-port over Connect, gRPC-Web and JSON.')).action(async (o: ServeFlags) => {
    // The server and engine log through it: core's plain lines, or pino's JSON (platform/log.ts, checked here to be core's Logger).
    const write = (line: string): void => void process.stderr.write(line);
    const log: Logger = o.logFormat === 'json' ? createProcessLogger({ level: o.logLevel satisfies ProcessLogLevel, write }) : createLogger(o.logLevel, write);
    await reportTracingProblems((msg) => log.warn(msg));
    const tls = tlsFromFlags(o);
    const authToken = tokenFromFile(o.authTokenFile);
    const signals = handleSignals(log);
    log.info(`loading ${o.model} on devices "${o.devices}"`);
    const running = await serveModel({
      modelDir: o.model,
      host: o.host,
      port: o.port,
      devices: o.devices,
      batching: { maxBatchTokens: o.maxBatchTokens, maxBatchSize: o.maxBatchSize, maxQueueDelayMs: o.maxQueueDelayMs },
      limits: { maxQueueTokens: o.maxQueueTokens, maxRowChars: o.maxRowChars },
      intraOpThreads: o.intraOpThreads,
      preprocessThreads: o.preprocessThreads,
      tokenizer: o.tokenizer,
      maxInflightPerStream: o.maxInflightPerStream,
      maxRowsPerCall: o.maxRowsPerCall,
      maxStreams: o.maxStreams,
      maxMessageBytes: o.maxMessageBytes,
      metricsPort: o.metricsPort,
      httpPort: o.httpPort,
      httpCorsOrigins: o.httpCorsOrigin,
      tls,
      authToken,
      healthPort: o.healthPort,
      drainGraceMs: o.drainGraceMs,
      drainTimeoutMs: o.drainTimeoutMs,
      maxConnectionAgeMs: o.maxConnectionAgeMs,
      maxConnectionAgeGraceMs: o.maxConnectionAgeGraceMs,
      logger: log,
    });
    const c = running.scorer.config;
    const security = `${tls ? (tls.clientCa ? 'mutual TLS' : 'TLS') : 'plaintext'}${authToken ? ', bearer token' : ''}`;
    log.info(`serving ${c.name} ${c.version} on ${running.address} (devices: ${running.scorer.devices.map((d) => d.device.name).join(',')}; ${security}; health: SERVING)`);
    if (running.healthPort !== null) log.info(`health checks (plaintext) on ${running.host}:${running.healthPort}`);
    if (running.metricsPort !== null) log.info(`metrics on http://${running.host}:${running.metricsPort}/metrics`);
    if (running.httpPort !== null) log.info(`HTTP (Connect, gRPC-Web, JSON) on ${tls ? 'https' : 'http'}://${running.host}:${running.httpPort}${o.httpCorsOrigin.length > 0 ? ` (CORS: ${o.httpCorsOrigin.join(', ')})` : ''}`);
    const tracing = tracingStarted();
    if (tracing) log.info(`tracing: OTLP/HTTP to ${tracing.described}`);
    else if (o.otlpEndpoint) log.warn('--otlp-endpoint is ignored: tracing starts in bin/pairpref.mjs, before @grpc/grpc-js loads; run pairpref through it');
    signals.serving(running);
  });
}
