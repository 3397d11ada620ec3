// `pairpref serve`: the gRPC sidecar.
import { Option, type Command } from 'commander';
import { DEFAULT_BATCHING } from '../core/batch.ts';
import { createLogger, type LogLevel } from '../core/log.ts';
import { intArg } from './args.ts';
import { serveModel } from './wiring.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve a model bundle over gRPC (PairwisePreference, grpc.health.v1.Health, reflection).')
    .option('--model <dir>', 'model bundle directory (model.onnx, tokenizer.json, preference.json)', 'models/default')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', intArg('--port', 0), 50051)
    .option('--devices <list>', 'comma-separated devices, one session each: auto, cpu, cpu,cpu, webgpu, cuda:0,cuda:1 (auto = every CUDA GPU when the CUDA provider is installed, else cpu)', 'auto')
    .option('--max-batch-tokens <n>', 'padded-token budget of one batch (rows x longest row)', intArg('--max-batch-tokens', 1), DEFAULT_BATCHING.maxBatchTokens)
    .option('--max-batch-size <n>', 'most rows in one batch', intArg('--max-batch-size', 1), DEFAULT_BATCHING.maxBatchSize)
    .option('--max-queue-delay-ms <ms>', 'longest a row waits for a fuller batch while a device is free', intArg('--max-queue-delay-ms', 0), DEFAULT_BATCHING.maxQueueDelayMs)
    .option('--intra-op-threads <n>', 'onnxruntime threads per session (default: the cores split over the CPU sessions)', intArg('--intra-op-threads', 1))
    .option('--preprocess-threads <n>', 'tokenizer worker threads; 0 tokenizes on the event loop (default: 1 with CPU sessions, else cores - 1, at most 8)', intArg('--preprocess-threads', 0))
    .option('--max-inflight-per-stream <n>', 'rows one ScoreStream may have in flight before the server stops reading it', intArg('--max-inflight-per-stream', 1), 512)
    .option('--metrics-port <port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (off by default)', intArg('--metrics-port', 0))
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(async (o: ServeFlags) => {
      const log = createLogger(o.logLevel, (line) => process.stderr.write(line));
      log.info(`loading ${o.model} on devices "${o.devices}"`);
      const running = await serveModel({
        modelDir: o.model,
        host: o.host,
        port: o.port,
        devices: o.devices,
        batching: { maxBatchTokens: o.maxBatchTokens, maxBatchSize: o.maxBatchSize, maxQueueDelayMs: o.maxQueueDelayMs },
        intraOpThreads: o.intraOpThreads,
        preprocessThreads: o.preprocessThreads,
        maxInflightPerStream: o.maxInflightPerStream,
        metricsPort: o.metricsPort,
        logger: log,
      });
      const c = running.scorer.config;
      log.info(`serving ${c.name} ${c.version} on ${running.address} (devices: ${running.scorer.devices.map((d) => d.device.name).join(',')}; health: SERVING)`);
      if (running.metricsPort !== null) log.info(`metrics on http://${running.host}:${running.metricsPort}/metrics`);
      let signals = 0;
      const stop = (sig: string): void => {
        if (++signals > 1) process.exit(130);
        log.info(`${sig}: draining in-flight calls, then exiting (send again to exit now)`);
        running.close().then(() => process.exit(0));
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}

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
  maxInflightPerStream: number;
  metricsPort?: number;
  logLevel: LogLevel;
}
