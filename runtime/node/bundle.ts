// Loads a model bundle directory (model.onnx, tokenizer.json, preference.json) from disk into
// core's Bundle. The graph itself is checked against preference.json (core/graph.ts) once a
// session has opened it; here model.onnx is only scanned (core/onnx-proto.ts, in small reads that
// skip the weights) for the external data files its weights live in, which must sit next to it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { BundleError } from '../../core/graph.ts';
import { externalDataFiles, readOnnxModel } from '../../core/onnx-proto.ts';
import { createPreprocessor } from '../../core/preprocess.ts';
import type { Bundle } from '../../core/runtime.ts';
import { createTokenizer } from '../../core/tokenizer.ts';
import type { PreferenceConfig } from '../../core/types.ts';
import { readModelFile } from './model-file.ts';

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

/**
 * The external data files model.onnx names (each must be a plain relative path inside the bundle,
 * present, and long enough for its tensors), with their sizes. An unreadable model.onnx is left
 * to onnxruntime to report, with its own message, when the session opens.
 */
function externalData(dir: string, modelPath: string): Array<{ location: string; bytes: number }> {
  const files = readModelFile(modelPath, (src) => externalDataFiles(readOnnxModel(src).graph)) ?? [];
  return files.map((f) => {
    const path = normalize(join(dir, f.location));
    if (f.location === '' || isAbsolute(f.location) || !path.startsWith(dir + sep)) {
      throw new BundleError(`model.onnx keeps ${f.tensors} tensor(s) in external data "${f.location}", which is not a file inside the bundle ${dir}`);
    }
    if (!existsSync(path)) {
      throw new BundleError(
        `model.onnx keeps ${f.tensors} tensor(s) in the external data file "${f.location}", which is missing from ${dir} ` +
          '(copy every file the export wrote next to model.onnx)',
      );
    }
    const bytes = statSync(path).size;
    if (bytes < f.minBytes) throw new BundleError(`external data file ${path} has ${bytes} bytes; model.onnx reads up to byte ${f.minBytes} of it (a truncated copy?)`);
    return { location: f.location, bytes };
  });
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
  const modelPath = join(dir, 'model.onnx');
  const external = externalData(dir, modelPath);
  const sizeOf = (f: string): number => (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0);
  const sizeBytes = ['model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'preference.json'].reduce((n, f) => n + sizeOf(f), 0) + external.reduce((n, f) => n + f.bytes, 0);
  return {
    dir,
    location: dir,
    modelPath,
    sizeBytes,
    config,
    tokenizerJson,
    tokenizerConfig,
    preprocessor: createPreprocessor(config, tokenizer),
  };
}
