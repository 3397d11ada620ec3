// preference.json -> PreferenceConfig: validates every field, fills defaults, expands template
// presets. Every error names the JSON path so a bundle author can fix it without reading code.
// Unknown keys are rejected at every level: a typo must not silently fall back to a default.
// (That max_length exceeds specials + template tokens needs a tokenizer: checked in encode.ts.)
import { FEATURE_NAMES, isFeatureName } from './features.ts';
import { TEMPLATE_PRESETS } from './template.ts';
import {
  LABELS,
  type FeaturesConfig,
  type HeadConfig,
  type InputsConfig,
  type ParserConfig,
  type PreferenceConfig,
  type SpecialTokensConfig,
  type TemplateConfig,
  type TemplatePreset,
  type TruncationConfig,
} from './types.ts';

export class BundleConfigError extends Error {
  /** JSON path of the offending value, e.g. "truncation.mode" ("" for the document itself). */
  readonly path: string;
  constructor(path: string, message: string) {
    super(`preference.json: ${path === '' ? '' : `${path} `}${message}`);
    this.name = 'BundleConfigError';
    this.path = path;
  }
}

type Obj = Readonly<Record<string, unknown>>;

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v));
const join = (base: string, key: string): string => (base === '' ? key : `${base}.${key}`);

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function object(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (!isObj(v)) throw new BundleConfigError(path, `must be a JSON object (got ${show(v)})`);
  for (const key of Object.keys(v)) {
    if (!allowed.includes(key)) {
      throw new BundleConfigError(join(path, key), `is not a known key; expected one of ${allowed.join(', ')}`);
    }
  }
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, options: readonly T[], dflt?: T): T {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
    throw new BundleConfigError(path, `must be one of ${options.join(', ')} (got ${show(v)})`);
  }
  return v as T;
}

function str(v: unknown, path: string, dflt?: string, nonEmpty = false): string {
  if (v === undefined && dflt !== undefined) return dflt;
  if (v === undefined) throw new BundleConfigError(path, 'is required (a string)');
  if (typeof v !== 'string') throw new BundleConfigError(path, `must be a string (got ${show(v)})`);
  if (nonEmpty && v === '') throw new BundleConfigError(path, 'must not be empty');
  return v;
}

