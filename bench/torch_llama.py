"""PyTorch reference for `npm run bench`'s llama case: a plain-torch Llama (transformers' modeling_llama.py, eager
path: embedding, RMSNorm in F32, RoPE with rotate_half, grouped-query attention through repeat_kv, SiLU-gated MLP,
tied head) in SmolLM2-135M's shapes with random weights, LoRA r=8 (alpha 16, dropout 0.05) on q_proj and v_proj as
PEFT builds it (frozen base; A kaiming-uniform(a=sqrt(5)), B zeros), causal-lm loss, gradient clipping and AdamW on
the LoRA parameters, 2 threads. Attention runs through F.scaled_dot_product_attention (is_causal) where this torch
has it (2.0+), else as transformers' eager attention (matmul, causal mask, softmax in F32, matmul).
Prints one JSON line: tokens/s (median over timed steps) and peak RSS (VmHWM).
Usage: python3 bench/torch_llama.py causal-lm <batch> <seq_len> <steps>"""
import json, math, resource, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

task, B, T, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if task != 'causal-lm':
    sys.exit('torch_llama.py: only causal-lm')
torch.set_num_threads(2)
torch.manual_seed(0)
# HuggingFaceTB/SmolLM2-135M (test/util/llama_configs.ts)
V, C, L, H, KV, I = 49152, 576, 30, 9, 3, 1536
D = C // H
THETA, EPS = 100000.0, 1e-5
R, ALPHA, LORA_DROPOUT = 8, 16, 0.05
SDPA = hasattr(F, 'scaled_dot_product_attention')


def frozen(*shape, std=0.02):
    return nn.Parameter(torch.randn(*shape) * std, requires_grad=False)


class LoraLinear(nn.Module):
    """nn.Linear (weight [out, in], no bias) with PEFT's LoRA beside it when `lora`."""

    def __init__(self, nin, nout, lora=False):
        super().__init__()
        self.weight = frozen(nout, nin)
        self.lora = lora
        if lora:
            self.lora_A = nn.Parameter(torch.empty(R, nin))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = nn.Parameter(torch.zeros(nout, R))
            self.drop = nn.Dropout(LORA_DROPOUT)

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + F.linear(F.linear(self.drop(x), self.lora_A), self.lora_B) * (ALPHA / R)
        return y


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C), requires_grad=False)

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n):
    b, kv, t, d = x.shape
    return x if n == 1 else x[:, :, None, :, :].expand(b, kv, n, t, d).reshape(b, kv * n, t, d)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()
        self.q_proj, self.k_proj = LoraLinear(C, H * D, True), LoraLinear(C, KV * D)
        self.v_proj, self.o_proj = LoraLinear(C, KV * D, True), LoraLinear(H * D, C)
        self.gate_proj, self.up_proj, self.down_proj = LoraLinear(C, I), LoraLinear(C, I), LoraLinear(I, C)

    def forward(self, x, cos, sin, mask):
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(h).view(B, T, KV, D).transpose(1, 2)
        v = self.v_proj(h).view(B, T, KV, D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
        if SDPA:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(2, 3)) / math.sqrt(D) + mask
            a = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        x = x + self.o_proj(a.transpose(1, 2).reshape(B, T, H * D))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = frozen(V, C)  # tied: the head is embed_tokens
        self.layers = nn.ModuleList([Block() for _ in range(L)])
        self.norm = RMSNorm()
        inv_freq = 1.0 / (THETA ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
        self.register_buffer('inv_freq', inv_freq, persistent=False)

    def forward(self, ids):
        freqs = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = None if SDPA else torch.triu(torch.full((T, T), torch.finfo(torch.float32).min), 1)
        x = self.embed_tokens[ids]
        for blk in self.layers:
            x = blk(x, cos, sin, mask)
        logits = self.norm(x)[:, :-1] @ self.embed_tokens.t()
        return F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))


model = Llama()
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4)
ids = torch.randint(0, V - 1, (B, T))
times = []
for i in range(steps + 1):
    t0 = time.perf_counter()
    loss = model(ids)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if i > 0:
        times.append(time.perf_counter() - t0)
def peak_rss_mb():
    # VmHWM, this process's own peak: getrusage's ru_maxrss starts at the parent's RSS (inherited across fork + exec)
    try:
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


times.sort()
med = times[len(times) // 2]
print(json.dumps({'tokens_per_s': B * T / med, 'step_s': times, 'peak_rss_mb': peak_rss_mb(),
                  'threads': torch.get_num_threads(), 'torch': torch.__version__, 'sdpa': SDPA, 'trainable': sum(p.numel() for p in params),
                  'params': sum(p.numel() for p in model.parameters()), 'loss': loss.item()}))
