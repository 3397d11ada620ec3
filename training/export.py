"""Exports PairPref checkpoints to one ONNX graph (opset 17, dynamic batch and sequence axes) and
writes PyTorch reference logits for the first N dev rows, for the onnxruntime parity check in TS.
Several checkpoints become an ensemble inside the graph: logits = log(mean of member softmaxes),
so the served softmax is the average of the members' probabilities.

usage: export.py --ckpt A.pt [B.pt ...] --shards DIR --onnx OUT.onnx --reference OUT.json [--rows 256]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import PairPref, count_params  # noqa: E402
from shards import Split, load_inputs, make_batch  # noqa: E402


class Ensemble(torch.nn.Module):
    def __init__(self, members):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, input_ids, attention_mask, features=None):
        if len(self.members) == 1:
            return self.members[0](input_ids, attention_mask, features)
        probs = [torch.softmax(m(input_ids, attention_mask, features), -1) for m in self.members]
        return torch.log(torch.stack(probs, 0).mean(0))


def load_member(path):
    ck = torch.load(path)
    cfg = dict(ck['config'])
    cfg['dropout'] = 0.0
    model = PairPref(**cfg)
    model.load_state_dict(ck['state'])
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True, nargs='+')
    ap.add_argument('--shards', required=True)
    ap.add_argument('--onnx', required=True)
    ap.add_argument('--reference', required=True)
    ap.add_argument('--rows', type=int, default=256)
    ap.add_argument('--batch', type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(2)

    model = Ensemble([load_member(p) for p in args.ckpt])
    model.eval()
    meta = load_inputs(args.shards)
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
                      'reference_rows': len(rows), 'members': len(args.ckpt)}))


if __name__ == '__main__':
    main()
