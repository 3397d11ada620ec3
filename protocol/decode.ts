// Request bytes -> wire messages, one comparison at a time. grpc-js answers INTERNAL for any
// deserializer error and a strict UTF-8 decode would fail the whole message, so the server takes
// raw bytes (a passthrough deserializer) and decodes here: invalid UTF-8 in one comparison fails
// only that row (INVALID_ARGUMENT naming the field, never a silent U+FFFD), and only bytes that
// cannot be framed as the message at all fail the call.
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { shortId } from '../core/result.ts';
import { Comparison, ScoreOptions, type Comparison as WireComparison, type ScoreOptions as WireScoreOptions } from '../proto/gen/pairpref/v1/preference.ts';

const STRICT = new TextDecoder('utf-8', { fatal: true });
const strictUtf8 = (bytes: Uint8Array): string => STRICT.decode(bytes);

/** The message cannot be framed (truncated, a bad tag or length): the call is INVALID_ARGUMENT. */
export class MalformedMessageError extends Error {
  override name = 'MalformedMessageError';
}

export type DecodedRow =
  | { readonly ok: true; readonly comparison: WireComparison }
  /** The row's bytes are framed but not valid: `id` is decoded leniently, for the error only. */
  | { readonly ok: false; readonly id: string; readonly field: string; readonly message: string };

/** String fields of Comparison by field number; nested RawComparison under 5. */
interface Fields {
  readonly [no: number]: string | Fields;
}
const RAW_FIELDS: Fields = { 1: 'raw.prompt', 2: 'raw.response_a', 3: 'raw.response_b' };
const COMPARISON_FIELDS: Fields = { 1: 'id', 2: 'prompt', 3: 'response_a', 4: 'response_b', 5: RAW_FIELDS };

/**
 * Walks a message field by field: throws on bytes that are not framed protobuf (a field number 0,
 * a stray end-group, a length past the end), and returns the first string field (by the proto's
 * names) whose bytes are not UTF-8, or null. ts-proto's decoder would stop quietly at such bytes
 * and keep the fields read so far; this walk is what makes a half-read row an error instead.
 */
function checkFields(bytes: Uint8Array, fields: Fields): string | null {
  const r = new BinaryReader(bytes);
  let invalid: string | null = null;
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    const f = fields[no];
    if (wt === WireType.EndGroup) throw new Error(`unexpected end-group tag (field ${no})`);
    if (wt !== WireType.LengthDelimited || f === undefined) {
      r.skip(wt, no);
      continue;
    }
    const sub = r.bytes();
    if (typeof f !== 'string') invalid ??= checkFields(sub, f);
    else if (invalid === null && !isUtf8(sub)) invalid = f;
  }
  return invalid;
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8(bytes);
    return true;
  } catch {
    return false;
  }
}

function decodeComparison(bytes: Uint8Array): DecodedRow {
  let field: string | null;
  try {
    field = checkFields(bytes, COMPARISON_FIELDS);
  } catch (e) {
    throw new MalformedMessageError(`a comparison in the request is not valid protobuf: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Framed and checked: the lenient decode below cannot stop early or replace characters silently.
  const comparison = Comparison.decode(bytes);
  if (field === null) return { ok: true, comparison };
  const id = comparison.id;
  return { ok: false, id, field, message: `row ${JSON.stringify(shortId(id))}: ${field} is not valid UTF-8` };
}

/** Walks a message with a repeated/singular Comparison field (1) and ScoreOptions (2). */
function decodeEnvelope(buf: Uint8Array, what: string): { rows: DecodedRow[]; options: WireScoreOptions | undefined } {
  const rows: DecodedRow[] = [];
  let options: WireScoreOptions | undefined;
  try {
    const r = new BinaryReader(buf);
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      if (no === 1 && wt === WireType.LengthDelimited) rows.push(decodeComparison(r.bytes()));
      else if (no === 2 && wt === WireType.LengthDelimited) options = ScoreOptions.decode(r.bytes());
      else r.skip(wt, no);
    }
  } catch (e) {
    if (e instanceof MalformedMessageError) throw e;
    throw new MalformedMessageError(`the request cannot be decoded as ${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { rows, options };
}

export function decodeScoreRequest(buf: Uint8Array): { rows: DecodedRow[]; options: WireScoreOptions | undefined } {
  return decodeEnvelope(buf, 'pairpref.v1.ScoreRequest');
}

/** A stream message: its one comparison (the last one, as protobuf merges a repeated singular field) or none. */
export function decodeStreamRequest(buf: Uint8Array): { row: DecodedRow | null; options: WireScoreOptions | undefined } {
  const { rows, options } = decodeEnvelope(buf, 'pairpref.v1.ScoreStreamRequest');
  return { row: rows.length > 0 ? rows[rows.length - 1]! : null, options };
}
