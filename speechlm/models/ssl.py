"""BEST-RQ: self-supervised pretraining of the Conformer encoder on unlabeled audio.

Chiu et al. 2022, "Self-supervised learning with random-projection quantizer for speech
recognition". The targets need no training: the CMVN-normalised log-mel frames, stacked by the
encoder's subsampling factor (4 frames -> one 40 ms target frame), go through a frozen random
projection; each codebook's label is its nearest (cosine) random unit vector. Spans of the input
are replaced by noise and the encoder, through a linear head, predicts the labels of the masked
frames (cross-entropy per codebook). The projection and codebooks are drawn from
``ssl.quantizer_seed`` and kept as buffers: frozen, identical for a seed, saved in every
checkpoint. Fine-tuning reads the ``encoder.*`` weights and the CMVN (``encoder.init``).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import EncoderConfig, SSLConfig
from speechlm.models.encoder import (SUBSAMPLING_FACTOR, ConformerEncoder, subsampled_lengths,
                                     utterance_mean_normalised)


class RandomProjectionQuantizer(nn.Module):
    """Frozen: ``(N, input_dim)`` frames -> ``(N, num_codebooks)`` labels. Nothing here learns."""

    def __init__(self, input_dim: int, num_codebooks: int, codebook_size: int, codebook_dim: int,
                 seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        # Xavier-normal projection, as the paper; unit-norm codebook vectors
        std = (2.0 / (input_dim + codebook_dim)) ** 0.5
        projection = torch.randn(num_codebooks, input_dim, codebook_dim, generator=gen) * std
        codebooks = F.normalize(torch.randn(num_codebooks, codebook_size, codebook_dim, generator=gen), dim=-1)
        self.register_buffer("projection", projection)
        self.register_buffer("codebooks", codebooks)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        z = F.normalize(torch.einsum("nd,cde->nce", frames.float(), self.projection), dim=-1)
        # nearest unit vector by cosine = by distance (both sides unit norm)
        return torch.einsum("nce,cke->nck", z, self.codebooks).argmax(-1)


def _uniform(shape, generator: Optional[torch.Generator], device) -> torch.Tensor:
    """U(0, 1) from ``generator`` (a CPU generator, reproducible anywhere) or the global RNG."""
    if generator is not None:
        return torch.rand(shape, generator=generator).to(device)
    return torch.rand(shape, device=device)


def span_mask(lengths: torch.Tensor, max_len: int, prob: float, span: int,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(B, max_len)`` bool: spans of ``span`` frames starting at each valid frame with
    probability ``prob``; every utterance with frames gets at least one span."""
    device = lengths.device
    frames = torch.arange(max_len, device=device)[None, :]
    valid = frames < lengths[:, None]
    starts = (_uniform((lengths.numel(), max_len), generator, device) < prob) & valid
    # an utterance the draw left unmasked gets one span at a random place
    room = (lengths[:, None] - span + 1).clamp_min(1)
    pick = (_uniform((lengths.numel(), 1), generator, device) * room).long()
    none = ~starts.any(1, keepdim=True) & (lengths[:, None] > 0)
    starts = starts | (none & (frames == pick))
    # frame t is masked when a span started at one of t - span + 1 .. t
    counts = F.pad(starts.long().cumsum(1), (span, 0))
    return (counts[:, span:] - counts[:, :-span] > 0) & valid


class BestRqModel(nn.Module):
    """Global CMVN -> Conformer encoder (the ASR models' own) -> linear head, one softmax of
    ``codebook_size`` per codebook; plus the frozen quantiser that makes the targets."""

    def __init__(self, encoder_cfg: EncoderConfig, cfg: SSLConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("feat_mean", torch.zeros(encoder_cfg.num_mel_bins))
        self.register_buffer("feat_std", torch.ones(encoder_cfg.num_mel_bins))
        self.encoder = ConformerEncoder(encoder_cfg)
        self.quantizer = RandomProjectionQuantizer(
            SUBSAMPLING_FACTOR * encoder_cfg.num_mel_bins, cfg.num_codebooks, cfg.codebook_size,
            cfg.codebook_dim, cfg.quantizer_seed)
        self.head = nn.Linear(encoder_cfg.d_model, cfg.num_codebooks * cfg.codebook_size)

    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp_min(1e-5))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor,
                generator: Optional[torch.Generator] = None
                ) -> Tuple[torch.Tensor, int, torch.Tensor]:
        """Summed cross-entropy over masked frames and codebooks, the number of those
        predictions, and how many were right. Masks and noise come from ``generator`` (a CPU
        generator: the same masks every call, for validation) or else torch's global RNG."""
        x = (feats - self.feat_mean) / self.feat_std
        if self.encoder.cfg.utterance_cmn:  # targets free of the recording's channel, as the input
            x = utterance_mean_normalised(x, lengths)
        b, t, f = x.shape
        enc_lens = subsampled_lengths(lengths)
        t_enc = int(subsampled_lengths(torch.tensor(t)))
        mask = span_mask(enc_lens, t_enc, self.cfg.mask_prob, self.cfg.mask_span, generator)
        # target frame j stacks input frames 4j .. 4j+3 (all inside the input: 4 T' <= T - 3)
        stacked = x[:, :SUBSAMPLING_FACTOR * t_enc].reshape(b, t_enc, SUBSAMPLING_FACTOR * f)
        targets = self.quantizer(stacked[mask])  # (N, C), from the clean frames
        frame_mask = torch.zeros(b, t, dtype=torch.bool, device=x.device)
        frame_mask[:, :SUBSAMPLING_FACTOR * t_enc] = mask.repeat_interleave(SUBSAMPLING_FACTOR, dim=1)
        noise = (torch.randn(x.shape, generator=generator).to(x) if generator is not None
                 else torch.randn_like(x))
        x = torch.where(frame_mask[..., None], noise * self.cfg.noise_std, x)
        enc, _ = self.encoder(x, lengths)
        logits = self.head(enc[mask]).view(-1, self.cfg.num_codebooks, self.cfg.codebook_size)
        if targets.numel() == 0:  # nothing masked (all utterances too short): keep the graph
            return enc.sum() * 0.0, 0, torch.zeros((), device=x.device)
        loss = F.cross_entropy(logits.reshape(-1, self.cfg.codebook_size).float(), targets.reshape(-1),
                               reduction="sum")
        correct = (logits.argmax(-1) == targets).sum()
        return loss, targets.numel(), correct


def build_bestrq(cfg, vocab_size: int = 0) -> BestRqModel:
    """The ``ssl-bestrq`` model family's builder (speechlm.base.registry); no vocabulary."""
    return BestRqModel(cfg.encoder, cfg.ssl)
