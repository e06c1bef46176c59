"""Splitting long recordings on pauses: an energy-based voice activity detector, numpy only.

A recording no longer than ``max_segment`` seconds is one piece (decoded exactly as a test
utterance would be). A longer one is cut into the stretches of speech between pauses:

1. log energy of 25 ms frames every 10 ms (one strided view, no loop over frames);
2. a frame is speech when its energy is above ``floor + threshold * (peak - floor)`` dB, where
   ``floor`` and ``peak`` are the recording's 5th and 99th energy percentiles (so the level of
   the recording and of its background noise do not matter);
3. silences shorter than ``min_pause`` are bridged, speech shorter than ``min_speech`` dropped;
4. each stretch keeps up to ``pad`` seconds of the silence around it (never past the middle of
   the pause to its neighbour), and one still longer than ``max_segment`` (speech without a
   pause) is cut at its quietest 100 ms in the second half of each ``max_segment`` window.

Every step works on whole arrays of frames or stretches at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from speechlm.base.errors import SpeechlmError


@dataclass
class VadConfig:
    max_segment: float = 20.0  # seconds: longer audio is split at pauses, no piece is longer
    min_pause: float = 0.25  # seconds of silence needed to split
    min_speech: float = 0.05  # shorter bursts of energy are not speech
    pad: float = 0.2  # seconds of silence kept on each side of a piece (a model that never heard
    #   silence, trained on tightly trimmed clips such as FSDD's, wants ~0.02)
    threshold: float = 0.2  # where speech starts between the energy floor (0) and peak (1)
    min_contrast_db: float = 10.0  # peak - floor below this: no pause can be told apart
    frame_length: float = 0.025
    frame_shift: float = 0.01

    def check(self) -> None:
        if self.max_segment <= 1.0:
            raise SpeechlmError(f"max segment {self.max_segment} s: must be above 1 s")
        if not 0 < self.threshold < 1:
            raise SpeechlmError(f"VAD threshold {self.threshold}: must be between 0 and 1")
        if min(self.min_pause, self.min_speech, self.pad) < 0:
            raise SpeechlmError("VAD min pause, min speech and pad must not be negative")


def frame_energy_db(samples: np.ndarray, sample_rate: int, cfg: VadConfig) -> np.ndarray:
    """Log energy (dB) of each ``frame_length`` frame, one every ``frame_shift``: ``(F,)``."""
    length = int(round(cfg.frame_length * sample_rate))
    hop = int(round(cfg.frame_shift * sample_rate))
    x = samples.astype(np.float64)
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, length)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)  # no DC offset
    return 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)


def _runs(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a bool array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def speech_regions(energy_db: np.ndarray, cfg: VadConfig) -> np.ndarray:
    """``(K, 2)`` frame ranges ``[start, end)`` of speech, padded, in order."""
    n = len(energy_db)
    floor, peak = np.percentile(energy_db, [5, 99])
    if peak - floor < cfg.min_contrast_db:
        return np.array([[0, n]])  # one level throughout: nothing to split on
    starts, ends = _runs(energy_db > floor + cfg.threshold * (peak - floor))
    frames = lambda sec: int(round(sec / cfg.frame_shift))  # noqa: E731
    # bridge short pauses: a run keeps its start only after a long enough gap
    long_gap = (starts[1:] - ends[:-1]) >= frames(cfg.min_pause)
    starts, ends = starts[np.r_[True, long_gap]], ends[np.r_[long_gap, True]]
    keep = (ends - starts) >= frames(cfg.min_speech)
    starts, ends = starts[keep], ends[keep]
    if len(starts) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    mids = (ends[:-1] + starts[1:]) // 2
    lo = np.maximum(starts - frames(cfg.pad), np.r_[0, mids])
    hi = np.minimum(ends + frames(cfg.pad), np.r_[mids, n])
    return np.stack([lo, hi], axis=1)


def _cut_long(regions: np.ndarray, energy_db: np.ndarray, max_frames: int) -> List[Tuple[int, int]]:
    """Regions longer than ``max_frames`` cut at their quietest 100 ms (second half of each
    window), so no piece is longer than ``max_frames``."""
    smooth = np.convolve(energy_db, np.ones(10) / 10, mode="same")
    out: List[Tuple[int, int]] = []
    for start, end in regions.tolist():
        while end - start > max_frames:
            lo = start + max_frames // 2
            cut = lo + int(np.argmin(smooth[lo: start + max_frames]))
            out.append((start, cut))
            start = cut
        out.append((start, end))
    return out


def split_on_pauses(samples: np.ndarray, sample_rate: int, cfg: VadConfig = VadConfig()) -> List[Tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the pieces to decode, in order; ``[]`` for silence."""
    cfg.check()
    n = len(samples)
    if n <= cfg.max_segment * sample_rate:
        return [(0, n)]
    energy = frame_energy_db(samples, sample_rate, cfg)
    regions = speech_regions(energy, cfg)
    pieces = _cut_long(regions, energy, int(cfg.max_segment / cfg.frame_shift))
    hop = int(round(cfg.frame_shift * sample_rate))
    length = int(round(cfg.frame_length * sample_rate))
    starts = [s * hop for s, _ in pieces]
    # a piece ends with its last frame's window, never past the next piece's start; one
    # reaching the last frame keeps the samples after it too
    ends = [n if e >= len(energy) else min(n, (e - 1) * hop + length) for _, e in pieces]
    ends = [min(e, s) for e, s in zip(ends, starts[1:] + [n])]
    return [(s, e) for s, e in zip(starts, ends) if e > s]
