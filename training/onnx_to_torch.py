"""PairPref ensembles rebuilt from an exported model.onnx: the graph's initializers mapped back onto
training/model.py's modules, so PyTorch runs a bundle's exact weights without the (git-ignored)
.pt checkpoints. The bench's PyTorch peer uses it; nothing in export.py or model.py changes.

What export.py's graph holds (torch.onnx, opset 17, constant folding, optionally --fp16-weights):
- most parameters and buffers as initializers under their state_dict names (`members.K.tok.weight`);
  with --fp16-weights the larger ones as `NAME_fp16` float16 behind a Cast whose output is NAME;
- buffers shared by several members once, the others as Identity nodes of the first
  (`members.1.feat_mean = Identity(members.0.feat_mean)`);
- the transformer blocks' Linear weights folded into transposed MatMul operands (`onnx::MatMul_N`,
  consumed by the node `/members.K/blocks.I/{qkv,out,ff1,ff2}/MatMul`);
- the relative segment bias `rel.weight` folded per layer into four [heads, 1, 1] constants: w[0]
  feeds an Expand, w[1..3] the Muls of `qa*w1 + qb*w2 + qp*w3` and `qb*w1 + qa*w2 + qp*w3`, which
  are concatenated after it in the block's attention Concat.
The model's sizes (vocabulary, width, heads, FFN, layers, max length, head width) are read from
those tensors' shapes, the segment marker ids and feature names from the bundle's preference.json
and tokenizer.json. Members shorter than the longest get export.Ensemble's BudgetView cut, as in
the graph (its `/views.N/` nodes are checked to exist).

usage: onnx_to_torch.py BUNDLE_DIR   (prints the members found and the parameter count)
"""
import json
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import Ensemble  # noqa: E402
from model import PairPref, count_params  # noqa: E402


class OnnxMappingError(ValueError):
    pass


class GraphTensors:
    """Every constant tensor of the graph by name: initializers, plus the outputs of Casts and
    Identities of constants (float16 weights behind a Cast, deduplicated buffers)."""

    def __init__(self, model):
        from onnx import numpy_helper
        g = model.graph
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.values = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in self.nodes:  # topologically sorted, so a chain of Casts/Identities resolves in one pass
            if n.op_type == 'Cast' and n.input[0] in self.values:
                to = next(a.i for a in n.attribute if a.name == 'to')
                self.values[n.output[0]] = self.values[n.input[0]].astype(_onnx_dtype(to))
            elif n.op_type == 'Identity' and n.input[0] in self.values:
                self.values[n.output[0]] = self.values[n.input[0]]

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def constant_input(self, node):
        """The one constant input of node (its name), or None."""
        names = [x for x in node.input if x in self.values]
        return names[0] if len(names) == 1 else None

    def made_by(self, tensor, op):
        n = self.producer.get(tensor)
        if n is None or n.op_type != op:
            raise OnnxMappingError(f'{tensor} is not the output of a {op} node')
        return n


def _onnx_dtype(to):
    # onnx's own table (onnx.mapping in Debian's onnx 1.12; newer releases also have helper.tensor_dtype_to_np_dtype).
    from onnx.mapping import TENSOR_TYPE_TO_NP_TYPE
    if to not in TENSOR_TYPE_TO_NP_TYPE:
        raise OnnxMappingError(f'Cast to ONNX type {to} is not expected among the weights')
    return TENSOR_TYPE_TO_NP_TYPE[to]


def _rel_bias_of_layer(gt, member, layer, heads):
    """rel.weight[:, layer*heads:(layer+1)*heads] (shape [4, heads]) from the block's attention Concat."""
    prefix = f'/members.{member}/blocks.{layer}/'
    for n in gt.nodes:
        if n.op_type != 'Concat' or not n.name.startswith(prefix):
            continue
        for e, x in enumerate(n.input):
            p = gt.producer.get(x)
            if p is None or p.op_type != 'Expand' or p.input[0] not in gt.values:
                continue
            w0 = gt.values[p.input[0]]
            if w0.shape != (heads, 1, 1) or e + 2 >= len(n.input):
                continue

            def chain(tensor):
                """Add(Add(Mul(s1, c1), Mul(s2, c2)), Mul(s3, c3)) -> [(s1, c1), (s2, c2), (s3, c3)]"""
                outer = gt.made_by(tensor, 'Add')
                inner = gt.made_by(outer.input[0], 'Add')
                out = []
                for t in (inner.input[0], inner.input[1], outer.input[1]):
                    mul = gt.made_by(t, 'Mul')
                    c = gt.constant_input(mul)
                    if c is None:
                        raise OnnxMappingError(f'{mul.name} has no single constant operand')
                    out.append((next(s for s in mul.input if s != c), c))
                return out

            own, other = chain(n.input[e + 1]), chain(n.input[e + 2])
            # qx = [w0, qa*w1 + qb*w2 + qp*w3, qb*w1 + qa*w2 + qp*w3]: same constants in the same
            # places, the two responses' masks exchanged, the prompt's mask the same.
            ok = ([c for _, c in own] == [c for _, c in other] and own[0][0] == other[1][0]
                  and own[1][0] == other[0][0] and own[2][0] == other[2][0])
            if not ok:
                raise OnnxMappingError(f'{n.name}: the segment-bias terms are not in the layout model.py exports')
            rows = [w0] + [gt.values[c] for _, c in own]
            return np.stack([r.reshape(heads) for r in rows], 0)
    raise OnnxMappingError(f'no segment-bias Concat under {prefix}')


