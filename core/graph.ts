// The contract between preference.json and the ONNX graph a bundle ships: one check, used by every
// runtime (onnxruntime-node on the server, onnxruntime-web in the page) right after a session is
// created, so a mismatch fails at load with a message that says what is wrong.
import type { PreferenceConfig } from './types.ts';

export class BundleError extends Error {
  override name = 'BundleError';
}

/** An input or output of the ONNX graph, as onnxruntime reports it. */
export interface GraphValue {
  readonly name: string;
  readonly isTensor: boolean;
  /** onnxruntime tensor type, e.g. "int64", "float32"; "" for non-tensors. */
  readonly type: string;
  /** Static dims as numbers, symbolic dims as names; [] when unknown. */
  readonly shape: ReadonlyArray<number | string>;
}

export interface GraphSignature {
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
}

function shapeText(v: GraphValue): string {
  return `${v.type || 'non-tensor'}[${v.shape.join(', ')}]`;
}

/** How preference.json names the optional inputs pairpref can compute, for messages. */
const OPTIONAL_INPUTS = {
  position_ids: 'pairpref computes it from the attention mask: 0, 1, ... over each row\'s real tokens',
  token_type_ids: 'pairpref feeds zeros',
} as const;

/** Inputs of decoder exports with a KV cache ("-with-past"), which pairpref never feeds. */
function isCacheInput(name: string): boolean {
  return /^past_key_values[._]/.test(name) || /^past\.\d/.test(name) || name === 'use_cache_branch' || name === 'cache_position';
}

function inputProblems(config: PreferenceConfig, sig: GraphSignature): string[] {
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
  // Optional inputs: fed only when the graph has them, so a declared one the graph lacks is fine.
  for (const key of Object.keys(OPTIONAL_INPUTS) as Array<keyof typeof OPTIONAL_INPUTS>) {
    const name = config.inputs[key];
    if (name && inputs.has(name)) expectInput(name, ['int64'], 2, `inputs.${key}`);
  }
  if (config.features) {
    expectInput(config.features.input, ['float32'], 2, 'features.input');
    const last = inputs.get(config.features.input)?.shape[1];
    if (typeof last === 'number' && last !== config.features.names.length) {
      problems.push(`features.input "${config.features.input}" takes ${last} features but features.names lists ${config.features.names.length}`);
    }
  }
  const fed = new Set(
    [config.inputs.input_ids, config.inputs.attention_mask, config.inputs.position_ids, config.inputs.token_type_ids, config.features?.input].filter(
      (n): n is string => !!n,
    ),
  );
  const cache = sig.inputs.filter((v) => !fed.has(v.name) && isCacheInput(v.name));
  if (cache.length > 0) {
    const shown = cache.slice(0, 4).map((v) => `"${v.name}"`).join(', ') + (cache.length > 4 ? ` and ${cache.length - 4} more` : '');
    problems.push(
      `graph inputs ${shown} take a KV cache: this is a decoder export with past key values ("-with-past"), which pairpref does not feed. ` +
        'Export the model again without the cache: optimum-cli export onnx --task text-classification (a seq-cls head) or ' +
        '--task text-generation (a label-token head; not text-generation-with-past)',
    );
  }
  for (const v of sig.inputs) {
    if (fed.has(v.name) || isCacheInput(v.name)) continue;
    const key = (Object.keys(OPTIONAL_INPUTS) as Array<keyof typeof OPTIONAL_INPUTS>).find((k) => k === v.name);
    if (key) {
      problems.push(`graph input "${v.name}" (${shapeText(v)}) is not fed: declare it in preference.json as "inputs": { "${key}": "${v.name}" } (${OPTIONAL_INPUTS[key]})`);
    } else {
      problems.push(`graph input "${v.name}" (${shapeText(v)}) is not declared in preference.json (inputs or features)`);
    }
  }
  return problems;
}

/** Head output types a runtime can read: float16 is widened once, bfloat16 gets a Cast at load (core/graph-edit.ts). */
const HEAD_TYPES = ['float32', 'float16', 'bfloat16'];

function headProblems(config: PreferenceConfig, sig: GraphSignature): string[] {
  const out = sig.outputs.find((o) => o.name === config.head.output);
  if (!out) return [`head.output "${config.head.output}" is not a graph output (graph outputs: ${sig.outputs.map((o) => o.name).join(', ')})`];
  if (!HEAD_TYPES.includes(out.type)) return [`head.output "${out.name}" is ${shapeText(out)}, expected ${HEAD_TYPES.join(', ')}`];
  if (config.head.kind === 'seq-cls') {
    const last = out.shape[out.shape.length - 1];
    if (out.shape.length !== 0 && (out.shape.length !== 2 || (typeof last === 'number' && last !== 3))) {
      return [`seq-cls head.output "${out.name}" is ${shapeText(out)}, expected [batch, 3]`];
    }
    return [];
  }
  const problems: string[] = [];
  const vocab = out.shape[out.shape.length - 1];
  if (out.shape.length !== 0 && out.shape.length !== 2 && out.shape.length !== 3) {
    problems.push(`label-token head.output "${out.name}" is ${shapeText(out)}, expected [batch, vocab] or [batch, seq, vocab]`);
  }
  const big = config.head.token_ids.filter((t) => typeof vocab === 'number' && t >= vocab);
  if (big.length > 0) problems.push(`head.token_ids ${big.join(', ')} are outside the output vocabulary of ${String(vocab)}`);
  return problems;
}

/**
 * Checks preference.json against the graph (as the bundle ships it, before any edit at load): every
 * graph input is fed, with the right type and rank, and the head's output exists with a usable
 * shape. Throws a BundleError listing every problem.
 */
export function validateGraph(config: PreferenceConfig, sig: GraphSignature): void {
  const problems = [...inputProblems(config, sig), ...headProblems(config, sig)];
  if (problems.length > 0) throw new BundleError(`model.onnx does not match preference.json:\n  - ${problems.join('\n  - ')}`);
}

/** onnxruntime's ValueMetadata (common to onnxruntime-node and -web), structurally. */
export interface ValueMetadataLike {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
  readonly shape?: ReadonlyArray<number | string>;
}

/** A session's input and output metadata as plain data (it crosses worker threads). */
export function signatureOf(session: { readonly inputMetadata: readonly ValueMetadataLike[]; readonly outputMetadata: readonly ValueMetadataLike[] }): GraphSignature {
  const describe = (m: ValueMetadataLike): GraphValue =>
    m.isTensor ? { name: m.name, isTensor: true, type: m.type ?? '', shape: [...(m.shape ?? [])] } : { name: m.name, isTensor: false, type: '', shape: [] };
  return { inputs: session.inputMetadata.map(describe), outputs: session.outputMetadata.map(describe) };
}
