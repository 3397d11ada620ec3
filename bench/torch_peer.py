"""The PyTorch peer: the reference pipelines' way. PyTorch eager, the same weights, rows sorted by
length and run in batches of 8 padded to each batch's longest row. The weights: the bundle's
model.onnx mapped back onto training/model.py (training/onnx_to_torch.py, --onnx-bundle DIR; works on
a fresh clone), or training checkpoints (--ckpt: one, or the members of an ensemble, averaged as in
the exported graph). --device auto runs on CUDA when this torch has it, else on the CPU; the output
names the device it ran on.

It reads the token ids that core/ produced (written by the TS harness), so tokenization is
identical, and prints one JSON object: rows/s plus the probabilities of the first rows, which
the harness compares with onnxruntime's to prove the weights are the same.

usage: /usr/bin/python3 bench/torch_peer.py (--onnx-bundle DIR | --ckpt FILE.pt [FILE.pt ...]) --rows ROWS.json
                                            --threads N [--batch 8] [--device auto|cpu|cuda]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'training'))
from export import Ensemble, load_member  # noqa: E402
from onnx_to_torch import ensemble_from_onnx  # noqa: E402
from shards import make_batch as pad_ids  # noqa: E402


def make_batch(rows, pad_id, device):
    """training/shards.py's padding (what the ONNX side gets from core/), plus the features, on device."""
    ids, mask = pad_ids([r['ids'] for r in rows], pad_id)
    feats = None
    if rows[0].get('features') is not None:
        feats = torch.tensor([r['features'] for r in rows], dtype=torch.float32).to(device)
    return ids.to(device), mask.to(device), feats


def pick_device(want):
    if want == 'cuda' and not torch.cuda.is_available():
        sys.exit(f'--device cuda: this torch ({torch.__version__}) has no usable CUDA')
    if want == 'auto':
        return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    return torch.device('cuda:0' if want == 'cuda' else 'cpu')


def main():
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--ckpt', nargs='+')
    src.add_argument('--onnx-bundle', help='bundle directory: weights from its model.onnx')
    ap.add_argument('--rows', required=True)
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--check-rows', type=int, default=8)
    ap.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    if args.onnx_bundle:
        model = ensemble_from_onnx(args.onnx_bundle)
        weights = os.path.join(os.path.abspath(args.onnx_bundle), 'model.onnx')
    else:
        model = Ensemble([load_member(p) for p in args.ckpt])
        weights = ','.join(args.ckpt)
    model = model.eval().to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    data = json.load(open(args.rows))
    pad_id = data['pad_id']
    rows = data['rows']

    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]['ids']))
    batches = [order[s:s + args.batch] for s in range(0, len(order), args.batch)]
    with torch.no_grad():
        # Untimed warm-up on the longest and the shortest batch, as the ONNX side gets.
        for b in {0, len(batches) - 1}:
            model(*make_batch([rows[i] for i in batches[b]], pad_id, device))
        sync()
        t0 = time.perf_counter()
        for b in batches:
            # Copying each batch to the device is part of the timed loop, as pairpref's is.
            model(*make_batch([rows[i] for i in b], pad_id, device))
        sync()
        seconds = time.perf_counter() - t0
        check = list(range(min(args.check_rows, len(rows))))
        probs = torch.softmax(model(*make_batch([rows[i] for i in check], pad_id, device)).double(), -1).cpu().tolist()
    print(json.dumps({'rows': len(rows), 'seconds': seconds, 'rows_per_s': len(rows) / seconds, 'batch': args.batch,
                      'threads': torch.get_num_threads(), 'torch': torch.__version__, 'device': str(device),
                      'device_name': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
                      'cuda_available': torch.cuda.is_available(), 'weights': weights, 'check_probs': probs}))


if __name__ == '__main__':
    main()
