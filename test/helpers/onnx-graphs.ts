// Small ONNX graphs written with protobufjs (a schema of its own, independent of core/onnx-proto.ts),
// for tests of the graph reader, the graph edits and the graph check: any node list, initializers
// (inline or external), value types (float16, bfloat16), metadata that a rewrite must keep.
import protobuf from 'protobufjs';

const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message StringStringEntryProto { string key = 1; string value = 2; }
message TensorProto {
  repeated int64 dims = 1; int32 data_type = 2; repeated float float_data = 4; repeated int64 int64_data = 7;
  string name = 8; bytes raw_data = 9; repeated StringStringEntryProto external_data = 13; int32 data_location = 14;
}
message AttributeProto {
  string name = 1; float f = 2; int64 i = 3; bytes s = 4; TensorProto t = 5; repeated float floats = 7;
  repeated int64 ints = 8; int32 type = 20;
}
message NodeProto {
  repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4;
  repeated AttributeProto attribute = 5; string doc_string = 6; string domain = 7;
}
message TensorShapeProto {
  message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
}
message ValueInfoProto { string name = 1; TypeProto type = 2; string doc_string = 3; }
message GraphProto {
  repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; string doc_string = 10;
  repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; repeated ValueInfoProto value_info = 13;
}
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message ModelProto {
  int64 ir_version = 1; string producer_name = 2; string doc_string = 6; GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8; repeated StringStringEntryProto metadata_props = 14;
}
`;

export const T = { FLOAT: 1, INT64: 7, FLOAT16: 10, BFLOAT16: 16 } as const;

let root: protobuf.Root | undefined;
/** onnx.ModelProto in this file's schema (also what test/fixtures/fixture-model.ts encodes with). */
export function modelType(): protobuf.Type {
  root ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  return root.lookupType('onnx.ModelProto');
}

export interface Tensor {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  external_data?: Array<{ key: string; value: string }>;
  data_location?: number;
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): Tensor {
  return { name, dims, data_type: T.FLOAT, raw_data: new Uint8Array(Float32Array.from(values).buffer) };
}

export function int64Tensor(name: string, dims: number[], values: readonly number[]): Tensor {
  return { name, dims, data_type: T.INT64, raw_data: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}

/** A tensor whose payload is in `location` at `offset`, `length` bytes. */
export function externalTensor(name: string, dims: number[], dataType: number, location: string, offset: number, length: number): Tensor {
  return {
    name,
    dims,
    data_type: dataType,
    data_location: 1,
    external_data: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  };
}

export type Attr = { name: string; i?: number; f?: number; ints?: number[]; t?: Tensor };

export function node(op_type: string, input: string[], output: string[], attrs: Attr[] = [], name = `${op_type}_${output[0]}`): Record<string, unknown> {
  return {
    op_type,
    input,
    output,
    name,
    doc_string: `doc of ${name}`,
    attribute: attrs.map((a) =>
      a.t !== undefined ? { name: a.name, t: a.t, type: 4 } : a.ints !== undefined ? { name: a.name, ints: a.ints, type: 7 } : a.f !== undefined ? { name: a.name, f: a.f, type: 1 } : { name: a.name, i: a.i, type: 2 },
    ),
  };
}

/** A Constant node holding a float32 scalar. */
export function scalar(name: string, value: number): Record<string, unknown> {
  return node('Constant', [], [name], [{ name: 'value', t: floatTensor(`${name}_value`, [], [value]) }]);
}

export function valueInfo(name: string, elemType: number, shape: Array<number | string>): Record<string, unknown> {
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } };
}

export interface GraphSpec {
  nodes: Array<Record<string, unknown>>;
  initializers?: Tensor[];
  inputs: Array<Record<string, unknown>>;
  outputs: Array<Record<string, unknown>>;
  valueInfo?: Array<Record<string, unknown>>;
  opset?: number;
}

/** A ModelProto with doc strings and metadata_props, which a rewrite must carry through. */
export function buildModel(g: GraphSpec): Uint8Array {
  const type = modelType();
  const msg = type.fromObject({
    ir_version: 8,
    producer_name: 'pairpref-test',
    doc_string: 'a test graph',
    graph: { node: g.nodes, name: 'g', initializer: g.initializers ?? [], doc_string: 'graph doc', input: g.inputs, output: g.outputs, value_info: g.valueInfo ?? [] },
    opset_import: [{ domain: '', version: g.opset ?? 17 }],
    metadata_props: [{ key: 'made_by', value: 'test/helpers/onnx-graphs.ts' }],
  });
  return type.encode(msg).finish();
}

/** The model decoded with this file's schema, as plain objects (for comparing a rewrite's output). */
export function decodeModel(bytes: Uint8Array): Record<string, unknown> {
  const type = modelType();
  return type.toObject(type.decode(bytes), { longs: Number, bytes: Array, defaults: false }) as Record<string, unknown>;
}
