"""Conformer encoder: conv2d subsampling (x4), rotary self-attention (torch SDPA), conv module.

Shapes: input features ``(B, T, F)`` with lengths ``(B,)``; output ``(B, T', D)`` with
``T' = ((T - 1) // 2 - 1) // 2``. Padded frames are masked in attention and in the convolution
module, so a batch gives the same outputs as its utterances one by one.

Streaming (``encoder.causal`` or ``encoder.chunk_conv``, plus chunked attention): attention looks
at the frame's own chunk and the chunks before it (``left_chunks`` of them, or all); the conv
module looks only at past frames (``causal``) or, with ``chunk_conv``, at its centred window cut
at the end of the frame's chunk, so that it sees the same future as attention and is an ordinary
centred convolution when the model runs with full context. ``encoder.lookahead = R`` lets the
first block's attention also see the R frames after the chunk (their keys and values depend on
the input frames alone, so a stream computes them exactly once those frames have arrived; the
blocks above see no further than the chunk): R x 40 ms more latency.
:meth:`ConformerEncoder.forward` with ``chunk_size`` computes that with masks over a whole
utterance; :class:`EncoderStream` computes the same outputs chunk by chunk with caches (attention
keys/values, conv inputs, subsampling input frames), which is what ``transcribe --streaming`` runs.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import EncoderConfig
from speechlm.data.datamodule import utterance_means


SUBSAMPLING_FACTOR = 4  # input frames per output frame (two stride-2 convolutions)
# the encoder keys that shape its weights: a checkpoint fits only a config that agrees on them
ENCODER_ARCH_KEYS = ("num_mel_bins", "d_model", "subsampling_channels", "num_layers", "num_heads",
                     "ff_mult", "conv_kernel", "causal", "chunk_conv")


def can_stream(cfg: EncoderConfig) -> bool:
    """Whether an encoder of this config computes chunk by chunk (no frame sees past its chunk)."""
    return cfg.causal or cfg.chunk_conv


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


def utterance_mean_normalised(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, F)`` features minus each utterance's mean over its valid frames; padding stays 0."""
    valid = lengths_to_mask(lengths, feats.size(1)).unsqueeze(-1).to(feats.dtype)
    return (feats - utterance_means(feats, lengths)[:, None, :]) * valid


