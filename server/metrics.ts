// Prometheus metrics (prom-client), served over HTTP on --metrics-port when set. Names keep the
// pairpref_ prefix; the stage histograms follow Text Embeddings Inference's te_* (request, queue,
// tokenization and inference durations, batch size and tokens) and Triton's nv_inference_* (calls by
// outcome). The registry exists from the start (calls refused while the model loads are counted);
// the engine's gauges, counters and stage histograms join it once the scorer is attached.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Prediction } from '../core/result.ts';
import { Status } from '../core/status.ts';
import type { DeviceLoad } from '../engine/scheduler.ts';
import type { Scorer } from '../engine/scorer.ts';
import type { CallOutcome } from './calls.ts';

export interface Metrics {
  readonly registry: Registry;
  /** The engine is loaded: its gauges, tallies and stage timings are reported from now on. */
  attach(scorer: Scorer): void;
  /** A PairwisePreference call ended (calls.ts's interceptor). */
  call(o: CallOutcome): void;
  /** A call's (or a stream row's) answered rows, all with the same latency: one counter update per outcome, not per row. */
  observeRows(rs: readonly Prediction[], latencyMs: number): void;
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

/** Seconds, 50 us to 30 s. */
const SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const POWERS_OF_TWO = (from: number, to: number): number[] => {
  const out: number[] = [];
  for (let v = from; v <= to; v *= 2) out.push(v);
  return out;
};

/**
 * Calls by method and status (te_request_count / te_request_success / te_request_failure,
 * nv_inference_request_success / _failure) and their duration (te_request_duration).
 */
function callMetrics(registry: Registry): (o: CallOutcome) => void {
  const calls = new Counter({ name: 'pairpref_requests_total', help: 'PairwisePreference calls ended, by method (Score, ScoreStream, GetModelInfo) and gRPC status code (OK, INVALID_ARGUMENT, ...)', labelNames: ['method', 'code'], registers: [registry] });
  const duration = new Histogram({ name: 'pairpref_request_duration_seconds', help: 'Time from a call arriving to its status (a ScoreStream: the whole stream)', labelNames: ['method'], buckets: SECONDS.slice(4), registers: [registry] });
  return (o) => {
    calls.inc({ method: o.method, code: o.code });
    duration.observe({ method: o.method }, o.seconds);
  };
}

/** The engine's stage timings (te_tokenization_duration, te_queue_duration, te_inference_duration, te_batch_next_size, te_batch_next_tokens). */
function stageHistograms(scorer: Scorer, registry: Registry): void {
  const tokenization = new Histogram({ name: 'pairpref_tokenization_duration_seconds', help: 'Time a tokenizer took for one row (both orders with swap TTA), waiting for a tokenizer not included', buckets: SECONDS.slice(0, 13), registers: [registry] });
  const queue = new Histogram({ name: 'pairpref_queue_duration_seconds', help: 'Time a tokenized row (each order with swap TTA) waited from entering the batch queue to its batch starting on a device', buckets: SECONDS.slice(2), registers: [registry] });
  const inference = new Histogram({ name: 'pairpref_inference_duration_seconds', help: 'Time a device took for one batch that answered (pad, session.run, head)', labelNames: ['device'], buckets: SECONDS.slice(4), registers: [registry] });
  const batchRows = new Histogram({ name: 'pairpref_batch_rows', help: 'Rows in each batch that answered (a row with swap TTA counts twice)', labelNames: ['device'], buckets: POWERS_OF_TWO(1, 1024), registers: [registry] });
  const batchTokens = new Histogram({ name: 'pairpref_batch_tokens', help: 'Real (unpadded) tokens in each batch that answered', labelNames: ['device'], buckets: POWERS_OF_TWO(16, 131072), registers: [registry] });
  scorer.observe({
    tokenized(rowMs) {
      for (const ms of rowMs) tokenization.observe(ms / 1000);
    },
    batch(b) {
      for (const ms of b.waits) queue.observe(ms / 1000);
      if (b.error) return;
      inference.observe({ device: b.device }, (b.end - b.start) / 1000);
      batchRows.observe({ device: b.device }, b.rows);
      batchTokens.observe({ device: b.device }, b.tokens);
    },
  });
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pairpref_process_' });
  let scorer: Scorer | null = null;
  const call = callMetrics(registry);
  const rows = new Counter({ name: 'pairpref_rows_total', help: 'Rows answered, by outcome (ok or an error code)', labelNames: ['outcome'], registers: [registry] });
  const tokens = new Counter({ name: 'pairpref_row_tokens_total', help: 'Tokens of rows scored (direct order)', registers: [registry] });
  const latency = new Histogram({
    name: 'pairpref_row_latency_seconds',
    help: 'Time from a row reaching the service to its prediction',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Counter({
    name: 'pairpref_rows_dropped_total',
    help: 'Rows removed before they ran because their call was cancelled or its deadline passed',
    labelNames: ['reason'],
    registers: [registry],
    collect: followTotals('reason', () => scorer?.counters().dropped ?? {}),
  });
  const rejected = new Counter({
    name: 'pairpref_rejected_total',
    help: 'Rows (or calls, for too_many_streams and malformed_message) refused before any work, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect: followTotals('reason', () => scorer?.counters().rejected ?? {}),
  });
  return {
    registry,
    attach(s) {
      if (scorer) throw new Error('metrics: a scorer is already attached');
      scorer = s;
      engineMetrics(s, registry);
    },
    call,
    rejected(reason, n = 1) {
      rejected.inc({ reason }, n);
    },
    observeRows(rs, latencyMs) {
      const seconds = latencyMs / 1000;
      let ok = 0;
      let okTokens = 0;
      let errors: Map<number, number> | null = null;
      for (const r of rs) {
        // Dropped rows (cancelled, past their deadline) are counted in pairpref_rows_dropped_total.
        if (r.error?.code === Status.CANCELLED || r.error?.code === Status.DEADLINE_EXCEEDED) continue;
        latency.observe(seconds);
        if (!r.error) {
          ok++;
          okTokens += r.num_tokens;
        } else {
          errors ??= new Map();
          errors.set(r.error.code, (errors.get(r.error.code) ?? 0) + 1);
        }
      }
      if (ok > 0) {
        rows.inc({ outcome: 'ok' }, ok);
        tokens.inc(okTokens);
      }
      if (errors) for (const [code, n] of errors) rows.inc({ outcome: `error_${code}` }, n);
    },
  };
}

/** What the scorer reports: backlog and state gauges, per-device work, stage histograms. */
function engineMetrics(scorer: Scorer, registry: Registry): void {
  new Gauge({ name: 'pairpref_queue_rows', help: 'Rows waiting for a batch', registers: [registry], collect() { this.set(scorer.queuedRows()); } });
  stateGauges(scorer, registry);
  stageHistograms(scorer, registry);
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
