"""Converts an exported PairPref graph (float32 compute; weights possibly stored as float16 behind
Casts, see export.py --fp16-weights) into one that computes in float16, for GPU execution providers.

Every float tensor of the graph (initializers, constants, intermediate values) becomes float16, except:
  - the feature preprocessing: nodes whose outputs do not depend on the token ids (sign(x)·log1p(|x|),
    the standardisation, the side swap of `features`; [batch, 31] tensors). Raw features are
    character / word counts that can exceed float16's largest finite value (65,504), so they are
    transformed in float32 and enter the float16 part already standardised. Always kept.
  - the groups named by --keep-fp32 (comma-separated): `head` = the ensemble's own ops (each member's
    softmax, their mean and the final log: torch.onnx names them at the top scope, '/Softmax', ...),
    or any ONNX op type (e.g. LayerNormalization, Softmax). Default `head`: on the 8,205 dev rows the
    --emulate graph's max |dp| was 3.56e-4 with it, 4.86e-4 with nothing kept, 3.65e-4 with LayerNorm and
    every Softmax kept as well (24 more Casts); it costs nothing ([batch, 3] tensors). Keeping one op
    in float32 changes little when its neighbours are float16: its output is rounded on the way out.
    LayerNormalization computes its statistics in float32 anyway (stash_type 1).
The interface does not change: `input_ids`/`attention_mask` int64 and `features` float32 in, `logits`
float32 out; Casts at the edges (and around kept ops) convert. A bundle serving it needs no code change.

--emulate OUT writes a measuring aid, not a model to serve: the same float16 graph with every op that
has a float16 input or output run as float32 between explicit Casts (inputs up, outputs rounded back
to float16). onnxruntime's CPU provider lacks float16 kernels for most ops, and the float32<->float16
casts it inserts around them are removed again between consecutive such ops (they are marked
precision-free), so on the CPU most activations of the plain float16 graph are never rounded to
float16. The explicit casts of the emulation are not removed, so every activation is rounded where a
GPU would store it: that is the numerical effect of float16 storage (float32 accumulation inside each
op, as cuBLAS and onnxruntime's CUDA reductions, softmax and LayerNorm do for float16).

usage: fp16_compute.py [--model models/default/model.onnx] [--out models/default/model.fp16.onnx]
                       [--keep-fp32 head] [--out-bundle DIR] [--emulate OUT.onnx]
Compare with the float32 graph: npx tsx training/fp16-parity.ts [--also OUT.onnx] [--rows N]
"""
import argparse
import json
import os
import re
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = 65504.0
DEFAULT_KEEP = ('head',)  # chosen by measured |dp| on the dev split (above; MODEL_CARD.md "Float16 compute")
BUNDLE_FILES = ('tokenizer.json', 'tokenizer_config.json', 'preference.json')
TOP_SCOPE = re.compile(r'^/[A-Za-z]+(_\d+)?$')  # '/Softmax_1', '/ReduceMean', '/Log': the Ensemble module's own ops


