"""Reads the shards written by training/shards.ts (flat int32 ids + int64 offsets per orientation)."""
import json
import os

import numpy as np
import torch


class Split:
    def __init__(self, shard_dir, split, swap=False):
        p = os.path.join(shard_dir, split + ('.swap' if swap else ''))
        self.ids = np.fromfile(p + '.ids.i32', dtype=np.int32)
        self.offsets = np.fromfile(p + '.offsets.i64', dtype=np.int64)
        self.labels = np.fromfile(p + '.labels.u8', dtype=np.uint8).astype(np.int64)
        self.n = len(self.labels)
        feats = np.fromfile(p + '.feats.f32', dtype=np.float32)
        self.feats = feats.reshape(self.n, -1) if self.n else feats.reshape(0, 0)

    def row(self, i):
        return self.ids[self.offsets[i]:self.offsets[i + 1]]


def load_inputs(shard_dir):
    with open(os.path.join(shard_dir, 'model-inputs.json')) as f:
        return json.load(f)


def make_batch(rows, pad_id):
    """Right-padded int64 ids and mask, like the server pads a batch to its longest row."""
    t = max(len(r) for r in rows)
    ids = np.full((len(rows), t), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), t), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def selection_rows(n, k):
    """The k evenly spaced dev rows train.py picks checkpoints on (the split files are ordered,
    their first rows are the hardest, so a prefix would not be representative)."""
    k = min(k, n) if k > 0 else n
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


@torch.no_grad()
def predict_probs(model, split, idx, pad_id, batch=64):
    """Softmax probabilities [len(idx), 3] for rows idx of a split, in idx order, batch by batch."""
    out = []
    for s in range(0, len(idx), batch):
        part = idx[s:s + batch]
        ids, mask = make_batch([split.row(i) for i in part], pad_id)
        feats = torch.from_numpy(split.feats[part]) if split.feats.shape[1] else None
        out.append(torch.softmax(model(ids, mask, feats), -1))
    return torch.cat(out, 0)
