"""Dev log loss of trained members and of every probability-averaged combination of them, including
members trained on different shards (e.g. another max_length): rows are matched by position, and all
shard sets must hold the same dev rows. A research aid for choosing what to ship; the pipeline's
own evaluation (through core/ + onnxruntime) is the number of record.

usage: /usr/bin/python3 training/compare_members.py RUN_DIR/model0.pt[:SHARDS_DIR] ... [--threads 2]
  SHARDS_DIR defaults to <checkpoint dir>/shards-<its max_length>. Dev probabilities are cached as
  <checkpoint>.dev.npy. Also prints the loss on the dev rows that train.py did not use to pick
  checkpoints (train.py scores 1,000 evenly spaced dev rows for that).
"""
import argparse
import itertools
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import load_member  # noqa: E402
from shards import Split, load_inputs, predict_probs, selection_rows  # noqa: E402


def dev_probs(ckpt, shard_dir):
    cache = os.path.splitext(ckpt)[0] + '.dev.npy'
    if os.path.exists(cache) and os.path.getmtime(cache) > os.path.getmtime(ckpt):
        return np.load(cache)
    dev = Split(shard_dir, 'dev')
    # Length-sorted batches pad little; the probabilities go back to file order.
    order = np.argsort(np.diff(dev.offsets), kind='stable')
    probs = np.zeros((dev.n, 3))
    probs[order] = predict_probs(load_member(ckpt), dev, order, load_inputs(shard_dir)['segments']['pad']).double().numpy()
    np.save(cache, probs)
    return probs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('members', nargs='+')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--selection-rows', type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    probs, labels, dev_ids = {}, None, None
    for spec in args.members:
        ckpt, _, shard_dir = spec.partition(':')
        if not shard_dir:  # the pipeline's layout: <work>/shards-<max_length>
            max_len = torch.load(ckpt)['config']['max_len']
            shard_dir = os.path.join(os.path.dirname(ckpt), f'shards-{max_len}')
        ids = json.load(open(os.path.join(shard_dir, 'dev.meta.json')))['ids']
        if dev_ids is not None and ids != dev_ids:
            sys.exit(f'{shard_dir}: dev rows differ from the first member\'s shards')
        dev_ids = ids
        labels = Split(shard_dir, 'dev').labels
        probs[ckpt] = dev_probs(ckpt, shard_dir)

    n = len(labels)
    picked = selection_rows(n, args.selection_rows)
    other = np.setdiff1d(np.arange(n), picked)

    def log_loss(p, rows):
        return float(-np.mean(np.log(np.clip(p[rows, labels[rows]], 1e-12, 1.0))))

    names = list(probs)
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            p = np.mean([probs[c] for c in combo], 0)
            print(json.dumps({'members': list(combo), 'dev_rows': n, 'log_loss': round(log_loss(p, np.arange(n)), 5),
                              'log_loss_unpicked_rows': round(log_loss(p, other), 5),
                              'accuracy': round(float(np.mean(p.argmax(1) == labels)), 4)}))


if __name__ == '__main__':
    main()
