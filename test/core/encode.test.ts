// Golden ids for every truncation mode, with the byte tokenizer (id = UTF-8 byte + 3) and the short
// template "P:" P "|A:" A "|B:" B "." whose pieces are P: = 83 61, |A: = 127 68 61, |B: = 127 69 61,
// . = 49 (9 template tokens). Letters: a=100 b=101 c=102 ... h=107 i=108; x=123 y=124 z=125;
// space=35; digits 1=52 2=53 3=54; p=115.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeParsed, checkMaxLength } from '../../core/encode.ts';
import { createTokenizer } from '../../core/tokenizer.ts';
import { encodePrefix, proportionalShares } from '../../core/truncate.ts';
import type { ParsedComparison, TextTokenizer } from '../../core/types.ts';
import { byteIds, byteTok, config, mergesTokenizerJson } from './helpers.ts';

const PP = [83, 61];
const AP = [127, 68, 61];
const BP = [127, 69, 61];
const SFX = [49];
const specials = { bos_id: 1, eos_id: 2 };

const parsed = (prompt: string[], response_a: string[], response_b: string[]): ParsedComparison => ({ prompt, response_a, response_b });
const run = (p: ParsedComparison, truncation: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
  const { ids, truncated } = encodeParsed(p, config({ truncation, ...extra }), byteTok);
  return { ids: [...ids], truncated };
};

test('tail: whole rendered string cut at max_length - specials, response_b and suffix lose first', () => {
  const p = parsed(['hi'], ['abc'], ['xyz']);
  // "P:hi|A:abc|B:xyz." is 17 tokens; budget 12 - 2 = 10.
  assert.deepEqual(run(p, { mode: 'tail', max_length: 12 }, { special_tokens: specials }), {
    ids: [1, 83, 61, 107, 108, 127, 68, 61, 100, 101, 102, 2],
    truncated: true,
  });
  // Exactly fits: 17 + 2 = 19.
  assert.deepEqual(run(p, { mode: 'tail', max_length: 19 }, { special_tokens: specials }), {
    ids: [1, ...PP, 107, 108, ...AP, 100, 101, 102, ...BP, 123, 124, 125, ...SFX, 2],
    truncated: false,
  });
  // Suffix is cut first when one token short (no specials here).
  assert.deepEqual(run(p, { mode: 'tail', max_length: 16 }).ids, [...PP, 107, 108, ...AP, 100, 101, 102, ...BP, 123, 124, 125]);
});

test('tail: BOS only / EOS only', () => {
  const p = parsed(['h'], [], []);
  assert.deepEqual(run(p, { max_length: 64 }, { special_tokens: { bos_id: 1 } }).ids, [1, ...PP, 107, ...AP, ...BP, ...SFX]);
  assert.deepEqual(run(p, { max_length: 64 }, { special_tokens: { eos_id: 2 } }).ids, [...PP, 107, ...AP, ...BP, ...SFX, 2]);
});

test('tail: multi-turn fields are joined with turn_joiner before tokenizing', () => {
  const p = parsed(['h', 'i'], ['a', '', 'b'], ['x']);
  assert.deepEqual(run(p, { max_length: 64 }).ids, [...PP, 107, 35, 108, ...AP, 100, 35, 35, 101, ...BP, 123, ...SFX]);
  assert.deepEqual(run(p, { max_length: 64 }, { parser: { turn_joiner: '\n' } }).ids, [...PP, 107, 13, 108, ...AP, 100, 13, 13, 101, ...BP, 123, ...SFX]);
});

test('tail: emoji bytes may be cut mid-character; lone surrogate (keep) reaches the model as U+FFFD', () => {
  const p = parsed(['😀'], [], []);
  assert.deepEqual(run(p, { max_length: 4 }), { ids: [...PP, 243, 162], truncated: true });
  assert.deepEqual(run(parsed(['a\uD800'], [], []), { max_length: 64 }).ids, [...PP, 100, 242, 194, 192, ...AP, ...BP, ...SFX]);
});

test('empty fields: only the template and specials remain, in every mode', () => {
  for (const mode of ['tail', 'spread', 'budget', 'turns-from-last']) {
    for (const p of [parsed([], [], []), parsed([''], [''], [''])]) {
      assert.deepEqual(run(p, { mode, max_length: 11 }, { special_tokens: specials }), { ids: [1, ...PP, ...AP, ...BP, ...SFX, 2], truncated: false }, mode);
    }
  }
});

test('spread: each part cut to floor(avail / 3); unused room is not redistributed', () => {
  const p = parsed(['hi'], ['abc'], ['xyz']);
  // max_length 18 - 2 specials - 9 template = avail 7 -> 2 tokens per part.
  assert.deepEqual(run(p, { mode: 'spread', max_length: 18 }, { special_tokens: specials }), {
    ids: [1, ...PP, 107, 108, ...AP, 100, 101, ...BP, 123, 124, ...SFX, 2],
    truncated: true,
  });
  // A short prompt does not give its room to the responses.
  assert.deepEqual(run(parsed(['h'], ['abc'], ['xyz']), { mode: 'spread', max_length: 15 }).ids, [...PP, 107, ...AP, 100, 101, ...BP, 123, 124, ...SFX]);
  assert.equal(run(parsed(['h'], ['ab'], ['xy']), { mode: 'spread', max_length: 15 }).truncated, false);
});

