"""The PyTorch peer: the reference pipelines' way. PyTorch eager, the same weights (a training/
checkpoints: one, or the members of an ensemble, averaged as in the exported graph), rows sorted by length and run in batches of 8 padded to each batch's longest row.

It reads the token ids that core/ produced (written by the TS harness), so tokenization is
identical, and prints one JSON object: rows/s plus the probabilities of the first rows, which
the harness compares with onnxruntime's to prove the weights are the same.

usage: /usr/bin/python3 bench/torch_peer.py --ckpt FILE.pt [FILE.pt ...] --rows ROWS.json --threads N [--batch 8]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'training'))
from export import Ensemble, load_member  # noqa: E402
from shards import make_batch as pad_ids  # noqa: E402


def make_batch(rows, pad_id):
    """training/shards.py's padding (what the ONNX side gets from core/), plus the features."""
    ids, mask = pad_ids([r['ids'] for r in rows], pad_id)
    feats = None
    if rows[0].get('features') is not None:
        feats = torch.tensor([r['features'] for r in rows], dtype=torch.float32)
    return ids, mask, feats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', required=True, nargs='+')
    ap.add_argument('--rows', required=True)
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--check-rows', type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = Ensemble([load_member(p) for p in args.ckpt])
    model.eval()
    data = json.load(open(args.rows))
    pad_id = data['pad_id']
    rows = data['rows']

    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]['ids']))
    batches = [order[s:s + args.batch] for s in range(0, len(order), args.batch)]
    with torch.no_grad():
        # Untimed warm-up on the longest and the shortest batch, as the ONNX side gets.
        for b in {0, len(batches) - 1}:
            model(*make_batch([rows[i] for i in batches[b]], pad_id))
        t0 = time.perf_counter()
        for b in batches:
            model(*make_batch([rows[i] for i in b], pad_id))
        seconds = time.perf_counter() - t0
        check = list(range(min(args.check_rows, len(rows))))
        probs = torch.softmax(model(*make_batch([rows[i] for i in check], pad_id)).double(), -1).tolist()
    print(json.dumps({'rows': len(rows), 'seconds': seconds, 'rows_per_s': len(rows) / seconds, 'batch': args.batch,
                      'threads': torch.get_num_threads(), 'torch': torch.__version__, 'check_probs': probs}))


if __name__ == '__main__':
    main()
