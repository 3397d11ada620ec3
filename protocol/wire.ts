// Wire messages (proto/gen, ts-proto) <-> core types. The server, the SDK and the bench's load
// generator all convert through here, so a row means the same on every side of the wire.
import type { BatchingOptions } from '../core/batch.ts';
import { RowInputError } from '../core/errors.ts';
import { turnsToRaw } from '../core/parse.ts';
import type { Prediction } from '../core/result.ts';
import type { DeviceSpec } from '../core/runtime.ts';
import { FIELDS, LABELS, type Comparison, type PreferenceConfig } from '../core/types.ts';
import type { Comparison as WireComparison, ModelInfo, Prediction as WirePrediction } from '../proto/gen/pairpref/v1/preference.ts';

/** Wire comparison -> core comparison; a RowInputError when it mixes the two input forms. */
export function fromWire(c: WireComparison): Comparison {
  if (c.raw) {
    if (c.prompt.length + c.responseA.length + c.responseB.length > 0) {
      throw new RowInputError('', `row "${c.id}": set either the turn lists (prompt, response_a, response_b) or raw, not both`);
    }
    return { id: c.id, kind: 'raw', prompt: c.raw.prompt, response_a: c.raw.responseA, response_b: c.raw.responseB };
  }
  return { id: c.id, kind: 'turns', prompt: c.prompt, response_a: c.responseA, response_b: c.responseB };
}

/** Core Comparison -> wire message. Turn lists with null turns go as raw JSON (proto strings cannot be null). */
export function comparisonToWire(c: Comparison): WireComparison {
  if (c.kind === 'raw') {
    return { id: c.id, prompt: [], responseA: [], responseB: [], raw: { prompt: c.prompt, responseA: c.response_a, responseB: c.response_b } };
  }
  if (FIELDS.some((f) => c[f].includes(null))) {
    return {
      id: c.id,
      prompt: [],
      responseA: [],
      responseB: [],
      raw: { prompt: turnsToRaw(c.prompt), responseA: turnsToRaw(c.response_a), responseB: turnsToRaw(c.response_b) },
    };
  }
  return { id: c.id, prompt: [...(c.prompt as string[])], responseA: [...(c.response_a as string[])], responseB: [...(c.response_b as string[])], raw: undefined };
}

export function predictionToWire(p: Prediction): WirePrediction {
  return {
    id: p.id,
    winnerModelA: p.winner_model_a,
    winnerModelB: p.winner_model_b,
    winnerTie: p.winner_tie,
    numTokens: p.num_tokens,
    truncated: p.truncated,
    error: p.error ? { code: p.error.code, field: p.error.field, message: p.error.message } : undefined,
  };
}

/**
 * A Prediction message as either generated binding holds it: ts-proto's (proto/gen: the SDK, the
 * server) or protobuf-es's (proto/gen-es: connect-web in the browser), whose `error` is optional.
 */
export type AnyWirePrediction = Omit<WirePrediction, 'error'> & { readonly error?: WirePrediction['error'] };

export function predictionFromWire(p: AnyWirePrediction): Prediction {
  const base = {
    id: p.id,
    winner_model_a: p.winnerModelA,
    winner_model_b: p.winnerModelB,
    winner_tie: p.winnerTie,
    num_tokens: p.numTokens,
    truncated: p.truncated,
  };
  return p.error ? { ...base, error: { code: p.error.code, field: p.error.field, message: p.error.message } } : base;
}

export interface DeviceDescription {
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
  /** "up", "restarting" or "down". */
  readonly status: string;
  readonly restarts: number;
  readonly lastError: string;
}

export interface LimitsDescription {
  readonly maxRowsPerCall: number;
  readonly maxRowChars: number;
  readonly maxIdBytes: number;
  readonly maxQueueTokens: number;
  readonly maxStreams: number;
  readonly maxInflightPerStream: number;
  readonly maxMessageBytes: number;
}

/** What GetModelInfo describes: the bundle's contract and how the engine serves it. */
export interface ModelDescription {
  readonly config: PreferenceConfig;
  readonly devices: readonly DeviceDescription[];
  readonly batching: BatchingOptions;
  readonly limits: LimitsDescription;
  readonly tokenizers: { readonly threads: number; readonly alive: number; readonly restarts: number };
  /** Bytes of the bundle's files, external weights included (absent or 0 when unknown). */
  readonly bundleBytes?: number;
}

export function modelInfoToWire(m: ModelDescription): ModelInfo {
  const c = m.config;
  return {
    name: c.name,
    version: c.version,
    labels: [...LABELS],
    maxLength: c.truncation.max_length,
    parserJson: JSON.stringify(c.parser),
    templateJson: JSON.stringify(c.template),
    truncationJson: JSON.stringify(c.truncation),
    devices: m.devices.map((d) => ({
      name: d.device.name,
      executionProvider: d.device.provider,
      intraOpThreads: d.intraOpThreads,
      state: d.status,
      restarts: d.restarts,
      lastError: d.lastError,
    })),
    head: c.head.kind,
    features: [...(c.features?.names ?? [])],
    batching: { ...m.batching },
    limits: { ...m.limits },
    tokenizers: { ...m.tokenizers },
    bundleBytes: m.bundleBytes ?? 0,
  };
}
