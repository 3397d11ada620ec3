// What the engine takes in before any work is done: per-row limits (id size, field size, duplicate
// ids), and the backlog bound that turns load beyond capacity into a fast RESOURCE_EXHAUSTED
// instead of an ever-growing queue. Every transport (gRPC, and any later one) goes through here.
import { MAX_ID_BYTES, shortId, type RowError } from '../core/result.ts';

export { MAX_ID_BYTES };
import { Status } from '../core/status.ts';
import { FIELDS, type Comparison } from '../core/types.ts';

export interface EngineLimits {
  /** Tokens waiting (tokenizer backlog, estimated, plus the batch queue) beyond which calls are refused. */
  readonly maxQueueTokens: number;
  /** Characters of one field (all its turns together); a longer field is refused without tokenizing. */
  readonly maxRowChars: number;
}

export const DEFAULT_LIMITS: EngineLimits = { maxQueueTokens: 1_048_576, maxRowChars: 131_072 };


/** A refusal of the whole call (or, for a stream, of one row): a status code and why. */
export class EngineError extends Error {
  override name = 'EngineError';
  constructor(
    readonly code: number,
    message: string,
    /** For metrics: queue_full, unavailable, shutting_down. */
    readonly reason: string,
  ) {
    super(message);
  }
}


function fieldChars(c: Comparison, field: (typeof FIELDS)[number]): number {
  const v: unknown = c[field];
  if (typeof v === 'string') return v.length;
  if (!Array.isArray(v)) return 0;
  let n = 0;
  for (const t of v) if (typeof t === 'string') n += t.length;
  return n;
}

/** A row refused before tokenizing, with the reason for metrics. */
export interface RowRefusal {
  readonly error: RowError;
  readonly reason: 'id_missing' | 'id_too_long' | 'row_too_long' | 'duplicate_id';
}

/** The per-row limits; null when the row may be tokenized. */
export function refuseRow(c: Comparison, limits: EngineLimits): RowRefusal | null {
  const id = typeof c.id === 'string' ? c.id : '';
  // Checked here, before duplicates: two id-less rows are two bad rows, not a duplicate.
  if (id === '') return { reason: 'id_missing', error: { code: Status.INVALID_ARGUMENT, field: 'id', message: 'row id is empty: every comparison needs a non-empty id' } };
  const idBytes = Buffer.byteLength(id, 'utf8');
  if (idBytes > MAX_ID_BYTES) {
    return { reason: 'id_too_long', error: { code: Status.INVALID_ARGUMENT, field: 'id', message: `row id is ${idBytes} bytes; ids may have at most ${MAX_ID_BYTES} bytes` } };
  }
  for (const f of FIELDS) {
    const n = fieldChars(c, f);
    if (n > limits.maxRowChars) {
      const field = c.kind === 'raw' ? `raw.${f}` : f;
      return {
        reason: 'row_too_long',
        error: { code: Status.INVALID_ARGUMENT, field, message: `row ${JSON.stringify(shortId(id))}: ${field} has ${n} characters; the limit is ${limits.maxRowChars} (--max-row-chars)` },
      };
    }
  }
  return null;
}

export function duplicateId(id: string): RowRefusal {
  return {
    reason: 'duplicate_id',
    error: { code: Status.INVALID_ARGUMENT, field: 'id', message: `row id ${JSON.stringify(shortId(id))} is already in flight in this call or stream; ids must be unique so answers can be told apart` },
  };
}

/**
 * Tokens a row will take before it is tokenized: one per 3 characters, capped at max_length (and
 * doubled with swap TTA). Only used to bound the tokenizer backlog; real counts replace it.
 */
export function estimateTokens(c: Comparison, maxLength: number, swapTta: boolean): number {
  const chars = FIELDS.reduce((n, f) => n + fieldChars(c, f), 0);
  return Math.min(maxLength, Math.ceil(chars / 3) + 8) * (swapTta ? 2 : 1);
}
