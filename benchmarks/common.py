"""Shared set-up for benchmarks: a fixed slice of real FSDD speech with features, and JSON output."""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "data" / "fsdd"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def emit(record: dict) -> None:
    """Print the benchmark's one JSON line (with the machine it ran on)."""
    record.update(torch_threads=torch.get_num_threads(), torch=torch.__version__,
                  machine=platform.machine())
    print(json.dumps(record, sort_keys=True))
    sys.stdout.flush()


def fsdd_cuts(work: Path, split: str = "test"):
    """FSDD official split manifests (raw audio) under ``work``; returns the cut manifest path."""
    from speechlm.corpora.fsdd import prepare_fsdd

    if not (FSDD / "recordings").is_dir():
        sys.exit(f"benchmark needs FSDD at {FSDD}")
    out = work / "manifests"
    prepare_fsdd(FSDD, out, split="official")
    return out / f"fsdd_cuts_{split}.jsonl.gz"


def fsdd_features(work: Path, split: str):
    from speechlm.data.features import compute_fbank

    out = work / f"fbank_{split}.jsonl.gz"
    compute_fbank(fsdd_cuts(work, split), out, work / f"feats_{split}", num_jobs=1)
    return out


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="speechlm-bench-"))
