"""Decoder-only Transformer text LM: pre-norm blocks, rotary self-attention (torch SDPA), tied
input/output embeddings.

Training runs whole sequences through :class:`RotarySelfAttention` (causal). Decoding runs the
same parameters incrementally with a key/value cache (:meth:`TransformerLM.prefill` then
:meth:`TransformerLM.step`); rotary positions are given per sequence, so a batch of sequences
of different lengths decodes exactly as each would alone.

A text sentence is ``<sos/eos> y1 .. yn <sos/eos>``; the loss is next-token cross-entropy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import LMConfig
from speechlm.models.encoder import (
    FeedForward,
    RotarySelfAttention,
    apply_rotary,
    lengths_to_mask,
    rotary_tables,
)
from speechlm.models.experiment import checked_checkpoint
from speechlm.text.symbols import ASR_ID, BLANK_ID, NUM_SPECIALS, SOS_EOS_ID


class LMBlock(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.d_model)
        self.attn = RotarySelfAttention(cfg.d_model, cfg.num_heads, cfg.dropout)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.ff = FeedForward(cfg.d_model, cfg.ff_mult, cfg.dropout)  # pre-norm inside

    def forward(self, x: torch.Tensor, mask: torch.Tensor, causal: bool = True) -> torch.Tensor:
        # causal=False: the same block as a bidirectional encoder (the TTS text encoder)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), mask, causal=causal))
        return x + self.ff(x)


@dataclass
class KVCache:
    """Per-layer keys/values ``(N, H, S, Dh)``, which cached positions are real ``(N, S)``, and
    the rotary position of each sequence's next token ``(N,)``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor
    next_pos: torch.Tensor

    def select(self, index: torch.Tensor) -> KVCache:
        """Reorder / repeat sequences (beam search): row ``i`` of the result is row ``index[i]``."""
        return KVCache([k.index_select(0, index) for k in self.keys],
                       [v.index_select(0, index) for v in self.values],
                       self.valid.index_select(0, index), self.next_pos.index_select(0, index))


