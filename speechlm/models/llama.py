"""Llama-family decoder-only LLM (SmolLM2, Llama 2/3, ...): RMSNorm, rotary positions with a
configurable base, grouped-query attention (torch SDPA), SwiGLU feed-forward, tied (or separate)
output embeddings, and a key/value cache for incremental decoding.

Module names follow Hugging Face's ``LlamaForCausalLM`` without its ``model.`` prefix
(``embed_tokens``, ``layers.N.self_attn.q_proj`` ...), so an HF checkpoint maps onto it by
name; :mod:`speechlm.models.llm_weights` reads GGUF and HF files into it. Rotary embedding uses
HF's layout (a head's first half of channels rotates with its second half); GGUF files store Q/K
rows interleaved and are converted on loading.

The decoding interface is :class:`speechlm.models.lm.TransformerLM`'s (``embed``,
``forward_embeddings``, ``prefill``, ``step``, ``start``, :class:`~speechlm.models.lm.KVCache`),
so the searches that run on the tiny text LM run on this unchanged. Nothing here names a device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.errors import SpeechlmError
from speechlm.models.encoder import lengths_to_mask
from speechlm.models.lm import KVCache


@dataclass
class LlamaConfig:
    """A llama model's architecture, as its checkpoint file declares it."""

    vocab_size: int
    d_model: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    ffn_dim: int
    head_dim: int = 0  # 0: d_model // num_heads
    rope_base: float = 10000.0
    rms_eps: float = 1e-5
    tie_embeddings: bool = True
    max_positions: int = 8192

    def __post_init__(self):
        if self.head_dim == 0 and self.num_heads and self.d_model % self.num_heads == 0:
            self.head_dim = self.d_model // self.num_heads
        problems = []
        if min(self.vocab_size, self.d_model, self.num_layers, self.num_heads, self.num_kv_heads,
               self.ffn_dim, self.head_dim) < 1:
            problems.append("every size must be >= 1")
        elif self.num_heads % self.num_kv_heads:
            problems.append(f"num_heads {self.num_heads} is not a multiple of num_kv_heads "
                            f"{self.num_kv_heads}")
        if self.head_dim % 2:
            problems.append(f"head_dim {self.head_dim} must be even (rotary pairs)")
        if problems:
            raise SpeechlmError(f"llama architecture {self.to_dict()}: {'; '.join(problems)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LlamaConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def num_parameters(self) -> int:
        attn = self.d_model * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        block = attn + 3 * self.d_model * self.ffn_dim + 2 * self.d_model
        out = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        return self.vocab_size * self.d_model + self.num_layers * block + self.d_model + out


class RMSNorm(nn.Module):
    """``x / rms(x) * weight``, computed in float32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(pos: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype):
    """cos/sin ``(N, 1, T, head_dim / 2)`` for positions ``pos (N, T)``, computed in float32."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=pos.device, dtype=torch.float32) / head_dim)
    angles = pos.float()[..., None] * inv_freq
    return angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x (N, H, T, Dh)``, channel ``i`` paired with ``i + Dh/2``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class LlamaAttention(nn.Module):
    """Grouped-query self-attention: ``num_kv_heads`` key/value heads, each shared by
    ``num_heads / num_kv_heads`` query heads; the cache keeps only the key/value heads."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.rope_base = cfg.rope_base
        self.q_proj = nn.Linear(cfg.d_model, cfg.num_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: Optional[torch.Tensor],
                past_k: Optional[torch.Tensor] = None, past_v: Optional[torch.Tensor] = None):
        """``x (N, T, D)`` at positions ``pos (N, T)``; ``mask (N, 1, T, S)`` bool (True: attend) or
        None for plain causal attention without a cache. Returns output and the new cache k, v."""
        n, t, _ = x.shape
        q = self.q_proj(x).view(n, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(n, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(n, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope_tables(pos, self.head_dim, self.rope_base, q.dtype)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        group = self.num_heads // self.num_kv_heads
        kk = k.repeat_interleave(group, dim=1) if group > 1 else k
        vv = v.repeat_interleave(group, dim=1) if group > 1 else v
        y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, is_causal=mask is None)
        return self.o_proj(y.transpose(1, 2).reshape(n, t, -1)), k, v


class SwiGLU(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, pos, mask, past_k=None, past_v=None):
        y, k, v = self.self_attn(self.input_layernorm(x), pos, mask, past_k, past_v)
        x = x + y
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


def _attention_mask(query_len: int, valid: torch.Tensor) -> torch.Tensor:
    """Causal mask of the last ``query_len`` of ``S`` positions over keys ``valid (N, S)``:
    ``(N, 1, T, S)``."""
    s = valid.size(1)
    causal = torch.ones(query_len, s, dtype=torch.bool, device=valid.device).tril(diagonal=s - query_len)
    return causal[None, None] & valid[:, None, None, :]


class LlamaLM(nn.Module):
    """A llama decoder; ``sos_eos_id`` is the token that starts a sentence (:meth:`start`)."""

    def __init__(self, cfg: LlamaConfig, sos_eos_id: int = 0):
        super().__init__()
        self.cfg = cfg
        self.sos_eos_id = sos_eos_id
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for module in self.modules():  # a random model as llama's own initialisation draws one
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    @property
    def embed(self) -> nn.Embedding:  # TransformerLM's name for the input embedding
        return self.embed_tokens

    @property
    def vocab_size(self) -> int:
        return self.embed_tokens.num_embeddings

    @property
    def d_model(self) -> int:
        return self.cfg.d_model

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(self.norm(hidden), weight)

    def forward_embeddings(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Input embeddings ``(B, T, D)``, right-padded to ``lengths``, -> logits ``(B, T, V)``."""
        return self.logits(self.hidden_states(x, lengths))

    def hidden_states(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The last block's output ``(B, T, D)`` (before the final norm): :meth:`logits` of the
        positions that need them is cheaper than all logits when the vocabulary is large."""
        n, t, _ = x.shape
        pos = torch.arange(t, device=x.device)[None].expand(n, t)
        mask = None  # plain causal: right padding never reaches a real position
        if lengths is not None and bool((lengths < t).any()):
            mask = _attention_mask(t, lengths_to_mask(lengths, t))  # keeps pad rows finite
        for layer in self.layers:
            x = layer(x, pos, mask)[0]
        return x

    def forward(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_embeddings(self.embed_tokens(tokens), lengths)

    # ---- incremental decoding (TransformerLM's interface) -------------------------------------
    def _run_cached(self, x: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                    cache: Optional[KVCache]):
        mask = _attention_mask(x.size(1), valid)
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            past_k, past_v = (cache.keys[i], cache.values[i]) if cache is not None else (None, None)
            x, k, v = layer(x, pos, mask, past_k, past_v)
            keys.append(k)
            values.append(v)
        return x, keys, values

    def prefill(self, x: torch.Tensor, lengths: torch.Tensor):
        """Run right-padded input embeddings ``(N, T, D)``; return the log-probs of the token after
        each sequence's last real position ``(N, V)`` and the cache."""
        n, t, _ = x.shape
        valid = lengths_to_mask(lengths, t)
        pos = torch.arange(t, device=x.device)[None].expand(n, t)
        x, keys, values = self._run_cached(x, pos, valid, None)
        last = x[torch.arange(n, device=x.device), lengths - 1]
        return self.logits(last).float().log_softmax(-1), KVCache(keys, values, valid, lengths.clone())

    def step(self, tokens: torch.Tensor, cache: KVCache):
        """Feed one token per sequence ``(N,)``; next-token log-probs ``(N, V)`` and the new cache."""
        valid = torch.cat([cache.valid, torch.ones_like(cache.valid[:, :1])], dim=1)
        x, keys, values = self._run_cached(self.embed_tokens(tokens)[:, None], cache.next_pos[:, None],
                                           valid, cache)
        return (self.logits(x[:, 0]).float().log_softmax(-1),
                KVCache(keys, values, valid, cache.next_pos + 1))

    def start(self, batch_size: int, device):
        """Cache after the sentence boundary for ``batch_size`` new sentences, and log-probs."""
        bos = torch.full((batch_size, 1), self.sos_eos_id, dtype=torch.long, device=device)
        return self.prefill(self.embed_tokens(bos), torch.ones(batch_size, dtype=torch.long, device=device))

    @torch.no_grad()
    def greedy(self, tokens: torch.Tensor, steps: int, use_cache: bool = True) -> torch.Tensor:
        """Continue ``tokens (N, T)`` (no padding) by ``steps`` greedy tokens ``(N, steps)``;
        ``use_cache=False`` reruns the whole sequence each step (the reference for the cache)."""
        out = []
        if use_cache:
            n, t = tokens.shape
            logp, cache = self.prefill(self.embed_tokens(tokens),
                                       torch.full((n,), t, dtype=torch.long, device=tokens.device))
            for _ in range(steps):
                out.append(logp.argmax(-1))
                logp, cache = self.step(out[-1], cache)
        else:
            seq = tokens
            for _ in range(steps):
                out.append(self(seq)[:, -1].argmax(-1))
                seq = torch.cat([seq, out[-1][:, None]], dim=1)
        return torch.stack(out, dim=1)

    def keep_layers(self, n: int) -> None:
        """Keep only the first ``n`` blocks (a cheaper decoder that still starts from the LLM)."""
        if not 1 <= n <= len(self.layers):
            raise SpeechlmError(f"llm.num_layers = {n}: the LLM has {len(self.layers)} blocks; "
                                f"give 1..{len(self.layers)}, or 0 for all")
        self.layers = self.layers[:n]
        self.cfg = dataclasses.replace(self.cfg, num_layers=n)

    @torch.no_grad()
    def grow_vocab(self, new_size: int, init_from: Optional[dict] = None) -> None:
        """Append embedding rows up to ``new_size`` (speechlm's tokens after the LLM's vocabulary);
        the LLM's rows keep their ids. New rows start as the mean embedding, or as the row
        ``init_from[new_id]`` names (e.g. ``<asr>`` from the sentence boundary)."""
        old = self.vocab_size
        if new_size < old:
            raise SpeechlmError(f"cannot shrink the LLM's vocabulary from {old} to {new_size}")
        if new_size == old:
            return
        for name in ("embed_tokens",) + (("lm_head",) if self.lm_head is not None else ()):
            w = getattr(self, name).weight
            extra = w.mean(0, keepdim=True).expand(new_size - old, -1).clone()
            for new_id, src in (init_from or {}).items():
                extra[new_id - old] = w[src]
            grown = torch.cat([w, extra], dim=0)
            if name == "embed_tokens":
                self.embed_tokens = nn.Embedding(new_size, self.cfg.d_model, _weight=grown.clone(),
                                                 device=w.device, dtype=w.dtype)
            else:
                self.lm_head = nn.Linear(self.cfg.d_model, new_size, bias=False, device=w.device, dtype=w.dtype)
                self.lm_head.weight.copy_(grown)
        self.cfg = dataclasses.replace(self.cfg, vocab_size=new_size)


@torch.no_grad()
def sentence_log_likelihood(lm: LlamaLM, sentences, boundary: int) -> tuple:
    """Summed next-token log-likelihood of ``boundary y1 .. yn boundary`` over ``sentences``
    (token id lists), in one right-padded batch; returns ``(total log-prob, predicted tokens)``."""
    rows = [[boundary, *s, boundary] for s in sentences]
    lengths = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    dev = lm.embed_tokens.weight.device
    tokens = torch.full((len(rows), int(lengths.max()) + 1), boundary, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    tokens, lengths = tokens.to(dev), lengths.to(dev)
    logp = lm(tokens[:, :-1], lengths).float().log_softmax(-1)
    picked = logp.gather(-1, tokens[:, 1:, None])[..., 0]
    keep = lengths_to_mask(lengths, tokens.size(1) - 1)
    return float(picked[keep].sum()), int(keep.sum())
