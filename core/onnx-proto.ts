// A lossless reader and rewriter of ONNX ModelProto at the protobuf wire level, for the graph edits
// a runtime applies at load (graph-edit.ts) and for what a bundle check needs to know about a model
// before any session opens: its inputs and outputs, its nodes, and the external data files its
// initializers name. Pure and isomorphic (no onnx or protobuf package, no node: module):
//  - only the fields pairpref reads are decoded; every other byte (unknown fields, metadata,
//    functions, tensor payloads) is copied through untouched, so a rewrite loses nothing;
//  - the model is read through a ByteSource, so the server can scan a large model.onnx from disk in
//    small reads without holding its inline weights (runtime/node/model-file.ts) and the browser can
//    read a fetched buffer (byteSource).
// Field numbers are onnx.proto's (onnx/onnx.proto, IR version 10).

/** Random access to the model's bytes. */
export interface ByteSource {
  readonly length: number;
  /** `length` bytes from `offset` (fewer only at the end). The bytes must stay as they are (rewriteModel keeps them until it joins its output). */
  read(offset: number, length: number): Uint8Array;
}

export function byteSource(bytes: Uint8Array): ByteSource {
  return { length: bytes.length, read: (offset, length) => bytes.subarray(offset, Math.min(bytes.length, offset + length)) };
}

export class OnnxFormatError extends Error {
  override name = 'OnnxFormatError';
}

/** TensorProto.DataType values and the names onnxruntime's JavaScript API uses for them. */
export const ONNX_TYPE = { FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, BFLOAT16: 16 } as const;

const TYPE_NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

/** onnxruntime's name of an ONNX element type ("float32", "bfloat16", ...); `type<N>` for others. */
export function typeName(elemType: number): string {
  return TYPE_NAMES[elemType] ?? `type${elemType}`;
}

const textDecoder = new TextDecoder('utf-8');
const textEncoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Wire reading

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** One field of a message: where its tag starts, where its payload starts and ends. */
interface Field {
  readonly num: number;
  readonly wire: number;
  /** Offset of the tag (the field's bytes are [start, end)). */
  readonly start: number;
  /** Offset of the payload (after the length for length-delimited fields). */
  readonly dataStart: number;
  readonly end: number;
  /** Varint value (as a number; ONNX varints pairpref reads fit in 2^53). */
  readonly varint: number;
}

class Reader {
  constructor(private readonly src: ByteSource) {}

  /** A varint at pos: [value, next offset]. */
  varint(pos: number, end: number): [number, number] {
    const buf = this.src.read(pos, Math.min(10, end - pos));
    let value = 0;
    let mul = 1;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i]!;
      value += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return [value, pos + i + 1];
    }
    throw new OnnxFormatError(`truncated varint at byte ${pos}`);
  }

  *fields(start: number, end: number): Generator<Field> {
    let pos = start;
    while (pos < end) {
      const [tag, afterTag] = this.varint(pos, end);
      const num = Math.floor(tag / 8);
      const wire = tag & 7;
      let dataStart = afterTag;
      let next: number;
      let varint = 0;
      if (wire === WIRE_VARINT) {
        [varint, next] = this.varint(afterTag, end);
      } else if (wire === WIRE_I64) {
        next = afterTag + 8;
      } else if (wire === WIRE_I32) {
        next = afterTag + 4;
      } else if (wire === WIRE_LEN) {
        const [len, afterLen] = this.varint(afterTag, end);
        dataStart = afterLen;
        next = afterLen + len;
      } else {
        throw new OnnxFormatError(`unsupported protobuf wire type ${wire} at byte ${pos}`);
      }
      if (num === 0 || next > end) throw new OnnxFormatError(`malformed protobuf field at byte ${pos}`);
      yield { num, wire, start: pos, dataStart, end: next, varint };
      pos = next;
    }
  }

  bytes(f: Field): Uint8Array {
    return this.src.read(f.dataStart, f.end - f.dataStart);
  }

  string(f: Field): string {
    return textDecoder.decode(this.bytes(f));
  }

  /** Repeated int64 (packed or not) appended to out. */
  int64s(f: Field, out: number[]): void {
    if (f.wire === WIRE_VARINT) {
      out.push(signed(f.varint));
      return;
    }
    let pos = f.dataStart;
    while (pos < f.end) {
      const [v, next] = this.varint(pos, f.end);
      out.push(signed(v));
      pos = next;
    }
  }

  float32(f: Field): number {
    const b = this.src.read(f.dataStart, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);
  }
}

