"""Conformer encoder: conv2d subsampling (x4), rotary self-attention (torch SDPA), conv module.

Shapes: input features ``(B, T, F)`` with lengths ``(B,)``; output ``(B, T', D)`` with
``T' = ((T - 1) // 2 - 1) // 2``. Padded frames are masked in attention and in the convolution
module, so a batch gives the same outputs as its utterances one by one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import EncoderConfig


SUBSAMPLING_FACTOR = 4  # input frames per output frame (two stride-2 convolutions)
# the encoder keys that shape its weights: a checkpoint fits only a config that agrees on them
ENCODER_ARCH_KEYS = ("num_mel_bins", "d_model", "subsampling_channels", "num_layers", "num_heads",
                     "ff_mult", "conv_kernel")


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames left after the two stride-2 convolutions; 0 (not negative) for inputs under 7 frames
    (e.g. an untrained TTS model's near-empty output decoded in a round trip)."""
    return (((lengths - 1) // 2 - 1) // 2).clamp_min(0)


class Conv2dSubsampling(nn.Module):
    """Two stride-2 3x3 convolutions: ``(B, T, F)`` -> ``(B, T//4, D)``."""

    def __init__(self, num_mel_bins: int, d_model: int, channels: int = 0):
        super().__init__()
        channels = channels or d_model
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
        )
        freq = ((num_mel_bins - 1) // 2 - 1) // 2
        self.out = nn.Linear(channels * freq, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
        return x, subsampled_lengths(lengths)


def rotary_tables(seq_len: int, dim: int, device, dtype):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    angles = torch.arange(seq_len, device=device, dtype=torch.float32)[:, None] * inv_freq[None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` ``(B, H, T, Dh)`` by position-dependent angles."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2)


class RotarySelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_tables(t, d // self.num_heads, x.device, x.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attn_mask = None if mask is None else mask[:, None, None, :]
        if causal:
            tri = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            attn_mask = tri if attn_mask is None else attn_mask & tri
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model), nn.Linear(d_model, mult * d_model), nn.SiLU(),
            nn.Dropout(dropout), nn.Linear(mult * d_model, d_model), nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class ConvModule(nn.Module):
    """Pointwise -> GLU -> depthwise conv -> LayerNorm -> SiLU -> pointwise."""

    def __init__(self, d_model: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.pw1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.dw = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.dw_norm = nn.LayerNorm(d_model)
        self.pw2 = nn.Conv1d(d_model, d_model, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        y = y.masked_fill(~mask[:, None, :], 0.0)  # padding must not leak into valid frames
        y = self.dw(y).transpose(1, 2)
        y = F.silu(self.dw_norm(y)).transpose(1, 2)
        return self.dropout(self.pw2(y).transpose(1, 2))


class ConformerBlock(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = RotarySelfAttention(d, cfg.num_heads, cfg.dropout)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.conv = ConvModule(d, cfg.conv_kernel, cfg.dropout)
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.final_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), mask))
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.ff2(x)
        return self.final_norm(x)


class ConformerEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.subsampling = Conv2dSubsampling(cfg.num_mel_bins, cfg.d_model, cfg.subsampling_channels)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.num_layers))

    @property
    def output_dim(self) -> int:
        return self.cfg.d_model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        x, lengths = self.subsampling(feats, lengths)
        x = self.input_dropout(x)
        mask = lengths_to_mask(lengths, x.size(1))
        for block in self.blocks:
            x = block(x, mask)
        return x, lengths
