"""PairPref cross-encoder: one transformer over the templated pair, built so that exchanging the
two responses exchanges the model's view of them.

Segments come from the template's marker ids (<|prompt|>, <|response_a|>, <|response_b|>).
Both responses share one segment embedding and positions count from each segment's start, and
attention gets a learned per-head bias for (query segment, key segment) in relative terms
(prompt / same response / other response). So the encoder is equivariant to swapping A and B,
the head is side-symmetric, and p_a(P,A,B) = p_b(P,B,A) holds up to float rounding whenever
truncation cut both orientations alike. Padding is masked out of attention and pooling.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e4  # additive mask; large enough that exp() underflows to exactly 0 in float32


def segment_masks(ids, a_id, b_id):
    """Bool [b, t] masks (prompt, response a, response b) from the marker ids: everything from the
    <|response_b|> marker on (EOS and padding included) is b, from <|response_a|> up to it is a."""
    in_b = torch.cumsum((ids == b_id).to(torch.int64), 1) > 0
    in_a = (torch.cumsum((ids == a_id).to(torch.int64), 1) > 0) & ~in_b
    return ~(in_a | in_b), in_a, in_b


class Block(nn.Module):
    def __init__(self, d, heads, ffn, dropout):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(d // heads)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ffn)
        self.ff2 = nn.Linear(ffn, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, qx, kx, keymask):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        # The segment bias rides along as 3 extra dims of q and k (qx . kx = bias), so no
        # [b, heads, t, t] bias tensor is built: that tensor and its backward dominated training time.
        q = torch.cat([q * self.scale, qx], -1)
        k = torch.cat([k, kx.expand(b, h, t, kx.shape[-1])], -1)
        att = torch.softmax(q @ k.transpose(-1, -2) + keymask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.out(y))
        return x + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(x)))))


class PairPref(nn.Module):
    def __init__(self, vocab_size, segments, feature_names, feat_mean, feat_std,
                 d=128, layers=2, heads=4, ffn=256, max_len=512, dropout=0.1, head_hidden=128):
        super().__init__()
        self.heads = heads
        self.segments = dict(segments)
        self.pad_id = segments['pad']
        self.a_id = segments['response_a']
        self.b_id = segments['response_b']
        self.tok = nn.Embedding(vocab_size, d)
        self.pos = nn.Embedding(max_len, d)
        self.seg = nn.Embedding(2, d)  # 0 prompt (and BOS), 1 a response (either side)
        # Relative segment pairs: 0 key in prompt, 1 same response, 2 other response, 3 prompt->response.
        self.rel = nn.Embedding(4, heads * layers)
        nn.init.zeros_(self.rel.weight)
        self.blocks = nn.ModuleList([Block(d, heads, ffn, dropout) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.max_len = max_len

        names = list(feature_names)
        n = len(names)
        self.n_feat = n
        if n:
            idx = {nm: i for i, nm in enumerate(names)}

            def twin(nm):
                return 'b_' + nm[2:] if nm.startswith('a_') else 'a_' + nm[2:] if nm.startswith('b_') else nm

            self.register_buffer('feat_perm', torch.tensor([idx[twin(nm)] for nm in names], dtype=torch.long))
            self.register_buffer('feat_sign', torch.tensor([-1.0 if nm.endswith('_b_a') else 1.0 for nm in names]))
            self.register_buffer('feat_mean', torch.as_tensor(feat_mean, dtype=torch.float32))
            self.register_buffer('feat_std', torch.as_tensor(feat_std, dtype=torch.float32))
        pooled = 3 * d  # mean-pooled own response, other response, prompt
        side_in = pooled + d + 2 * n  # + own*other interaction + features seen from this side and swapped
        self.side = nn.Sequential(nn.Linear(side_in, head_hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(head_hidden, head_hidden), nn.GELU(), nn.Linear(head_hidden, 1))
        tie_in = 4 * d + 2 * n
        self.tie = nn.Sequential(nn.Linear(tie_in, head_hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(head_hidden, 1))

    def norm_features(self, f):
        f = torch.sign(f) * torch.log1p(torch.abs(f))
        return (f - self.feat_mean) / self.feat_std

    def forward(self, input_ids, attention_mask, features=None):
        ids = input_ids
        mask = attention_mask.to(torch.float32)
        b, t = ids.shape
        in_p, in_a, in_b = [s.to(torch.float32) for s in segment_masks(ids, self.a_id, self.b_id)]
        # Positions from each segment's start, so a response sits at the same positions on either side.
        pos = in_p * (torch.cumsum(in_p, 1) - 1) + in_a * (torch.cumsum(in_a, 1) - 1) + in_b * (torch.cumsum(in_b, 1) - 1)
        pos = torch.clamp(pos, 0, self.max_len - 1).to(torch.int64)
        in_resp = torch.maximum(in_a, in_b)
        x = self.tok(ids) + self.pos(pos) + self.seg(in_resp.to(torch.int64))
        x = self.drop(x)

        # Relative segment bias for (query i, key j): rel[0] if the key is in the prompt, else rel[1] if
        # query and key are in the same response, rel[2] if in different responses, rel[3] if the query
        # is in the prompt. Written as qx . kx with kx the key's one-hot segment (prompt, a, b).
        kx = torch.stack([in_p, in_a, in_b], -1)[:, None]  # [b, 1, t, 3]
        qa, qb, qp = in_a[:, None, :, None], in_b[:, None, :, None], in_p[:, None, :, None]
        keymask = (1.0 - mask)[:, None, None, :] * NEG
        h = self.heads
        for i, blk in enumerate(self.blocks):
            w = self.rel.weight[:, i * h:(i + 1) * h, None, None]  # [4, h, 1, 1]
            qx = torch.cat([w[0].expand(b, h, t, 1), qa * w[1] + qb * w[2] + qp * w[3],
                            qb * w[1] + qa * w[2] + qp * w[3]], -1)  # [b, h, t, 3]
            x = blk(x, qx, kx, keymask)
        x = self.ln(x)

        def pool(w):
            w = w * mask
            return (x * w[:, :, None]).sum(1) / torch.clamp(w.sum(1, keepdim=True), min=1.0)

        ha, hb, hp = pool(in_a), pool(in_b), pool(in_p)
        if self.n_feat:
            f = self.norm_features(features)
            fs = self.norm_features(features[:, self.feat_perm] * self.feat_sign)
            fa_view, fb_view = torch.cat([f, fs], 1), torch.cat([fs, f], 1)
            f_sym, f_asym = f + fs, torch.abs(f - fs)
        else:
            fa_view = fb_view = f_sym = f_asym = x.new_zeros(b, 0)
        la = self.side(torch.cat([ha, hb, hp, ha * hb, fa_view], 1))
        lb = self.side(torch.cat([hb, ha, hp, hb * ha, fb_view], 1))
        lt = self.tie(torch.cat([ha + hb, torch.abs(ha - hb), hp, ha * hb, f_sym, f_asym], 1))
        return torch.cat([la, lb, lt], 1)


class BudgetView(nn.Module):
    """core/'s budget truncation to a shorter max_length, applied in the graph to rows that core/
    already budget-truncated to a longer one, so one served encoding feeds members trained at
    different lengths.

    Budget mode keeps each part's first tokens: of avail = max_length - 5 content tokens (BOS, EOS
    and three markers are the rest) the prompt gets at most avail // 4, response A at most half of
    what the prompt left, B the remainder. Each cap at the shorter length is below the one at the
    longer length, so the parts' lengths in the longer row determine the shorter row exactly;
    export.py checks the result against shards encoded by core/ at the shorter length.
    """

    def __init__(self, segments, max_length):
        super().__init__()
        self.max_length = max_length
        self.avail = max_length - 5
        self.pad_id, self.prompt_id = segments['pad'], segments['prompt']
        self.a_id, self.b_id = segments['response_a'], segments['response_b']

    def forward(self, ids, attention_mask):
        t = ids.shape[1]
        m = attention_mask > 0
        pos = torch.cumsum(torch.ones_like(ids), 1) - 1
        n = attention_mask.to(torch.int64).sum(1, keepdim=True)
        marker = (ids == self.prompt_id) | (ids == self.a_id) | (ids == self.b_id)
        special = (pos == 0) | (pos == n - 1) | marker  # BOS, EOS, markers: always kept
        content = m & ~special
        in_p, in_a, in_b = segment_masks(ids, self.a_id, self.b_id)
        cp, ca, cb = content & in_p, content & in_a, content & in_b
        lp, la, lb = [c.to(torch.int64).sum(1, keepdim=True) for c in (cp, ca, cb)]
        cap_p = torch.minimum(lp, torch.full_like(lp, self.avail // 4))
        cap_a = torch.minimum(la, torch.div(self.avail - cap_p, 2, rounding_mode='floor'))
        cap_b = torch.minimum(lb, self.avail - cap_p - cap_a)

        def first(c, cap):
            return c & (torch.cumsum(c.to(torch.int64), 1) <= cap)

        keep = (m & special) | first(cp, cap_p) | first(ca, cap_a) | first(cb, cap_b)
        kept = torch.cumsum(keep.to(torch.int64), 1)  # [b, t]
        slot = torch.arange(self.max_length, dtype=torch.int64, device=ids.device)
        # Slot j takes the (j+1)-th kept token, at the position where fewer than j+1 tokens were kept so far.
        src = (kept[:, None, :] <= slot[None, :, None]).to(torch.int64).sum(-1)  # [b, max_length]
        out_mask = slot[None, :] < kept[:, -1:]
        src = torch.where(out_mask, src, torch.zeros_like(src))  # empty slots point at a valid position
        out = torch.where(out_mask, torch.gather(ids, 1, src), torch.full_like(src, self.pad_id))
        # A batch shorter than max_length stays that short: no row keeps more tokens than it has.
        return out[:, :t], out_mask[:, :t].to(attention_mask.dtype)


def count_params(model):
    return sum(p.numel() for p in model.parameters())