/** Two's complement of a 64-bit varint read as an unsigned double (exact for small negatives). */
function signed(v: number): number {
  return v >= 2 ** 63 ? v - 2 ** 64 : v;
}

// ---------------------------------------------------------------------------------------------
// The decoded subset

export interface OnnxAttribute {
  readonly name: string;
  /** AttributeProto.AttributeType (1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS, ...). */
  readonly type: number;
  readonly i: number | null;
  readonly f: number | null;
  readonly s: string | null;
  readonly ints: readonly number[];
  /** An inline TENSOR attribute (Constant nodes): its header. */
  readonly t: OnnxTensor | null;
}

export interface OnnxNode {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly attributes: readonly OnnxAttribute[];
}

export interface ExternalData {
  readonly location: string;
  /** Byte offset in the file (0 when not given). */
  readonly offset: number;
  /** Bytes (null when not given: the rest of the file). */
  readonly length: number | null;
}

export interface OnnxTensor {
  readonly name: string;
  readonly dataType: number;
  readonly dims: readonly number[];
  /** Set when the payload lives in another file (data_location EXTERNAL). */
  readonly external: ExternalData | null;
  /** The payload when it is stored inline as raw_data or int64/float data of a small tensor, else null. */
  readonly raw: Uint8Array | null;
}

export interface OnnxValueInfo {
  readonly name: string;
  /** Tensor element type (0 when the value is not a tensor or has no type). */
  readonly elemType: number;
  readonly isTensor: boolean;
  /** Dims: a number (dim_value), a name (dim_param), '' for an unnamed dynamic dim; null when the shape is unknown. */
  readonly shape: ReadonlyArray<number | string> | null;
}

export interface OnnxGraph {
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxTensor[];
  /** Graph inputs, initializers listed as inputs (IR < 4 style) included. */
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  readonly valueInfo: readonly OnnxValueInfo[];
}

export interface OnnxModel {
  readonly irVersion: number;
  readonly opsets: ReadonlyArray<{ readonly domain: string; readonly version: number }>;
  readonly graph: OnnxGraph;
}

/** Where each decoded item sits in the source, for rewriting. */
interface Layout {
  readonly modelFields: readonly Field[];
  readonly graphField: Field;
  /** GraphProto fields in order, tagged with the item they decode to. */
  readonly graphFields: ReadonlyArray<{ readonly field: Field; readonly node?: number; readonly output?: string; readonly valueInfo?: string; readonly input?: string }>;
}

/** A model read from a source, with what a rewrite needs. */
export interface ReadModel extends OnnxModel {
  readonly source: ByteSource;
  readonly layout: Layout;
}

/** Small inline tensors are decoded (Constant nodes, scalar initializers); large payloads are never read. */
const INLINE_PAYLOAD_MAX = 4096;

function readTensor(r: Reader, start: number, end: number): OnnxTensor {
  let name = '';
  let dataType = 0;
  const dims: number[] = [];
  let dataLocation = 0;
  const ext = new Map<string, string>();
  let raw: Uint8Array | null = null;
  let int64Data: number[] | null = null;
  let floatData: Field | null = null;
  for (const f of r.fields(start, end)) {
    switch (f.num) {
      case 1: r.int64s(f, dims); break;
      case 2: dataType = f.varint; break;
      case 8: name = r.string(f); break;
      case 9: if (f.end - f.dataStart <= INLINE_PAYLOAD_MAX) raw = r.bytes(f).slice(); break;
      case 4: if (f.end - f.dataStart <= INLINE_PAYLOAD_MAX) floatData = f; break;
      case 7: if (f.end - f.dataStart <= INLINE_PAYLOAD_MAX) r.int64s(f, (int64Data ??= [])); break;
      case 13: {
        let key = '';
        let value = '';
        for (const e of r.fields(f.dataStart, f.end)) {
          if (e.num === 1) key = r.string(e);
          else if (e.num === 2) value = r.string(e);
        }
        ext.set(key, value);
        break;
      }
      case 14: dataLocation = f.varint; break;
      default: break;
    }
  }
  if (raw === null && int64Data !== null) {
    const out = new BigInt64Array(int64Data.length);
    int64Data.forEach((v, i) => (out[i] = BigInt(v)));
    raw = new Uint8Array(out.buffer);
  }
  if (raw === null && floatData !== null) {
    // float_data is packed float32 (also used for float16 payloads as widened int32: not decoded here).
    if (floatData.wire === WIRE_LEN && dataType === ONNX_TYPE.FLOAT) raw = r.bytes(floatData).slice();
  }
  const external =
    dataLocation === 1
      ? { location: ext.get('location') ?? '', offset: Number(ext.get('offset') ?? 0), length: ext.has('length') ? Number(ext.get('length')) : null }
      : null;
  return { name, dataType, dims, external, raw };
}

