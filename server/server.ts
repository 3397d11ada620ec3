// Starts the gRPC server: PairwisePreference, grpc.health.v1.Health and server reflection, with
// transport limits, TLS and a bearer token, and a drain that load balancers can see; and, with
// --http-port, the same PairwisePreference over Connect, gRPC-Web and JSON (http-server.ts) on the
// same engine, limits, token, TLS, metrics and drain.
import { Server, ServerInterceptingCall, status, type ServerInterceptor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Server as HttpServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { silentLogger, type Logger } from '../core/log.ts';
import type { Scorer } from '../engine/scorer.ts';
import { callOutcomeInterceptor, requestIdInterceptor } from './calls.ts';
import { createPreferenceService, RawPairwisePreferenceService, type RawPreferenceServer } from './grpc-service.ts';
import { startHttpPort, type HttpPort } from './http-server.ts';
import { createMetrics, serveMetrics, type Metrics } from './metrics.ts';
import { bearerTokenInterceptor, isLoopback, serverCredentials, type TlsOptions } from './security.ts';
import { createPreferenceCore, type PreferenceCore, type ServiceOptions } from './service-core.ts';

export const SERVICE_NAME = 'pairpref.v1.PairwisePreference';
const PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));

/** Transport limits; the engine's own (queue tokens, row size) are part of what `load` builds. */
export const DEFAULT_SERVER_LIMITS = {
  maxInflightPerStream: 512,
  maxRowsPerCall: 4096,
  maxStreams: 128,
  maxMessageBytes: 64 * 1024 * 1024,
} as const;

export const DEFAULT_DRAIN = { graceMs: 2000, timeoutMs: 10_000 } as const;

/** How long a connection past --max-connection-age-ms may finish its calls before it is closed. */
export const DEFAULT_CONNECTION_AGE_GRACE_MS = 30_000;

export interface ServeOptions {
  /**
   * Loads the model (the caller wires a runtime into the engine). Called after the listener is up,
   * so health answers NOT_SERVING and scoring UNAVAILABLE while it runs.
   */
  readonly load: () => Promise<Scorer>;
  readonly logger?: Logger;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly maxInflightPerStream?: number;
  readonly maxRowsPerCall?: number;
  readonly maxStreams?: number;
  /** Largest request or response message in bytes (grpc-js refuses larger ones with RESOURCE_EXHAUSTED). */
  readonly maxMessageBytes?: number;
  /**
   * Close each client connection (GOAWAY) after this long, so clients re-resolve and reach replicas
   * added since they connected (a headless Service behind an autoscaler); off when undefined or 0.
   */
  readonly maxConnectionAgeMs?: number;
  /** Calls on a connection past its age get this long to finish; default DEFAULT_CONNECTION_AGE_GRACE_MS. */
  readonly maxConnectionAgeGraceMs?: number;
  /** Serve Prometheus metrics on this HTTP port; off when undefined. */
  readonly metricsPort?: number;
  readonly tls?: TlsOptions;
  /** Bearer token every call but health checks must carry. */
  readonly authToken?: string;
  /** A plaintext port serving grpc.health.v1.Health alone (kubelet gRPC probes cannot do TLS). */
  readonly healthPort?: number;
  /** How long health answers NOT_SERVING, with the listener still up, before a drain refuses new calls (default 0 here; the CLI's default is DEFAULT_DRAIN.graceMs). */
  readonly drainGraceMs?: number;
  /** How long in-flight calls may take to finish once new calls are refused; then they are cancelled. */
  readonly drainTimeoutMs?: number;
  /** Also serve PairwisePreference over Connect, gRPC-Web and JSON on this port (HTTP/1.1; HTTP/2 too with TLS); off when undefined. */
  readonly httpPort?: number;
  /** Origins whose pages may call the HTTP port (CORS), or '*'; none by default. */
  readonly httpCorsOrigins?: readonly string[];
}

