// The graph a runtime serves, planned from the bundle's model.onnx and preference.json before any
// session opens: pure (onnx-proto.ts does the bytes), so the server's device workers and the
// browser page apply the same edits.
//
//  - label-token heads: the three label logits are gathered inside the graph at each row's last
//    real token, so onnxruntime never returns (and, when the LM head is recognised, never computes)
//    [batch, seq, vocab] logits. Recognised: the output is a MatMul(hidden, W[hidden, vocab]) followed
//    only by elementwise steps with constant operands (Gemma-2's softcap Div/Tanh/Mul, a bias Add, a
//    Cast). Then hidden is read at the last real positions and W at the three label columns:
//    [batch, hidden] x [hidden, 3]. Otherwise the gather follows the logits: onnxruntime computes them
//    once, frees them at once, and still returns only [batch, 3].
//  - a bfloat16 head output gets a Cast to float32 (onnxruntime-node cannot even describe a
//    bfloat16 output: its session would not open), and any other bfloat16 graph output is dropped.
// Nothing is edited otherwise (bytes null): the runtime loads the file as it is.
import type { GraphSignature, GraphValue } from './graph.ts';
import {
  feedableInputs,
  ONNX_TYPE,
  readOnnxModel,
  rewriteModel,
  typeName,
  type AttributeSpec,
  type ByteSource,
  type NodeSpec,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
  type ReadModel,
  type TensorSpec,
} from './onnx-proto.ts';
import type { PreferenceConfig } from './types.ts';

/** Fed with row * seqLen + the row's last real position, int64 [batch], when the label gather reads positions. */
export const LABEL_POSITIONS_INPUT = 'pairpref_label_positions';
/** The [batch, 3] label logits of an edited label-token graph. */
export const LABEL_LOGITS_OUTPUT = 'pairpref_label_logits';
/** A bfloat16 head output cast to float32. */
export const HEAD_FLOAT32_OUTPUT = 'pairpref_head_float32';

/** What a session serves, as core's batch path needs to know it. */
export interface ServedGraph {
  /** The served graph's input names (optional inputs are fed only when listed here). */
  readonly inputs: readonly string[];
  /** The output to fetch; null: preference.json's head.output. */
  readonly output: string | null;
  /** The output is [batch, 3] label logits (label-token gather applied at load). */
  readonly labelLogits: boolean;
  /** Input fed with each row's flat last-real-token index, or null. */
  readonly labelPositions: string | null;
}

/** A graph served as it is: these inputs, preference.json's head.output. */
export function servedAsIs(inputs: readonly string[]): ServedGraph {
  return { inputs: [...inputs], output: null, labelLogits: false, labelPositions: null };
}

export interface GraphPlan {
  /** The original graph as the bundle ships it (what validateGraph checks). */
  readonly signature: GraphSignature;
  /** The edited model, or null when the model is served as it is. */
  readonly bytes: Uint8Array | null;
  readonly served: ServedGraph;
  /** What was edited and why, one line each (logged by the runtime). */
  readonly notes: readonly string[];
}

function graphValue(v: OnnxValueInfo): GraphValue {
  return v.isTensor ? { name: v.name, isTensor: true, type: typeName(v.elemType), shape: [...(v.shape ?? [])] } : { name: v.name, isTensor: false, type: '', shape: [] };
}

/** The model's inputs (initializers excluded) and outputs, as onnxruntime would describe them. */
export function signatureOfModel(model: ReadModel): GraphSignature {
  return { inputs: feedableInputs(model.graph).map(graphValue), outputs: model.graph.outputs.map(graphValue) };
}

const FLOAT_TYPES: readonly number[] = [ONNX_TYPE.FLOAT, ONNX_TYPE.FLOAT16, ONNX_TYPE.BFLOAT16];

