"""Batches for training and decoding: Lhotse dynamic bucketing over precomputed features.

A batch is a dict with ``feats (B, T, 80)``, ``feat_lens (B,)``, ``texts`` and ``ids``; with
``with_text=False`` (self-supervised pretraining) there is no ``texts`` and no supervision is read,
so unlabeled cuts (``speechlm import ... --unlabeled``: no supervisions) batch the same way.
SpecAugment runs batched in torch, from the global RNG, which the trainer seeds per epoch so a
resumed run sees exactly the masks an uninterrupted run would.
"""

from __future__ import annotations

import logging
import warnings
from typing import Dict, Optional, Union

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from lhotse.dataset.collation import collate_features

from speechlm.base.config import DataConfig
from speechlm.base.errors import SpeechlmError

log = logging.getLogger(__name__)


def spec_augment(feats: torch.Tensor, lens: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Frequency and time masking, each utterance its own random masks (no loop over frames).

    Masked cells take the utterance's own mean of that mel bin, not a constant: the model
    normalises features with global statistics, and a constant would be an outlier of hundreds
    of standard deviations in bins that barely vary (e.g. above 4 kHz in upsampled 8 kHz audio).
    """
    b, t, f = feats.shape
    valid = (torch.arange(t)[None, :] < lens[:, None]).unsqueeze(-1)  # (B, T, 1)
    fill = (feats * valid).sum(1) / lens.clamp_min(1)[:, None].to(feats.dtype)  # (B, F)
    masked = torch.zeros(b, t, f, dtype=torch.bool)
    bins = torch.arange(f)[None, :]
    for _ in range(cfg.num_freq_masks):
        width = torch.randint(0, cfg.freq_mask_width + 1, (b, 1))
        start = (torch.rand(b, 1) * (f - width)).long()
        masked |= ((bins >= start) & (bins < start + width))[:, None, :]
    frames = torch.arange(t)[None, :]
    for _ in range(cfg.num_time_masks):
        max_w = (lens.float() * cfg.time_mask_ratio).long().clamp_min(1)[:, None]
        width = (torch.rand(b, 1) * (max_w + 1)).long()
        start = (torch.rand(b, 1) * (lens[:, None] - width).clamp_min(1)).long()
        masked |= ((frames >= start) & (frames < start + width))[:, :, None]
    return torch.where(masked, fill[:, None, :].expand(b, t, f), feats)


class AsrDataset(torch.utils.data.Dataset):
    """Maps a CutSet (one sampler batch) to a padded feature batch."""

    def __init__(self, cfg: DataConfig, train: bool, with_text: bool = True):
        self.cfg = cfg
        self.train = train
        self.with_text = with_text

    def __getitem__(self, cuts: CutSet) -> Dict:
        cuts = cuts.sort_by_duration(ascending=False)
        try:
            feats, lens = collate_features(cuts)
        except Exception as e:
            ids = [c.id for c in cuts]
            why = str(e).split("\n[extra info]")[0].strip()  # lhotse appends the whole cut
            raise SpeechlmError(
                f"could not load the features of a batch of {len(ids)} cuts ({', '.join(ids[:3])}"
                f"{', ...' if len(ids) > 3 else ''}): {why}. A relative path is looked up from the "
                "working directory, then from the manifest's folder and the folders above it: "
                "re-run the feature stage (recipe stage 1) if the file is gone"
            ) from None
        if self.train and self.cfg.spec_augment:
            feats = spec_augment(feats, lens, self.cfg)
        batch = {"feats": feats, "feat_lens": lens, "ids": [c.id for c in cuts]}
        if self.with_text:
            batch["texts"] = [" ".join(s.text for s in c.supervisions) for c in cuts]
        return batch


def drop_long_cuts(cuts: CutSet, max_duration: float, where: str) -> CutSet:
    """The cuts that fit in a batch of ``data.max_duration`` seconds; the others are left out with
    one warning (a sampler would make each a batch of its own, far beyond the memory planned)."""
    long = [c for c in cuts if c.duration > max_duration]
    if not long:
        return cuts
    longest = max(long, key=lambda c: c.duration)
    what = (f"{where}: {len(long)} of {len(cuts)} cuts are longer than data.max_duration = "
            f"{max_duration:g} s (longest: {longest.id}, {longest.duration:.1f} s)")
    if len(long) == len(cuts):
        raise SpeechlmError(f"{what}: none is left; raise data.max_duration or split the "
                            "recordings into utterances")
    log.warning("%s: left out; raise data.max_duration or split those recordings to use them", what)
    return cuts.filter(lambda c: c.duration <= max_duration).to_eager()


def make_sampler(
    cuts: CutSet, max_duration: float, train: bool, cfg: DataConfig, seed: int = 0,
    world_size: Optional[int] = None, rank: Optional[int] = None,
) -> Union[DynamicBucketingSampler, SimpleCutSampler]:
    """Duration-bucketed batches; a set too small to bucket gets plain duration-capped batches."""
    num_buckets = min(cfg.num_buckets, len(cuts) // 4)
    if num_buckets < 2:
        return SimpleCutSampler(cuts, max_duration=max_duration, shuffle=train and cfg.shuffle,
                                world_size=world_size, rank=rank, seed=seed)
    with warnings.catch_warnings():
        # Lhotse suggests lazy manifests for memory; ours fit in memory and are read eagerly.
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return DynamicBucketingSampler(
            cuts,
            max_duration=max_duration,
            shuffle=train and cfg.shuffle,
            num_buckets=num_buckets,
            drop_last=False,
            world_size=world_size,
            rank=rank,
            seed=seed,
        )


def make_loader(cuts: CutSet, cfg: DataConfig, train: bool, max_duration: Optional[float] = None,
                seed: int = 0, world_size: Optional[int] = None, rank: Optional[int] = None,
                with_text: bool = True):
    sampler = make_sampler(cuts, max_duration or cfg.max_duration, train, cfg, seed, world_size, rank)
    loader = torch.utils.data.DataLoader(
        AsrDataset(cfg, train, with_text), sampler=sampler, batch_size=None,
        num_workers=cfg.num_workers, persistent_workers=False,
    )
    return loader, sampler
