"""Trains PairPref on the shards; keeps the state with the best dev log loss.

usage: train.py --shards DIR --out FILE.pt [--epochs N] [--d 128] [--layers 2] ...
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import PairPref, count_params  # noqa: E402
from shards import Split, load_inputs, make_batch, predict_probs, selection_rows  # noqa: E402


def log(msg):
    print(time.strftime('%H:%M:%S'), msg, flush=True)


def feature_stats(train, train_swap):
    f = np.concatenate([train.feats, train_swap.feats], 0).astype(np.float64)
    f = np.sign(f) * np.log1p(np.abs(f))
    mean, std = f.mean(0), f.std(0)
    std[std < 1e-6] = 1.0
    return mean.tolist(), std.tolist()


def evaluate(model, fwd, swp, idx, pad_id, batch=64, symmetry=True):
    """Log loss and accuracy on fwd rows idx, and (optionally) symmetry mean |p_a(P,A,B) - p_b(P,B,A)|."""
    model.eval()
    p = predict_probs(model, fwd, idx, pad_id, batch)
    y = torch.from_numpy(fwd.labels[idx])
    nll = -torch.log(p[torch.arange(len(idx)), y].clamp_min(1e-12)).sum().item()
    correct = (p.argmax(-1) == y).sum().item()
    sym = (p[:, 0] - predict_probs(model, swp, idx, pad_id, batch)[:, 1]).abs().sum().item() if symmetry else None
    model.train()
    n = len(idx)
    return {'log_loss': nll / n, 'accuracy': correct / n, 'symmetry': sym / n if symmetry else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shards', required=True)
    ap.add_argument('--out', required=True, help='checkpoint path (.pt); a .json summary is written next to it')
    ap.add_argument('--epochs', type=float, default=2.0)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--weight-decay', type=float, default=0.01)
    ap.add_argument('--d', type=int, default=128)
    ap.add_argument('--layers', type=int, default=2)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--ffn', type=int, default=256)
    ap.add_argument('--dropout', type=float, default=0.1)
    ap.add_argument('--train-limit', type=int, default=0)
    ap.add_argument('--dev-eval-rows', type=int, default=2000, help='dev rows scored at each evaluation')
    ap.add_argument('--evals-per-epoch', type=int, default=2)
    ap.add_argument('--max-minutes', type=float, default=0, help='stop training after this wall time (0: no limit)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=1234)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t_start = time.time()

    meta = load_inputs(args.shards)
    seg = meta['segments']
    pad_id = seg['pad']
    train, train_swap = Split(args.shards, 'train'), Split(args.shards, 'train', swap=True)
    dev, dev_swap = Split(args.shards, 'dev'), Split(args.shards, 'dev', swap=True)
    mean, std = feature_stats(train, train_swap)
    config = dict(vocab_size=meta['vocab_size'], segments=seg, feature_names=meta['feature_names'], feat_mean=mean,
                  feat_std=std, d=args.d, layers=args.layers, heads=args.heads, ffn=args.ffn,
                  max_len=meta['max_length'], dropout=args.dropout)
    model = PairPref(**config)
    log(f'params {count_params(model)}; train {train.n} rows, dev {dev.n} rows; {vars(args)}')

    n_train = train.n if not args.train_limit else min(args.train_limit, train.n)
    steps_per_epoch = max(1, n_train // args.batch)
    total_steps = max(1, int(round(args.epochs * steps_per_epoch)))
    warmup = max(1, min(300, total_steps // 10))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or name.startswith(('tok.', 'pos.', 'seg.', 'rel.')) else decay).append(p)
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=args.lr)

    def progress(s):
        # On a shared machine the step rate is unknown in advance: with --max-minutes the cosine
        # runs on whichever comes first, the planned steps or the wall-time budget.
        p = s / total_steps
        if args.max_minutes:
            p = max(p, (time.time() - t_start) / 60 / args.max_minutes)
        return min(1.0, p)

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.02, 0.5 * (1 + math.cos(math.pi * progress(s)))))
    rng = np.random.default_rng(args.seed)
    dev_idx = selection_rows(dev.n, args.dev_eval_rows)
    eval_every = max(1, steps_per_epoch // max(1, args.evals_per_epoch))

    best = {'log_loss': float('inf')}
    history = []
    step, running, t_log = 0, 0.0, time.time()
    stopped_early = False
    model.train()
    while step < total_steps and not stopped_early:
        order = rng.permutation(n_train)
        for s in range(0, len(order) - args.batch + 1, args.batch):
            part = order[s:s + args.batch]
            flip = rng.random(len(part)) < 0.5  # swap augmentation: the other orientation, labels follow
            rows = [train_swap.row(i) if f else train.row(i) for i, f in zip(part, flip)]
            ids, mask = make_batch(rows, pad_id)
            feats = np.where(flip[:, None], train_swap.feats[part], train.feats[part]) if train.feats.shape[1] else None
            y = torch.from_numpy(np.where(flip, train_swap.labels[part], train.labels[part]))
            logits = model(ids, mask, torch.from_numpy(feats) if feats is not None else None)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 50 == 0:
                rate = 50 * args.batch / (time.time() - t_log)
                t_log = time.time()
                log(f'step {step}/{total_steps} loss {running:.4f} lr {sched.get_last_lr()[0]:.2e} {rate:.1f} rows/s')
            last = step >= total_steps
            over = bool(args.max_minutes) and (time.time() - t_start) / 60 > args.max_minutes
            if step % eval_every == 0 or last or over:
                r = evaluate(model, dev, dev_swap, dev_idx, pad_id, symmetry=last or over)
                r.update(step=step, epoch=step / steps_per_epoch, minutes=(time.time() - t_start) / 60)
                history.append(r)
                log(f'eval {json.dumps(r)}')
                if r['log_loss'] < best['log_loss']:
                    best = dict(r)
                    torch.save({'config': config, 'state': model.state_dict()}, args.out)
                    log(f'saved best to {args.out}')
            if over:
                stopped_early = True
                log(f'stopping: --max-minutes {args.max_minutes} reached')
            if last or over:
                break

    summary = {'args': vars(args), 'params': count_params(model), 'best': best, 'history': history,
               'train_rows': n_train, 'steps': step, 'stopped_early': bool(stopped_early),
               'train_minutes': (time.time() - t_start) / 60}
    with open(os.path.splitext(args.out)[0] + '.json', 'w') as f:
        json.dump(summary, f, indent=2)
    log(f'done: best {json.dumps(best)}')


if __name__ == '__main__':
    main()
