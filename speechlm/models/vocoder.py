"""Mel analysis for TTS and the Griffin-Lim vocoder (mel -> waveform), in plain torch.

TTS uses its own 80-bin log-mel frames, not the ASR fbank: a longer hop (default 256 samples =
16 ms at 16 kHz) means fewer frames to predict, and a magnitude (not power) mel on an explicit
filterbank is what Griffin-Lim needs to invert. Everything is batched over utterances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from speechlm.base.files import write_failure
from speechlm.data.features import hz_to_mel, mel_to_hz

SAMPLE_RATE = 16000
NUM_MELS = 80
LOG_FLOOR = 1e-5  # magnitude floor before the log: -11.5 in log-mel units is "silence"


@dataclass(frozen=True)
class MelSpec:
    """Analysis parameters; a TTS model dir fixes them (``tts`` section of its config)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 256
    num_mels: int = NUM_MELS
    f_min: float = 0.0
    f_max: float = 8000.0

    @property
    def frame_shift(self) -> float:
        return self.hop_length / self.sample_rate


def write_wav(path: str | Path, wave: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> Path:
    """A synthesised waveform (float, nominally -1..1) as 16-bit PCM; parent dirs are created."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(str(path), wave.detach().cpu().clamp(-1, 1).numpy(), sample_rate, subtype="PCM_16")
    except (OSError, RuntimeError) as e:
        failure = write_failure(e, path)
        if failure is e:
            raise
        raise failure from e
    return path


def mel_filterbank(spec: MelSpec) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, area-normalised: ``(num_mels, n_fft // 2 + 1)``."""
    freqs = torch.linspace(0, spec.sample_rate / 2, spec.n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = hz_to_mel(torch.tensor(spec.f_min)), hz_to_mel(torch.tensor(spec.f_max))
    edges = mel_to_hz(torch.linspace(float(lo), float(hi), spec.num_mels + 2, dtype=torch.float64))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - left) / (centre - left)
    down = (right - freqs[None]) / (right - centre)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (right - left))  # equal area per filter (Slaney-style normalisation)
    return fb.float()


class MelFrontend(torch.nn.Module):
    """waveform ``(B, S)`` -> log-mel ``(B, T, num_mels)`` with ``T = S // hop + 1``."""

    def __init__(self, spec: MelSpec = MelSpec()):
        super().__init__()
        self.spec = spec
        self.register_buffer("window", torch.hann_window(spec.n_fft), persistent=False)
        self.register_buffer("fbank", mel_filterbank(spec), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        s = self.spec
        short = s.n_fft // 2 + 1 - wave.size(-1)
        if short > 0:  # too short for the centred STFT's reflection (an untrained model's output)
            wave = torch.nn.functional.pad(wave, (0, short))
        stft = torch.stft(wave, s.n_fft, s.hop_length, window=self.window, center=True,
                          return_complex=True)
        return stft.abs()  # (B, F, T)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        squeeze = wave.dim() == 1
        mag = self.magnitude(wave[None] if squeeze else wave)
        mel = torch.log(torch.clamp(self.fbank @ mag, min=LOG_FLOOR)).transpose(1, 2)
        return mel[0] if squeeze else mel

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.spec.hop_length + 1


class GriffinLim(torch.nn.Module):
    """log-mel ``(B, T, num_mels)`` -> waveform ``(B, (T - 1) * hop)``.

    The linear magnitude is the non-negative least-squares-ish inverse of the filterbank
    (pseudo-inverse, clamped, then a few multiplicative NMF-style refinements); the phase comes
    from fast Griffin-Lim (momentum 0.99, Perraudin et al. 2013), ``iters`` iterations.
    """

    def __init__(self, spec: MelSpec = MelSpec(), iters: int = 32, momentum: float = 0.99,
                 refine: int = 10):
        super().__init__()
        self.spec, self.iters, self.momentum, self.refine = spec, iters, momentum, refine
        fb = mel_filterbank(spec)
        self.register_buffer("window", torch.hann_window(spec.n_fft), persistent=False)
        self.register_buffer("fbank", fb, persistent=False)
        self.register_buffer("fbank_pinv", torch.linalg.pinv(fb), persistent=False)

    def mel_to_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        mel = log_mel.exp().transpose(1, 2)  # (B, M, T)
        mag = torch.clamp(self.fbank_pinv @ mel, min=LOG_FLOOR)
        for _ in range(self.refine):  # multiplicative updates keep it >= 0 and fit fbank @ mag ~ mel
            mag = mag * (self.fbank.T @ mel) / torch.clamp(self.fbank.T @ (self.fbank @ mag), min=1e-10)
        return mag

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        squeeze = log_mel.dim() == 2
        mag = self.mel_to_magnitude(log_mel[None] if squeeze else log_mel)
        s = self.spec
        length = (mag.size(-1) - 1) * s.hop_length
        gen = torch.Generator().manual_seed(0)  # same audio for the same mel, run after run
        angles = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=gen)).to(mag.device)
        prev = torch.zeros_like(angles)
        wave = None
        for _ in range(self.iters):
            wave = torch.istft(mag * angles, s.n_fft, s.hop_length, window=self.window,
                               length=length)
            rebuilt = torch.stft(wave, s.n_fft, s.hop_length, window=self.window,
                                 return_complex=True)
            accel = rebuilt - self.momentum / (1 + self.momentum) * prev
            angles = accel / torch.clamp(accel.abs(), min=1e-8)
            prev = rebuilt
        wave = torch.istft(mag * angles, s.n_fft, s.hop_length, window=self.window, length=length)
        return wave[0] if squeeze else wave