function readDims(r: Reader, start: number, end: number): Array<number | string> {
  const dims: Array<number | string> = [];
  for (const d of r.fields(start, end)) {
    if (d.num !== 1) continue;
    let dim: number | string = '';
    for (const v of r.fields(d.dataStart, d.end)) {
      if (v.num === 1) dim = signed(v.varint);
      else if (v.num === 2) dim = r.string(v);
    }
    dims.push(dim);
  }
  return dims;
}

function readValueInfo(r: Reader, start: number, end: number): OnnxValueInfo {
  let name = '';
  let elemType = 0;
  let isTensor = false;
  let shape: Array<number | string> | null = null;
  for (const f of r.fields(start, end)) {
    if (f.num === 1) name = r.string(f);
    else if (f.num === 2) {
      for (const t of r.fields(f.dataStart, f.end)) {
        if (t.num !== 1) continue; // tensor_type; sequences, maps and optionals stay non-tensors
        isTensor = true;
        for (const tt of r.fields(t.dataStart, t.end)) {
          if (tt.num === 1) elemType = tt.varint;
          else if (tt.num === 2) shape = readDims(r, tt.dataStart, tt.end);
        }
      }
    }
  }
  return { name, elemType, isTensor, shape };
}

function readAttribute(r: Reader, start: number, end: number): OnnxAttribute {
  let name = '';
  let type = 0;
  let i: number | null = null;
  let fl: number | null = null;
  let s: string | null = null;
  const ints: number[] = [];
  let t: OnnxTensor | null = null;
  for (const f of r.fields(start, end)) {
    switch (f.num) {
      case 1: name = r.string(f); break;
      case 2: fl = r.float32(f); break;
      case 3: i = signed(f.varint); break;
      case 4: s = r.string(f); break;
      case 5: t = readTensor(r, f.dataStart, f.end); break;
      case 8: r.int64s(f, ints); break;
      case 20: type = f.varint; break;
      default: break;
    }
  }
  return { name, type, i, f: fl, s, ints, t };
}

function readNode(r: Reader, start: number, end: number): OnnxNode {
  const inputs: string[] = [];
  const outputs: string[] = [];
  let name = '';
  let opType = '';
  let domain = '';
  const attributes: OnnxAttribute[] = [];
  for (const f of r.fields(start, end)) {
    switch (f.num) {
      case 1: inputs.push(r.string(f)); break;
      case 2: outputs.push(r.string(f)); break;
      case 3: name = r.string(f); break;
      case 4: opType = r.string(f); break;
      case 5: attributes.push(readAttribute(r, f.dataStart, f.end)); break;
      case 7: domain = r.string(f); break;
      default: break;
    }
  }
  return { inputs, outputs, name, opType, domain, attributes };
}

