"""80-dim log-mel fbank with Lhotse's torch extractor, stored with a Lhotse lilcom writer.

All audio is resampled to 16 kHz first, so recipes for 8 kHz corpora share models and configs.
Speed perturbation (x0.9, x1.1) is done here, as extra copies of the training cuts, so the
trainer only ever reads precomputed features.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Sequence, Tuple

import torch
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter

from speechlm.base.errors import SpeechlmError
from speechlm.data.audio_io import SAMPLING_RATE

log = logging.getLogger(__name__)

NUM_MEL_BINS = 80
FRAME_SHIFT = 0.01  # seconds per fbank frame


def load_cuts(path: str | Path) -> CutSet:
    """Load a cut manifest with a clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"cut manifest {path} not found: run the earlier recipe stage that writes it")
    try:
        return CutSet.from_file(path).to_eager()
    except Exception as e:  # lhotse raises many types for a bad manifest
        raise SpeechlmError(f"cut manifest {path} could not be read ({type(e).__name__}: {e})") from None


def fbank_extractor() -> Fbank:
    """The one feature extractor every model is trained and decoded with (80-dim, 16 kHz)."""
    return Fbank(FbankConfig(sampling_rate=SAMPLING_RATE, num_mel_bins=NUM_MEL_BINS))


def compute_fbank(
    cuts_path: str | Path,
    out_cuts_path: str | Path,
    storage_dir: str | Path,
    num_jobs: int = 2,
    speed_perturb: Sequence[float] = (),
) -> CutSet:
    """Resample to 16 kHz, optionally add speed-perturbed copies, compute and store fbank.

    Writes features under ``storage_dir`` and the feature-bearing cuts to ``out_cuts_path``
    (atomically: a half-written manifest never exists under the final name).
    """
    cuts = load_cuts(cuts_path).resample(SAMPLING_RATE)
    if speed_perturb:
        copies = [cuts] + [cuts.perturb_speed(f) for f in speed_perturb]
        cuts = CutSet.from_cuts(c for cs in copies for c in cs)
    storage_dir = Path(storage_dir)
    if storage_dir.exists():
        shutil.rmtree(storage_dir)  # a previous interrupted run; features are recomputed whole
    storage_dir.parent.mkdir(parents=True, exist_ok=True)
    extractor = fbank_extractor()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker process computes on its own core
    try:
        with_feats = cuts.compute_and_store_features(
            extractor=extractor,
            storage_path=storage_dir,
            num_jobs=num_jobs,
            storage_type=LilcomChunkyWriter,
            progress_bar=True,
        )
    finally:
        torch.set_num_threads(threads)
    out_cuts_path = Path(out_cuts_path)
    tmp = out_cuts_path.with_name(out_cuts_path.name + ".tmp.jsonl.gz")
    with_feats.to_file(tmp)
    os.replace(tmp, out_cuts_path)
    log.info("fbank: %d cuts -> %s", len(with_feats), out_cuts_path)
    return with_feats


def compute_cmvn(cuts: CutSet, max_cuts: int = 1000) -> Tuple[torch.Tensor, torch.Tensor]:
    """Global per-dimension mean/std over (a deterministic subset of) the cuts' features."""
    total = torch.zeros(NUM_MEL_BINS, dtype=torch.float64)
    total_sq = torch.zeros(NUM_MEL_BINS, dtype=torch.float64)
    frames = 0
    for i, cut in enumerate(cuts):
        if i >= max_cuts:
            break
        feats = torch.from_numpy(cut.load_features()).double()
        total += feats.sum(0)
        total_sq += (feats**2).sum(0)
        frames += feats.shape[0]
    if frames == 0:
        raise SpeechlmError("cannot compute feature statistics: the training cuts have no frames")
    mean = total / frames
    std = (total_sq / frames - mean**2).clamp_min(1e-10).sqrt()
    return mean.float(), std.float()
