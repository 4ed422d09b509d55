"""PyTorch reference for `npm run bench`: GPT-2 small shapes (random weights), LoRA r=8 (alpha 16, dropout 0.05)
on attn.c_attn and attn.c_proj, AdamW on the LoRA parameters (and the score head for seq-cls), GPT-2's
dropouts on, 2 threads. Prints one JSON line: tokens/s (median over timed steps) and peak RSS.
Usage: python3 bench/torch_ref.py <causal-lm|seq-cls> <batch> <seq_len> <steps>"""
import json, math, resource, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

task, B, T, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(2)
torch.manual_seed(0)
V, C, L, H, P = 50257, 768, 12, 12, 1024
R, ALPHA = 8, 16


class LoraConv1D(nn.Module):
    def __init__(self, nin, nout, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nin, nout) * 0.02, requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(nout), requires_grad=False)
        self.lora = lora
        if lora:
            self.A = nn.Parameter(torch.randn(nin, R) / math.sqrt(nin))
            self.B = nn.Parameter(torch.zeros(R, nout))
            self.drop = nn.Dropout(0.05)

    def forward(self, x):
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)
        if self.lora:
            y = y + (self.drop(x) @ self.A @ self.B) * (ALPHA / R)
        return y


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = LoraConv1D(C, 3 * C, True), LoraConv1D(C, C, True)
        self.c_fc, self.mlp_proj = LoraConv1D(C, 4 * C, False), LoraConv1D(4 * C, C, False)
        self.attn_drop, self.resid_drop = nn.Dropout(0.1), nn.Dropout(0.1)
        for p in list(self.ln_1.parameters()) + list(self.ln_2.parameters()):
            p.requires_grad_(False)

    def forward(self, x, mask):
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        heads = lambda t: t.view(B, T, H, C // H).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(C // H) + mask
        a = self.attn_drop(F.softmax(s, dim=-1)) @ v
        x = x + self.resid_drop(self.c_proj(a.transpose(1, 2).reshape(B, T, C)))
        h = F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh')
        return x + self.resid_drop(self.mlp_proj(h))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Parameter(torch.randn(V, C) * 0.02, requires_grad=False)
        self.wpe = nn.Parameter(torch.randn(P, C) * 0.01, requires_grad=False)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        self.ln_f.requires_grad_(False)
        self.drop = nn.Dropout(0.1)
        self.score = nn.Parameter(torch.randn(2, C) * 0.02) if task == 'seq-cls' else None

    def forward(self, ids, labels):
        mask = torch.triu(torch.full((T, T), -1e9), 1)
        x = self.drop(self.wte[ids] + self.wpe[:T])
        for blk in self.h:
            x = blk(x, mask)
        x = self.ln_f(x)
        if self.score is not None:
            return F.cross_entropy(x[:, -1] @ self.score.t(), labels)
        logits = x[:, :-1] @ self.wte.t()
        return F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))


model = GPT2()
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, V - 1, (B, T))
labels = torch.arange(B) % 2
times = []
for i in range(steps + 1):
    t0 = time.perf_counter()
    loss = model(ids, labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if i > 0:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({'tokens_per_s': B * T / med, 'step_s': times, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'threads': torch.get_num_threads(), 'torch': torch.__version__}))
