// Token-level truncation primitives and the four truncation modes' part-budget rules.
//
// Modes (content budget = max_length - BOS? - EOS?; specials are added by encode.ts afterwards):
// - tail: tokenize the whole rendered template string and keep its first `budget` tokens, so the
//   end (response_b, then suffix) is lost first. One tokenization, like the reference pipelines.
// - spread / budget / turns-from-last: the template pieces and the three parts (prompt, response_a,
//   response_b, each its turns joined by turn_joiner) are tokenized separately and concatenated as
//   [prompt_prefix, P, a_prefix, A, b_prefix, B, suffix]; avail = budget - template-piece tokens.
//   - spread: each part cut to floor(avail / 3) tokens (unused room is not redistributed).
//   - budget: prompt <= floor(avail / 4), response_a <= floor((avail - prompt_used) / 2),
//     response_b gets what remains.
//   - turns-from-last: turns are aligned from the end (the last turn of each field together);
//     keep the longest suffix of k turns whose three joined parts fit avail together, walking
//     k = 1, 2, ... and stopping at the first k that does not fit. If not even k = 1 fits: the
//     last turn only, each part cut to fallback_caps (prompt 256, a 512, b 512 by default); if the
//     sum is still over avail, each part gets floor(avail * len / total) tokens and the leftover
//     (fewer tokens than parts) goes one token each to prompt, then response_a, then response_b.
//
// Each function is a coroutine (core/tokenizing.ts) that yields the texts it needs tokenized, so the
// same logic runs on a synchronous tokenizer (runSync: encode.ts's encodeParsed, encodePrefix here)
// and on the native one, which answers with Promises (runBatched, in batches). Independent requests
// are asked for in one round (the three parts of spread and of each turns-from-last step).
import { all, runSync, tokenize, type Tokenizing } from './tokenizing.ts';
import type { TextTokenizer } from './types.ts';

export interface Cut {
  /** The first tokens of the text's tokenization, at most the cap. */
  readonly ids: number[];
  /** True when the text has more tokens than were kept. */
  readonly truncated: boolean;
}

