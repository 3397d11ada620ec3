"""Exports PairPref checkpoints to one ONNX graph (opset 17, dynamic batch and sequence axes) and
writes PyTorch reference logits for the first N dev rows, for the onnxruntime parity check in TS.
Several checkpoints become an ensemble inside the graph: logits = log(mean of member softmaxes),
so the served softmax is the average of the members' probabilities. Members may be trained at
different max_lengths: the graph takes the longest (the bundle's preference.json) and re-truncates it
for the others (model.BudgetView); --view-shards DIR checks that against core/'s own shorter shards.

With --fp16-weights the weights are rounded to float16 first (in PyTorch too, so the reference
logits are those of the shipped weights) and stored as float16 initializers, each behind a Cast to
float32 that onnxruntime folds away at session load: half the download, float32 compute.

usage: export.py --ckpt A.pt [B.pt ...] --shards DIR [--view-shards DIR ...] --onnx OUT.onnx
                 --reference OUT.json [--rows 256] [--fp16-weights]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import BudgetView, PairPref, count_params  # noqa: E402
from shards import Split, load_inputs, make_batch  # noqa: E402


class Ensemble(torch.nn.Module):
    """Input rows are encoded at the longest member's max_length; shorter members see BudgetView's cut,
    made once per length however many members share it."""

    def __init__(self, members):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.max_length = max(m.max_len for m in members)
        self.views = torch.nn.ModuleDict({str(n): BudgetView(m.segments, n) for m in members
                                          if (n := m.max_len) < self.max_length})

    def forward(self, input_ids, attention_mask, features=None):
        cut = {int(n): view(input_ids, attention_mask) for n, view in self.views.items()}
        cut[self.max_length] = (input_ids, attention_mask)
        logits = [m(*cut[m.max_len], features) for m in self.members]
        if len(logits) == 1:
            return logits[0]
        return torch.log(torch.stack([torch.softmax(x, -1) for x in logits], 0).mean(0))


@torch.no_grad()
def check_view(long_dir, short_dir, batch=128):
    """BudgetView of the long shards' rows must equal core/'s rows at the short length, id for id."""
    meta = load_inputs(short_dir)
    view = BudgetView(meta['segments'], meta['max_length'])
    pad_id = meta['segments']['pad']
    checked, mismatches = 0, 0
    for split, swap in (('dev', False), ('dev', True), ('train', False), ('train', True)):
        if not os.path.exists(os.path.join(short_dir, split + ('.swap' if swap else '') + '.ids.i32')):
            continue
        long, short = Split(long_dir, split, swap), Split(short_dir, split, swap)
        if long.n != short.n:
            raise ValueError(f'{split}: {long.n} rows in {long_dir}, {short.n} in {short_dir}')
        for s in range(0, long.n, batch):
            part = range(s, min(long.n, s + batch))
            ids, mask = view(*make_batch([long.row(i) for i in part], pad_id))
            for j, i in enumerate(part):
                want = short.row(i)
                got = ids[j, :int(mask[j].sum())].numpy()
                mismatches += int(len(got) != len(want) or not np.array_equal(got, want))
            checked += len(part)
    return {'view_max_length': meta['max_length'], 'rows': checked, 'mismatches': mismatches}


def load_member(path):
    ck = torch.load(path)
    cfg = dict(ck['config'])
    cfg['dropout'] = 0.0
    model = PairPref(**cfg)
    model.load_state_dict(ck['state'])
    return model.eval()


FP16_MIN_ELEMENTS = 256  # smaller tensors (norms, biases, feature stats) stay float32: no size to win


def round_weights_to_fp16(model):
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dtype == torch.float32 and t.numel() >= FP16_MIN_ELEMENTS:
                t.copy_(t.half().float())


def store_initializers_as_fp16(path, min_elements=FP16_MIN_ELEMENTS):
    """Rewrites float32 initializers of at least min_elements as float16 plus a Cast back to float32.

    The Cast nodes take the initializer's old name as output, so every consumer is unchanged.
    Values are already fp16-exact (round_weights_to_fp16), so the float32 graph computes the same.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(path)
    g = m.graph
    casts = []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        half = arr.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), arr):
            raise ValueError(f'initializer {init.name} is not fp16-exact; round the weights first')
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, name + '_fp16'))
        casts.append(helper.make_node('Cast', [name + '_fp16'], [name], to=TensorProto.FLOAT, name=name + '_to_fp32'))
    # Casts first keeps the node list topologically sorted.
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return len(casts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True, nargs='+')
    ap.add_argument('--shards', required=True, help='shards at the bundle\'s (longest) max_length')
    ap.add_argument('--view-shards', action='append', default=[], help='shards at a shorter member length')
    ap.add_argument('--onnx', required=True)
    ap.add_argument('--reference', required=True)
    ap.add_argument('--rows', type=int, default=256)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--fp16-weights', action='store_true')
    args = ap.parse_args()
    torch.set_num_threads(2)

    model = Ensemble([load_member(p) for p in args.ckpt])
    model.eval()
    meta = load_inputs(args.shards)
    if meta['max_length'] != model.max_length:
        sys.exit(f'--shards are at max_length {meta["max_length"]}, the longest member at {model.max_length}')
    checked = set()
    for d in args.view_shards:
        r = check_view(args.shards, d)
        print(json.dumps(r), flush=True)
        if r['mismatches'] or not r['rows']:
            sys.exit(f'BudgetView does not reproduce {d}: {json.dumps(r)}')
        checked.add(r['view_max_length'])
    unchecked = {m.max_len for m in model.members if m.max_len < model.max_length} - checked
    if unchecked:
        sys.exit(f'members at max_length {sorted(unchecked)} need --view-shards at that length')
    if args.fp16_weights:
        round_weights_to_fp16(model)
    pad_id = meta['segments']['pad']
    dev = Split(args.shards, 'dev')
    has_feats = dev.feats.shape[1] > 0

    # Trace with a batch of two rows of different lengths so nothing specialises on one shape.
    ids, mask = make_batch([dev.row(0), dev.row(1)[: max(8, len(dev.row(1)) // 2)]], pad_id)
    inputs = (ids, mask, torch.from_numpy(dev.feats[:2])) if has_feats else (ids, mask)
    names = ['input_ids', 'attention_mask'] + (['features'] if has_feats else [])
    axes = {'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
            'logits': {0: 'batch'}}
    if has_feats:
        axes['features'] = {0: 'batch'}
    with torch.no_grad():
        torch.onnx.export(model, inputs, args.onnx, input_names=names, output_names=['logits'],
                          dynamic_axes=axes, opset_version=17, do_constant_folding=True)

    import onnx
    onnx.checker.check_model(onnx.load(args.onnx))
    fp16_initializers = store_initializers_as_fp16(args.onnx) if args.fp16_weights else 0

    n = min(args.rows, dev.n)
    meta_ids = json.load(open(os.path.join(args.shards, 'dev.meta.json')))['ids']
    rows = []
    with torch.no_grad():
        for s in range(0, n, args.batch):
            part = list(range(s, min(n, s + args.batch)))
            b_ids, b_mask = make_batch([dev.row(i) for i in part], pad_id)
            feats = torch.from_numpy(dev.feats[part]) if has_feats else None
            logits = model(b_ids, b_mask, feats).double()
            probs = torch.softmax(logits, -1)
            for j, i in enumerate(part):
                rows.append({'id': meta_ids[i], 'ids': dev.row(i).tolist(),
                             'features': dev.feats[i].tolist() if has_feats else None,
                             'logits': logits[j].tolist(), 'probs': probs[j].tolist()})
    with open(args.reference, 'w') as f:
        json.dump({'params': count_params(model), 'rows': rows}, f)
    print(json.dumps({'onnx': args.onnx, 'bytes': os.path.getsize(args.onnx), 'params': count_params(model),
                      'reference_rows': len(rows), 'members': len(args.ckpt),
                      'fp16_initializers': fp16_initializers}))


if __name__ == '__main__':
    main()