test('budget: prompt <= avail/4, response_a <= half the rest, response_b the remainder', () => {
  // avail = 17 - 9 = 8: prompt 2 ("he"), a floor(6/2) = 3 ("abc"), b 8 - 2 - 3 = 3 (only "xy" exists).
  assert.deepEqual(run(parsed(['hello'], ['abcdef'], ['xy']), { mode: 'budget', max_length: 17 }), {
    ids: [...PP, 107, 104, ...AP, 100, 101, 102, ...BP, 123, 124, ...SFX],
    truncated: true,
  });
  // A 1-token prompt leaves more: a floor(7/2) = 3, b 8 - 1 - 3 = 4 ("wxyz").
  assert.deepEqual(run(parsed(['h'], ['abcdef'], ['wxyz12']), { mode: 'budget', max_length: 17 }).ids, [
    ...PP, 107, ...AP, 100, 101, 102, ...BP, 122, 123, 124, 125, ...SFX,
  ]);
  assert.equal(run(parsed(['h'], ['abc'], ['wxyz']), { mode: 'budget', max_length: 17 }).truncated, false);
});

test('turns-from-last: keeps the longest suffix of turns that fits', () => {
  const p = parsed(['p1', 'p2', 'p3'], ['a1', 'a2', 'a3'], ['b1', 'b2', 'b3']);
  // Per field: 1 turn = 2 tokens, 2 turns = 5 ("p2 p3"), 3 turns = 8.
  const enc = (avail: number) => run(p, { mode: 'turns-from-last', max_length: 9 + avail });
  assert.deepEqual(enc(15), {
    ids: [...PP, 115, 53, 35, 115, 54, ...AP, 100, 53, 35, 100, 54, ...BP, 101, 53, 35, 101, 54, ...SFX],
    truncated: true,
  });
  assert.deepEqual(enc(14), { ids: [...PP, 115, 54, ...AP, 100, 54, ...BP, 101, 54, ...SFX], truncated: true });
  assert.deepEqual(enc(24), {
    ids: [...PP, ...byteIds('p1 p2 p3'), ...AP, ...byteIds('a1 a2 a3'), ...BP, ...byteIds('b1 b2 b3'), ...SFX],
    truncated: false,
  });
});

test('turns-from-last: fields with different turn counts align from the last turn', () => {
  const p = parsed(['p1', 'p2'], ['a2'], ['b1', 'b2']);
  // k = 1: "p2" "a2" "b2" = 6; k = 2: "p1 p2" "a2" "b1 b2" = 12.
  assert.deepEqual(run(p, { mode: 'turns-from-last', max_length: 9 + 11 }).ids, [...PP, 115, 53, ...AP, 100, 53, ...BP, 101, 53, ...SFX]);
  assert.equal(run(p, { mode: 'turns-from-last', max_length: 9 + 12 }).truncated, false);
});

test('turns-from-last fallback: last turn with fallback_caps, then proportional cut', () => {
  const p = parsed(['zz', 'hello'], ['abcdef'], ['uvwxyz']);
  const caps = { prompt: 2, response_a: 3, response_b: 3 };
  // Last turn needs 5 + 6 + 6 = 17 > avail. Caps give 2 + 3 + 3 = 8.
  assert.deepEqual(run(p, { mode: 'turns-from-last', max_length: 9 + 9, fallback_caps: caps }), {
    ids: [...PP, 107, 104, ...AP, 100, 101, 102, ...BP, 120, 121, 122, ...SFX],
    truncated: true,
  });
  // avail 7 < 8: floor(7*2/8)=1, floor(7*3/8)=2, 2; leftover 2 -> prompt +1, response_a +1 -> 2, 3, 2.
  assert.deepEqual(run(p, { mode: 'turns-from-last', max_length: 9 + 7, fallback_caps: caps }).ids, [
    ...PP, 107, 104, ...AP, 100, 101, 102, ...BP, 120, 121, ...SFX,
  ]);
  // Default caps (256/512/512) with a small avail: purely proportional to the part lengths 5, 6, 6.
  // avail 10: floor(50/17)=2, floor(60/17)=3, 3; leftover 2 -> prompt 3, response_a 4.
  assert.deepEqual(run(p, { mode: 'turns-from-last', max_length: 9 + 10 }).ids, [
    ...PP, 107, 104, 111, ...AP, 100, 101, 102, 103, ...BP, 120, 121, 122, ...SFX,
  ]);
});