/** Elementwise ops the label gather may move across (their non-data operand must be constant). */
const BINARY = new Set(['Div', 'Mul', 'Add', 'Sub']);
const UNARY = new Set(['Cast', 'Tanh', 'Identity', 'Sigmoid', 'Relu']);

interface GraphIndex {
  readonly producer: Map<string, number>;
  readonly consumers: Map<string, number>;
  readonly initializers: Map<string, OnnxTensor>;
  readonly valueInfo: Map<string, OnnxValueInfo>;
}

function indexGraph(model: ReadModel): GraphIndex {
  const producer = new Map<string, number>();
  const consumers = new Map<string, number>();
  model.graph.nodes.forEach((n, i) => {
    for (const o of n.outputs) producer.set(o, i);
    for (const inp of n.inputs) if (inp !== '') consumers.set(inp, (consumers.get(inp) ?? 0) + 1);
  });
  for (const o of model.graph.outputs) consumers.set(o.name, (consumers.get(o.name) ?? 0) + 1);
  const valueInfo = new Map<string, OnnxValueInfo>();
  for (const v of [...model.graph.valueInfo, ...model.graph.inputs, ...model.graph.outputs]) valueInfo.set(v.name, v);
  return { producer, consumers, initializers: new Map(model.graph.initializers.map((t) => [t.name, t])), valueInfo };
}

/** Static dims of a value when they follow from initializers (through Cast, Identity and Transpose) or value_info. */
function staticDims(g: ReadModel, ix: GraphIndex, name: string, depth = 0): readonly number[] | null {
  const init = ix.initializers.get(name);
  if (init) return init.dims;
  const p = ix.producer.get(name);
  if (p !== undefined && depth < 8) {
    const n = g.graph.nodes[p]!;
    if (n.opType === 'Constant') return n.attributes.find((a) => a.name === 'value')?.t?.dims ?? (n.attributes.some((a) => a.name === 'value_float' || a.name === 'value_int') ? [] : null);
    if ((n.opType === 'Cast' || n.opType === 'Identity') && n.domain === '') return staticDims(g, ix, n.inputs[0]!, depth + 1);
    if (n.opType === 'Transpose' && n.domain === '') {
      const d = staticDims(g, ix, n.inputs[0]!, depth + 1);
      if (d === null) return null;
      const perm = n.attributes.find((a) => a.name === 'perm')?.ints;
      return perm && perm.length === d.length ? perm.map((k) => d[k]!) : [...d].reverse();
    }
  }
  const shape = ix.valueInfo.get(name)?.shape;
  return shape && shape.every((d): d is number => typeof d === 'number') ? shape : null;
}

function isConstant(g: ReadModel, ix: GraphIndex, name: string): boolean {
  if (ix.initializers.has(name)) return true;
  const p = ix.producer.get(name);
  return p !== undefined && g.graph.nodes[p]!.opType === 'Constant';
}

function int64Tensor(name: string, values: readonly number[]): TensorSpec {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dataType: ONNX_TYPE.INT64, dims: [values.length], raw: new Uint8Array(data.buffer) };
}

interface LmHead {
  /** The MatMul node and its elementwise tail, output side last. */
  readonly matmul: number;
  readonly tail: readonly number[];
  readonly hidden: string;
  readonly weight: string;
  /** For each tail node: index of its data operand (the other is constant). */
  readonly dataOperand: readonly number[];
}

/**
 * Walks back from the head output over elementwise steps with constant operands to a MatMul whose
 * weight is a static [hidden, vocab] matrix. Null (and why) when the graph has another shape.
 */
