// Prometheus metrics (prom-client), served over HTTP on --metrics-port when set.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Prediction } from '../core/result.ts';
import type { DeviceLoad } from '../engine/scheduler.ts';
import type { Scorer } from '../engine/scorer.ts';

export interface Metrics {
  readonly registry: Registry;
  observeRow(r: Prediction, latencyMs: number): void;
}

export function createMetrics(scorer: Scorer): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pairpref_process_' });
  const rows = new Counter({ name: 'pairpref_rows_total', help: 'Rows answered, by outcome (ok or an error code)', labelNames: ['outcome'], registers: [registry] });
  const tokens = new Counter({ name: 'pairpref_row_tokens_total', help: 'Tokens of rows scored (direct order)', registers: [registry] });
  const latency = new Histogram({
    name: 'pairpref_row_latency_seconds',
    help: 'Time from a row reaching the service to its prediction',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({ name: 'pairpref_queue_rows', help: 'Rows waiting for a batch', registers: [registry], collect() { this.set(scorer.queuedRows()); } });
  new Gauge({
    name: 'pairpref_device_padded_tokens',
    help: 'Padded tokens each device has run',
    labelNames: ['device'],
    registers: [registry],
    collect() {
      for (const l of scorer.loads()) this.set({ device: l.name }, l.paddedTokens);
    },
  });
  // Per-device work counters (gauges over the scheduler's running totals), so a load test can
  // take deltas around a phase: busy share = busy seconds / wall seconds.
  const perDevice = (name: string, help: string, pick: (l: DeviceLoad) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['device'],
      registers: [registry],
      collect() {
        for (const l of scorer.loads()) this.set({ device: l.name }, pick(l));
      },
    });
  };
  perDevice('pairpref_device_busy_seconds', 'Seconds each device has spent running batches', (l) => l.busyMs / 1000);
  perDevice('pairpref_device_batches', 'Batches each device has run', (l) => l.batches);
  perDevice('pairpref_device_rows', 'Rows each device has run', (l) => l.rows);
  perDevice('pairpref_device_tokens', 'Real (unpadded) tokens each device has run', (l) => l.tokens);
  return {
    registry,
    observeRow(r, latencyMs) {
      rows.inc({ outcome: r.error ? `error_${r.error.code}` : 'ok' });
      if (!r.error) tokens.inc(r.num_tokens);
      latency.observe(latencyMs / 1000);
    },
  };
}

export function serveMetrics(metrics: Metrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
