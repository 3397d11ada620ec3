"""Hugging Face-shaped decoder fixtures: small random-weight models in the shape of the exports the
reference pipelines' models give (../shared/docs/seed-recipes.md), and their PyTorch reference.

Three bundles (test/fixtures/hf/<name>/: model.onnx, external data, tokenizer.json,
preference.json, fixture.json with the architecture):

  gemma-seq-cls  the shape of `optimum-cli export onnx --task text-classification` of a Gemma-2
                 sequence classifier: inputs input_ids and attention_mask, causal attention, the score
                 head read at the last non-pad token (transformers' pooling: the rightmost position
                 whose id is not pad_token_id), float16 weights in one external file model.onnx_data,
                 float16 logits [batch, 3] (what a float16 export returns). Gemma's traits: embeddings
                 scaled by sqrt(hidden), RMSNorm with (1 + weight), GELU(tanh) gated MLP.
  llama-seq-cls  the same task for Llama-3: SiLU gated MLP, RMSNorm with weight, pad = eos, float16
                 weights in one external file per tensor, float32 logits.
  label-token    the shape of `--task text-generation` (no past) of a causal LM: inputs input_ids,
                 attention_mask, position_ids; logits [batch, seq, vocab] with a vocabulary of 32,000,
                 tied embeddings, Gemma-2's final logit softcap (tanh(x / 30) * 30), float16 weights in
                 model.onnx_data.

Rotary positions: the label-token model reads position_ids (pairpref computes them from the mask);
the seq-cls models compute theirs inside from the mask (cumsum - 1), so every fixture gives a row the
same probabilities however much padding its batch adds, on either side (transformers' own seq-cls
forward counts positions over the padded row instead, which makes left-padded results depend on the
batch: see README "Bring your own model").

Torch 1.13 cannot run float16 Linear on the CPU, so the weights are rounded to float16 and the
model runs in float32 on them (as export.py --fp16-weights does); the graph stores them as float16
behind Casts to float32. Weights are random: the probabilities mean nothing, only their parity does.

usage (test/fixtures/hf/README.md; test/training/hf-fixtures.test.ts remakes them and compares bytes):
  tsx training/hf-tokenizers.ts --out DIR
  hf_fixtures.py make --tokenizers DIR --out test/fixtures/hf
  hf_fixtures.py reference < request.json > answer.json
     request: {"fixtures": [{"dir": D, "rows": [[ids...], ...]}]}
     answer:  {D: {"right": [[pa, pb, pt], ...], "left": [...], "alone": [...]}}: the rows padded
              into one batch on each side, and each row on its own
"""
import argparse
import json
import math
import os
import re
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import round_weights_to_fp16, store_initializers_as_fp16  # noqa: E402

OPSET = 14

FIXTURES = {
    'gemma-seq-cls': dict(task='seq-cls', style='gemma', tokenizer='gemma', hidden=32, layers=2, heads=4, mlp=64,
                          bos_id=2, eos_id=1, pad_id=0, logits_dtype='float16', external='one-file', seed=1,
                          preset='gemma-seq-cls', max_length=512),
    'llama-seq-cls': dict(task='seq-cls', style='llama', tokenizer='llama3', hidden=32, layers=2, heads=4, mlp=64,
                          logits_dtype='float32', external='per-tensor', seed=2, preset='llama-seq-cls', max_length=512),
    'label-token': dict(task='causal-lm', style='llama', tokenizer='llama3', hidden=32, layers=2, heads=4, mlp=64,
                        vocab=32000, softcap=30.0, logits_dtype='float32', external='one-file', seed=3,
                        preset='label-token', max_length=512),
}