def rotary_tables(seq_len: int, dim: int, device, dtype, offset: int = 0):
    """cos/sin tables of positions ``offset .. offset + seq_len - 1``."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    pos = torch.arange(offset, offset + seq_len, device=device, dtype=torch.float32)
    angles = pos[:, None] * inv_freq[None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def chunk_ends(t: int, chunk_size: int, device) -> torch.Tensor:
    """``(t,)``: the last frame of each frame's chunk (frames ``0..t-1``, chunks of ``chunk_size``)."""
    return (torch.arange(t, device=device) // chunk_size + 1) * chunk_size - 1


def chunk_attention_mask(t: int, chunk_size: int, left_chunks: int, device,
                         lookahead: int = 0) -> torch.Tensor:
    """``(t, t)`` bool: query frame i may attend key frame j when j's chunk is i's or one of the
    ``left_chunks`` before it (all before it when ``left_chunks < 0``), or j is one of the
    ``lookahead`` frames after the end of i's chunk."""
    frame = torch.arange(t, device=device)
    chunk = frame // chunk_size
    allowed = frame[None, :] <= chunk_ends(t, chunk_size, device)[:, None] + lookahead
    if left_chunks >= 0:
        allowed &= chunk[None, :] >= chunk[:, None] - left_chunks
    return allowed


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

    def forward(self, x: torch.Tensor, mask: torch.Tensor, causal: bool = False,
                frames_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``mask``: ``(B, T)`` valid keys; ``causal``: each frame sees only earlier ones;
        ``frames_mask``: ``(T, T)`` allowed query/key pairs (:func:`chunk_attention_mask`)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_tables(t, d // self.num_heads, x.device, x.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attn_mask = None if mask is None else mask[:, None, None, :]
        if causal:
            tri = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            attn_mask = tri if attn_mask is None else attn_mask & tri
        if frames_mask is not None:
            attn_mask = frames_mask if attn_mask is None else attn_mask & frames_mask
            # a padded query may have no valid key left: let it see itself (no NaN rows)
            attn_mask = attn_mask | torch.eye(t, dtype=torch.bool, device=x.device)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def step(self, x: torch.Tensor, cache: Optional[Tuple[torch.Tensor, torch.Tensor]], offset: int,
             max_cache: int, ahead: Optional[torch.Tensor] = None
             ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """One chunk ``(1, C, D)`` at positions ``offset..offset+C-1``, attending to itself, the
        cached (already rotated) keys/values of earlier frames and the ``ahead`` frames ``(1, R,
        D)`` after it (not cached: they come again in the next chunk); keeps the last
        ``max_cache`` frames (all when < 0)."""
        b, t, d = x.shape
        both = x if ahead is None else torch.cat([x, ahead], dim=1)
        n = both.size(1)
        q, k, v = self.qkv(both).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_tables(n, d // self.num_heads, x.device, x.dtype, offset)
        q, k = apply_rotary(q[:, :, :t], cos[:t], sin[:t]), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v)
        k, v = k[:, :, :k.size(2) - (n - t)], v[:, :, :v.size(2) - (n - t)]  # drop the ahead frames
        start = 0 if max_cache < 0 else max(0, k.size(2) - max_cache)
        return self.out(y.transpose(1, 2).reshape(b, t, d)), (k[:, :, start:], v[:, :, start:])


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
    """Pointwise -> GLU -> depthwise conv -> LayerNorm -> SiLU -> pointwise.

    ``causal``: the depthwise kernel sees the frame and the ``kernel - 1`` before it. Otherwise it
    is centred (``kernel // 2`` frames each side); with a ``chunk_size``, frames after the end of
    the frame's chunk count as zeros (``encoder.chunk_conv``), as they do when streaming."""

    def __init__(self, d_model: int, kernel: int, dropout: float, causal: bool = False):
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.norm = nn.LayerNorm(d_model)
        self.pw1 = nn.Conv1d(d_model, 2 * d_model, 1)
        # padded in forward: causal on the left only (kernel - 1 zeros), so no frame sees a later
        #   one; centred with kernel // 2 zeros each side
        self.dw = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.dw_norm = nn.LayerNorm(d_model)
        self.pw2 = nn.Conv1d(d_model, d_model, 1)
        self.dropout = nn.Dropout(dropout)

    def _after_dw(self, y: torch.Tensor, convolved: bool = False) -> torch.Tensor:
        """Depthwise conv of the padded ``y`` (unless ``convolved`` already), then the rest."""
        y = F.silu(self.dw_norm((y if convolved else self.dw(y)).transpose(1, 2))).transpose(1, 2)
        return self.dropout(self.pw2(y).transpose(1, 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, chunk_size: int = 0) -> torch.Tensor:
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        y = y.masked_fill(~mask[:, None, :], 0.0)  # padding must not leak into valid frames
        if self.causal:
            return self._after_dw(F.pad(y, (self.kernel - 1, 0)))
        if chunk_size > 0:
            return self._chunk_cut(y, chunk_size)
        return self._after_dw(F.pad(y, (self.kernel // 2, self.kernel // 2)))

    def _chunk_cut(self, y: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """The centred depthwise conv of ``y`` ``(B, D, T)`` with each frame's window zeroed after
        the end of its chunk (windows unfolded: ``B x D x T x kernel`` values)."""
        half, t = self.kernel // 2, y.size(2)
        windows = F.pad(y, (half, half)).unfold(2, self.kernel, 1)  # (B, D, T, kernel)
        seen = torch.arange(t, device=y.device)[:, None] - half + torch.arange(self.kernel, device=y.device)
        windows = windows * (seen <= chunk_ends(t, chunk_size, y.device)[:, None]).to(y.dtype)
        out = torch.einsum("bdtk,dk->bdt", windows, self.dw.weight[:, 0, :])
        return self._after_dw(out + self.dw.bias[None, :, None], convolved=True)

    def step(self, x: torch.Tensor, cache: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """One chunk ``(1, C, D)``; ``cache``: the GLU outputs of the frames before it that the
        kernel reaches (``kernel - 1`` causal, ``kernel // 2`` centred; None: the start, zeros as
        in :meth:`forward`). A centred kernel sees zeros after the chunk's end."""
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        left = self.kernel - 1 if self.causal else self.kernel // 2
        if cache is None:
            cache = y.new_zeros(y.size(0), y.size(1), left)
        y = torch.cat([cache, y], dim=2)
        new_cache = y[:, :, y.size(2) - left:]
        if not self.causal:
            y = F.pad(y, (0, self.kernel // 2))
        return self._after_dw(y), new_cache


class ConformerBlock(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = RotarySelfAttention(d, cfg.num_heads, cfg.dropout)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.conv = ConvModule(d, cfg.conv_kernel, cfg.dropout, cfg.causal)
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.final_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                frames_mask: Optional[torch.Tensor] = None, chunk_size: int = 0) -> torch.Tensor:
        """``frames_mask``: attention's allowed pairs; ``chunk_size``: the chunks the conv module
        is cut at (``encoder.chunk_conv``; 0: not cut)."""
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), mask, frames_mask=frames_mask))
        x = x + self.conv(x, mask, chunk_size)
        x = x + 0.5 * self.ff2(x)
        return self.final_norm(x)

    def step(self, x: torch.Tensor, state: Dict, offset: int, max_cache: int,
             ahead: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One chunk with this block's streaming ``state`` (updated in place); ``ahead``: this
        block's input for the frames after the chunk that attention may also see."""
        x = x + 0.5 * self.ff1(x)
        if ahead is not None:
            ahead = self.attn_norm(ahead + 0.5 * self.ff1(ahead))
        y, state["attn"] = self.attn.step(self.attn_norm(x), state.get("attn"), offset, max_cache,
                                          ahead)
        x = x + y
        y, state["conv"] = self.conv.step(x, state.get("conv"))
        x = x + y
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

    def training_chunk_size(self) -> int:
        """The chunk size of a training batch: ``dynamic_chunk`` draws one (half of the batches
        full context, 0), else ``chunk_size``. Uses torch's RNG, so a resumed run draws the same."""
        if self.cfg.dynamic_chunk > 0:
            draw = int(torch.randint(0, 2 * self.cfg.dynamic_chunk, (1,)))
            return 0 if draw >= self.cfg.dynamic_chunk else draw + 1
        return self.cfg.chunk_size

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, chunk_size: Optional[int] = None):
        """``chunk_size``: attention limited to chunks of that many output frames (and
        ``left_chunks`` before them), as streaming computes it; None: in training, the config's
        (:meth:`training_chunk_size`), else full context; 0: full context."""
        if self.cfg.utterance_cmn:
            feats = utterance_mean_normalised(feats, lengths)
        x, lengths = self.subsampling(feats, lengths)
        x = self.input_dropout(x)
        mask = lengths_to_mask(lengths, x.size(1))
        if chunk_size is None:
            chunk_size = self.training_chunk_size() if self.training else 0
        frames_mask = first_mask = None
        if chunk_size > 0:
            frames_mask = chunk_attention_mask(x.size(1), chunk_size, self.cfg.left_chunks, x.device)
            first_mask = (chunk_attention_mask(x.size(1), chunk_size, self.cfg.left_chunks, x.device,
                                               self.cfg.lookahead)
                          if self.cfg.lookahead else frames_mask)
        conv_chunk = chunk_size if self.cfg.chunk_conv else 0
        for i, block in enumerate(self.blocks):
            x = block(x, mask, first_mask if i == 0 else frames_mask, conv_chunk)
        return x, lengths


# input frames the subsampling needs for output frame t: 4t .. 4t + 6
SUBSAMPLING_CONTEXT = 7


class EncoderStream:
    """Runs a streamable encoder (:func:`can_stream`) on a stream of (normalised) feature frames,
    chunk by chunk.

    :meth:`accept` takes any number of new input frames and returns the encoder output frames
    that are complete (``chunk_size`` of them at a time, once the ``encoder.lookahead`` frames
    after them have arrived too; :meth:`finish` flushes the rest). The outputs equal
    ``encoder(feats, lengths, chunk_size=chunk_size)`` on the whole utterance
    (tests/test_streaming.py checks it)."""

    def __init__(self, encoder: ConformerEncoder, chunk_size: int):
        if not can_stream(encoder.cfg):
            raise ValueError("streaming needs a model trained with encoder.causal: true or "
                             "encoder.chunk_conv: true")
        if encoder.cfg.utterance_cmn:
            raise ValueError("streaming cannot use a model trained with encoder.utterance_cmn: true "
                             "(it subtracts the mean of the whole utterance); decode it without streaming")
        if chunk_size < 1:
            raise ValueError(f"chunk size must be at least 1 encoder frame, got {chunk_size}")
        self.encoder, self.chunk_size, self.lookahead = encoder, chunk_size, encoder.cfg.lookahead
        left = encoder.cfg.left_chunks
        self.max_cache = -1 if left < 0 else left * chunk_size
        self.pending = None  # input frames not yet consumed by the subsampling, (1, n, F)
        self.sub_frames: Optional[torch.Tensor] = None  # subsampled frames waiting for a full
        #   chunk, (1, n, D)
        self.offset = 0  # encoder frames already emitted
        self.states = [dict() for _ in encoder.blocks]

    def _subsample(self) -> None:
        x = self.pending
        if x is None or x.size(1) < SUBSAMPLING_CONTEXT:
            return
        n_out = (x.size(1) - SUBSAMPLING_CONTEXT) // SUBSAMPLING_FACTOR + 1
        used = (n_out - 1) * SUBSAMPLING_FACTOR + SUBSAMPLING_CONTEXT
        lengths = torch.tensor([used], device=x.device)
        y, _ = self.encoder.subsampling(x[:, :used], lengths)
        self.sub_frames = y if self.sub_frames is None else torch.cat([self.sub_frames, y], dim=1)
        self.pending = x[:, n_out * SUBSAMPLING_FACTOR:]

    def _waiting(self) -> int:
        return 0 if self.sub_frames is None else self.sub_frames.size(1)

    def _run_next(self, n: int) -> torch.Tensor:
        """The next ``n`` waiting frames through every block (the first also sees the lookahead
        frames after them that are waiting)."""
        x, ahead = self.sub_frames[:, :n], self.sub_frames[:, n:n + self.lookahead]
        self.sub_frames = self.sub_frames[:, n:]
        for i, (block, state) in enumerate(zip(self.encoder.blocks, self.states)):
            x = block.step(x, state, self.offset, self.max_cache,
                           ahead if i == 0 and ahead.size(1) else None)
        self.offset += x.size(1)
        return x

    @torch.no_grad()
    def accept(self, feats: torch.Tensor) -> Optional[torch.Tensor]:
        """``feats`` ``(1, n, F)``; returns ``(1, k * chunk_size, D)`` new output frames or None."""
        self.pending = feats if self.pending is None else torch.cat([self.pending, feats], dim=1)
        self._subsample()
        out = []
        while self._waiting() >= self.chunk_size + self.lookahead:
            out.append(self._run_next(self.chunk_size))
        return torch.cat(out, dim=1) if out else None

    @torch.no_grad()
    def finish(self) -> Optional[torch.Tensor]:
        """The frames still waiting: whole chunks seeing the lookahead frames that exist, then a
        last, possibly shorter, chunk (None when nothing is left)."""
        out = []
        while self._waiting():
            out.append(self._run_next(min(self.chunk_size, self._waiting())))
        self.sub_frames = None
        return torch.cat(out, dim=1) if out else None
