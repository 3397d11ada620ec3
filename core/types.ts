// The contract between a model bundle, the preprocessing in core/, and its callers
// (server, browser, training). Types and constants only; no Node APIs.

/** Fixed label order of every prediction. */
export const LABELS = ['winner_model_a', 'winner_model_b', 'winner_tie'] as const;
export type Label = (typeof LABELS)[number];
/** A label as an index into LABELS: 0 = winner_model_a, 1 = winner_model_b, 2 = winner_tie. */
export type LabelIndex = 0 | 1 | 2;

/** The three text fields of a comparison, in template order. */
export const FIELDS = ['prompt', 'response_a', 'response_b'] as const;
export type Field = (typeof FIELDS)[number];

/** A turn list; `null` turns occur in the Arena data. */
export type Turns = ReadonlyArray<string | null>;

/**
 * One comparison. Either turn lists, or the raw JSON-list strings exactly as they stand
 * in the Arena CSV (what a `naive`-parser model must see byte for byte).
 */
export type Comparison =
  | { readonly id: string; readonly kind: 'turns'; readonly prompt: Turns; readonly response_a: Turns; readonly response_b: Turns }
  | { readonly id: string; readonly kind: 'raw'; readonly prompt: string; readonly response_a: string; readonly response_b: string };

export interface ParserConfig {
  /** `json`: decode the list; `naive`: s.strip('[]').split('","') with quotes stripped. */
  readonly kind: 'json' | 'naive';
  /** Which turns to keep. */
  readonly turns: 'all' | 'first' | 'last';
  /** Text that replaces a null turn (json parser; the reference uses ""). */
  readonly null_turn: string;
  /** Lone UTF-16 surrogates: drop those code units, empty the whole field, or keep them. */
  readonly lone_surrogates: 'drop' | 'empty-field' | 'keep';
  /** Joins the kept turns of one field (the reference uses one space). */
  readonly turn_joiner: string;
}

export type TemplatePreset = 'gemma-seq-cls' | 'llama-seq-cls' | 'label-token';

/** text = prompt_prefix + P + response_a_prefix + A + response_b_prefix + B + suffix */
export interface TemplateConfig {
  readonly preset: TemplatePreset | null;
  readonly prompt_prefix: string;
  readonly response_a_prefix: string;
  readonly response_b_prefix: string;
  readonly suffix: string;
}

/** Special tokens are added by core/, never by the tokenizer's post-processor. */
export interface SpecialTokensConfig {
  readonly bos_id: number | null;
  readonly eos_id: number | null;
  readonly pad_id: number;
  readonly padding_side: 'right' | 'left';
}

export type TruncationMode = 'tail' | 'spread' | 'budget' | 'turns-from-last';

export interface TruncationConfig {
  readonly mode: TruncationMode;
  /** Total tokens per row including template and special tokens. */
  readonly max_length: number;
  /** turns-from-last fallback: caps for the last turn when even it alone does not fit. */
  readonly fallback_caps: { readonly prompt: number; readonly response_a: number; readonly response_b: number };
}

export type HeadConfig =
  /** logits [batch, 3] in label order. */
  | { readonly kind: 'seq-cls'; readonly output: string }
  /** LM logits [batch, vocab] or [batch, seq, vocab]; picks token_ids (a, b, tie) at the last real position. */
  | { readonly kind: 'label-token'; readonly output: string; readonly token_ids: readonly [number, number, number] };

export interface InputsConfig {
  readonly input_ids: string;
  /** null when the graph takes no mask. */
  readonly attention_mask: string | null;
  /** Graph input fed 0..n-1 over each row's real tokens (from the mask), when declared and the graph has it. */
  readonly position_ids?: string;
  /** Graph input fed zeros, when declared and the graph has it. */
  readonly token_type_ids?: string;
}

export interface FeaturesConfig {
  /** Graph input name of the float32 [batch, names.length] features tensor. */
  readonly input: string;
  readonly names: readonly FeatureName[];
}

/** Names of the numeric features core/features.ts can compute. */
export type FeatureName = string;

/** A resolved, validated preference.json. */
export interface PreferenceConfig {
  readonly name: string;
  readonly version: string;
  readonly labels: readonly Label[];
  readonly parser: ParserConfig;
  readonly template: TemplateConfig;
  readonly special_tokens: SpecialTokensConfig;
  readonly truncation: TruncationConfig;
  readonly head: HeadConfig;
  readonly inputs: InputsConfig;
  readonly features: FeaturesConfig | null;
}

/** Turn lists after parsing and turn selection (null turns replaced). */
export interface ParsedComparison {
  readonly prompt: readonly string[];
  readonly response_a: readonly string[];
  readonly response_b: readonly string[];
}

/** What the model reads for one row. */
export interface EncodedRow {
  /** Token ids, special tokens included, unpadded. */
  readonly ids: Int32Array;
  /** True when truncation removed any token. */
  readonly truncated: boolean;
  /** Feature values in FeaturesConfig.names order, or null when the model has none. */
  readonly features: Float32Array | null;
}

/** The one tokenizer operation core/ needs: text to ids, no special tokens added. */
export interface TextTokenizer {
  encode(text: string): number[];
}