/** Reads a ModelProto's structure; payloads of large tensors are skipped, not read. */
export function readOnnxModel(source: ByteSource): ReadModel {
  const r = new Reader(source);
  let irVersion = 0;
  const opsets: Array<{ domain: string; version: number }> = [];
  const modelFields: Field[] = [];
  let graphField: Field | null = null;
  for (const f of r.fields(0, source.length)) {
    modelFields.push(f);
    if (f.num === 1 && f.wire === WIRE_VARINT) irVersion = f.varint;
    else if (f.num === 7 && f.wire === WIRE_LEN) {
      if (graphField !== null) throw new OnnxFormatError('model.onnx has two graph fields');
      graphField = f;
    } else if (f.num === 8 && f.wire === WIRE_LEN) {
      let domain = '';
      let version = 0;
      for (const o of r.fields(f.dataStart, f.end)) {
        if (o.num === 1) domain = r.string(o);
        else if (o.num === 2) version = o.varint;
      }
      opsets.push({ domain, version });
    }
  }
  if (graphField === null) throw new OnnxFormatError('not an ONNX model: no graph (is this file a model.onnx?)');
  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];
  const inputs: OnnxValueInfo[] = [];
  const outputs: OnnxValueInfo[] = [];
  const valueInfo: OnnxValueInfo[] = [];
  const graphFields: Array<Layout['graphFields'][number]> = [];
  for (const f of r.fields(graphField.dataStart, graphField.end)) {
    if (f.wire !== WIRE_LEN) {
      graphFields.push({ field: f });
      continue;
    }
    switch (f.num) {
      case 1:
        graphFields.push({ field: f, node: nodes.length });
        nodes.push(readNode(r, f.dataStart, f.end));
        break;
      case 5:
        graphFields.push({ field: f });
        initializers.push(readTensor(r, f.dataStart, f.end));
        break;
      case 11: {
        const v = readValueInfo(r, f.dataStart, f.end);
        graphFields.push({ field: f, input: v.name });
        inputs.push(v);
        break;
      }
      case 12: {
        const v = readValueInfo(r, f.dataStart, f.end);
        graphFields.push({ field: f, output: v.name });
        outputs.push(v);
        break;
      }
      case 13: {
        const v = readValueInfo(r, f.dataStart, f.end);
        graphFields.push({ field: f, valueInfo: v.name });
        valueInfo.push(v);
        break;
      }
      default:
        graphFields.push({ field: f });
    }
  }
  return {
    irVersion,
    opsets,
    graph: { nodes, initializers, inputs, outputs, valueInfo },
    source,
    layout: { modelFields, graphField, graphFields },
  };
}

/** Graph inputs a session is fed (initializers listed as inputs are not). */
export function feedableInputs(g: OnnxGraph): OnnxValueInfo[] {
  const init = new Set(g.initializers.map((t) => t.name));
  return g.inputs.filter((v) => !init.has(v.name));
}

/** Every external data file the model's initializers (and Constant nodes) name, each once, in first-use order. */
export function externalDataFiles(g: OnnxGraph): Array<{ location: string; tensors: number; minBytes: number }> {
  const files = new Map<string, { location: string; tensors: number; minBytes: number }>();
  const tensors = [...g.initializers, ...g.nodes.flatMap((n) => n.attributes.map((a) => a.t).filter((t): t is OnnxTensor => t !== null))];
  for (const t of tensors) {
    if (!t.external) continue;
    const f = files.get(t.external.location) ?? { location: t.external.location, tensors: 0, minBytes: 0 };
    f.tensors++;
    if (t.external.length !== null) f.minBytes = Math.max(f.minBytes, t.external.offset + t.external.length);
    files.set(f.location, f);
  }
  return [...files.values()];
}

// ---------------------------------------------------------------------------------------------
// Writing

