"""CTC speech recogniser: global CMVN -> Conformer encoder -> linear -> log-softmax."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import EncoderConfig
from speechlm.base.errors import SpeechlmError
from speechlm.models.encoder import ENCODER_ARCH_KEYS, ConformerEncoder
from speechlm.models.experiment import checked_checkpoint, init_part
from speechlm.text.symbols import BLANK_ID


@dataclass
class Encoded:
    """What an ASR model computes once per batch for decoding; every decoding method reads it.

    A model family with ``ctc`` in :attr:`~speechlm.base.registry.ModelFamily.provides` returns
    one from ``model.encode_for_decoding(feats, lens)``; ``attention`` families fill the prefix.
    """

    log_probs: torch.Tensor  # CTC log-probs (B, T, V)
    lengths: torch.Tensor  # (B,)
    prefix: Optional[torch.Tensor] = None  # speech-LM models: the decoder's prefix (B, P, D)
    prefix_lens: Optional[torch.Tensor] = None


class CTCModel(nn.Module):
    def __init__(self, encoder_cfg: EncoderConfig, vocab_size: int, blank_bias: float = 0.0):
        super().__init__()
        self.vocab_size = vocab_size
        # Global CMVN from the training set, stored in the checkpoint so decoding matches training.
        self.register_buffer("feat_mean", torch.zeros(encoder_cfg.num_mel_bins))
        self.register_buffer("feat_std", torch.ones(encoder_cfg.num_mel_bins))
        self.encoder = ConformerEncoder(encoder_cfg)
        self.ctc_head = nn.Linear(encoder_cfg.d_model, vocab_size)
        if blank_bias:  # model.ctc_blank_bias; 0 keeps PyTorch's init (and older runs exact)
            with torch.no_grad():
                self.ctc_head.bias.zero_()
                self.ctc_head.bias[BLANK_ID] = blank_bias

    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp_min(1e-5))

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor):
        feats = (feats - self.feat_mean) / self.feat_std
        return self.encoder(feats, lengths)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        """Returns CTC log-probs ``(B, T', V)`` and their lengths."""
        enc, enc_lens = self.encode(feats, lengths)
        return self.ctc_head(enc).log_softmax(dim=-1), enc_lens

    def encode_for_decoding(self, feats: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        return Encoded(*self(feats, lengths))

    def ctc_loss(self, log_probs, lengths, targets: Sequence[List[int]]) -> torch.Tensor:
        """Summed CTC loss over the batch (caller normalises)."""
        target_lens = torch.tensor([len(t) for t in targets], dtype=torch.long)
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        return F.ctc_loss(
            log_probs.transpose(0, 1).float(), flat, lengths.cpu(), target_lens,
            blank=BLANK_ID, reduction="sum", zero_infinity=True,
        )


def build_ctc(cfg, vocab_size: int) -> CTCModel:
    """The ``ctc`` model family's builder (speechlm.base.registry)."""
    return CTCModel(cfg.encoder, vocab_size, cfg.model.ctc_blank_bias)


# model families whose checkpoints hold an ``encoder.*`` Conformer and its CMVN
ENCODER_SOURCES = ("ssl-bestrq", "ctc", "speechlm")


def init_encoder(model: nn.Module, path: str, encoder_cfg: EncoderConfig,
                 key: str = "encoder.init", speaker_cmvn: bool = False) -> None:
    """Load the encoder and the feature normalisation of checkpoint ``path`` (a BEST-RQ
    pretraining's or another ASR model's) into ``model``; one that is not of such a family or
    whose encoder architecture differs is refused, naming ``path`` and what differs, and so is
    one whose features were normalised otherwise (``data.speaker_cmvn``: identity global CMVN)."""
    state = checked_checkpoint(path, key, ENCODER_SOURCES, section="encoder", arch=encoder_cfg,
                               arch_keys=ENCODER_ARCH_KEYS)
    init_part(model.encoder, state, f"{key} = {path}", prefix="encoder.")
    weights = state["model"]
    if "feat_mean" in weights and "feat_std" in weights:
        per_speaker = not weights["feat_mean"].any() and bool((weights["feat_std"] == 1).all())
        if per_speaker != speaker_cmvn:
            said = ("per speaker (data.speaker_cmvn: true)", "with global CMVN (data.speaker_cmvn: false)")
            raise SpeechlmError(f"{key} = {path}: that encoder learnt on features normalised "
                                f"{said[0] if per_speaker else said[1]}, this run normalises them "
                                f"{said[0] if speaker_cmvn else said[1]}: set data.speaker_cmvn "
                                "as the checkpoint's run did")
        model.set_cmvn(weights["feat_mean"], weights["feat_std"])


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
