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
from collections import defaultdict
from typing import Dict, Optional, Tuple, Union

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from lhotse.dataset.collation import collate_features
from lhotse.utils import LOG_EPSILON

from speechlm.base.config import DataConfig
from speechlm.base.errors import SpeechlmError
from speechlm.data.features import FBANK_HIGH_HZ, FBANK_LOW_HZ, SAMPLING_RATE, compute_cmvn, hz_to_mel, mel_to_hz

log = logging.getLogger(__name__)


def utterance_means(feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """``(B, F)``: each utterance's mean feature vector over its ``lens`` valid frames."""
    valid = (torch.arange(feats.size(1), device=feats.device)[None, :] < lens[:, None]).unsqueeze(-1)
    return (feats * valid).sum(1) / lens.clamp_min(1)[:, None].to(feats.dtype)


def spec_augment(feats: torch.Tensor, lens: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Frequency and time masking, each utterance its own random masks (no loop over frames).

    Masked cells take the utterance's own mean of that mel bin, not a constant: the model
    normalises features with global statistics, and a constant would be an outlier of hundreds
    of standard deviations in bins that barely vary (e.g. above 4 kHz in upsampled 8 kHz audio).
    """
    b, t, f = feats.shape
    fill = utterance_means(feats, lens)  # (B, F)
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


def freq_warp(feats: torch.Tensor, max_warp: float) -> torch.Tensor:
    """Vocal tract length perturbation in the log-mel domain (Jaitly & Hinton 2013): each
    utterance draws ``alpha ~ U(1 - max_warp, 1 + max_warp)`` and mel bin ``i`` (centre frequency
    ``f_i`` of the fbank's filters) takes the value the spectrum had at ``f_i / alpha``, linearly
    interpolated between bins and held at the edges. A speaker with a vocal tract ``alpha`` times
    shorter has formants about ``alpha`` times higher."""
    b, t, f = feats.shape
    low, high = FBANK_LOW_HZ, SAMPLING_RATE / 2 + FBANK_HIGH_HZ
    edges = torch.linspace(float(hz_to_mel(torch.tensor(low))), float(hz_to_mel(torch.tensor(high))),
                           f + 2, dtype=torch.float64)
    centres, step = edges[1:-1], edges[1] - edges[0]
    hz = mel_to_hz(centres)
    alpha = 1.0 + (2.0 * torch.rand(b, 1, dtype=torch.float64) - 1.0) * max_warp
    src = ((hz_to_mel(hz[None, :] / alpha) - centres[0]) / step).clamp(0, f - 1)  # (B, F) fractional bins
    lo = src.floor().long()
    hi = (lo + 1).clamp_max(f - 1)
    w = (src - lo).to(feats.dtype)[:, None, :]
    lo, hi = lo[:, None, :].expand(b, t, f), hi[:, None, :].expand(b, t, f)
    return feats.gather(2, lo) * (1 - w) + feats.gather(2, hi) * w


def end_crop(feats: torch.Tensor, lens: torch.Tensor, max_fraction: float,
             min_frames: int = 16) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each utterance drops a random ``U(0, max_fraction)`` share of its last frames (never below
    ``min_frames``, so the encoder keeps a few output frames for the label); the dropped frames
    become padding. Returns the batch cut to its new longest length and the new lengths."""
    drop = (torch.rand(lens.shape) * max_fraction * lens.float()).long()
    new = torch.maximum(lens - drop, lens.clamp(max=min_frames))
    t = int(new.max())
    feats = feats[:, :t].clone()
    feats[torch.arange(t)[None, :] >= new[:, None]] = LOG_EPSILON
    return feats, new


def speaker_of(cut) -> str:
    """The cut's speaker (its first supervision's), or the cut itself when none is given."""
    speaker = cut.supervisions[0].speaker if cut.supervisions else None
    return f"speaker:{speaker}" if speaker else f"cut:{cut.id}"


class SpeakerCmvn:
    """Per-speaker feature mean and std over a set of cuts (``data.speaker_cmvn``): at most
    ``max_cuts`` of each speaker's cuts, the first in the set's order. No transcript is read."""

    def __init__(self, cuts: CutSet, max_cuts: int = 300):
        groups = defaultdict(list)
        self.speaker = {}
        for cut in cuts:
            key = speaker_of(cut)
            self.speaker[cut.id] = key
            if len(groups[key]) < max_cuts:
                groups[key].append(cut)
        self.stats = {key: compute_cmvn(group, max_cuts=max_cuts) for key, group in groups.items()}
        log.info("speaker CMVN: statistics of %d speakers over %d cuts", len(self.stats), len(self.speaker))

    def __call__(self, feats: torch.Tensor, ids) -> torch.Tensor:
        mean = torch.stack([self.stats[self.speaker[i]][0] for i in ids])[:, None, :]
        std = torch.stack([self.stats[self.speaker[i]][1] for i in ids])[:, None, :]
        return (feats - mean) / std


class AsrDataset(torch.utils.data.Dataset):
    """Maps a CutSet (one sampler batch) to a padded feature batch. ``speaker_cmvn``: the
    per-speaker statistics of the whole set, applied after the raw-feature augmentations."""

    def __init__(self, cfg: DataConfig, train: bool, with_text: bool = True,
                 speaker_cmvn: Optional[SpeakerCmvn] = None):
        self.cfg = cfg
        self.train = train
        self.with_text = with_text
        self.speaker_cmvn = speaker_cmvn

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
        if self.train and self.cfg.end_crop > 0:
            feats, lens = end_crop(feats, lens, self.cfg.end_crop)
        if self.train and self.cfg.freq_warp > 0:
            feats = freq_warp(feats, self.cfg.freq_warp)
        if self.speaker_cmvn is not None:
            feats = self.speaker_cmvn(feats, [c.id for c in cuts])
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
                with_text: bool = True, speaker_cmvn: Optional[SpeakerCmvn] = None):
    """``speaker_cmvn``: with ``cfg.speaker_cmvn``, the set's statistics when already computed
    (a trainer keeps them across epochs); otherwise they are computed here."""
    sampler = make_sampler(cuts, max_duration or cfg.max_duration, train, cfg, seed, world_size, rank)
    if not cfg.speaker_cmvn:
        speaker_cmvn = None
    elif speaker_cmvn is None:
        speaker_cmvn = SpeakerCmvn(cuts)
    loader = torch.utils.data.DataLoader(
        AsrDataset(cfg, train, with_text, speaker_cmvn), sampler=sampler, batch_size=None,
        num_workers=cfg.num_workers, persistent_workers=False,
    )
    return loader, sampler
