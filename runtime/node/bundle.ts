// Loads a model bundle directory (model.onnx, tokenizer.json, preference.json) from disk into
// core's Bundle. The graph itself is checked against preference.json (core/graph.ts) once a
// session has opened it.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { BundleError } from '../../core/graph.ts';
import { createPreprocessor } from '../../core/preprocess.ts';
import type { Bundle } from '../../core/runtime.ts';
import { createTokenizer } from '../../core/tokenizer.ts';
import type { PreferenceConfig } from '../../core/types.ts';

export { BundleError };

export interface NodeBundle extends Bundle {
  /** The bundle directory, absolute. */
  readonly dir: string;
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new BundleError(`${what}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function loadBundle(dirArg: string): NodeBundle {
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
  const tokenizerJson = readJson(join(dir, 'tokenizer.json'), 'tokenizer.json');
  let tokenizer;
  try {
    tokenizer = createTokenizer(tokenizerJson, tokenizerConfig);
  } catch (e) {
    throw new BundleError(`${dir}/tokenizer.json: not a usable Hugging Face tokenizer: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    dir,
    location: dir,
    modelPath: join(dir, 'model.onnx'),
    config,
    tokenizerJson,
    tokenizerConfig,
    preprocessor: createPreprocessor(config, tokenizer),
  };
}
