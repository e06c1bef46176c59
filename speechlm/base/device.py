"""Device choice: ``auto`` picks CUDA when present, so the same command runs on CPU and GPU."""

from __future__ import annotations

import torch

from speechlm.base.errors import SpeechlmError


def resolve_device(spec: str, option: str = "train.device") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch device; ``option`` names the setting
    in messages."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise SpeechlmError(f"{option}={spec!r} but CUDA is not available; use {option}=cpu")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise SpeechlmError(f"{option}={spec!r} is not a device: use auto, cpu, cuda or cuda:N") from None