test('proportionalShares: floor shares, leftovers in order, never beyond a part', () => {
  assert.deepEqual(proportionalShares([2, 3, 3], 7), [2, 3, 2]);
  assert.deepEqual(proportionalShares([10, 0, 5], 6), [4, 0, 2]);
  assert.deepEqual(proportionalShares([1, 1, 1], 2), [1, 1, 0]);
  assert.deepEqual(proportionalShares([1, 9, 0], 5), [1, 4, 0]);
  assert.deepEqual(proportionalShares([1, 2, 3], 10), [1, 2, 3]);
  assert.deepEqual(proportionalShares([4, 4, 4], 0), [0, 0, 0]);
});

test('max_length too small for specials + template is an error, not a silent empty row', () => {
  const p = parsed(['h'], ['a'], ['b']);
  for (const mode of ['spread', 'budget', 'turns-from-last']) {
    assert.throws(() => run(p, { mode, max_length: 10 }, { special_tokens: specials }), /truncation\.max_length 10 is too small: special tokens and template pieces alone take 11 tokens/);
  }
  assert.throws(() => run(p, { max_length: 1 }, { special_tokens: specials }), /max_length 1 is too small/);
  assert.throws(() => checkMaxLength(config({ truncation: { max_length: 11 }, special_tokens: specials }), byteTok), /max_length 11 is too small/);
  checkMaxLength(config({ truncation: { max_length: 12 }, special_tokens: specials }), byteTok);
});

/** A tokenizer wrapper that records the longest text it was asked to encode. */
function recording(tok: TextTokenizer): TextTokenizer & { longest: number } {
  const r = { longest: 0, encode: (t: string) => ((r.longest = Math.max(r.longest, t.length)), tok.encode(t)) };
  return r;
}

function seededText(seed: number, length: number): string {
  const words = ['lorem', 'ipsum', '--------', '😀', ' ', '  \n   ', 'x', 'é', '----', 'loremipsum', '中文'];
  let s = seed;
  let out = '';
  while (out.length < length) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out += words[s % words.length] + (s % 3 === 0 ? '' : ' ');
  }
  return out;
}

test('encodePrefix equals the full tokenization cut at n, with merges and without pre-splitting', () => {
  const toks: Array<[string, TextTokenizer]> = [
    ['bytes', byteTok],
    ['merges+regex', createTokenizer(mergesTokenizerJson(true))],
    ['merges, one pre-token', createTokenizer(mergesTokenizerJson(false))],
  ];
  for (const [name, tok] of toks) {
    for (const seed of [1, 2, 3]) {
      const text = seededText(seed, 16_000);
      const full = tok.encode(text);
      for (const n of [0, 1, 7, 100, 333, 1000]) {
        const rec = recording(tok);
        const cut = encodePrefix(rec, text, n);
        assert.deepEqual(cut.ids, full.slice(0, n), `${name} seed ${seed} n ${n}`);
        assert.equal(cut.truncated, full.length > n);
        assert.ok(rec.longest < text.length, `${name} n ${n}: tokenized the whole text`);
      }
      // A cap beyond the text's length returns everything, untruncated.
      assert.deepEqual(encodePrefix(tok, text, full.length), { ids: full, truncated: false });
    }
  }
});

test('encodePrefix never splits a surrogate pair at its cut', () => {
  const text = '😀'.repeat(5000);
  const cut = encodePrefix(byteTok, text, 101);
  assert.deepEqual(cut.ids, byteIds(text).slice(0, 101));
});

test('1 MB field: no mode tokenizes the whole field, and tail equals tokenizing the full text', () => {
  const inner = createTokenizer(mergesTokenizerJson(true));
  // Work is counted in characters handed to the tokenizer (deterministic, unlike a wall-clock bound):
  // a 2,048-token cut needs a few prefixes of ~10k characters, not the 1 MB field.
  let chars = 0;
  const tok: TextTokenizer = { encode: (text) => ((chars += text.length), inner.encode(text)) };
  const big = seededText(7, 1_000_000);
  const p = parsed(['hi'], [big], ['ok']);
  for (const mode of ['tail', 'spread', 'budget', 'turns-from-last']) {
    const cfg = config({ truncation: { mode, max_length: 2048 }, special_tokens: specials });
    chars = 0;
    const { ids, truncated } = encodeParsed(p, cfg, tok);
    assert.ok(chars < big.length / 4, `${mode} tokenized ${chars} characters of a ${big.length}-character field`);
    assert.equal(truncated, true);
    assert.equal(ids[0], 1);
    assert.equal(ids[ids.length - 1], 2);
    assert.ok(ids.length <= 2048, mode);
    if (mode === 'tail') {
      const full = tok.encode('P:hi|A:' + big + '|B:ok.');
      assert.ok(full.length > 100_000);
      assert.deepEqual([...ids], [1, ...full.slice(0, 2046), 2]);
    }
  }
  // budget: response_b is short, so the row is prompt + half the rest + "ok" + template + specials.
  const b = encodeParsed(p, config({ truncation: { mode: 'budget', max_length: 2048 }, special_tokens: specials }), tok);
  assert.equal(b.ids.length, 2 + 9 + 2 + Math.floor((2048 - 2 - 9 - 2) / 2) + 2);
});
