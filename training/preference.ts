// The preference.json of a pairpref-trained bundle: json parser, a template of added marker
// tokens (one id each, so the model can find the three segments), budget truncation so both
// responses stay visible, and core/'s full feature set.
import { FEATURE_NAMES } from '../core/features.ts';
import { LABELS } from '../core/types.ts';
import { specialId } from './tokenizer-train.ts';

export interface TokenizerJsonLike {
  readonly added_tokens: ReadonlyArray<{ id: number; content: string }>;
}

/** Marker ids the model needs to split the sequence into prompt / response_a / response_b. */
export interface SegmentIds {
  readonly pad: number;
  readonly bos: number;
  readonly eos: number;
  readonly prompt: number;
  readonly response_a: number;
  readonly response_b: number;
}

export function segmentIds(tok: TokenizerJsonLike): SegmentIds {
  return {
    pad: specialId(tok, '<|pad|>'),
    bos: specialId(tok, '<|bos|>'),
    eos: specialId(tok, '<|eos|>'),
    prompt: specialId(tok, '<|prompt|>'),
    response_a: specialId(tok, '<|response_a|>'),
    response_b: specialId(tok, '<|response_b|>'),
  };
}

export function preferenceJson(tok: TokenizerJsonLike, opts: { name: string; version: string; maxLength: number }): Record<string, unknown> {
  const s = segmentIds(tok);
  return {
    name: opts.name,
    version: opts.version,
    labels: [...LABELS],
    parser: { kind: 'json', turns: 'all', null_turn: '', lone_surrogates: 'drop', turn_joiner: '\n\n' },
    template: {
      preset: null,
      prompt_prefix: '<|prompt|>',
      response_a_prefix: '<|response_a|>',
      response_b_prefix: '<|response_b|>',
      suffix: '',
    },
    special_tokens: { bos_id: s.bos, eos_id: s.eos, pad_id: s.pad, padding_side: 'right' },
    truncation: { mode: 'budget', max_length: opts.maxLength },
    head: { kind: 'seq-cls', output: 'logits' },
    inputs: { input_ids: 'input_ids', attention_mask: 'attention_mask' },
    features: { input: 'features', names: [...FEATURE_NAMES] },
  };
}
