// ParsedComparison -> token ids: template, tokenize, truncate (see truncate.ts for the modes),
// then BOS/EOS from preference.json: ids = [bos?] + content + [eos?]. The steps are coroutines
// (core/tokenizing.ts) so a synchronous or a batch tokenizer can answer them; the template pieces'
// ids are the same for every row, so a preprocessor tokenizes them once (templatePieceSteps).
import { renderTemplate, templatePieces } from './template.ts';
import { budgetSteps, prefixSteps, spreadSteps, turnsFromLastSteps, type PartsCut } from './truncate.ts';
import { runSync, type Tokenizing } from './tokenizing.ts';
import type { ParsedComparison, PreferenceConfig, TextTokenizer } from './types.ts';

/** The ids of the template's pieces (prompt prefix, response a/b prefixes, suffix); [] for an empty piece. */
export type PieceIds = readonly [number[], number[], number[], number[]];

/** Tokens left for content once BOS/EOS are reserved. */
function contentBudget(cfg: PreferenceConfig): number {
  const st = cfg.special_tokens;
  return cfg.truncation.max_length - (st.bos_id === null ? 0 : 1) - (st.eos_id === null ? 0 : 1);
}

function tooSmall(cfg: PreferenceConfig, needed: number): Error {
  return new Error(
    `preference.json: truncation.max_length ${cfg.truncation.max_length} is too small: special tokens and ` +
      `template pieces alone take ${needed} tokens`,
  );
}

/** The template pieces' ids, each tokenized separately (as the part modes concatenate them). */
export function* templatePieceSteps(cfg: PreferenceConfig): Tokenizing<PieceIds> {
  const pieces = templatePieces(cfg.template);
  const texts = pieces.filter((piece) => piece !== '');
  const ids = texts.length === 0 ? [] : yield texts;
  let k = 0;
  return pieces.map((piece) => (piece === '' ? [] : ids[k++]!)) as unknown as PieceIds;
}

/** Token counts of special tokens + template pieces, from the pieces' ids. */
function fixedTokens(cfg: PreferenceConfig, pieces: PieceIds): number {
  return cfg.truncation.max_length - contentBudget(cfg) + pieces.reduce((s, ids) => s + ids.length, 0);
}

/** Token counts of special tokens + template pieces (tokenized separately, as the part modes do). */
export function fixedTokenCount(cfg: PreferenceConfig, tok: TextTokenizer): number {
  return fixedTokens(cfg, runSync(tok, templatePieceSteps(cfg)));
}

/** Bundle-load check on the pieces' ids: max_length must exceed the special tokens plus the template's tokens. */
export function checkPieces(cfg: PreferenceConfig, pieces: PieceIds): void {
  const fixed = fixedTokens(cfg, pieces);
  if (cfg.truncation.max_length <= fixed) throw tooSmall(cfg, fixed);
}

/** Bundle-load check: max_length must exceed the special tokens plus the template's tokens. */
export function checkMaxLength(cfg: PreferenceConfig, tok: TextTokenizer): void {
  checkPieces(cfg, runSync(tok, templatePieceSteps(cfg)));
}

function withSpecials(cfg: PreferenceConfig, content: readonly number[]): Int32Array {
  const { bos_id, eos_id } = cfg.special_tokens;
  const out = new Int32Array(content.length + (bos_id === null ? 0 : 1) + (eos_id === null ? 0 : 1));
  let i = 0;
  if (bos_id !== null) out[i++] = bos_id;
  out.set(content, i);
  if (eos_id !== null) out[i + content.length] = eos_id;
  return out;
}

/** The row's ids and whether truncation cut anything, given the template pieces' ids. */
export function* encodeParsedSteps(
  parsed: ParsedComparison,
  cfg: PreferenceConfig,
  pieceIds: PieceIds,
): Tokenizing<{ ids: Int32Array; truncated: boolean }> {
  const budget = contentBudget(cfg);
  if (budget < 0) throw tooSmall(cfg, cfg.truncation.max_length - budget);
  const joiner = cfg.parser.turn_joiner;
  const mode = cfg.truncation.mode;

  if (mode === 'tail') {
    const text = renderTemplate(
      cfg.template,
      parsed.prompt.join(joiner),
      parsed.response_a.join(joiner),
      parsed.response_b.join(joiner),
    );
    const cut = yield* prefixSteps(text, budget);
    return { ids: withSpecials(cfg, cut.ids), truncated: cut.truncated };
  }

  const [pp, ap, bp, sfx] = pieceIds;
  const avail = budget - pieceIds.reduce((s, ids) => s + ids.length, 0);
  if (avail < 0) throw tooSmall(cfg, cfg.truncation.max_length - avail);

  const parts = [parsed.prompt, parsed.response_a, parsed.response_b] as const;
  let cut: PartsCut;
  if (mode === 'spread') cut = yield* spreadSteps(parts, joiner, avail);
  else if (mode === 'budget') cut = yield* budgetSteps(parts, joiner, avail);
  else {
    const caps = cfg.truncation.fallback_caps;
    cut = yield* turnsFromLastSteps(parts, joiner, avail, [caps.prompt, caps.response_a, caps.response_b]);
  }
  const [p, a, b] = cut.parts;
  return { ids: withSpecials(cfg, [...pp, ...p, ...ap, ...a, ...bp, ...b, ...sfx]), truncated: cut.truncated };
}

export function encodeParsed(
  parsed: ParsedComparison,
  cfg: PreferenceConfig,
  tok: TextTokenizer,
): { ids: Int32Array; truncated: boolean } {
  // Tail mode tokenizes the whole rendered template: it needs no piece ids.
  const pieces: PieceIds = cfg.truncation.mode === 'tail' ? [[], [], [], []] : runSync(tok, templatePieceSteps(cfg));
  return runSync(tok, encodeParsedSteps(parsed, cfg, pieces));
}
