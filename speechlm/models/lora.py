"""LoRA: low-rank adapters on a frozen model's linear layers (Hu et al., 2021).

``W x`` becomes ``W x + (alpha / rank) * B A x`` with ``A (rank, in)`` random and ``B (out, rank)``
zero, so an adapted model starts out exactly as the pretrained one and only ``A`` and ``B`` learn.

Our own ~60 lines rather than ``peft``: peft wants a ``transformers`` ``PreTrainedModel`` around the
network (and brings transformers and accelerate as dependencies), renames the state-dict keys
(``base_model.model...``) and saves its own adapter files; speechlm's models are plain
``nn.Module`` s saved in one ``weights_only`` checkpoint with the resolved config. Here the
adapters are ordinary parameters (``...q_proj.lora_a``), the config names rank, alpha and target
modules (``llm.lora_*``), and :func:`merge_lora` folds them back for fast inference.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.errors import SpeechlmError


class LoRALinear(nn.Module):
    """``base(x) + scale * B(A(dropout(x)))`` around a frozen ``nn.Linear``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise SpeechlmError(f"LoRA rank {rank}: must be >= 1")
        self.base = base
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear's own weights
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    @property
    def weight(self) -> torch.Tensor:  # code that reads .weight sees the adapted matrix
        return self.base.weight + self.scale * self.lora_b @ self.lora_a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b)


def apply_lora(model: nn.Module, targets: Sequence[str], rank: int, alpha: float,
               dropout: float = 0.0, key: str = "llm.lora_targets") -> List[str]:
    """Wrap every ``nn.Linear`` of ``model`` whose attribute name is in ``targets`` (e.g.
    ``q_proj``) in a :class:`LoRALinear`, freeze everything else in ``model``, and return the
    wrapped modules' names. A target that names no linear layer is an error naming ``key``."""
    linears = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    unknown = sorted(set(targets) - linears)
    if unknown or not targets:
        raise SpeechlmError(f"{key} = {list(targets)}: {'no target given' if not targets else unknown} "
                            f"; the model's linear layers are {', '.join(sorted(linears))}")
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, rank, alpha, dropout))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    return wrapped


def lora_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    return (p for n, p in model.named_parameters() if n.endswith((".lora_a", ".lora_b")))


@torch.no_grad()
def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base weight and unwrap it (inference only); returns how many."""
    merged = 0
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                child.base.weight.copy_(child.weight)
                setattr(module, child_name, child.base)
                merged += 1
    return merged