def _cached_attention(attn: RotarySelfAttention, x: torch.Tensor, pos: torch.Tensor,
                      past_k: torch.Tensor | None, past_v: torch.Tensor | None,
                      key_valid: torch.Tensor):
    """``attn``'s parameters over new positions ``x (N, T, D)`` at rotary positions ``pos (N, T)``,
    attending causally to the cache plus themselves. ``key_valid (N, S + T)``."""
    n, t, d = x.shape
    h = attn.num_heads
    q, k, v = attn.qkv(x).view(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
    cos, sin = rotary_tables(int(pos.max()) + 1, d // h, x.device, x.dtype)
    cos, sin = cos[pos][:, None], sin[pos][:, None]  # (N, 1, T, Dh/2)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    if past_k is not None:
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    s = k.size(2)
    causal = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(diagonal=s - t)
    mask = causal[None, None] & key_valid[:, None, None, :]
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attn.out(y.transpose(1, 2).reshape(n, t, d)), k, v


class TransformerLM(nn.Module):
    def __init__(self, cfg: LMConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=cfg.d_model ** -0.5)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(LMBlock(cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model)

    @property
    def d_model(self) -> int:
        return self.cfg.d_model

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(self.final_norm(hidden), self.embed.weight)  # tied embeddings

    def forward_embeddings(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Input embeddings ``(B, T, D)`` (right-padded) -> logits ``(B, T, V)``."""
        mask = lengths_to_mask(lengths, x.size(1))
        x = self.input_dropout(x)
        for block in self.blocks:
            x = block(x, mask)
        return self.logits(x)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_embeddings(self.embed(tokens), lengths)

    def sentence_loss(self, sentences: Sequence[Sequence[int]], device) -> tuple:
        return lm_loss(self, sentences, device)

    # ---- incremental decoding --------------------------------------------------------------
    def prefill(self, x: torch.Tensor, lengths: torch.Tensor):
        """Run right-padded input embeddings ``(N, T, D)``; return the log-probs of the token
        after each sequence's last real position ``(N, V)`` and the cache."""
        n, t, _ = x.shape
        valid = lengths_to_mask(lengths, t)
        pos = torch.arange(t, device=x.device)[None].expand(n, t)
        keys, values = [], []
        for block in self.blocks:
            y, k, v = _cached_attention(block.attn, block.attn_norm(x), pos, None, None, valid)
            x = x + y
            x = x + block.ff(x)
            keys.append(k)
            values.append(v)
        last = x[torch.arange(n, device=x.device), lengths - 1]
        cache = KVCache(keys, values, valid, lengths.clone())
        return self.logits(last).log_softmax(-1), cache

    def step(self, tokens: torch.Tensor, cache: KVCache):
        """Feed one token per sequence ``(N,)``; return next-token log-probs ``(N, V)`` and the
        extended cache."""
        x = self.embed(tokens)[:, None]
        pos = cache.next_pos[:, None]
        valid = torch.cat([cache.valid, torch.ones_like(cache.valid[:, :1])], dim=1)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            y, k, v = _cached_attention(block.attn, block.attn_norm(x), pos, cache.keys[i],
                                        cache.values[i], valid)
            x = x + y
            x = x + block.ff(x)
            keys.append(k)
            values.append(v)
        return self.logits(x[:, 0]).log_softmax(-1), KVCache(keys, values, valid, cache.next_pos + 1)

    def start(self, batch_size: int, device):
        """Cache after ``<sos/eos>`` for ``batch_size`` new sentences, with next-token log-probs."""
        bos = torch.full((batch_size, 1), SOS_EOS_ID, dtype=torch.long, device=device)
        ones = torch.ones(batch_size, dtype=torch.long, device=device)
        return self.prefill(self.embed(bos), ones)


def pad_sentences(sentences: Sequence[Sequence[int]], device) -> tuple:
    """``<sos/eos> y <sos/eos>`` right-padded with blank: tokens ``(B, L)`` and lengths ``(B,)``."""
    lengths = torch.tensor([len(s) + 2 for s in sentences], dtype=torch.long)
    tokens = torch.full((len(sentences), int(lengths.max())), BLANK_ID, dtype=torch.long)
    for i, s in enumerate(sentences):
        tokens[i, : len(s) + 2] = torch.tensor([SOS_EOS_ID, *s, SOS_EOS_ID], dtype=torch.long)
    return tokens.to(device), lengths.to(device)


def sentence_nll(model, sentences: Sequence[Sequence[int]], device) -> torch.Tensor:
    """Next-token NLL of ``<sos/eos> y <sos/eos>`` summed per sentence, ``(B,)``, in one batch.
    ``model`` may be a DDP wrapper of the LM."""
    tokens, lengths = pad_sentences(sentences, device)
    logits = model(tokens[:, :-1], lengths - 1)
    target = tokens[:, 1:].masked_fill(~lengths_to_mask(lengths - 1, tokens.size(1) - 1), -100)
    nll = F.cross_entropy(logits.transpose(1, 2).float(), target, ignore_index=-100,
                          reduction="none")
    return nll.sum(1)


def lm_loss(model, sentences: Sequence[Sequence[int]], device) -> tuple:
    """Summed next-token NLL over ``sentences`` (:func:`sentence_nll`) and the number of
    predicted tokens (``len(y) + 1`` each)."""
    return sentence_nll(model, sentences, device).sum(), sum(len(s) + 1 for s in sentences)


def simulate_ctc_frames(sentence: Sequence[int], vocab_size: int, error_rate: float,
                        max_repeat: int, rng: random.Random) -> list[int]:
    """A frame stream such as a weak CTC model emits for ``sentence``: each piece is deleted,
    replaced by a random piece or kept (the first two with probability ``error_rate / 3`` each)
    and a random piece is inserted after it with probability ``error_rate / 3``; every emitted
    piece lasts 1..``max_repeat`` frames and is followed by 0..``max_repeat`` blank frames (one at
    least between two equal pieces, which CTC would otherwise merge). Never empty."""
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate {error_rate} outside [0, 1]")
    if max_repeat < 1:
        raise ValueError(f"max_repeat {max_repeat} must be >= 1")
    e = error_rate / 3
    frames = [BLANK_ID] * rng.randint(0, max_repeat)

    def emit(piece: int) -> None:
        if frames and frames[-1] == piece:
            frames.append(BLANK_ID)
        frames.extend([piece] * rng.randint(1, max_repeat))
        frames.extend([BLANK_ID] * rng.randint(0, max_repeat))

    for piece in sentence:
        u = rng.random()
        if u >= e:  # not deleted
            emit(rng.randrange(NUM_SPECIALS, vocab_size) if u < 2 * e else piece)
        if rng.random() < e:
            emit(rng.randrange(NUM_SPECIALS, vocab_size))
    return frames or [BLANK_ID]


def conditional_nll(model, rows: Sequence[Sequence[int]], context: Sequence[int],
                    device) -> torch.Tensor:
    """Per row, the summed next-token NLL of ``row[context:]`` given what precedes it, ``(N,)``;
    all rows in one forward (so a DDP wrapper ``model`` sees one call). A text sentence is
    ``[<sos/eos>, *y, <sos/eos>]`` with context 1; a transcription row (:func:`asr_task_row`)
    has its frames and ``<asr>`` as context."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    tokens = torch.full((len(rows), int(lengths.max())), BLANK_ID, dtype=torch.long)
    target = torch.full_like(tokens, -100)
    for i, (r, c) in enumerate(zip(rows, context)):
        if not 1 <= c < len(r):
            raise ValueError(f"row {i}: context {c} leaves nothing to predict in {len(r)} tokens")
        tokens[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        target[i, c - 1: len(r) - 1] = tokens[i, c: len(r)]
    logits = model(tokens[:, :-1].to(device), (lengths - 1).to(device))
    nll = F.cross_entropy(logits.transpose(1, 2).float(), target[:, :-1].to(device),
                          ignore_index=-100, reduction="none")
    return nll.sum(1)


def asr_task_row(sentence: Sequence[int], frames: Sequence[int]) -> tuple[list[int], int]:
    """``[*frames, <asr>, *y, <sos/eos>]`` and its context length: the speech-LM ASR layout
    (:mod:`speechlm.models.speechlm_asr`) with token frames in place of the speech prefix."""
    return [*frames, ASR_ID, *sentence, SOS_EOS_ID], len(frames) + 1


def asr_task_nll(model, sentences: Sequence[Sequence[int]], vocab_size: int, noise: float,
                 max_repeat: int, rng: random.Random, device) -> torch.Tensor:
    """The transcription task on ``sentences``: per sentence, the NLL of ``y <sos/eos>`` given a
    simulated CTC frame stream of it (:func:`simulate_ctc_frames`, piece error rate drawn from
    U(0, ``noise``) per sentence) and ``<asr>``, ``(B,)``, in one forward of ``model``."""
    rows, context = [], []
    for s in sentences:
        frames = simulate_ctc_frames(s, vocab_size, rng.uniform(0.0, noise), max_repeat, rng)
        row, c = asr_task_row(s, frames)
        rows.append(row)
        context.append(c)
    return conditional_nll(model, rows, context, device)


LM_ARCH_KEYS = ("d_model", "num_layers", "num_heads", "ff_mult")


def checked_lm_state(path, key: str, vocab_size: int | None = None, cfg: LMConfig | None = None,
                     random_init: bool = True, user: str = "tokenizer") -> dict:
    """The text-LM checkpoint that option ``key`` names, checked (kind ``lm``, vocabulary
    ``vocab_size``, architecture ``cfg``) by :func:`speechlm.models.experiment.checked_checkpoint`."""
    return checked_checkpoint(path, key, ("lm",), vocab_size, section="lm", arch=cfg,
                              arch_keys=LM_ARCH_KEYS, random_init=random_init, user=user)


def adopt_lm_architecture(cfg, lm_path: str | Path, key: str = "speechlm.lm_init") -> None:
    """The LM part's architecture is the stage-3 LM's: copy it into ``cfg.lm`` (so the resolved
    config that decoding reads is right) instead of asking the user to repeat it. ``key`` is
    the config option that named ``lm_path`` (for messages)."""
    saved = checked_lm_state(lm_path, key)["config"].get("lm", {})
    for arch_key in LM_ARCH_KEYS:
        if arch_key in saved:
            setattr(cfg.lm, arch_key, saved[arch_key])


def build_lm(cfg, vocab_size: int) -> TransformerLM:
    """The ``lm`` model family's builder (speechlm.base.registry)."""
    return TransformerLM(cfg.lm, vocab_size)