function findLmHead(g: ReadModel, ix: GraphIndex, output: string, vocab: number | null, rank: number): LmHead | string {
  const tail: number[] = [];
  const dataOperand: number[] = [];
  if ((ix.consumers.get(output) ?? 0) !== 1) return `"${output}" is read inside the graph too`;
  let cur = output;
  for (;;) {
    const p = ix.producer.get(cur);
    if (p === undefined) return `"${cur}" is not computed by a node`;
    const n = g.graph.nodes[p]!;
    if (n.domain !== '' && n.domain !== 'ai.onnx') return `"${cur}" comes from ${n.domain}.${n.opType}`;
    if (n.outputs.length !== 1) return `${n.opType} "${n.name}" has several outputs`;
    if (n.opType === 'MatMul') {
      const w = staticDims(g, ix, n.inputs[1]!);
      if (w === null || w.length !== 2) return `the weight of MatMul "${n.name}" has no static [hidden, vocab] shape`;
      if (vocab !== null && w[1] !== vocab) return `MatMul "${n.name}" gives ${w[1]} columns, the output has ${vocab}`;
      if ((ix.consumers.get(n.outputs[0]!) ?? 0) !== 1) return `the logits of MatMul "${n.name}" are read elsewhere too`;
      if (rank !== 2 && rank !== 3) return `the output has rank ${rank}`;
      return { matmul: p, tail: tail.reverse(), hidden: n.inputs[0]!, weight: n.inputs[1]!, dataOperand: dataOperand.reverse() };
    }
    let data: number;
    if (UNARY.has(n.opType) && n.inputs.length === 1) data = 0;
    else if (BINARY.has(n.opType) && n.inputs.length === 2) {
      const c0 = isConstant(g, ix, n.inputs[0]!);
      const c1 = isConstant(g, ix, n.inputs[1]!);
      if (c0 === c1) return `${n.opType} "${n.name}" does not have exactly one constant operand`;
      data = c1 ? 0 : 1;
      const d = staticDims(g, ix, n.inputs[1 - data]!);
      const numel = d === null ? -1 : d.reduce((a, b) => a * b, 1);
      const perVocab = d !== null && d.length >= 1 && vocab !== null && d[d.length - 1] === vocab && numel === vocab;
      if (numel !== 1 && !perVocab) return `the constant operand of ${n.opType} "${n.name}" is neither a scalar nor one value per vocabulary entry`;
    } else return `"${cur}" comes from ${n.opType} "${n.name}"`;
    const input = n.inputs[data]!;
    // Every value inside the tail feeds only the next step (it is removed with it).
    if ((ix.consumers.get(input) ?? 0) !== 1) return `"${input}" is read by more than the head`;
    tail.push(p);
    dataOperand.push(data);
    cur = input;
    if (tail.length > 16) return 'the elementwise tail is longer than 16 steps';
  }
}

