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
  return problems;
}

function headProblems(config: PreferenceConfig, sig: GraphSignature): string[] {
  const out = sig.outputs.find((o) => o.name === config.head.output);
  if (!out) return [`head.output "${config.head.output}" is not a graph output (graph outputs: ${sig.outputs.map((o) => o.name).join(', ')})`];
  if (out.type !== 'float32') return [`head.output "${out.name}" is ${shapeText(out)}, expected float32`];
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
 * Checks preference.json against the graph: every graph input is fed, with the right type and
 * rank, and the head's output exists with a usable shape. Throws a BundleError listing every problem.
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
