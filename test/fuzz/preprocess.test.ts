// Property-based tests of core's preprocessing (fast-check): arbitrary Unicode (graphemes, any
// code point, lone surrogates, nulls, JSON/CSV metacharacters) and arbitrary JSON through
// createPreprocessor(config, tokenizer).encode, for the shipped default bundle and for the byte
// tokenizer under configs varied over parser, turn selection, surrogate policy, template,
// special tokens, truncation mode, small max_length and features.
//
// Properties: encode returns, or throws a RowInputError naming exactly the documented field an
// independent oracle expects (never another error type); on success every id is an integer in
// [0, vocab), 1 <= length <= max_length, BOS/EOS where configured, `truncated` a boolean, the
// features finite; encoding is deterministic; a turn list and its Arena CSV form encode the same.
//
// Replay a failure with the seed fast-check prints: PAIRPREF_FUZZ_SEED=<seed> (and
// PAIRPREF_FUZZ_RUNS=<multiplier> for longer runs).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  FEATURE_NAMES,
  FIELDS,
  RowInputError,
  createPreprocessor,
  createTokenizer,
  fixedTokenCount,
  resolvePreferenceConfig,
  turnsToRaw,
  type Comparison,
  type EncodedRow,
  type Field,
  type PreferenceConfig,
  type Preprocessor,
  type TextTokenizer,
} from '../../core/index.ts';

const SEED = process.env.PAIRPREF_FUZZ_SEED === undefined ? 20_240_611 : Number(process.env.PAIRPREF_FUZZ_SEED);
const RUNS = Math.max(1, Number(process.env.PAIRPREF_FUZZ_RUNS ?? 1));
const params = (numRuns: number): { seed: number; numRuns: number; includeErrorInReport: boolean } => ({ seed: SEED, numRuns: Math.ceil(numRuns * RUNS), includeErrorInReport: true });

const readJson = (rel: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));

/** Vocabulary size of a Hugging Face tokenizer.json: one past the largest model or added-token id. */
function vocabSize(json: Record<string, unknown>): number {
  const model = json.model as { vocab: Record<string, number> };
  const added = (json.added_tokens as Array<{ id: number }> | undefined) ?? [];
  return Math.max(...Object.values(model.vocab), ...added.map((t) => t.id)) + 1;
}

const defaultTokJson = readJson('../../models/default/tokenizer.json');
const defaultTok = createTokenizer(defaultTokJson);
const defaultVocab = vocabSize(defaultTokJson);
const defaultCfg = resolvePreferenceConfig(readJson('../../models/default/preference.json'));
const defaultPre = createPreprocessor(defaultCfg, defaultTok);

const byteTokJson = readJson('../fixtures/byte-tokenizer.json');
const byteTok = createTokenizer(byteTokJson);
const byteVocab = vocabSize(byteTokJson);

// ---- arbitrary inputs ----------------------------------------------------------------------

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((u) => String.fromCharCode(u));
/** Units that stress the parsers, the tokenizer and the truncation cut points. */
const nasty = fc.constantFrom(
  '[', ']', '"', '","', '", "', ',', '\\', '\\"', '\\u', '\\ud800', 'null', '\n', '\r\n', '\t', ' ', '  ', '\u0000', '\u001f',
  '\u2028', '\uFEFF', '\uFFFD', '\uFFFF', '😀', '👨‍👩‍👧', '\u{10FFFF}', 'é', 'e\u0301', '#', '## ', '- ', '1. ', '```', '**b**', '?',
  '<prompt>: ', '<|bos|>', '<|prompt|>', '</s>', '<s>', '<pad>',
);
const mixedUnit = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: nasty },
  { weight: 1, arbitrary: loneSurrogate },
);

/** Any text: graphemes, any code point, lone surrogates; mostly short, sometimes long enough to hit encodePrefix's prefix path. */
const text: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 6, arbitrary: fc.string({ unit: mixedUnit, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: mixedUnit, minLength: 1200, maxLength: 3000 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1200, maxLength: 4000 }) },
);

const turn = fc.option(text, { nil: null, freq: 6 });
const turns = fc.array(turn, { maxLength: 5 });

/** Wrong types a JavaScript caller (a dataset reader, a browser page) might still pass. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(undefined),
  fc.constant(null),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
);
const turnsOrJunk: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: turns },
  { weight: 1, arbitrary: fc.array(fc.oneof(turn, junk), { minLength: 1, maxLength: 4 }) },
  { weight: 1, arbitrary: junk },
  { weight: 1, arbitrary: text },
);

/** A raw (Arena CSV) field: a valid JSON list of strings/nulls, arbitrary JSON, arbitrary text, or not a string at all. */
const rawField: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: turns.map(turnsToRaw) },
  { weight: 2, arbitrary: fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constant(null)), { maxLength: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 3, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 3, arbitrary: text },
  { weight: 1, arbitrary: junk },
);

const id: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 20, arbitrary: fc.string({ unit: mixedUnit, minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: junk },
);

