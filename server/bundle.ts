// Loads a model bundle directory (model.onnx, tokenizer.json, preference.json) and checks
// the bundle's declared contract against the ONNX graph it ships.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolvePreferenceConfig } from '../core/config.ts';
import { createPreprocessor, type Preprocessor } from '../core/preprocess.ts';
import { createTokenizer } from '../core/tokenizer.ts';
import type { PreferenceConfig } from '../core/types.ts';
import type { FeedNames, GraphSignature, GraphValue } from './backends/runner.ts';

export class BundleError extends Error {
  override name = 'BundleError';
}

export interface Bundle {
  readonly dir: string;
  readonly modelPath: string;
  readonly config: PreferenceConfig;
  readonly preprocessor: Preprocessor;
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new BundleError(`${what}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function loadBundle(dirArg: string): Bundle {
  const dir = resolve(dirArg);
  if (!existsSync(dir)) throw new BundleError(`model bundle ${dir} does not exist`);
  for (const f of ['model.onnx', 'tokenizer.json', 'preference.json']) {
    if (!existsSync(join(dir, f))) throw new BundleError(`model bundle ${dir} has no ${f} (a bundle needs model.onnx, tokenizer.json and preference.json)`);
  }
  let config: PreferenceConfig;
  try {
    config = resolvePreferenceConfig(readJson(join(dir, 'preference.json'), 'preference.json'));
  } catch (e) {
    if (e instanceof BundleError) throw e;
    throw new BundleError(`${dir}/${e instanceof Error ? e.message : String(e)}`);
  }
  const tokenizerConfigPath = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(tokenizerConfigPath) ? readJson(tokenizerConfigPath, 'tokenizer_config.json') : undefined;
  let tokenizer;
  try {
    tokenizer = createTokenizer(readJson(join(dir, 'tokenizer.json'), 'tokenizer.json'), tokenizerConfig);
  } catch (e) {
    throw new BundleError(`${dir}/tokenizer.json: not a usable Hugging Face tokenizer: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { dir, modelPath: join(dir, 'model.onnx'), config, preprocessor: createPreprocessor(config, tokenizer) };
}

function shapeText(v: GraphValue): string {
  return `${v.type || 'non-tensor'}[${v.shape.join(', ')}]`;
}

/**
 * Checks preference.json against the graph: every graph input is fed, with the right type
 * and rank, and the head's output exists with a usable shape. Returns the feed names.
 */
export function validateGraph(config: PreferenceConfig, sig: GraphSignature): FeedNames {
  const problems: string[] = [];
  const inputs = new Map(sig.inputs.map((v) => [v.name, v]));
  const expectInput = (name: string, types: readonly string[], rank: number, role: string): void => {
    const v = inputs.get(name);
    if (!v) {
      problems.push(`${role} "${name}" is not a graph input (graph inputs: ${sig.inputs.map((i) => i.name).join(', ')})`);
      return;
    }
    if (!types.includes(v.type)) problems.push(`${role} "${name}" is ${shapeText(v)}, expected ${types.join(' or ')}`);
    if (v.shape.length !== 0 && v.shape.length !== rank) problems.push(`${role} "${name}" has rank ${v.shape.length}, expected ${rank}`);
  };
  expectInput(config.inputs.input_ids, ['int64'], 2, 'inputs.input_ids');
  if (config.inputs.attention_mask) expectInput(config.inputs.attention_mask, ['int64'], 2, 'inputs.attention_mask');
  if (config.features) {
    expectInput(config.features.input, ['float32'], 2, 'features.input');
    const last = inputs.get(config.features.input)?.shape[1];
    if (typeof last === 'number' && last !== config.features.names.length) {
      problems.push(`features.input "${config.features.input}" takes ${last} features but features.names lists ${config.features.names.length}`);
    }
  }
  const fed = new Set([config.inputs.input_ids, config.inputs.attention_mask, config.features?.input].filter((n): n is string => !!n));
  for (const v of sig.inputs) {
    if (!fed.has(v.name)) problems.push(`graph input "${v.name}" (${shapeText(v)}) is not declared in preference.json (inputs or features)`);
  }
  const out = sig.outputs.find((o) => o.name === config.head.output);
  if (!out) {
    problems.push(`head.output "${config.head.output}" is not a graph output (graph outputs: ${sig.outputs.map((o) => o.name).join(', ')})`);
  } else if (out.type !== 'float32') {
    problems.push(`head.output "${out.name}" is ${shapeText(out)}, expected float32`);
  } else if (config.head.kind === 'seq-cls') {
    const last = out.shape[out.shape.length - 1];
    if (out.shape.length !== 0 && (out.shape.length !== 2 || (typeof last === 'number' && last !== 3))) {
      problems.push(`seq-cls head.output "${out.name}" is ${shapeText(out)}, expected [batch, 3]`);
    }
  } else {
    const vocab = out.shape[out.shape.length - 1];
    if (out.shape.length !== 0 && out.shape.length !== 2 && out.shape.length !== 3) {
      problems.push(`label-token head.output "${out.name}" is ${shapeText(out)}, expected [batch, vocab] or [batch, seq, vocab]`);
    }
    const big = config.head.token_ids.filter((t) => typeof vocab === 'number' && t >= vocab);
    if (big.length > 0) problems.push(`head.token_ids ${big.join(', ')} are outside the output vocabulary of ${String(vocab)}`);
  }
  if (problems.length > 0) throw new BundleError(`model.onnx does not match preference.json:\n  - ${problems.join('\n  - ')}`);
  return {
    inputIds: config.inputs.input_ids,
    attentionMask: config.inputs.attention_mask,
    features: config.features?.input ?? null,
    output: config.head.output,
  };
}
