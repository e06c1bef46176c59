"""Audio for recognition: any file soundfile reads (WAV, FLAC, OGG, MP3), any sample rate and
channel count, turned into what every model was trained on: mono float32 at 16 kHz.

Resampling uses lhotse's resampler, the one :func:`speechlm.data.features.compute_fbank` applies
through ``CutSet.resample``, so an 8 kHz file gives the same samples here as in a recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

from speechlm.base.errors import SpeechlmError

SAMPLING_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821 (torch is never needed here)


@dataclass
class Audio:
    """One recording at :data:`SAMPLING_RATE`, mono; what it was before is kept for messages."""

    samples: np.ndarray  # (N,) float32
    source: str  # a file name, or "array" for audio handed over in memory
    original_rate: int
    channels: int

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLING_RATE

    def conversions(self) -> List[str]:
        """What was done to the audio to fit the models, one phrase each (for a one-time notice)."""
        done = []
        if self.channels > 1:
            done.append(f"{self.channels}-channel audio is mixed down to mono")
        if self.original_rate != SAMPLING_RATE:
            done.append(f"{self.original_rate} Hz audio is resampled to {SAMPLING_RATE} Hz")
        return done


def read_audio(path: str | Path) -> Tuple[np.ndarray, int]:
    """``(channels, samples)`` float32 in [-1, 1] and the sample rate of an audio file."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        raise SpeechlmError(f"{path}: not readable audio ({e}); give a WAV, FLAC, OGG or MP3 file, "
                            "or convert it first (e.g. `ffmpeg -i IN OUT.wav`)") from None
    if data.shape[0] == 0:
        raise SpeechlmError(f"{path}: the audio file is empty (0 samples)")
    return np.ascontiguousarray(data.T), int(rate)


def _as_channels_first(samples, source: str) -> np.ndarray:
    """A 1-D ``(N,)`` or 2-D array as float32 ``(C, N)``; 2-D is ``(C, N)`` unless it is clearly
    soundfile's ``(N, C)`` (many more rows than columns, at most 16 columns)."""
    if hasattr(samples, "detach"):  # a torch tensor
        samples = samples.detach().cpu().numpy()
    a = np.asarray(samples)
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim == 2:
        if a.shape[0] > a.shape[1] and a.shape[1] <= 16:
            a = a.T
    else:
        raise SpeechlmError(f"{source}: audio must be a 1-D (samples) or 2-D (channels, samples) "
                            f"array, got shape {a.shape}")
    if a.shape[1] == 0:
        raise SpeechlmError(f"{source}: the audio is empty (0 samples)")
    if np.issubdtype(a.dtype, np.integer):  # PCM integers -> [-1, 1]
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
    return np.ascontiguousarray(a, dtype=np.float32)


def to_model_audio(samples: ArrayLike, sample_rate: int, source: str = "array") -> Audio:
    """Mix ``samples`` down to mono and resample to 16 kHz."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise SpeechlmError(f"{source}: sample rate must be a positive integer, got {sample_rate!r}")
    a = _as_channels_first(samples, source)
    mono = a.mean(axis=0, keepdims=True) if a.shape[0] > 1 else a
    if sample_rate != SAMPLING_RATE:
        from lhotse.augmentation import Resample

        mono = Resample(int(sample_rate), SAMPLING_RATE)(mono)
    return Audio(np.ascontiguousarray(mono[0], dtype=np.float32), source, int(sample_rate), a.shape[0])


def load_audio(path: str | Path) -> Audio:
    """An audio file as :class:`Audio` (mono, 16 kHz)."""
    data, rate = read_audio(path)
    return to_model_audio(data, rate, str(path))


def expand_inputs(items: Sequence[str | Path]) -> List[Path]:
    """The audio files that ``items`` name, in order: an audio file is itself, a folder gives its
    audio files (recursively, sorted), any other file is a list with one path a line (relative to
    the list's folder; empty lines and ``#`` comments skipped)."""
    out: List[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
            if not found:
                raise SpeechlmError(f"{path}: no audio files ({' '.join(AUDIO_SUFFIXES)}) in this folder")
            out.extend(found)
        elif path.suffix.lower() in AUDIO_SUFFIXES:
            if not path.is_file():
                raise SpeechlmError(f"{path}: audio file not found")
            out.append(path)
        elif path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise SpeechlmError(f"{path}: neither an audio file ({' '.join(AUDIO_SUFFIXES)}) nor a "
                                    "UTF-8 list of audio files") from None
            for n, line in enumerate(lines, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                listed = Path(line) if Path(line).is_absolute() else path.parent / line
                if not listed.is_file():
                    raise SpeechlmError(f"{path}:{n}: {line} not found (paths in a list are relative "
                                        "to the list's folder)")
                out.append(listed)
        else:
            raise SpeechlmError(f"{path} not found: give audio files ({' '.join(AUDIO_SUFFIXES)}), "
                                "folders of them, or a text file listing them")
    if not out:
        raise SpeechlmError("no audio to transcribe: the lists given are empty")
    return out