const turnsRow = fc.record({ id, kind: fc.constant('turns' as const), prompt: turnsOrJunk, response_a: turnsOrJunk, response_b: turnsOrJunk });
const rawRow = fc.record({ id, kind: fc.constant('raw' as const), prompt: rawField, response_a: rawField, response_b: rawField });
/** A comparison as a caller hands it over: well typed most of the time, not always. */
const comparison: fc.Arbitrary<Comparison> = fc.oneof(turnsRow, rawRow).map((r) => r as unknown as Comparison);

// ---- arbitrary configs (byte tokenizer) ----------------------------------------------------

const TEMPLATES = [
  { preset: null, prompt_prefix: 'P:', response_a_prefix: '|A:', response_b_prefix: '|B:', suffix: '.' },
  { preset: 'gemma-seq-cls' },
  { preset: 'llama-seq-cls' },
  { preset: 'label-token' },
  { preset: null, prompt_prefix: '', response_a_prefix: '\u0000', response_b_prefix: '😀', suffix: '' },
] as const;
const SPECIALS = [
  { bos_id: 1, eos_id: 2, pad_id: 0 },
  { bos_id: 1, eos_id: null, pad_id: 0 },
  { bos_id: null, eos_id: 2, pad_id: 0, padding_side: 'left' },
  { bos_id: null, eos_id: null, pad_id: 0 },
] as const;

/** A preference.json (minus max_length) plus how far max_length sits above the fixed tokens. */
const configSpec = fc.record({
  parser: fc.record({
    kind: fc.constantFrom('json', 'naive'),
    turns: fc.constantFrom('all', 'first', 'last'),
    lone_surrogates: fc.constantFrom('drop', 'empty-field', 'keep'),
    null_turn: fc.constantFrom('', 'null', '\uD800'),
    turn_joiner: fc.constantFrom(' ', '\n\n', '', '","'),
  }),
  template: fc.constantFrom(...TEMPLATES),
  special_tokens: fc.constantFrom(...SPECIALS),
  mode: fc.constantFrom('tail', 'spread', 'budget', 'turns-from-last'),
  fallback_caps: fc.record({ prompt: fc.nat(40), response_a: fc.nat(40), response_b: fc.nat(40) }),
  /** max_length = fixed tokens (specials + template) + room. */
  room: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 64 })),
  features: fc.option(fc.subarray([...FEATURE_NAMES], { minLength: 1 }), { nil: null }),
});
type ConfigSpec = typeof configSpec extends fc.Arbitrary<infer T> ? T : never;

function buildConfig(spec: ConfigSpec, tok: TextTokenizer, specialTokens: object = spec.special_tokens): PreferenceConfig {
  const json = (maxLength: number): Record<string, unknown> => ({
    name: 'fuzz',
    parser: spec.parser,
    template: spec.template,
    special_tokens: specialTokens,
    truncation: { mode: spec.mode, max_length: maxLength, fallback_caps: spec.fallback_caps },
    ...(spec.features === null ? {} : { features: { names: spec.features } }),
  });
  const fixed = fixedTokenCount(resolvePreferenceConfig(json(1)), tok);
  return resolvePreferenceConfig(json(fixed + spec.room));
}

const describeConfig = (cfg: PreferenceConfig): string =>
  JSON.stringify({ parser: cfg.parser, template: cfg.template.preset ?? cfg.template, special_tokens: cfg.special_tokens, truncation: cfg.truncation, features: cfg.features?.names.length ?? null });

// ---- the oracle: which field, if any, a row must be refused for ----------------------------

const DOCUMENTED_FIELDS: ReadonlySet<string> = new Set(['id', ...FIELDS, ...FIELDS.map((f) => `raw.${f}`)]);

function isTurnList(v: unknown): boolean {
  return Array.isArray(v) && v.every((t) => typeof t === 'string' || t === null);
}

function badJsonList(raw: string): boolean {
  try {
    return !isTurnList(JSON.parse(raw));
  } catch {
    return true;
  }
}

/** The field the row must be refused for (first offending field in id, prompt, response_a, response_b order), or null. */
function expectedError(c: Comparison, cfg: PreferenceConfig): string | null {
  if (typeof c.id !== 'string' || c.id === '') return 'id';
  for (const f of FIELDS) {
    const v: unknown = (c as Record<Field, unknown>)[f];
    if (c.kind === 'raw') {
      if (typeof v !== 'string' || (cfg.parser.kind === 'json' && badJsonList(v))) return `raw.${f}`;
    } else if (!isTurnList(v)) return f;
  }
  return null;
}

// ---- the properties ------------------------------------------------------------------------

function show(c: Comparison): string {
  return JSON.stringify(c, (_k, v: unknown) => (typeof v === 'string' && v.length > 200 ? `${v.slice(0, 200)}...(${v.length} units)` : v));
}

