// Starts the gRPC server: PairwisePreference, grpc.health.v1.Health and server reflection.
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Server as HttpServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { silentLogger, type Logger } from '../core/log.ts';
import type { Scorer } from '../engine/scorer.ts';
import { PairwisePreferenceService, type PairwisePreferenceServer } from '../proto/gen/pairpref/v1/preference.ts';
import { createPreferenceService } from './grpc-service.ts';
import { createMetrics, serveMetrics } from './metrics.ts';

export const SERVICE_NAME = 'pairpref.v1.PairwisePreference';
const PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));

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
  /** Largest request message in bytes. */
  readonly maxMessageBytes?: number;
  /** Serve Prometheus metrics on this HTTP port; off when undefined. */
  readonly metricsPort?: number;
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly scorer: Scorer;
  readonly metricsPort: number | null;
  /** Stops taking calls, lets in-flight ones finish (up to graceMs), then releases the devices. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const maxMessageBytes = opts.maxMessageBytes ?? 64 * 1024 * 1024;
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  const reflectionDefs = loadSync([`${PROTO_DIR}/pairpref/v1/preference.proto`, healthProtoPath], {
    includeDirs: [PROTO_DIR],
    keepCase: true,
  });
  new ReflectionService(reflectionDefs).addToServer(server);
  // Registered before the model loads, so early calls get UNAVAILABLE (retryable), not UNIMPLEMENTED.
  let impl: PairwisePreferenceServer | null = null;
  const loading = (): Partial<ServiceError> => ({ code: status.UNAVAILABLE, details: 'pairpref is loading its model; retry shortly' });
  server.addService(PairwisePreferenceService, {
    score: (call, cb) => (impl ? impl.score(call, cb) : cb(loading())),
    scoreStream: (call) => (impl ? impl.scoreStream(call) : call.emit('error', loading())),
    getModelInfo: (call, cb) => (impl ? impl.getModelInfo(call, cb) : cb(loading())),
  } satisfies PairwisePreferenceServer);

  // Listen first so health checks answer NOT_SERVING while the model loads and warms up.
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${opts.port ?? 50051}`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  let scorer: Scorer;
  try {
    scorer = await opts.load();
  } catch (e) {
    server.forceShutdown();
    throw e;
  }
  const metrics = createMetrics(scorer);
  impl = createPreferenceService(scorer, { maxInflightPerStream: opts.maxInflightPerStream ?? 512, metrics });
  let metricsServer: HttpServer | null = null;
  if (opts.metricsPort !== undefined) metricsServer = await serveMetrics(metrics, host, opts.metricsPort);
  health.setStatus('', 'SERVING');
  health.setStatus(SERVICE_NAME, 'SERVING');
  const metricsAddr = metricsServer?.address();
  const metricsPort = metricsAddr && typeof metricsAddr === 'object' ? metricsAddr.port : null;

  let closing: Promise<void> | null = null;
  return {
    host,
    port,
    address: `${host}:${port}`,
    scorer,
    metricsPort,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(SERVICE_NAME, 'NOT_SERVING');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            log.warn(`calls still running after ${graceMs} ms: cancelling them`);
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        metricsServer?.close();
        await scorer.close();
      })();
      return closing;
    },
  };
}
