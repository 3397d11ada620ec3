// Comparison -> ParsedComparison: per-field turn lists exactly as the model's training pipeline
// saw them (parser kind, turn selection, null turns, lone surrogates), not yet joined.
import { RowInputError } from './errors.ts';
import { FIELDS, type Comparison, type Field, type ParsedComparison, type ParserConfig, type Turns } from './types.ts';

// Python json.dumps escapes exactly these (with ensure_ascii=False everything else stays raw,
// lone surrogates included; JSON.stringify would escape those, hence this encoder).
const JSON_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/g;

function pyJsonString(s: string): string {
  return `"${s.replace(NEEDS_ESCAPE, (c) => JSON_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/** The Arena CSV form of a turn list: Python `json.dumps(turns, ensure_ascii=False)`. */
export function turnsToRaw(turns: Turns): string {
  return `[${turns.map((t) => (t === null ? 'null' : pyJsonString(t))).join(', ')}]`;
}

/** Python `s.strip(chars)` for a set of single UTF-16 characters. */
function pyStrip(s: string, chars: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && chars.includes(s[start] as string)) start++;
  while (end > start && chars.includes(s[end - 1] as string)) end--;
  return s.slice(start, end);
}

/** The `naive` parser: s.strip('[]').split('","'), each piece .strip('"'). Escapes stay literal. */
function naiveTurns(raw: string): string[] {
  return pyStrip(raw, '[]').split('","').map((piece) => pyStrip(piece, '"'));
}

function jsonTurns(raw: string, id: string, field: Field): Array<string | null> {
  const fail = (why: string): never => {
    throw new RowInputError(`raw.${field}`, `row ${JSON.stringify(id)}: raw.${field} is not a JSON list of strings: ${why}`);
  };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (!Array.isArray(value)) return fail(`got ${value === null ? 'null' : typeof value}`);
  value.forEach((t: unknown, i) => {
    if (typeof t !== 'string' && t !== null) fail(`element ${i} is ${typeof t}`);
  });
  return value as Array<string | null>;
}

function checkTurns(turns: unknown, id: string, field: Field): Turns {
  if (!Array.isArray(turns)) throw new RowInputError(field, `row ${JSON.stringify(id)}: ${field} is not a list of turns`);
  turns.forEach((t: unknown, i) => {
    if (typeof t !== 'string' && t !== null) {
      throw new RowInputError(field, `row ${JSON.stringify(id)}: ${field}[${i}] is ${typeof t}, not a string or null`);
    }
  });
  return turns as Turns;
}

function selectTurns<T>(turns: readonly T[], which: ParserConfig['turns']): T[] {
  if (which === 'all' || turns.length === 0) return [...turns];
  return [(which === 'first' ? turns[0] : turns[turns.length - 1]) as T];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const HAS_LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Lone surrogates are applied to the selected turns (what the model reads). Valid pairs (emoji)
 * are never touched. 'empty-field' makes the field one empty turn, so it joins to "" as in the reference.
 */
function handleSurrogates(turns: string[], policy: ParserConfig['lone_surrogates']): string[] {
  if (policy === 'keep' || !turns.some((t) => HAS_LONE_SURROGATE.test(t))) return turns;
  if (policy === 'empty-field') return [''];
  return turns.map((t) => t.replace(LONE_SURROGATE, ''));
}

function parseField(c: Comparison, field: Field, cfg: ParserConfig): string[] {
  let turns: Array<string | null>;
  if (c.kind === 'raw') {
    const raw: unknown = c[field];
    if (typeof raw !== 'string') throw new RowInputError(`raw.${field}`, `row ${JSON.stringify(c.id)}: raw.${field} is not a string`);
    turns = cfg.kind === 'naive' ? naiveTurns(raw) : jsonTurns(raw, c.id, field);
  } else {
    const list = checkTurns(c[field], c.id, field);
    // A naive-parser model saw the CSV bytes; rebuild them so it sees the same text.
    turns = cfg.kind === 'naive' ? naiveTurns(turnsToRaw(list)) : [...list];
  }
  const texts = selectTurns(turns, cfg.turns).map((t) => (t === null ? cfg.null_turn : t));
  return handleSurrogates(texts, cfg.lone_surrogates);
}

export function parseComparison(c: Comparison, cfg: ParserConfig): ParsedComparison {
  const [prompt, response_a, response_b] = FIELDS.map((f) => parseField(c, f, cfg)) as [string[], string[], string[]];
  return { prompt, response_a, response_b };
}