export interface DrainResult {
  /** Calls were still running at the drain timeout and had to be cancelled. */
  readonly cancelled: boolean;
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly scorer: Scorer;
  readonly metricsPort: number | null;
  readonly healthPort: number | null;
  /** The HTTP port (Connect, gRPC-Web, JSON), when --http-port is set. */
  readonly httpPort: number | null;
  /**
   * Drains: health NOT_SERVING for the grace period (calls still served), then new calls are refused
   * and open streams read no more rows; in-flight work finishes up to the timeout.
   */
  close(opts?: { graceMs?: number; timeoutMs?: number }): Promise<DrainResult>;
  /** Stops now: worker threads ended first, then the listener; for a second signal. */
  terminate(): Promise<void>;
}

function bindAddress(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function bind(server: Server, address: string, creds: ReturnType<typeof serverCredentials>): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, p) => {
      if (!err) return resolve(p);
      const inUse = /EADDRINUSE/.test(err.message);
      const denied = /EACCES/.test(err.message);
      const why = inUse ? 'it is in use (pick another with --port, or 0 for a free one)' : denied ? 'permission denied' : err.message;
      reject(new Error(`cannot listen on ${address}: ${why}`));
    }),
  );
}

/** The main server with health, reflection and a PairwisePreference that answers UNAVAILABLE until loaded. */
function buildServer(opts: ServeOptions, health: HealthImplementation, metrics: Metrics, watches: WatchTracker): { server: Server; setImpl: (i: RawPreferenceServer) => void } {
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_SERVER_LIMITS.maxMessageBytes;
  const auth = opts.authToken ? [bearerTokenInterceptor(opts.authToken, () => metrics.rejected('unauthenticated'))] : [];
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    ...(opts.maxConnectionAgeMs
      ? {
          'grpc.max_connection_age_ms': opts.maxConnectionAgeMs,
          'grpc.max_connection_age_grace_ms': opts.maxConnectionAgeGraceMs ?? DEFAULT_CONNECTION_AGE_GRACE_MS,
        }
      : {}),
    // Before the token check, so refused calls get a request id and are counted too.
    interceptors: [watches.interceptor, requestIdInterceptor(), callOutcomeInterceptor(SERVICE_NAME, (o) => metrics.call(o)), ...auth],
  });
  health.addToServer(server);
  const reflectionDefs = loadSync([`${PROTO_DIR}/pairpref/v1/preference.proto`, healthProtoPath], { includeDirs: [PROTO_DIR], keepCase: true });
  new ReflectionService(reflectionDefs).addToServer(server);
  // Registered before the model loads, so early calls get UNAVAILABLE (retryable), not UNIMPLEMENTED.
  let impl: RawPreferenceServer | null = null;
  const loading = (): Partial<ServiceError> => ({ code: status.UNAVAILABLE, details: 'pairpref is loading its model; retry shortly' });
  server.addService(RawPairwisePreferenceService, {
    score: (call, cb) => (impl ? impl.score(call, cb) : cb(loading())),
    scoreStream: (call) => (impl ? impl.scoreStream(call) : call.emit('error', loading())),
    scoreBatchStream: (call) => (impl ? impl.scoreBatchStream(call) : call.emit('error', loading())),
    getModelInfo: (call, cb) => (impl ? impl.getModelInfo(call, cb) : cb(loading())),
  } satisfies RawPreferenceServer);
  return { server, setImpl: (i) => (impl = i) };
}

/**
 * Open health Watch streams never end by themselves (grpc-health-check keeps them), so a drain would
 * wait on them until its timeout: they are ended with UNAVAILABLE when new calls stop being taken.
 */
interface WatchTracker {
  readonly interceptor: ServerInterceptor;
  endAll(): void;
}