class RMSNorm(nn.Module):
    def __init__(self, d, gemma):
        super().__init__()
        self.gemma = gemma
        self.weight = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return x * ((1.0 + self.weight) if self.gemma else self.weight)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, m = c['hidden'], c['mlp']
        gemma = c['style'] == 'gemma'
        self.heads = c['heads']
        self.gemma = gemma
        self.input_norm = RMSNorm(h, gemma)
        self.q = nn.Linear(h, h, bias=False)
        self.k = nn.Linear(h, h, bias=False)
        self.v = nn.Linear(h, h, bias=False)
        self.o = nn.Linear(h, h, bias=False)
        self.post_norm = RMSNorm(h, gemma)
        self.gate = nn.Linear(h, m, bias=False)
        self.up = nn.Linear(h, m, bias=False)
        self.down = nn.Linear(m, h, bias=False)

    def forward(self, x, cos, sin, bias):
        b, s, h = x.shape
        hd = h // self.heads
        y = self.input_norm(x)

        def heads(t):
            return t.view(b, s, self.heads, hd).transpose(1, 2)

        q, k, v = heads(self.q(y)), heads(self.k(y)), heads(self.v(y))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + bias
        att = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, s, h)
        x = x + self.o(att)
        y = self.post_norm(x)
        act = F.gelu(self.gate(y), approximate='tanh') if self.gemma else F.silu(self.gate(y))
        return x + self.down(act * self.up(y))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c['vocab'], c['hidden'])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c['layers'])])
        self.norm = RMSNorm(c['hidden'], c['style'] == 'gemma')
        if c['task'] == 'seq-cls':
            self.score = nn.Linear(c['hidden'], 3, bias=False)

    def body(self, input_ids, attention_mask, position_ids):
        c = self.c
        x = self.embed(input_ids)
        if c['style'] == 'gemma':
            x = x * math.sqrt(c['hidden'])
        hd = c['hidden'] // c['heads']
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = position_ids.unsqueeze(-1).to(torch.float32) * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)
        cos, sin = emb.cos(), emb.sin()
        s = input_ids.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        allowed = causal.unsqueeze(0).unsqueeze(0) & attention_mask.bool().unsqueeze(1).unsqueeze(2)
        # A large finite negative, not -inf: a left-pad query that sees nothing gets a uniform (finite) row.
        bias = torch.where(allowed, torch.zeros(()), torch.full((), -1e9))
        for layer in self.layers:
            x = layer(x, cos, sin, bias)
        return self.norm(x)

    def seq_cls(self, input_ids, attention_mask):
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.score(self.body(input_ids, attention_mask, position_ids))
        # transformers' pooling: the last position whose id is not the pad id.
        s = input_ids.shape[1]
        non_pad = (input_ids != self.c['pad_id']).to(torch.int64)
        last = (torch.arange(s) * non_pad).argmax(-1)
        pooled = logits[torch.arange(input_ids.shape[0]), last]
        return pooled.half() if self.c['logits_dtype'] == 'float16' else pooled

    def lm(self, input_ids, attention_mask, position_ids, last=None):
        """LM logits [batch, seq, vocab]; with `last` (one position per row), [batch, vocab] there only."""
        h = self.body(input_ids, attention_mask, position_ids)
        if last is not None:
            h = h[torch.arange(h.shape[0]), last]
        logits = F.linear(h, self.embed.weight)
        cap = self.c['softcap']
        return torch.tanh(logits / cap) * cap


class SeqClsExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.model = m

    def forward(self, input_ids, attention_mask):
        return self.model.seq_cls(input_ids, attention_mask)


