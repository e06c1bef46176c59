"""Batched CTC greedy decoding: argmax per frame, collapse repeats, drop blanks."""

from __future__ import annotations

from typing import List

import torch

from speechlm.text.symbols import BLANK_ID


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[int]]:
    """``log_probs (B, T, V)``, ``lengths (B,)`` -> token id lists (blank and repeats removed)."""
    best = log_probs.argmax(dim=-1)  # (B, T)
    prev = torch.nn.functional.pad(best, (1, 0), value=BLANK_ID)[:, :-1]
    valid = torch.arange(best.size(1), device=best.device)[None, :] < lengths[:, None]
    keep = (best != BLANK_ID) & (best != prev) & valid
    best, keep = best.cpu(), keep.cpu()
    return [best[i][keep[i]].tolist() for i in range(best.size(0))]