function watchTracker(): WatchTracker {
  const open = new Set<ServerInterceptingCall>();
  return {
    interceptor: (method, call) => {
      const c = new ServerInterceptingCall(call, {
        sendStatus: (st, next) => {
          open.delete(c);
          next(st);
        },
      });
      if (method.path === '/grpc.health.v1.Health/Watch') open.add(c);
      return c;
    },
    endAll() {
      for (const c of [...open]) c.sendStatus({ code: status.UNAVAILABLE, details: 'pairpref is shutting down' });
      open.clear();
    },
  };
}

/**
 * Health follows the engine (NOT_SERVING while no device or tokenizer is up) until the drain starts;
 * the gRPC health service and the HTTP port's /healthz read the same state.
 */
interface HealthState {
  readonly grpc: HealthImplementation;
  serving: boolean;
}

function setHealth(health: HealthState, serving: boolean): void {
  const s = serving ? 'SERVING' : 'NOT_SERVING';
  health.serving = serving;
  health.grpc.setStatus('', s);
  health.grpc.setStatus(SERVICE_NAME, s);
}

/** A plaintext port serving health alone, when asked for. */
async function startHealthPort(opts: ServeOptions, host: string, health: HealthImplementation): Promise<{ server: Server; port: number } | null> {
  if (opts.healthPort === undefined) return null;
  const server = new Server();
  health.addToServer(server);
  return { server, port: await bind(server, bindAddress(host, opts.healthPort), serverCredentials(undefined)) };
}

function serviceOptions(opts: ServeOptions, metrics: Metrics, drain: ReturnType<typeof drainControl>): ServiceOptions {
  return {
    maxInflightPerStream: opts.maxInflightPerStream ?? DEFAULT_SERVER_LIMITS.maxInflightPerStream,
    maxRowsPerCall: opts.maxRowsPerCall ?? DEFAULT_SERVER_LIMITS.maxRowsPerCall,
    maxStreams: opts.maxStreams ?? DEFAULT_SERVER_LIMITS.maxStreams,
    maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_SERVER_LIMITS.maxMessageBytes,
    metrics,
    logger: opts.logger,
    draining: () => drain.draining,
    onDrain: drain.register,
  };
}

/** Health follows the engine's (a device and a tokenizer up) until the drain starts; changes are logged. */
function followHealth(scorer: Scorer, health: HealthState, drain: ReturnType<typeof drainControl>, log: Logger): void {
  let serving = scorer.health().serving;
  scorer.onHealthChange((h) => {
    if (drain.started || h.serving === serving) return;
    serving = h.serving;
    setHealth(health, h.serving);
    if (!h.serving) log.warn(`health NOT_SERVING: ${h.reason}`);
    else log.info('health SERVING again');
  });
  setHealth(health, serving);
}

interface Parts {
  readonly opts: ServeOptions;
  readonly log: Logger;
  readonly server: Server;
  readonly http: HttpPort | null;
  readonly health: HealthState;
  readonly watches: WatchTracker;
  readonly drain: ReturnType<typeof drainControl>;
  readonly scorer: Scorer;
  /** Stops the metrics endpoint and the health port. */
  readonly stopAux: () => void;
}