class LmExport(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.model = m

    def forward(self, input_ids, attention_mask, position_ids):
        return self.model.lm(input_ids, attention_mask, position_ids)


def init_weights(model, seed):
    """Random weights whose outputs spread over the three labels (plain N(0, 0.02) would give 1/3 everywhere)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('norm.weight'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (0.0 if model.c['style'] == 'gemma' else 1.0))
            elif name == 'embed.weight':
                # Tied to the LM head in the causal LM: small enough that the label logits differ by ~1.
                std = 0.15 if model.c['task'] == 'causal-lm' else 0.2 if model.c['style'] == 'gemma' else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name == 'score.weight':
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


def tokenizer_vocab(path):
    """Ids the tokenizer can produce (1 + its largest id), and its JSON."""
    with open(path) as f:
        t = json.load(f)
    return 1 + max(list(t['model']['vocab'].values()) + [a['id'] for a in t['added_tokens']]), t


def build(name, c, tokenizers_dir, out_dir):
    c = dict(c)
    tok_path = os.path.join(tokenizers_dir, f"{c['tokenizer']}-tokenizer.json")
    n_tok, tok = tokenizer_vocab(tok_path)
    specials = {a['content']: a['id'] for a in tok['added_tokens']}
    if c['tokenizer'] == 'llama3':
        c['bos_id'] = specials['<|begin_of_text|>']
        c['eos_id'] = specials['<|end_of_text|>']
        c['pad_id'] = c['eos_id']  # the reference pipeline padded with EOS
    # The model's vocabulary may be larger than the tokenizer's (padded vocabularies are common).
    c['vocab'] = max(c.get('vocab', 0), n_tok)
    model = Decoder(c)
    init_weights(model, c['seed'])
    round_weights_to_fp16(model)
    model.eval()

    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    tmp = os.path.join(d, 'tmp.onnx')
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, c['pad_id']]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    axes = {0: 'batch_size', 1: 'sequence_length'}
    with torch.no_grad():
        if c['task'] == 'seq-cls':
            names = ['input_ids', 'attention_mask']
            torch.onnx.export(SeqClsExport(model), (ids, mask), tmp, input_names=names, output_names=['logits'],
                              dynamic_axes={'input_ids': axes, 'attention_mask': axes, 'logits': {0: 'batch_size'}},
                              opset_version=OPSET, do_constant_folding=False)
        else:
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            names = ['input_ids', 'attention_mask', 'position_ids']
            torch.onnx.export(LmExport(model), (ids, mask, pos), tmp, input_names=names, output_names=['logits'],
                              dynamic_axes={'input_ids': axes, 'attention_mask': axes, 'position_ids': axes,
                                            'logits': {0: 'batch_size', 1: 'sequence_length'}},
                              opset_version=OPSET, do_constant_folding=False)
    fp16 = store_initializers_as_fp16(tmp)
    save_external(tmp, os.path.join(d, 'model.onnx'), c['external'])
    os.remove(tmp)
    shutil.copyfile(tok_path, os.path.join(d, 'tokenizer.json'))

    pref = {
        'name': f'hf-fixture-{name}', 'version': 'fixture',
        'template': {'preset': c['preset']},
        'special_tokens': {'bos_id': c['bos_id'], 'eos_id': c.get('eos_id') if name == 'gemma-seq-cls' else None,
                           'pad_id': c['pad_id'], 'padding_side': 'left' if c['task'] == 'causal-lm' else 'right'},
        'truncation': {'mode': 'tail', 'max_length': c['max_length']},
    }
    if c['task'] == 'causal-lm':
        label_ids = [tok['model']['vocab'][t] for t in ('a', 'b', 'tie')]
        pref['head'] = {'kind': 'label-token', 'output': 'logits', 'token_ids': label_ids}
        pref['inputs'] = {'position_ids': 'position_ids'}
        c['label_token_ids'] = label_ids
    with open(os.path.join(d, 'preference.json'), 'w') as f:
        json.dump(pref, f, indent=2)
        f.write('\n')
    with open(os.path.join(d, 'fixture.json'), 'w') as f:
        json.dump({'made_by': 'training/hf_fixtures.py', 'name': name, 'fp16_initializers': fp16, 'config': c}, f, indent=2)
        f.write('\n')
    return {'name': name, 'vocab': c['vocab'], 'params': sum(p.numel() for p in model.parameters()), 'fp16_initializers': fp16,
            'files': {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}}


def save_external(src, dst, how):
    """Weights (tensors of 1 KiB or more) into external data: one file (model.onnx_data) or one per tensor."""
    import onnx
    from onnx.external_data_helper import set_external_data

    m = onnx.load(src)
    big = [t for t in m.graph.initializer if t.HasField('raw_data') and len(t.raw_data) >= 1024]
    d = os.path.dirname(dst)
    offset = 0
    for t in big:
        data = t.raw_data
        if how == 'one-file':
            location = 'model.onnx_data'
            set_external_data(t, location, offset=offset, length=len(data))
            with open(os.path.join(d, location), 'ab') as f:
                f.write(data)
            offset += len(data)
        else:
            # One file per tensor, named after it as the export names them (characters a path cannot hold replaced).
            location = re.sub(r'[^A-Za-z0-9._-]', '_', t.name)
            set_external_data(t, location)
            with open(os.path.join(d, location), 'wb') as f:
                f.write(data)
        t.data_location = onnx.TensorProto.EXTERNAL
        t.ClearField('raw_data')
    with open(dst, 'wb') as f:
        f.write(m.SerializeToString())


def load_fixture(d):
    """The PyTorch model of a fixture, its weights read back from the bundle's ONNX initializers by name."""
    import onnx
    from onnx import numpy_helper

    with open(os.path.join(d, 'fixture.json')) as f:
        c = json.load(f)['config']
    model = Decoder(c)
    m = onnx.load(os.path.join(d, 'model.onnx'), load_external_data=True)
    weights = {}
    for t in m.graph.initializer:
        name = t.name[:-len('_fp16')] if t.name.endswith('_fp16') else t.name
        name = name[len('model.'):] if name.startswith('model.') else name  # the export wrapper's prefix
        weights[name] = torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))
    state = model.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise ValueError(f'{d}: no initializer for {missing}')
    model.load_state_dict({k: weights[k] for k in state})
    model.eval()
    return model, c