function encodeOutcome(pre: Preprocessor, c: Comparison): { row: EncodedRow } | { error: RowInputError } {
  try {
    return { row: pre.encode(c) };
  } catch (e) {
    if (e instanceof RowInputError) return { error: e };
    throw new assert.AssertionError({ message: `encode threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not a RowInputError, for ${show(c)}` });
  }
}

function checkRow(pre: Preprocessor, vocab: number, c: Comparison): void {
  const cfg = pre.config;
  const first = encodeOutcome(pre, c);
  const expected = expectedError(c, cfg);
  if ('error' in first) {
    const field = first.error.field;
    assert.ok(DOCUMENTED_FIELDS.has(field), `RowInputError field ${JSON.stringify(field)} is not a documented field (${first.error.message})`);
    assert.equal(field, expected, `refused for ${JSON.stringify(field)} (${first.error.message}); expected ${expected === null ? 'success' : JSON.stringify(expected)}`);
    assert.ok(first.error.message.length > 0, 'the error explains itself');
    // Deterministic refusal too.
    const again = encodeOutcome(pre, c);
    assert.ok('error' in again && again.error.field === field && again.error.message === first.error.message, 'a second encode refuses the same way');
    return;
  }
  assert.equal(expected, null, `encoded a row that should be refused for ${JSON.stringify(expected)}`);
  const { ids, truncated, features } = first.row;
  assert.ok(ids instanceof Int32Array, 'ids is an Int32Array');
  assert.ok(ids.length >= 1, 'at least one token');
  assert.ok(ids.length <= cfg.truncation.max_length, `${ids.length} tokens > max_length ${cfg.truncation.max_length}`);
  for (const t of ids) assert.ok(Number.isInteger(t) && t >= 0 && t < vocab, `token id ${t} outside [0, ${vocab})`);
  const { bos_id, eos_id } = cfg.special_tokens;
  if (bos_id !== null) assert.equal(ids[0], bos_id, 'starts with BOS');
  if (eos_id !== null) assert.equal(ids[ids.length - 1], eos_id, 'ends with EOS');
  assert.equal(typeof truncated, 'boolean');
  if (cfg.features === null) assert.equal(features, null);
  else {
    assert.ok(features instanceof Float32Array && features.length === cfg.features.names.length, 'one value per feature name');
    for (const [i, v] of features.entries()) assert.ok(Number.isFinite(v), `feature ${cfg.features.names[i]} = ${v}`);
  }
  const again = encodeOutcome(pre, c);
  assert.ok('row' in again, 'a second encode of the same row succeeds');
  assert.deepEqual(again.row, first.row, 'encoding is deterministic');
}

test('default bundle (shipped tokenizer.json + preference.json): arbitrary rows encode in range or fail with a documented field', () => {
  assert.equal(defaultVocab, 16000);
  fc.assert(
    fc.property(comparison, (c) => checkRow(defaultPre, defaultVocab, c)),
    params(300),
  );
});

test('byte tokenizer, configs varied over parser, turns, surrogates, template, specials, truncation mode and small max_length', () => {
  fc.assert(
    fc.property(configSpec, comparison, (spec, c) => {
      const cfg = buildConfig(spec, byteTok);
      const pre = createPreprocessor(cfg, byteTok);
      try {
        checkRow(pre, byteVocab, c);
      } catch (e) {
        if (e instanceof Error) e.message += `\nconfig: ${describeConfig(cfg)}`;
        throw e;
      }
    }),
    params(800),
  );
});

test('default tokenizer under small max_length and every truncation mode', () => {
  fc.assert(
    fc.property(configSpec, comparison, (spec, c) => {
      const s = spec;
      // The default vocabulary's own specials; the byte tokenizer's <s> </s> ids mean something else here.
      const specials = { bos_id: s.special_tokens.bos_id === null ? null : 15995, eos_id: s.special_tokens.eos_id === null ? null : 15996, pad_id: 15994 };
      const cfg = buildConfig(s, defaultTok, specials);
      const pre = createPreprocessor(cfg, defaultTok);
      try {
        checkRow(pre, defaultVocab, c);
      } catch (e) {
        if (e instanceof Error) e.message += `\nconfig: ${describeConfig(cfg)}`;
        throw e;
      }
    }),
    params(250),
  );
});

test('a turn list and its Arena CSV form (turnsToRaw) encode identically, for both parsers', () => {
  fc.assert(
    fc.property(configSpec, fc.string({ unit: mixedUnit, minLength: 1, maxLength: 8 }), turns, turns, turns, (spec, rowId, p, a, b) => {
      const cfg = buildConfig(spec, byteTok);
      const pre = createPreprocessor(cfg, byteTok);
      const fromTurns = pre.encode({ id: rowId, kind: 'turns', prompt: p, response_a: a, response_b: b });
      const fromRaw = pre.encode({ id: rowId, kind: 'raw', prompt: turnsToRaw(p), response_a: turnsToRaw(a), response_b: turnsToRaw(b) });
      assert.deepEqual(fromRaw, fromTurns, `config: ${describeConfig(cfg)}`);
    }),
    params(300),
  );
});