class Writer {
  private chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  private flush(): void {
    if (this.scratch.length === 0) return;
    this.push(Uint8Array.from(this.scratch));
    this.scratch = [];
  }

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) byte |= 0x80;
      this.scratch.push(byte);
    } while (x !== 0n);
    return this;
  }

  tag(num: number, wire: number): this {
    return this.varint(num * 8 + wire);
  }

  raw(b: Uint8Array): this {
    this.flush();
    this.push(b);
    return this;
  }

  /** A length-delimited field. */
  bytesField(num: number, b: Uint8Array): this {
    return this.tag(num, WIRE_LEN).varint(b.length).raw(b);
  }

  stringField(num: number, s: string): this {
    return this.bytesField(num, textEncoder.encode(s));
  }

  intField(num: number, v: number): this {
    return this.tag(num, WIRE_VARINT).varint(v);
  }

  floatField(num: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return this.tag(num, WIRE_I32).raw(b);
  }

  messageField(num: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.nested(num, inner);
  }

  /** A length-delimited field of another writer's bytes, taken as its chunks (a graph's weights are not joined twice). */
  nested(num: number, inner: Writer): this {
    inner.flush();
    this.tag(num, WIRE_LEN).varint(inner.length).flush();
    for (const c of inner.chunks) this.push(c);
    return this;
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.chunks.reduce((s, c) => s + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

export interface AttributeSpec {
  readonly name: string;
  readonly i?: number;
  readonly f?: number;
  readonly ints?: readonly number[];
}

export interface NodeSpec {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly attributes?: readonly AttributeSpec[];
}

export interface TensorSpec {
  readonly name: string;
  readonly dataType: number;
  readonly dims: readonly number[];
  /** Little-endian payload. */
  readonly raw: Uint8Array;
}

export interface ValueInfoSpec {
  readonly name: string;
  readonly elemType: number;
  readonly shape: ReadonlyArray<number | string>;
}

export interface GraphEdit {
  /** Indices into graph.nodes to drop. */
  readonly removeNodes?: ReadonlySet<number>;
  /** Graph outputs (and value_info entries) to drop, by name. */
  readonly removeOutputs?: ReadonlySet<string>;
  readonly removeValueInfo?: ReadonlySet<string>;
  /** Appended after the graph's nodes, in order (so they follow every producer). */
  readonly addNodes?: readonly NodeSpec[];
  readonly addInitializers?: readonly TensorSpec[];
  readonly addInputs?: readonly ValueInfoSpec[];
  readonly addOutputs?: readonly ValueInfoSpec[];
}

function writeNode(w: Writer, n: NodeSpec): void {
  for (const i of n.inputs) w.stringField(1, i);
  for (const o of n.outputs) w.stringField(2, o);
  w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attributes ?? []) {
    w.messageField(5, (aw) => {
      aw.stringField(1, a.name);
      if (a.f !== undefined) aw.floatField(2, a.f).intField(20, 1);
      else if (a.i !== undefined) aw.intField(3, a.i).intField(20, 2);
      else if (a.ints !== undefined) {
        for (const v of a.ints) aw.intField(8, v);
        aw.intField(20, 7);
      }
    });
  }
}

function writeTensor(w: Writer, t: TensorSpec): void {
  for (const d of t.dims) w.intField(1, d);
  w.intField(2, t.dataType);
  w.stringField(8, t.name);
  w.bytesField(9, t.raw);
}

function writeValueInfo(w: Writer, v: ValueInfoSpec): void {
  w.stringField(1, v.name);
  w.messageField(2, (tw) =>
    tw.messageField(1, (tt) => {
      tt.intField(1, v.elemType);
      tt.messageField(2, (sw) => {
        for (const d of v.shape) sw.messageField(1, (dw) => (typeof d === 'number' ? dw.intField(1, d) : dw.stringField(2, d)));
      });
    }),
  );
}

/**
 * The model's bytes with the graph edited: every field not removed is copied byte for byte
 * (initializer payloads and external data references included), the new items follow.
 */
export function rewriteModel(model: ReadModel, edit: GraphEdit): Uint8Array {
  const src = model.source;
  // Chunks are concatenated once at the end: the source's reads must stay valid until then.
  const copy = (w: Writer, f: Field): void => void w.raw(src.read(f.start, f.end - f.start));
  const graph = new Writer();
  for (const item of model.layout.graphFields) {
    if (item.node !== undefined && edit.removeNodes?.has(item.node)) continue;
    if (item.output !== undefined && edit.removeOutputs?.has(item.output)) continue;
    if (item.valueInfo !== undefined && edit.removeValueInfo?.has(item.valueInfo)) continue;
    copy(graph, item.field);
  }
  for (const n of edit.addNodes ?? []) graph.messageField(1, (w) => writeNode(w, n));
  for (const t of edit.addInitializers ?? []) graph.messageField(5, (w) => writeTensor(w, t));
  for (const v of edit.addInputs ?? []) graph.messageField(11, (w) => writeValueInfo(w, v));
  for (const v of edit.addOutputs ?? []) graph.messageField(12, (w) => writeValueInfo(w, v));
  const out = new Writer();
  for (const f of model.layout.modelFields) {
    if (f === model.layout.graphField) out.nested(7, graph);
    else copy(out, f);
  }
  return out.finish();
}