/** Plans the served graph of a bundle (see the top of this file). */
export function planServedGraph(source: ByteSource | ReadModel, config: PreferenceConfig): GraphPlan {
  const model = 'layout' in source ? source : readOnnxModel(source);
  const signature = signatureOfModel(model);
  const inputs = signature.inputs.map((v) => v.name);
  const unchanged: GraphPlan = { signature, bytes: null, served: servedAsIs(inputs), notes: [] };
  const head = model.graph.outputs.find((o) => o.name === config.head.output);
  // A head output that is missing or not a float tensor is validateGraph's to report.
  if (!head || !head.isTensor || !FLOAT_TYPES.includes(head.elemType)) return unchanged;

  const ix = indexGraph(model);
  const nodes: NodeSpec[] = [];
  const initializers: TensorSpec[] = [];
  const removeNodes = new Set<number>();
  const removeOutputs = new Set<string>();
  const notes: string[] = [];
  const addInputs: Array<{ name: string; elemType: number; shape: Array<number | string> }> = [];
  // Other bfloat16 outputs would keep onnxruntime-node from opening the session; nobody reads them.
  const otherBf16 = model.graph.outputs.filter((o) => o !== head && o.isTensor && o.elemType === ONNX_TYPE.BFLOAT16);
  for (const o of otherBf16) removeOutputs.add(o.name);
  if (otherBf16.length > 0) notes.push(`dropped bfloat16 graph outputs pairpref does not read: ${otherBf16.map((o) => o.name).join(', ')}`);
  const castToFloat = (value: string, out: string, why: string): void => {
    nodes.push({ opType: 'Cast', name: `pairpref/${out}/cast`, inputs: [value], outputs: [out], attributes: [{ name: 'to', i: ONNX_TYPE.FLOAT }] });
    notes.push(why);
  };

  if (config.head.kind === 'seq-cls') {
    if (head.elemType !== ONNX_TYPE.BFLOAT16 && otherBf16.length === 0) return unchanged;
    let output: string | null = null;
    if (head.elemType === ONNX_TYPE.BFLOAT16) {
      removeOutputs.add(head.name);
      castToFloat(head.name, HEAD_FLOAT32_OUTPUT, `head.output "${head.name}" is bfloat16: cast to float32 in the graph (onnxruntime-node cannot return bfloat16)`);
      output = HEAD_FLOAT32_OUTPUT;
    }
    const outs = output ? [{ name: output, elemType: ONNX_TYPE.FLOAT, shape: [...(head.shape ?? [])] }] : [];
    const bytes = rewriteModel(model, { removeOutputs, removeValueInfo: removeOutputs, addNodes: nodes, addOutputs: outs });
    return { signature, bytes, served: { inputs, output, labelLogits: false, labelPositions: null }, notes };
  }

  // label-token
  const rank = head.shape?.length ?? 0;
  if (rank !== 2 && rank !== 3) {
    notes.push(`label-token head.output "${head.name}" has no static rank: served as it is (the whole logits tensor is returned)`);
    return { ...unchanged, notes };
  }
  const vocabDim = head.shape![rank - 1];
  const vocab = typeof vocabDim === 'number' ? vocabDim : null;
  const ids = config.head.token_ids;
  // Ids past the vocabulary are a config error validateGraph reports from the graph as shipped; an
  // edit would only build Gathers onnxruntime cannot fold.
  if (vocab !== null && ids.some((id) => id < 0 || id >= vocab)) return { ...unchanged, notes };
  const idsName = 'pairpref/label_token_ids';
  initializers.push(int64Tensor(idsName, ids));
  const positions = rank === 3 ? LABEL_POSITIONS_INPUT : null;
  if (positions) addInputs.push({ name: positions, elemType: ONNX_TYPE.INT64, shape: ['batch'] });
  const outType = head.elemType === ONNX_TYPE.BFLOAT16 ? ONNX_TYPE.FLOAT : head.elemType;
  const finish = (value: string): void => {
    if (head.elemType === ONNX_TYPE.BFLOAT16) castToFloat(value, LABEL_LOGITS_OUTPUT, 'the label logits are bfloat16: cast to float32 in the graph');
    else nodes.push({ opType: 'Identity', name: 'pairpref/label_logits', inputs: [value], outputs: [LABEL_LOGITS_OUTPUT] });
  };
  removeOutputs.add(head.name);

  const lm = findLmHead(model, ix, head.name, vocab, rank);
  if (typeof lm !== 'string') {
    let h = lm.hidden;
    if (positions) {
      nodes.push({ opType: 'Flatten', name: 'pairpref/hidden_flat', inputs: [h], outputs: ['pairpref/hidden_flat'], attributes: [{ name: 'axis', i: 2 }] });
      nodes.push({ opType: 'Gather', name: 'pairpref/hidden_last', inputs: ['pairpref/hidden_flat', positions], outputs: ['pairpref/hidden_last'], attributes: [{ name: 'axis', i: 0 }] });
      h = 'pairpref/hidden_last';
    }
    nodes.push({ opType: 'Gather', name: 'pairpref/label_weight', inputs: [lm.weight, idsName], outputs: ['pairpref/label_weight'], attributes: [{ name: 'axis', i: 1 }] });
    nodes.push({ opType: 'MatMul', name: 'pairpref/label_matmul', inputs: [h, 'pairpref/label_weight'], outputs: ['pairpref/label_step0'] });
    let value = 'pairpref/label_step0';
    lm.tail.forEach((p, k) => {
      const n = model.graph.nodes[p]!;
      const data = lm.dataOperand[k]!;
      const inputsOf = [...n.inputs];
      inputsOf[data] = value;
      if (BINARY.has(n.opType)) {
        const c = n.inputs[1 - data]!;
        const d = staticDims(model, ix, c)!;
        if (d.reduce((a, b) => a * b, 1) !== 1) {
          const picked = `pairpref/label_const${k}`;
          nodes.push({ opType: 'Gather', name: picked, inputs: [c, idsName], outputs: [picked], attributes: [{ name: 'axis', i: d.length - 1 }] });
          inputsOf[1 - data] = picked;
        }
      }
      const out = `pairpref/label_step${k + 1}`;
      nodes.push({ opType: n.opType, name: `pairpref/label_${n.opType.toLowerCase()}${k + 1}`, inputs: inputsOf, outputs: [out], attributes: attributeSpecs(n) });
      value = out;
    });
    for (const p of [lm.matmul, ...lm.tail]) removeNodes.add(p);
    finish(value);
    const mm = model.graph.nodes[lm.matmul]!;
    notes.push(
      `label-token head: LM head MatMul "${mm.name}" reads the 3 label columns of its [hidden, ${vocab ?? 'vocab'}] weight` +
        (positions ? ' at each row\'s last real token' : '') +
        `; the ${rank === 3 ? '[batch, seq, vocab]' : '[batch, vocab]'} logits are never computed`,
    );
  } else {
    // The gather follows the logits: computed once inside onnxruntime, never returned.
    nodes.push({ opType: 'Gather', name: 'pairpref/label_columns', inputs: [head.name, idsName], outputs: ['pairpref/label_columns'], attributes: [{ name: 'axis', i: rank - 1 }] });
    let value = 'pairpref/label_columns';
    if (positions) {
      nodes.push({ opType: 'Flatten', name: 'pairpref/label_flat', inputs: [value], outputs: ['pairpref/label_flat'], attributes: [{ name: 'axis', i: 2 }] });
      nodes.push({ opType: 'Gather', name: 'pairpref/label_last', inputs: ['pairpref/label_flat', positions], outputs: ['pairpref/label_last'], attributes: [{ name: 'axis', i: 0 }] });
      value = 'pairpref/label_last';
    }
    finish(value);
    notes.push(`label-token head: the 3 label logits are gathered after "${head.name}" inside the graph (LM head not recognised: ${lm}); onnxruntime still computes the full logits once but never returns them`);
  }
  const removedValues = new Set<string>([...removeOutputs]);
  for (const p of removeNodes) for (const o of model.graph.nodes[p]!.outputs) removedValues.add(o);
  const bytes = rewriteModel(model, {
    removeNodes,
    removeOutputs,
    removeValueInfo: removedValues,
    addNodes: nodes,
    addInitializers: initializers,
    addInputs,
    addOutputs: [{ name: LABEL_LOGITS_OUTPUT, elemType: outType, shape: ['batch', 3] }],
  });
  return {
    signature,
    bytes,
    served: { inputs: [...inputs, ...addInputs.map((i) => i.name)], output: LABEL_LOGITS_OUTPUT, labelLogits: true, labelPositions: positions },
    notes,
  };
}

/** The attributes a copied elementwise node keeps (Cast's `to`; the others take none that matter here). */
function attributeSpecs(n: OnnxNode): AttributeSpec[] {
  return n.attributes.flatMap((a): AttributeSpec[] =>
    a.i !== null ? [{ name: a.name, i: a.i }] : a.f !== null ? [{ name: a.name, f: a.f }] : a.ints.length > 0 ? [{ name: a.name, ints: a.ints }] : [],
  );
}