def _member_sizes(gt, k):
    v = gt.values

    def shape(name):
        if name not in v:
            raise OnnxMappingError(f'the graph has no {name}')
        return v[name].shape

    vocab, d = shape(f'members.{k}.tok.weight')
    layers = len({int(m.group(1)) for name in v if (m := re.match(rf'^members\.{k}\.blocks\.(\d+)\.', name))})
    expands = [n for n in gt.nodes if n.op_type == 'Expand' and n.name.startswith(f'/members.{k}/')
               and not n.name.startswith(f'/members.{k}/blocks.') and n.input[0] in v and v[n.input[0]].ndim == 3]
    if not expands:
        raise OnnxMappingError(f'member {k}: no segment-bias Expand, cannot tell the number of heads')
    return dict(vocab_size=vocab, d=d, layers=layers, heads=v[expands[0].input[0]].shape[0],
                ffn=shape(f'members.{k}.blocks.0.ff1.bias')[0], max_len=shape(f'members.{k}.pos.weight')[0],
                head_hidden=shape(f'members.{k}.side.0.bias')[0])


LINEAR_IN_BLOCK = re.compile(r'^blocks\.(\d+)\.(qkv|out|ff1|ff2)\.weight$')


def _member_state(gt, k, model, heads):
    state = {}
    for key, ref in model.state_dict().items():
        name = f'members.{k}.{key}'
        m = LINEAR_IN_BLOCK.match(key)
        if name in gt.values:
            arr = gt.values[name]
        elif m:
            node = gt.node(f'/members.{k}/blocks.{m.group(1)}/{m.group(2)}/MatMul')
            c = gt.constant_input(node) if node is not None else None
            if c is None:
                raise OnnxMappingError(f'{name}: no MatMul /members.{k}/blocks.{m.group(1)}/{m.group(2)}/MatMul with a constant operand')
            arr = gt.values[c].T
        elif key == 'rel.weight':
            arr = np.concatenate([_rel_bias_of_layer(gt, k, i, heads) for i in range(len(model.blocks))], 1)
        else:
            raise OnnxMappingError(f'{name}: not found in the graph')
        if tuple(arr.shape) != tuple(ref.shape):
            raise OnnxMappingError(f'{name}: shape {arr.shape} in the graph, {tuple(ref.shape)} in model.py')
        state[key] = torch.from_numpy(np.array(arr)).to(ref.dtype)  # a writable copy
    return state


def _bundle_vocab(bundle_dir):
    pref = json.load(open(os.path.join(bundle_dir, 'preference.json')))
    tok = json.load(open(os.path.join(bundle_dir, 'tokenizer.json')))
    added = {t['content']: t['id'] for t in tok.get('added_tokens', [])}
    t = pref['template']

    def marker(field):
        if t.get(field) not in added:
            raise OnnxMappingError(f'template {field} {t.get(field)!r} is not one added token of tokenizer.json')
        return added[t[field]]

    segments = {'pad': pref['special_tokens']['pad_id'], 'prompt': marker('prompt_prefix'),
                'response_a': marker('response_a_prefix'), 'response_b': marker('response_b_prefix')}
    names = (pref.get('features') or {}).get('names') or []
    return pref, segments, names


def ensemble_from_onnx(bundle_dir, onnx_path=None):
    """export.Ensemble with model.onnx's weights: one PairPref per `members.K` of the graph, in eval
    mode, dropout 0. Raises OnnxMappingError when the graph is not one export.py writes."""
    import onnx
    onnx_path = onnx_path or os.path.join(bundle_dir, 'model.onnx')
    gt = GraphTensors(onnx.load(onnx_path))
    ks = sorted({int(m.group(1)) for name in gt.values if (m := re.match(r'^members\.(\d+)\.', name))})
    if not ks or ks != list(range(len(ks))):
        raise OnnxMappingError(f'{onnx_path}: no members.0..N initializers (found members {ks}); not a training/export.py graph')
    pref, segments, names = _bundle_vocab(bundle_dir)
    members = []
    for k in ks:
        sizes = _member_sizes(gt, k)
        n_feat = len(names)
        if n_feat:
            mean, std = (gt.values.get(f'members.{k}.feat_{s}') for s in ('mean', 'std'))
            if mean is None or std is None or mean.shape != (n_feat,):
                raise OnnxMappingError(f'member {k}: feature statistics for the {n_feat} features of preference.json not found')
        else:
            mean = std = []
        model = PairPref(sizes['vocab_size'], segments, names, np.array(mean, np.float32), np.array(std, np.float32), d=sizes['d'], layers=sizes['layers'],
                         heads=sizes['heads'], ffn=sizes['ffn'], max_len=sizes['max_len'], dropout=0.0,
                         head_hidden=sizes['head_hidden'])
        model.load_state_dict(_member_state(gt, k, model, sizes['heads']), strict=True)
        members.append(model.eval())
    ens = Ensemble(members).eval()
    if ens.max_length != pref['truncation']['max_length']:
        raise OnnxMappingError(f'longest member has {ens.max_length} positions, preference.json max_length is {pref["truncation"]["max_length"]}')
    for n in ens.views:
        if not any(x.name.startswith(f'/views.{n}/') for x in gt.nodes):
            raise OnnxMappingError(f'a member has max_len {n} but the graph has no /views.{n}/ cut')
    return ens


def describe(ens):
    return {'members': [{'max_len': m.max_len, 'params': count_params(m)} for m in ens.members],
            'views': sorted(int(n) for n in ens.views), 'params': count_params(ens)}


if __name__ == '__main__':
    print(json.dumps(describe(ensemble_from_onnx(sys.argv[1]))))
