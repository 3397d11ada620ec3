// ParsedComparison -> token ids: template, tokenize, truncate (see truncate.ts for the modes),
// then BOS/EOS from preference.json: ids = [bos?] + content + [eos?].
import { renderTemplate, templatePieces } from './template.ts';
import { encodePrefix, truncateBudget, truncateSpread, truncateTurnsFromLast, type PartsCut } from './truncate.ts';
import type { ParsedComparison, PreferenceConfig, TextTokenizer } from './types.ts';

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

/** Token counts of special tokens + template pieces (tokenized separately, as the part modes do). */
export function fixedTokenCount(cfg: PreferenceConfig, tok: TextTokenizer): number {
  const pieces = templatePieces(cfg.template).reduce((s, piece) => s + (piece === '' ? 0 : tok.encode(piece).length), 0);
  return cfg.truncation.max_length - contentBudget(cfg) + pieces;
}

/** Bundle-load check: max_length must exceed the special tokens plus the template's tokens. */
export function checkMaxLength(cfg: PreferenceConfig, tok: TextTokenizer): void {
  const fixed = fixedTokenCount(cfg, tok);
  if (cfg.truncation.max_length <= fixed) throw tooSmall(cfg, fixed);
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

export function encodeParsed(
  parsed: ParsedComparison,
  cfg: PreferenceConfig,
  tok: TextTokenizer,
): { ids: Int32Array; truncated: boolean } {
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
    const cut = encodePrefix(tok, text, budget);
    return { ids: withSpecials(cfg, cut.ids), truncated: cut.truncated };
  }

  const pieces = templatePieces(cfg.template).map((piece) => (piece === '' ? [] : tok.encode(piece)));
  const [pp, ap, bp, sfx] = pieces as [number[], number[], number[], number[]];
  const avail = budget - pieces.reduce((s, ids) => s + ids.length, 0);
  if (avail < 0) throw tooSmall(cfg, cfg.truncation.max_length - avail);

  const parts = [parsed.prompt, parsed.response_a, parsed.response_b] as const;
  let cut: PartsCut;
  if (mode === 'spread') cut = truncateSpread(tok, parts, joiner, avail);
  else if (mode === 'budget') cut = truncateBudget(tok, parts, joiner, avail);
  else {
    const caps = cfg.truncation.fallback_caps;
    cut = truncateTurnsFromLast(tok, parts, joiner, avail, [caps.prompt, caps.response_a, caps.response_b]);
  }
  const [p, a, b] = cut.parts;
  return { ids: withSpecials(cfg, [...pp, ...p, ...ap, ...a, ...bp, ...b, ...sfx]), truncated: cut.truncated };
}
