"""Times training steps of training/model.py (or other versions of it) on the pipeline's shards, and
when given two versions, checks they compute the same logits from the same weights.

usage: /usr/bin/python3 training/step_time.py --shards training/out/run/shards-512
           [--model-file training/model.py --model-file /tmp/old_model.py] [--steps 20] [--batch 32]
  e.g. git show c29992e:training/model.py > /tmp/old_model.py  (the bias-table version)
Run it under the pipeline's environment (training/python.ts preloads tcmalloc when installed):
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 training/step_time.py ...
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shards import Split, load_inputs, make_batch  # noqa: E402


def load_model_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument('--shards', required=True)
    ap.add_argument('--model-file', action='append', default=[])
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = args.model_file or [os.path.join(here, 'model.py')]

    meta = load_inputs(args.shards)
    train = Split(args.shards, 'train')
    pad_id = meta['segments']['pad']
    nf = train.feats.shape[1]
    cfg = dict(vocab_size=meta['vocab_size'], segments=meta['segments'], feature_names=meta['feature_names'],
               feat_mean=[0.0] * nf, feat_std=[1.0] * nf, d=128, layers=1, heads=4, ffn=256,
               max_len=meta['max_length'], dropout=0.15)
    rng = np.random.default_rng(0)
    batches = [rng.choice(train.n, args.batch, replace=False) for _ in range(args.warmup + args.steps)]
    models = []
    for i, f in enumerate(files):
        torch.manual_seed(0)
        model = load_model_module(f, f'model_{i}').PairPref(**cfg)
        if models:
            model.load_state_dict(models[0].state_dict())
        models.append(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        for k, part in enumerate(batches):
            if k == args.warmup:
                t0 = time.time()
            ids, mask = make_batch([train.row(j) for j in part], pad_id)
            loss = F.cross_entropy(model(ids, mask, torch.from_numpy(train.feats[part]) if nf else None),
                                   torch.from_numpy(train.labels[part]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = (time.time() - t0) / args.steps
        print(json.dumps({'model_file': f, 'max_length': meta['max_length'], 's_per_step': round(dt, 4),
                          'rows_per_s': round(args.batch / dt, 1)}), flush=True)
    if len(models) > 1:
        # Same weights (copied from the first version before training), fresh copies, eval mode.
        torch.manual_seed(0)
        ref = load_model_module(files[0], 'ref').PairPref(**cfg)
        torch.nn.init.normal_(ref.rel.weight)  # a non-zero segment bias, so the bias path is exercised
        part = batches[0]
        ids, mask = make_batch([train.row(j) for j in part], pad_id)
        feats = torch.from_numpy(train.feats[part]) if nf else None
        with torch.no_grad():
            outs = []
            for i, f in enumerate(files):
                m = load_model_module(f, f'cmp_{i}').PairPref(**cfg)
                m.load_state_dict(ref.state_dict())
                outs.append(m.eval()(ids, mask, feats))
        print(json.dumps({'max_abs_logit_diff': max((o - outs[0]).abs().max().item() for o in outs[1:])}))


if __name__ == '__main__':
    main()
