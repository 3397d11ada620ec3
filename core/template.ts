// Prompt templates: text = prompt_prefix + P + response_a_prefix + A + response_b_prefix + B + suffix.
// Presets are byte-exact from ../shared/docs/seed-recipes.md ("Templates seen").
import type { TemplateConfig, TemplatePreset } from './types.ts';

type TemplatePieces = Omit<TemplateConfig, 'preset'>;

const GEMMA: TemplatePieces = {
  prompt_prefix: '<prompt>: ',
  response_a_prefix: '\n\n<response_a>: ',
  response_b_prefix: '\n\n<response_b>: ',
  suffix: '',
};

/**
 * label-token reading of the recipe `[bos] <prompt>: P \n\n<response_a>: A \n\n<response_b>: B`:
 * the spaces around P/A/B are notation, not bytes (the brief says "uses the gemma prefixes"), so
 * the prefixes are gemma's exactly: one space after each colon, none before "\n\n". The suffix is
 * the quoted string verbatim: 9 dashes, " ?" with a space before both question marks, and one
 * trailing space after "Answer:" so the next token is the answer word. BOS comes from special_tokens.
 */
const LABEL_TOKEN_SUFFIX = '\n\n---------\nWhich is the better response for the prompt ? a or b or tie ?\n\nAnswer: ';

export const TEMPLATE_PRESETS: Readonly<Record<TemplatePreset, TemplateConfig>> = {
  'gemma-seq-cls': { preset: 'gemma-seq-cls', ...GEMMA },
  // "Model A :" has a space before the colon, "Model B:" none; 8 dashes.
  'llama-seq-cls': {
    preset: 'llama-seq-cls',
    prompt_prefix: 'User prompt: ',
    response_a_prefix: '\n\nModel A :\n',
    response_b_prefix: '\n\n--------\n\nModel B:\n',
    suffix: '',
  },
  'label-token': { preset: 'label-token', ...GEMMA, suffix: LABEL_TOKEN_SUFFIX },
};

/** The template's pieces in order, for modes that tokenize them separately. */
export function templatePieces(t: TemplateConfig): readonly [string, string, string, string] {
  return [t.prompt_prefix, t.response_a_prefix, t.response_b_prefix, t.suffix];
}

export function renderTemplate(t: TemplateConfig, p: string, a: string, b: string): string {
  return t.prompt_prefix + p + t.response_a_prefix + a + t.response_b_prefix + b + t.suffix;
}
