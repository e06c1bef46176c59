"""Atomic checkpoint files, discovery of the latest one, and averaging of the last N.

A training run owns its exp dir: every checkpoint it writes carries its ``run_id``, averaging and
pruning only take that run's checkpoints, and a new (not resumed) run first moves an earlier
run's outputs to ``previous-runs/<n>/`` (:func:`move_previous_run`).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.base.files import write_failure

_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")
ANY_RUN = object()  # epoch_checkpoints: every run's checkpoints
PREVIOUS_RUNS = "previous-runs"
# What a run leaves in its exp dir (besides log/, which every run appends to): checkpoints, the
# config and tokenizer they need, and what was made from them (decode-*/ and eval-*/ reports).
RUN_OUTPUTS = ("epoch-*.pt", "final.pt", "*.pt.tmp", "config.yaml", "tokenizer.model", "tokenizer.json",
               "tensorboard", "perplexity.txt", "decode-*", "eval-*")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_id_of(path: Path) -> Optional[str]:
    """The ``run_id`` saved in a checkpoint (None for one written before run ids existed);
    memory-mapped, so no weights are read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("run_id")
    except Exception as e:
        raise SpeechlmError(f"checkpoint {path} could not be loaded ({type(e).__name__}: {e})") from None


def save_atomic(obj: Dict, path: Path) -> None:
    """Write to a temporary name then rename, so a crash never leaves a truncated checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
    except (OSError, RuntimeError) as e:
        failure = write_failure(e, tmp)
        tmp.unlink(missing_ok=True)
        if failure is e:
            raise
        raise failure from e
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> Dict:
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"checkpoint {path} not found: train the model first (recipe stage 4)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise SpeechlmError(f"checkpoint {path} could not be loaded ({type(e).__name__}: {e})") from None


def epoch_checkpoints(exp_dir: Path, run_id=ANY_RUN) -> List[Path]:
    """Epoch checkpoints in ``exp_dir`` sorted by epoch number; only those of ``run_id`` when given."""
    found = [(int(m.group(1)), p) for p in exp_dir.glob("epoch-*.pt") if (m := _EPOCH_RE.match(p.name))]
    return [p for _, p in sorted(found) if run_id is ANY_RUN or run_id_of(p) == run_id]


def last_run_checkpoints(exp_dir: Path) -> List[Path]:
    """The epoch checkpoints of the run that wrote the highest-numbered one."""
    found = epoch_checkpoints(exp_dir)
    return epoch_checkpoints(exp_dir, run_id_of(found[-1])) if found else []


def prune_checkpoints(exp_dir: Path, keep: int, run_id=ANY_RUN) -> None:
    """Delete all but the last ``keep`` epoch checkpoints (of ``run_id`` only, when given)."""
    for p in epoch_checkpoints(exp_dir, run_id)[:-keep] if keep > 0 else []:
        p.unlink()


def move_previous_run(exp_dir: Path) -> Optional[Path]:
    """Move an earlier run's outputs (:data:`RUN_OUTPUTS`) from ``exp_dir`` to the next free
    ``exp_dir/previous-runs/<n>/`` when it left checkpoints there; return that folder, or None."""
    if not (epoch_checkpoints(exp_dir) or (exp_dir / "final.pt").exists()):
        return None
    root = exp_dir / PREVIOUS_RUNS
    taken = [int(p.name) for p in root.glob("*") if p.name.isdigit()] if root.is_dir() else []
    dest = root / str(max(taken, default=0) + 1)
    dest.mkdir(parents=True)
    for pattern in RUN_OUTPUTS:
        for p in exp_dir.glob(pattern):
            os.replace(p, dest / p.name)
    return dest


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
    last ``avg`` epoch checkpoints of its run (icefall's ``--avg``; training keeps
    ``train.keep_last``)."""
    paths = last_run_checkpoints(exp_dir)
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
