// The sidecar as the browser reaches it: `pairpref serve --http-port` over the Connect protocol
// (connect-web, fetch). A batch goes up in one ScoreBatchStream request and its predictions stream
// back as each is ready: browsers cannot send gRPC (HTTP/2 trailers) nor a bidirectional stream over
// fetch, and a server stream lets the page show rows as they come and keep the ones that came when
// the connection breaks. Rows and predictions convert through protocol/wire.ts, as on every side.
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { MAX_ID_BYTES, type Prediction } from '../core/result.ts';
import type { Comparison } from '../core/types.ts';
import { PairwisePreference } from '../proto/gen-es/pairpref/v1/preference_pb.ts';
import { comparisonToWire, predictionFromWire } from '../protocol/wire.ts';

export interface SidecarOptions {
  /** The HTTP port's base URL, e.g. http://127.0.0.1:8080 (its page origin must be in --http-cors-origin). */
  readonly url: string;
  /** Sent as `authorization: Bearer <token>` when the sidecar has --auth-token-file. */
  readonly token?: string;
  /** Deadline of GetModelInfo, the reachability check (default 3 s). */
  readonly checkTimeoutMs?: number;
  /** Deadline of one batch (default 120 s). */
  readonly batchTimeoutMs?: number;
}

export interface SidecarModel {
  readonly name: string;
  readonly version: string;
}

/** The sidecar failed, part way or before any answer (the rows it answered went to `onRow` first). */
export class SidecarError extends Error {
  override name = 'SidecarError';
  constructor(
    message: string,
    /** The status code (gRPC's numbers), or null when the sidecar could not be reached at all. */
    readonly code: number | null,
  ) {
    super(message);
  }
}

export interface Sidecar {
  readonly url: string;
  /** GetModelInfo: the model it serves; throws SidecarError when it cannot be reached. */
  model(): Promise<SidecarModel>;
  /** Scores the rows in one ScoreBatchStream; `onRow(i, p)` as each comes back. Throws SidecarError when it fails (the rows answered before went to `onRow`). */
  score(rows: readonly Comparison[], opts?: { readonly onRow?: (index: number, p: Prediction) => void; readonly signal?: AbortSignal }): Promise<Prediction[]>;
}

const UTF8 = new TextEncoder();

/**
 * Ids the server can join answers by: the rows' own when they are unique, non-empty and short, else
 * their positions (the server refuses an empty id, or a second row with an id in flight).
 */
export function wireIds(rows: readonly Comparison[]): string[] {
  const own = rows.map((r) => r.id);
  const usable = new Set(own).size === own.length && own.every((id) => id !== '' && UTF8.encode(id).length <= MAX_ID_BYTES);
  return usable ? own : rows.map((_, i) => `#${i}`);
}

function describe(e: unknown, url: string): { message: string; code: number | null } {
  const c = ConnectError.from(e);
  // fetch's own failure (connection refused, CORS refused, DNS) reaches connect as UNKNOWN/UNAVAILABLE with no response.
  if (c.code === Code.Unknown || (c.code === Code.Unavailable && /fetch|network/i.test(c.rawMessage))) {
    return { message: `cannot reach ${url}: ${c.rawMessage}`, code: null };
  }
  return { message: `${url} answered ${Code[c.code] ?? c.code}: ${c.rawMessage}`, code: c.code };
}

export function connectSidecar(o: SidecarOptions): Sidecar {
  const url = o.url.replace(/\/+$/, '');
  const client: Client<typeof PairwisePreference> = createClient(PairwisePreference, createConnectTransport({ baseUrl: url, useBinaryFormat: true }));
  const headers = o.token ? { authorization: `Bearer ${o.token}` } : undefined;
  return {
    url,
    async model() {
      try {
        const info = await client.getModelInfo({}, { headers, timeoutMs: o.checkTimeoutMs ?? 3000 });
        return { name: info.name, version: info.version };
      } catch (e) {
        const d = describe(e, url);
        throw new SidecarError(d.message, d.code);
      }
    },
    async score(rows, opts = {}) {
      const ids = wireIds(rows);
      const index = new Map(ids.map((id, i) => [id, i]));
      const answered = new Map<number, Prediction>();
      const comparisons = rows.map((r, i) => comparisonToWire({ ...r, id: ids[i]! }));
      try {
        for await (const p of client.scoreBatchStream({ comparisons }, { headers, timeoutMs: o.batchTimeoutMs ?? 120_000, signal: opts.signal })) {
          const i = index.get(p.id);
          if (i === undefined || answered.has(i)) continue;
          const prediction = { ...predictionFromWire(p), id: rows[i]!.id };
          answered.set(i, prediction);
          opts.onRow?.(i, prediction);
        }
      } catch (e) {
        const d = describe(e, url);
        throw new SidecarError(d.message, d.code);
      }
      if (answered.size !== rows.length) throw new SidecarError(`${url} answered ${answered.size} of ${rows.length} rows`, Code.Internal);
      return rows.map((_, i) => answered.get(i)!);
    },
  };
}