/** close(): the drain, step by step (see RunningServer.close). */
function drainer(p: Parts): RunningServer['close'] {
  let closing: Promise<DrainResult> | null = null;
  return (o = {}) => {
    closing ??= (async () => {
      p.drain.started = true;
      setHealth(p.health, false);
      const graceMs = o.graceMs ?? p.opts.drainGraceMs ?? 0;
      if (graceMs > 0) {
        p.log.info(`draining: health NOT_SERVING, still serving for ${graceMs} ms so load balancers can notice`);
        await new Promise((r) => setTimeout(r, graceMs));
      }
      p.drain.begin();
      p.watches.endAll();
      const timeoutMs = o.timeoutMs ?? p.opts.drainTimeoutMs ?? DEFAULT_DRAIN.timeoutMs;
      const [grpcCancelled, httpCancelled] = await Promise.all([shutdown(p.server, timeoutMs, p.log), p.http?.close(timeoutMs) ?? false]);
      const cancelled = grpcCancelled || httpCancelled;
      p.stopAux();
      await p.scorer.close();
      return { cancelled };
    })();
    return closing;
  };
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host) && !opts.tls && !opts.authToken) {
    log.warn(`listening on ${host} without TLS or a token: anyone who can reach this port can score and read the model info (see --tls-cert, --auth-token-file)`);
  }
  const grpcHealth = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  const health: HealthState = { grpc: grpcHealth, serving: false };
  const metrics = createMetrics();
  const watches = watchTracker();
  const drain = drainControl();
  const { server, setImpl } = buildServer(opts, grpcHealth, metrics, watches);
  // Listen first so health checks answer NOT_SERVING while the model loads and warms up.
  const port = await bind(server, bindAddress(host, opts.port ?? 50051), serverCredentials(opts.tls));
  let healthPort: Awaited<ReturnType<typeof startHealthPort>> = null;
  let http: HttpPort | null = null;
  let core: PreferenceCore | null = null;
  let scorer: Scorer;
  try {
    healthPort = await startHealthPort(opts, host, grpcHealth);
    http = await startHttp(opts, host, metrics, drain, health, () => core);
    scorer = await opts.load();
  } catch (e) {
    server.forceShutdown();
    healthPort?.server.forceShutdown();
    http?.terminate();
    throw e;
  }
  metrics.attach(scorer);
  // One service for both ports: the same engine, limits and stream count.
  core = createPreferenceCore(scorer, serviceOptions(opts, metrics, drain));
  setImpl(createPreferenceService(core, { logger: opts.logger }));
  const metricsServer: HttpServer | null = opts.metricsPort !== undefined ? await serveMetrics(metrics, host, opts.metricsPort) : null;
  followHealth(scorer, health, drain, log);
  const metricsAddr = metricsServer?.address();
  const stopAux = (): void => {
    metricsServer?.close();
    healthPort?.server.forceShutdown();
  };
  return {
    host,
    port,
    address: `${host}:${port}`,
    scorer,
    metricsPort: metricsAddr && typeof metricsAddr === 'object' ? metricsAddr.port : null,
    healthPort: healthPort?.port ?? null,
    httpPort: http?.port ?? null,
    close: drainer({ opts, log, server, http, health, watches, drain, scorer, stopAux }),
    async terminate() {
      await scorer.terminate();
      server.forceShutdown();
      http?.terminate();
      stopAux();
    },
  };
}

/** The HTTP port, when asked for: it calls the same service once `core()` has one. */
function startHttp(opts: ServeOptions, host: string, metrics: Metrics, drain: ReturnType<typeof drainControl>, health: HealthState, core: () => PreferenceCore | null): Promise<HttpPort> | null {
  if (opts.httpPort === undefined) return null;
  return startHttpPort({
    host,
    port: opts.httpPort,
    tls: opts.tls,
    corsOrigins: opts.httpCorsOrigins ?? [],
    maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_SERVER_LIMITS.maxMessageBytes,
    serving: () => health.serving,
    core,
    metrics,
    authToken: opts.authToken,
    logger: opts.logger,
    draining: () => drain.draining,
  });
}

/** Who is told when the drain starts: the open streams stop reading. */
function drainControl() {
  const stops = new Set<() => void>();
  const state = {
    started: false,
    draining: false,
    register(stop: () => void): () => void {
      stops.add(stop);
      return () => stops.delete(stop);
    },
    begin(): void {
      state.draining = true;
      for (const stop of [...stops]) stop();
    },
  };
  return state;
}

/** Refuses new calls, waits for in-flight ones up to timeoutMs, then cancels them; true when it had to. */
function shutdown(server: Server, timeoutMs: number, log: Logger): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      log.warn(`calls still running after the ${timeoutMs} ms drain timeout: cancelling them`);
      server.forceShutdown();
      resolve(true);
    }, timeoutMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