def pad(rows, pad_id, side):
    s = max(len(r) for r in rows)
    ids = torch.full((len(rows), s), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(rows), s), dtype=torch.int64)
    last = []
    for i, r in enumerate(rows):
        start = 0 if side == 'right' else s - len(r)
        ids[i, start:start + len(r)] = torch.tensor(r, dtype=torch.int64)
        mask[i, start:start + len(r)] = 1
        last.append(start + len(r) - 1)
    return ids, mask, torch.tensor(last)


def probs(model, c, rows, side):
    ids, mask, last = pad(rows, c['pad_id'], side)
    with torch.no_grad():
        if c['task'] == 'seq-cls':
            logits = model.seq_cls(ids, mask).to(torch.float64)  # float16 logits, if so, widened exactly
        else:
            # What transformers' generate computes for a padded batch: cumsum(mask) - 1, pads set to 1.
            position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            logits = model.lm(ids, mask, position_ids, last)[:, c['label_token_ids']].to(torch.float64)
    return torch.softmax(logits, dim=-1).tolist()


def reference(request):
    out = {}
    for fx in request['fixtures']:
        model, c = load_fixture(fx['dir'])
        rows = fx['rows']
        out[fx['dir']] = {
            'right': probs(model, c, rows, 'right'),
            'left': probs(model, c, rows, 'left'),
            'alone': [probs(model, c, [r], 'right')[0] for r in rows],
        }
    return out


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    mk = sub.add_parser('make')
    mk.add_argument('--tokenizers', required=True)
    mk.add_argument('--out', required=True)
    mk.add_argument('--only', nargs='*')
    sub.add_parser('reference')
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.cmd == 'make':
        for name, c in FIXTURES.items():
            if args.only and name not in args.only:
                continue
            print(json.dumps(build(name, c, args.tokenizers, args.out)))
    else:
        json.dump(reference(json.load(sys.stdin)), sys.stdout)


if __name__ == '__main__':
    main()
