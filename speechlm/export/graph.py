"""What an export traces: a model's CTC path, features -> log-probs, for any CTC-capable family."""

from __future__ import annotations

import torch
from torch import nn

from speechlm.data.features import NUM_MEL_BINS


class CtcGraph(nn.Module):
    """``(x, x_lens) -> (log_probs, log_probs_len)`` through ``model.encode_for_decoding``
    (CMVN, encoder, CTC head); whatever else a family computes for decoding (a speech-LM
    prefix) is not an output, so it is left out of the traced graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor):
        enc = self.model.encode_for_decoding(x, x_lens)
        return enc.log_probs, enc.lengths


def example_inputs():
    """Two utterances of different lengths, so padding and masks are traced as they run."""
    return torch.randn(2, 203, NUM_MEL_BINS), torch.tensor([203, 150])