/** Never split a surrogate pair: a half pair would tokenize as U+FFFD. */
function cutIndex(text: string, at: number): number {
  const prev = text.charCodeAt(at - 1);
  const next = text.charCodeAt(at);
  return prev >= 0xd800 && prev <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? at - 1 : at;
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The first `n` ids of tok.encode(text) without tokenizing all of a huge text (a 1 MB field).
 *
 * No fixed characters-per-token bound works: with byte-level BPE a token can be a fraction of a
 * UTF-16 code unit (an emoji is 2 units, 4 byte tokens) and a vocab entry can span dozens of units
 * (runs of spaces, dashes), so neither "n units hold n tokens" nor "n tokens fit in n units" holds.
 * Instead: tokenize a prefix; a cut can only change tokens near it (the last pre-token, or the BPE
 * merges around the cut), so once a prefix of L units yields more than n tokens, tokenize a prefix
 * of 2L units as well: if both agree on the first n ids, those ids do not depend on where the text
 * was cut, i.e. they equal the full tokenization's. Otherwise double L and retry. Texts shorter
 * than 3L are tokenized whole, so short inputs are always exact.
 */
export function* prefixSteps(text: string, n: number): Tokenizing<Cut> {
  const cap = Math.max(0, n);
  // ~4 units per token is typical prose; the doubling loop handles denser or sparser text.
  let len = 4 * cap + 256;
  for (;;) {
    // Prefix + check cost about 3 * len units of tokenizing: below that, tokenize the whole text.
    if (3 * len >= text.length) {
      const ids = yield* tokenize(text);
      return ids.length > cap ? { ids: ids.slice(0, cap), truncated: true } : { ids, truncated: false };
    }
    const a = yield* tokenize(text.slice(0, cutIndex(text, len)));
    if (a.length > cap + 8) {
      const b = yield* tokenize(text.slice(0, cutIndex(text, 2 * len)));
      if (commonPrefixLength(a, b) >= cap + 1) return { ids: b.slice(0, cap), truncated: true };
    }
    len *= 2;
  }
}

export function encodePrefix(tok: TextTokenizer, text: string, n: number): Cut {
  return runSync(tok, prefixSteps(text, n));
}

/**
 * Splits `avail` tokens over parts of the given lengths in proportion to their lengths
 * (floor), then hands the leftover out one token per part in order (prompt, a, b), never beyond
 * a part's length.
 */
export function proportionalShares(lengths: readonly number[], avail: number): number[] {
  const total = lengths.reduce((s, l) => s + l, 0);
  if (total <= avail) return [...lengths];
  const shares = lengths.map((l) => Math.floor((avail * l) / total));
  // The floors lose less than 1 token per part, so the leftover is below the number of parts:
  // one extra token each, in order, is enough (the loop only repeats for degenerate inputs).
  let left = avail - shares.reduce((s, x) => s + x, 0);
  while (left > 0) {
    let gave = false;
    for (let i = 0; i < shares.length && left > 0; i++) {
      if ((shares[i] ?? 0) < (lengths[i] ?? 0)) {
        shares[i] = (shares[i] ?? 0) + 1;
        left--;
        gave = true;
      }
    }
    if (!gave) break;
  }
  return shares;
}

/** Part texts after turn selection by truncation, with their ids. */
export interface PartsCut {
  readonly parts: readonly [number[], number[], number[]];
  readonly truncated: boolean;
}

export type Parts = readonly [readonly string[], readonly string[], readonly string[]];

export function* spreadSteps(parts: Parts, joiner: string, avail: number): Tokenizing<PartsCut> {
  const each = Math.floor(avail / 3);
  const cuts = yield* all(parts.map((turns) => prefixSteps(turns.join(joiner), each)));
  return { parts: cuts.map((c) => c.ids) as unknown as PartsCut['parts'], truncated: cuts.some((c) => c.truncated) };
}

export function* budgetSteps(parts: Parts, joiner: string, avail: number): Tokenizing<PartsCut> {
  const [p, a, b] = parts.map((turns) => turns.join(joiner)) as [string, string, string];
  const cp = yield* prefixSteps(p, Math.floor(avail / 4));
  const ca = yield* prefixSteps(a, Math.floor((avail - cp.ids.length) / 2));
  const cb = yield* prefixSteps(b, avail - cp.ids.length - ca.ids.length);
  return { parts: [cp.ids, ca.ids, cb.ids], truncated: cp.truncated || ca.truncated || cb.truncated };
}

export function* turnsFromLastSteps(
  parts: Parts,
  joiner: string,
  avail: number,
  caps: readonly [number, number, number],
): Tokenizing<PartsCut> {
  const maxTurns = Math.max(...parts.map((t) => t.length));
  let kept: [number[], number[], number[]] = [[], [], []];
  let keptTurns = 0;
  for (let k = 1; k <= maxTurns; k++) {
    // Capped at avail + 1 tokens: enough to tell "does not fit" without tokenizing 1 MB.
    const cuts = yield* all(parts.map((turns) => prefixSteps(turns.slice(Math.max(0, turns.length - k)).join(joiner), avail + 1)));
    if (cuts.some((c) => c.truncated) || cuts.reduce((s, c) => s + c.ids.length, 0) > avail) break;
    kept = cuts.map((c) => c.ids) as [number[], number[], number[]];
    keptTurns = k;
  }
  if (keptTurns > 0 || maxTurns === 0) return { parts: kept, truncated: keptTurns < maxTurns };

  // Not even the last turn fits: last turn only, capped, then cut proportionally.
  const capped = (yield* all(parts.map((turns, i) => prefixSteps(turns[turns.length - 1] ?? '', caps[i] ?? 0)))).map((c) => c.ids);
  const shares = proportionalShares(capped.map((ids) => ids.length), avail);
  return { parts: capped.map((ids, i) => ids.slice(0, shares[i])) as [number[], number[], number[]], truncated: true };
}
