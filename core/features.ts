// Cheap, side-symmetric numeric features of a comparison, for models with a features input
// (e.g. an LLM + gradient-boosted-features ensemble). Every a_* feature has a b_* twin, and every
// *_b_a feature is antisymmetric (swapping the responses negates it), so swap TTA and swap
// augmentation in training stay exact. Features are computed per turn list, independent of the
// turn joiner; counts are raw, lengths are log1p, ratios are logs of (x+1) ratios. All finite.
import type { ParsedComparison } from './types.ts';

/** Per-response statistics: the base names behind a_<stat> and b_<stat>. */
const SIDE_STATS = [
  'log_chars', // log1p(UTF-16 code units, summed over turns)
  'log_words', // log1p(whitespace-separated words)
  'newlines', // "\n" count
  'headers', // markdown header lines (#..###### then a space)
  'list_items', // bullet (-, *, +) or numbered (1. / 1)) list lines
  'code_fences', // lines starting with ``` or ~~~ (a block has two)
  'bold', // **bold** or __bold__ spans
  'questions', // "?" count
  'empty', // 1 when the response has no non-whitespace text (null/empty turns), else 0
  'turns', // number of turns
] as const;
type SideStat = (typeof SIDE_STATS)[number];

/** Antisymmetric b-versus-a features and how they derive from the side statistics. */
const DIFF_FEATURES = [
  'len_log_ratio_b_a', // log((chars_b + 1) / (chars_a + 1))
  'words_log_ratio_b_a', // log((words_b + 1) / (words_a + 1))
  'newlines_diff_b_a',
  'headers_diff_b_a',
  'list_items_diff_b_a',
  'code_fences_diff_b_a',
  'bold_diff_b_a',
  'questions_diff_b_a',
] as const;

const PROMPT_FEATURES = ['prompt_log_chars', 'prompt_log_words', 'prompt_turns'] as const;

export const FEATURE_NAMES: readonly string[] = Object.freeze([
  ...PROMPT_FEATURES,
  ...SIDE_STATS.map((s) => `a_${s}`),
  ...SIDE_STATS.map((s) => `b_${s}`),
  ...DIFF_FEATURES,
]);

const FEATURE_SET: ReadonlySet<string> = new Set(FEATURE_NAMES);

export function isFeatureName(name: string): boolean {
  return FEATURE_SET.has(name);
}

/** The feature that `name` becomes when response_a and response_b are exchanged. */
export function swapFeatureName(name: string): string {
  if (name.startsWith('a_')) return `b_${name.slice(2)}`;
  if (name.startsWith('b_')) return `a_${name.slice(2)}`;
  return name;
}

/** True for features whose value is negated when the responses are exchanged. */
export function isAntisymmetricFeature(name: string): boolean {
  return name.endsWith('_b_a');
}

/** The feature vector of the swapped comparison, derived from this one's (no recomputation). */
export function swapFeatureValues(names: readonly string[], values: Float32Array): Float32Array {
  const index = new Map(names.map((n, i) => [n, i] as const));
  const out = new Float32Array(names.length);
  names.forEach((name, i) => {
    const j = index.get(swapFeatureName(name));
    if (j === undefined) throw new Error(`swapFeatureValues: ${name} has no twin ${swapFeatureName(name)} in names`);
    const v = values[j] ?? 0;
    out[i] = isAntisymmetricFeature(name) ? 0 - v : v; // 0 - v: no -0
  });
  return out;
}

interface TextStats {
  chars: number;
  words: number;
  newlines: number;
  headers: number;
  list_items: number;
  code_fences: number;
  bold: number;
  questions: number;
  empty: number;
  turns: number;
}

function count(text: string, re: RegExp): number {
  let n = 0;
  re.lastIndex = 0;
  while (re.exec(text) !== null) n++;
  return n;
}

function countChar(text: string, ch: string): number {
  let n = 0;
  for (let i = text.indexOf(ch); i !== -1; i = text.indexOf(ch, i + 1)) n++;
  return n;
}

const WORD = /\S+/g;
const HEADER = /^[ \t]{0,3}#{1,6}[ \t]/gm;
const LIST_ITEM = /^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S/gm;
const FENCE = /^[ \t]{0,3}(?:```|~~~)/gm;
const BOLD = /\*\*(?=\S)[^*\n]*?\S\*\*|__(?=\S)[^_\n]*?\S__/g;

function textStats(turns: readonly string[]): TextStats {
  // Turns are joined by "\n" so a line-start pattern in a later turn still counts.
  const text = turns.join('\n');
  const extraNewlines = Math.max(0, turns.length - 1);
  return {
    chars: text.length - extraNewlines,
    words: count(text, WORD),
    newlines: countChar(text, '\n') - extraNewlines,
    headers: count(text, HEADER),
    list_items: count(text, LIST_ITEM),
    code_fences: count(text, FENCE),
    bold: count(text, BOLD),
    questions: countChar(text, '?'),
    empty: /\S/.test(text) ? 0 : 1,
    turns: turns.length,
  };
}

function sideValue(s: TextStats, stat: SideStat): number {
  switch (stat) {
    case 'log_chars':
      return Math.log1p(s.chars);
    case 'log_words':
      return Math.log1p(s.words);
    default:
      return s[stat];
  }
}

function diffValue(a: TextStats, b: TextStats, name: (typeof DIFF_FEATURES)[number]): number {
  switch (name) {
    case 'len_log_ratio_b_a':
      return Math.log((b.chars + 1) / (a.chars + 1));
    case 'words_log_ratio_b_a':
      return Math.log((b.words + 1) / (a.words + 1));
    default: {
      const stat = name.slice(0, -'_diff_b_a'.length) as keyof TextStats;
      return b[stat] - a[stat];
    }
  }
}

export function computeFeatures(parsed: ParsedComparison, names: readonly string[]): Float32Array {
  const p = textStats(parsed.prompt);
  const a = textStats(parsed.response_a);
  const b = textStats(parsed.response_b);
  const out = new Float32Array(names.length);
  names.forEach((name, i) => {
    let v: number;
    if (name === 'prompt_log_chars') v = Math.log1p(p.chars);
    else if (name === 'prompt_log_words') v = Math.log1p(p.words);
    else if (name === 'prompt_turns') v = p.turns;
    else if ((DIFF_FEATURES as readonly string[]).includes(name)) v = diffValue(a, b, name as (typeof DIFF_FEATURES)[number]);
    else if (FEATURE_SET.has(name) && (name.startsWith('a_') || name.startsWith('b_'))) {
      v = sideValue(name.startsWith('a_') ? a : b, name.slice(2) as SideStat);
    } else throw new Error(`computeFeatures: unknown feature ${JSON.stringify(name)}`);
    out[i] = Number.isFinite(v) ? v : 0;
  });
  return out;
}