def value_types(model):
    """elem_type of every named value (graph inputs, outputs, initializers, inferred intermediates)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    types = {}
    for v in list(g.input) + list(g.output) + list(g.value_info):
        types[v.name] = v.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    return types


def fold_weight_casts(g):
    """export.py --fp16-weights stores W as W_fp16 + Cast(to=FLOAT) -> W. Put W back as a float32
    initializer (exact: the values are float16 values), so every weight is handled alike below."""
    inits = {i.name: i for i in g.initializer}
    keep_nodes, folded = [], 0
    for n in g.node:
        src = inits.get(n.input[0]) if n.op_type == 'Cast' and n.input else None
        if src is not None and src.data_type == HALF and helper.get_attribute_value(n.attribute[0]) == FLOAT:
            arr = numpy_helper.to_array(src).astype(np.float32)
            g.initializer.append(numpy_helper.from_array(arr, n.output[0]))
            folded += 1
            continue
        keep_nodes.append(n)
    used = {i for n in keep_nodes for i in n.input}
    for name in [i.name for i in g.initializer if i.data_type == HALF and i.name not in used]:
        g.initializer.remove(next(i for i in g.initializer if i.name == name))
    del g.node[:]
    g.node.extend(keep_nodes)
    return folded


def constants_to_initializers(g):
    """Float Constant nodes become initializers, so constants and weights are converted the same way."""
    keep_nodes = []
    for n in g.node:
        if n.op_type == 'Constant' and len(n.attribute) == 1 and n.attribute[0].name == 'value' \
                and n.attribute[0].t.data_type == FLOAT:
            arr = numpy_helper.to_array(n.attribute[0].t)
            g.initializer.append(numpy_helper.from_array(arr, n.output[0]))
        else:
            keep_nodes.append(n)
    del g.node[:]
    g.node.extend(keep_nodes)


def depends_on(g, sources):
    """Names of every value computed (transitively) from any of `sources`."""
    reach = set(sources)
    for n in g.node:  # export order is topological
        if any(i in reach for i in n.input):
            reach.update(o for o in n.output if o)
    return reach


def kept_fp32(g, keep):
    """Indices of the nodes that stay float32."""
    from_tokens = depends_on(g, [i.name for i in g.input if i.name != 'features'])
    kept = set()
    for idx, n in enumerate(g.node):
        outs = [o for o in n.output if o]
        if outs and not any(o in from_tokens for o in outs):
            kept.add(idx)  # feature preprocessing (raw counts exceed float16's range) and constant-only nodes
        elif 'head' in keep and TOP_SCOPE.match(n.name or ''):
            kept.add(idx)
        elif n.op_type in keep:
            kept.add(idx)
    return kept


def convert(model, keep=DEFAULT_KEEP):
    """Returns (float16-compute model, stats). `model` is not modified."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    folded = fold_weight_casts(g)
    constants_to_initializers(g)
    types = value_types(m)
    kept = kept_fp32(g, set(keep))
    io = [[v for v in list(n.input) + list(n.output) if v] for n in g.node]

    inits = {i.name: i for i in g.initializer}
    float_inits = {k for k, v in inits.items() if v.data_type == FLOAT}

    # dtype each float value will have: what its producer computes in.
    dtype = {}
    for i in g.input:
        if types.get(i.name) == FLOAT:
            dtype[i.name] = FLOAT
    new_nodes = []
    half_copies = {}   # float32 initializer -> its float16 copy
    casts = {}         # (value, to) -> cast output name
    n_casts = 0

    def half_init(name):
        if name not in half_copies:
            arr = numpy_helper.to_array(inits[name])
            if np.abs(arr).max(initial=0) > FP16_MAX:
                raise ValueError(f'initializer {name} exceeds float16 range ({np.abs(arr).max()}) '
                                 'and is read by a float16 node: keep that node in float32 (--keep-fp32)')
            half_copies[name] = name + '__fp16'
            g.initializer.append(numpy_helper.from_array(arr.astype(np.float16), half_copies[name]))
        return half_copies[name]

    def as_type(name, to):
        nonlocal n_casts
        if dtype.get(name) == to:
            return name
        key = (name, to)
        if key not in casts:
            casts[key] = f'{name}__to_{"fp16" if to == HALF else "fp32"}'
            new_nodes.append(helper.make_node('Cast', [name], [casts[key]], to=to, name=casts[key] + '_cast'))
            n_casts += 1
        return casts[key]

    for idx, n in enumerate(g.node):
        compute = FLOAT if idx in kept else HALF
        for k, name in enumerate(n.input):
            if not name or types.get(name) != FLOAT:
                continue
            if name in float_inits:
                n.input[k] = name if compute == FLOAT else half_init(name)
            else:
                n.input[k] = as_type(name, compute)
        if n.op_type == 'Cast' and helper.get_attribute_value(n.attribute[0]) == FLOAT and compute == HALF:
            n.attribute[0].i = HALF
        if n.op_type == 'ConstantOfShape' and n.attribute and n.attribute[0].t.data_type == FLOAT:
            raise ValueError(f'{n.name}: float ConstantOfShape is not handled')
        for o in n.output:
            if o and types.get(o) == FLOAT:
                dtype[o] = compute
        new_nodes.append(n)

    # Graph outputs keep their float32 type.
    for out in g.output:
        if types.get(out.name) == FLOAT and dtype.get(out.name) == HALF:
            inner = out.name + '__fp16'
            for n in new_nodes:
                for k, o in enumerate(n.output):
                    if o == out.name:
                        n.output[k] = inner
                for k, i in enumerate(n.input):
                    if i == out.name:
                        n.input[k] = inner
            new_nodes.append(helper.make_node('Cast', [inner], [out.name], to=FLOAT, name=out.name + '_to_fp32'))
            n_casts += 1

    # Initializers no node reads any more (float32 originals whose readers all went float16).
    used = {i for n in new_nodes for i in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    stats = {
        'keep_fp32': list(keep),
        'nodes_fp32': sum(1 for i in kept if any(types.get(v) == FLOAT for v in io[i])),
        'nodes': len(g.node),
        'weight_casts_folded': folded,
        'casts_added': n_casts,
        'initializers_fp16': sum(1 for i in m.graph.initializer if i.data_type == HALF),
        'initializers_fp32': sum(1 for i in m.graph.initializer if i.data_type == FLOAT),
    }
    return m, stats


def emulate(model):
    """float16 storage, float32 arithmetic: every op with a float16 input or output runs in float32 between
    explicit Casts (see the module docstring). Measuring aid for a CPU without float16 kernels."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    types = value_types(m)
    nodes, wrapped = [], 0
    for n in g.node:
        if n.op_type in ('Cast', 'Constant', 'ConstantOfShape') \
                or not any(types.get(v) == HALF for v in list(n.input) + list(n.output) if v):
            nodes.append(n)
            continue
        for k, name in enumerate(n.input):
            if name and types.get(name) == HALF:
                up = f'{name}__emu{wrapped}_up'
                nodes.append(helper.make_node('Cast', [name], [up], to=FLOAT, name=up))
                n.input[k] = up
        outs = []
        for k, name in enumerate(n.output):
            if name and types.get(name) == HALF:
                f32 = f'{name}__emu{wrapped}_f32'
                n.output[k] = f32
                outs.append(helper.make_node('Cast', [f32], [name], to=HALF, name=f32 + '_round'))
        nodes.append(n)
        nodes.extend(outs)
        wrapped += 1
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    return m, wrapped


def io_signature(model):
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in list(model.graph.input) + list(model.graph.output)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='models/default/model.onnx')
    ap.add_argument('--out', help='float16 graph to write (default: model.fp16.onnx next to --model)')
    ap.add_argument('--keep-fp32', default=','.join(DEFAULT_KEEP),
                    help='comma-separated: head and/or ONNX op types kept in float32 ("" for none); '
                         f'default {",".join(DEFAULT_KEEP)}')
    ap.add_argument('--out-bundle', help='also write a servable bundle directory: the float16 graph as '
                    'model.onnx, tokenizer.json and preference.json (version + "+fp16") from --model\'s directory')
    ap.add_argument('--emulate', help='also write the float16-rounding emulation graph here (measuring aid)')
    args = ap.parse_args()

    keep = tuple(k for k in args.keep_fp32.split(',') if k)
    src = onnx.load(args.model)
    out, stats = convert(src, keep)
    if io_signature(out) != io_signature(src):
        sys.exit(f'interface changed: {io_signature(src)} -> {io_signature(out)}')
    path = args.out or os.path.join(os.path.dirname(args.model), 'model.fp16.onnx')
    onnx.save(out, path)
    stats.update(out=path, bytes=os.path.getsize(path), source_bytes=os.path.getsize(args.model))
    if args.out_bundle:
        os.makedirs(args.out_bundle, exist_ok=True)
        shutil.copyfile(path, os.path.join(args.out_bundle, 'model.onnx'))
        for f in BUNDLE_FILES:
            p = os.path.join(os.path.dirname(args.model), f)
            if not os.path.exists(p):
                continue
            if f == 'preference.json':  # same preprocessing; the version says which graph scored
                with open(p) as fh:
                    pref = json.load(fh)
                pref['version'] = f'{pref.get("version", "0")}+fp16'
                with open(os.path.join(args.out_bundle, f), 'w') as fh:
                    fh.write(json.dumps(pref, indent=2, ensure_ascii=False) + '\n')
            else:
                shutil.copyfile(p, os.path.join(args.out_bundle, f))
        stats['bundle'] = args.out_bundle
    if args.emulate:
        emu, wrapped = emulate(out)
        onnx.save(emu, args.emulate)
        stats.update(emulate=args.emulate, emulate_ops_wrapped=wrapped)
    print(json.dumps(stats))


if __name__ == '__main__':
    main()
