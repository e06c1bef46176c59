"""Atomic checkpoint files, discovery of the latest one, and averaging of the last N."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List

import torch

from speechlm.base.errors import SpeechlmError

_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")


def save_atomic(obj: Dict, path: Path) -> None:
    """Write to a temporary name then rename, so a crash never leaves a truncated checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> Dict:
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"checkpoint {path} not found: train the model first (recipe stage 4)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise SpeechlmError(f"checkpoint {path} could not be loaded ({type(e).__name__}: {e})") from None


def epoch_checkpoints(exp_dir: Path) -> List[Path]:
    """Epoch checkpoints in ``exp_dir`` sorted by epoch number."""
    found = [(int(m.group(1)), p) for p in exp_dir.glob("epoch-*.pt") if (m := _EPOCH_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(exp_dir: Path, keep: int) -> None:
    for p in epoch_checkpoints(exp_dir)[:-keep] if keep > 0 else []:
        p.unlink()


def average_state_dicts(paths: List[Path]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` entries of ``paths`` (integer buffers taken from the last)."""
    states = [load_checkpoint(p)["model"] for p in paths]
    avg = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            avg[key] = sum(s[key].double() for s in states).div(len(states)).to(last.dtype)
        else:
            avg[key] = last.clone()
    return avg


def averaged_state(exp_dir: Path, avg: int) -> Dict:
    """The last epoch checkpoint of ``exp_dir`` with its weights replaced by the average of the
    last ``avg`` epoch checkpoints (icefall's ``--avg``; training keeps ``train.keep_last``)."""
    paths = epoch_checkpoints(exp_dir)
    if avg < 1:
        raise SpeechlmError(f"--avg {avg}: must be >= 1 (or 0 for final.pt)")
    if len(paths) < avg:
        kept = ", ".join(p.name for p in paths) or "none"
        raise SpeechlmError(f"--avg {avg}: {exp_dir} keeps {len(paths)} epoch checkpoints ({kept}); "
                            f"use --avg <= {len(paths)}, or train with train.keep_last >= {avg}")
    state = load_checkpoint(paths[-1], map_location="cpu")
    state["model"] = average_state_dicts(paths[-avg:])
    state["averaged"] = [p.name for p in paths[-avg:]]
    return state