function int(v: unknown, path: string, min: number, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    const what = min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer >= ${min}`;
    throw new BundleConfigError(path, `must be ${what} (got ${show(v)})`);
  }
  return v;
}

function optionalId(v: unknown, path: string): number | null {
  return v === undefined || v === null ? null : int(v, path, 0);
}

function parser(v: unknown): ParserConfig {
  const o = object(v ?? {}, 'parser', ['kind', 'turns', 'null_turn', 'lone_surrogates', 'turn_joiner']);
  return {
    kind: oneOf(o.kind, 'parser.kind', ['json', 'naive'], 'json'),
    turns: oneOf(o.turns, 'parser.turns', ['all', 'first', 'last'], 'all'),
    null_turn: str(o.null_turn, 'parser.null_turn', ''),
    lone_surrogates: oneOf(o.lone_surrogates, 'parser.lone_surrogates', ['drop', 'empty-field', 'keep'], 'drop'),
    turn_joiner: str(o.turn_joiner, 'parser.turn_joiner', ' '),
  };
}

const PRESETS = Object.keys(TEMPLATE_PRESETS) as TemplatePreset[];

function template(v: unknown): TemplateConfig {
  if (v === undefined) throw new BundleConfigError('template', `is required: { "preset": one of ${PRESETS.join(', ')} } or explicit prefixes`);
  // Shorthand: "template": "gemma-seq-cls".
  const o = object(typeof v === 'string' ? { preset: v } : v, 'template', [
    'preset', 'prompt_prefix', 'response_a_prefix', 'response_b_prefix', 'suffix',
  ]);
  const preset = o.preset === undefined || o.preset === null ? null : oneOf(o.preset, 'template.preset', PRESETS);
  const base = preset === null ? null : TEMPLATE_PRESETS[preset];
  const piece = (key: 'prompt_prefix' | 'response_a_prefix' | 'response_b_prefix' | 'suffix'): string => {
    const path = `template.${key}`;
    if (o[key] !== undefined) return str(o[key], path);
    if (base !== null) return base[key];
    if (key === 'suffix') return '';
    throw new BundleConfigError(path, `is required when template.preset is null (presets: ${PRESETS.join(', ')})`);
  };
  return {
    preset,
    prompt_prefix: piece('prompt_prefix'),
    response_a_prefix: piece('response_a_prefix'),
    response_b_prefix: piece('response_b_prefix'),
    suffix: piece('suffix'),
  };
}

function specialTokens(v: unknown): SpecialTokensConfig {
  const o = object(v ?? {}, 'special_tokens', ['bos_id', 'eos_id', 'pad_id', 'padding_side']);
  return {
    bos_id: optionalId(o.bos_id, 'special_tokens.bos_id'),
    eos_id: optionalId(o.eos_id, 'special_tokens.eos_id'),
    pad_id: int(o.pad_id, 'special_tokens.pad_id', 0, 0),
    padding_side: oneOf(o.padding_side, 'special_tokens.padding_side', ['right', 'left'], 'right'),
  };
}

/**
 * Tokens per row. Bounded: the warm-up batch and every padded batch are max_length wide, so a
 * typo such as 10000000 would allocate gigabytes at load instead of failing with a message.
 */
export const MAX_MAX_LENGTH = 131_072;

function maxLength(v: unknown): number {
  const n = int(v, 'truncation.max_length', 1);
  if (n > MAX_MAX_LENGTH) throw new BundleConfigError('truncation.max_length', `must be at most ${MAX_MAX_LENGTH} (got ${n})`);
  return n;
}

function truncation(v: unknown): TruncationConfig {
  if (v === undefined) throw new BundleConfigError('truncation', 'is required (at least { "max_length": N })');
  const o = object(v, 'truncation', ['mode', 'max_length', 'fallback_caps']);
  if (o.max_length === undefined) throw new BundleConfigError('truncation.max_length', 'is required (a positive integer)');
  const caps = object(o.fallback_caps ?? {}, 'truncation.fallback_caps', ['prompt', 'response_a', 'response_b']);
  return {
    mode: oneOf(o.mode, 'truncation.mode', ['tail', 'spread', 'budget', 'turns-from-last'], 'tail'),
    max_length: maxLength(o.max_length),
    fallback_caps: {
      prompt: int(caps.prompt, 'truncation.fallback_caps.prompt', 0, 256),
      response_a: int(caps.response_a, 'truncation.fallback_caps.response_a', 0, 512),
      response_b: int(caps.response_b, 'truncation.fallback_caps.response_b', 0, 512),
    },
  };
}

function head(v: unknown): HeadConfig {
  const o = object(v ?? {}, 'head', ['kind', 'output', 'token_ids']);
  const kind = oneOf(o.kind, 'head.kind', ['seq-cls', 'label-token'], 'seq-cls');
  const output = str(o.output, 'head.output', 'logits', true);
  if (kind === 'seq-cls') {
    if (o.token_ids !== undefined) throw new BundleConfigError('head.token_ids', 'is only allowed with head.kind "label-token"');
    return { kind, output };
  }
  const ids = o.token_ids;
  if (!Array.isArray(ids) || ids.length !== 3) {
    throw new BundleConfigError('head.token_ids', `must be 3 token ids [a, b, tie] for head.kind "label-token" (got ${show(ids)})`);
  }
  const [a, b, tie] = ids.map((id, i) => int(id, `head.token_ids[${i}]`, 0)) as [number, number, number];
  return { kind, output, token_ids: [a, b, tie] };
}

function inputs(v: unknown): InputsConfig {
  const o = object(v ?? {}, 'inputs', ['input_ids', 'attention_mask', 'position_ids', 'token_type_ids']);
  // position_ids and token_type_ids are present only when declared (fed when the graph has them).
  const optional = (key: 'position_ids' | 'token_type_ids'): Partial<Record<typeof key, string>> =>
    o[key] === undefined || o[key] === null ? {} : { [key]: str(o[key], `inputs.${key}`, undefined, true) };
  return {
    input_ids: str(o.input_ids, 'inputs.input_ids', 'input_ids', true),
    attention_mask: o.attention_mask === null ? null : str(o.attention_mask, 'inputs.attention_mask', 'attention_mask', true),
    ...optional('position_ids'),
    ...optional('token_type_ids'),
  };
}

function features(v: unknown): FeaturesConfig | null {
  if (v === undefined || v === null) return null;
  const o = object(v, 'features', ['input', 'names']);
  const names = o.names;
  if (!Array.isArray(names) || names.length === 0) {
    throw new BundleConfigError('features.names', `must be a non-empty list of feature names (got ${show(names)})`);
  }
  const seen = new Set<string>();
  names.forEach((n: unknown, i) => {
    const path = `features.names[${i}]`;
    if (typeof n !== 'string' || !isFeatureName(n)) {
      throw new BundleConfigError(path, `must be one of ${FEATURE_NAMES.join(', ')} (got ${show(n)})`);
    }
    if (seen.has(n)) throw new BundleConfigError(path, `repeats ${show(n)}`);
    seen.add(n);
  });
  return { input: str(o.input, 'features.input', 'features', true), names: [...seen] };
}

function labels(v: unknown): PreferenceConfig['labels'] {
  if (v === undefined) return LABELS;
  if (!Array.isArray(v) || v.length !== LABELS.length || v.some((l, i) => l !== LABELS[i])) {
    throw new BundleConfigError('labels', `must be ${JSON.stringify(LABELS)} (the fixed label order; got ${show(v)})`);
  }
  return LABELS;
}

const TOP_KEYS = [
  'name', 'version', 'labels', 'parser', 'template', 'special_tokens', 'truncation', 'head', 'inputs', 'features',
] as const;

/** Validates a parsed preference.json and returns it with every default filled in. */
export function resolvePreferenceConfig(json: unknown): PreferenceConfig {
  const o = object(json, '', TOP_KEYS);
  return {
    name: str(o.name, 'name', undefined, true),
    version: str(o.version, 'version', '0', true),
    labels: labels(o.labels),
    parser: parser(o.parser),
    template: template(o.template),
    special_tokens: specialTokens(o.special_tokens),
    truncation: truncation(o.truncation),
    head: head(o.head),
    inputs: inputs(o.inputs),
    features: features(o.features),
  };
}
