// Prometheus metrics (prom-client), served over HTTP on --metrics-port when set.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Prediction } from '../core/result.ts';
import { Status } from '../core/status.ts';
import type { DeviceLoad } from '../engine/scheduler.ts';
import type { Scorer } from '../engine/scorer.ts';

export interface Metrics {
  readonly registry: Registry;
  observeRow(r: Prediction, latencyMs: number): void;
  /** A call or row refused by the transport (engine refusals are read from the scorer). */
  rejected(reason: string, n?: number): void;
}

/**
 * A collect hook that folds a running total kept elsewhere (the engine's tallies) into a counter
 * at each scrape; the counter may also be incremented directly (the transport's own refusals).
 */
function followTotals(label: string, read: () => Readonly<Record<string, number>>): (this: Counter<string>) => void {
  const seen: Record<string, number> = {};
  return function collect(this: Counter<string>) {
    for (const [k, v] of Object.entries(read())) {
      const delta = v - (seen[k] ?? 0);
      if (delta > 0) this.inc({ [label]: k }, delta);
      seen[k] = v;
    }
  };
}

/** Backlog, device and tokenizer state gauges: what an operator watches under load and faults. */
function stateGauges(scorer: Scorer, registry: Registry): void {
  const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge<string>) => void): void => {
    new Gauge({ name, help, labelNames, registers: [registry], collect() { collect(this); } });
  };
  gauge('pairpref_backlog_rows', 'Rows waiting: stage="tokenizer" (waiting for or in tokenization), stage="batch" (tokenized, waiting for a device)', ['stage'], (g) => {
    const b = scorer.backlog();
    g.set({ stage: 'tokenizer' }, b.tokenizerRows);
    g.set({ stage: 'batch' }, b.batchRows);
  });
  gauge('pairpref_backlog_tokens', 'Tokens waiting (tokenizer: estimated from characters; batch: real); --max-queue-tokens bounds their sum', ['stage'], (g) => {
    const b = scorer.backlog();
    g.set({ stage: 'tokenizer' }, b.tokenizerTokens);
    g.set({ stage: 'batch' }, b.batchTokens);
  });
  gauge('pairpref_device_up', '1 when the device is in rotation, 0 while it is down or restarting', ['device'], (g) => {
    for (const d of scorer.health().devices) g.set({ device: d.device.name }, d.status === 'up' ? 1 : 0);
  });
  gauge('pairpref_device_restarts', 'Times each device was restarted after a failure', ['device'], (g) => {
    for (const d of scorer.health().devices) g.set({ device: d.device.name }, d.restarts);
  });
  gauge('pairpref_tokenizer_workers_up', 'Tokenizer worker threads up (the event loop counts as one with --preprocess-threads 0)', [], (g) => g.set(scorer.health().tokenizers.alive));
  gauge('pairpref_tokenizer_restarts', 'Times tokenizer worker threads were restarted', [], (g) => g.set(scorer.health().tokenizers.restarts));
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
  stateGauges(scorer, registry);
  new Counter({
    name: 'pairpref_rows_dropped_total',
    help: 'Rows removed before they ran because their call was cancelled or its deadline passed',
    labelNames: ['reason'],
    registers: [registry],
    collect: followTotals('reason', () => scorer.counters().dropped),
  });
  const rejected = new Counter({
    name: 'pairpref_rejected_total',
    help: 'Rows (or calls, for too_many_streams and malformed_message) refused before any work, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect: followTotals('reason', () => scorer.counters().rejected),
  });
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
    rejected(reason, n = 1) {
      rejected.inc({ reason }, n);
    },
    observeRow(r, latencyMs) {
      // Dropped rows (cancelled, past their deadline) are counted in pairpref_rows_dropped_total.
      if (r.error?.code === Status.CANCELLED || r.error?.code === Status.DEADLINE_EXCEEDED) return;
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
