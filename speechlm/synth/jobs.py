"""Synthesis of many (path, text, voice) jobs in worker processes, reusing valid WAVs from an
earlier run; used by the synth_en and synth_books corpora and the one-voice TTS data. A voice
names its engine (:mod:`speechlm.synth.engines`); one without ``engine`` is espeak-ng's."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import soundfile as sf
from tqdm import tqdm

SAMPLE_RATE = 16000
Voice = Dict[str, Union[str, int, float]]  # espeak: {"id", "espeak_voice", "rate", "pitch"}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _existing_num_samples(path: Path) -> Optional[int]:
    try:
        info = sf.info(str(path))
    except Exception:
        return None  # corrupt or partial: synthesise again
    if info.samplerate != SAMPLE_RATE or info.channels != 1 or info.frames == 0:
        return None
    return int(info.frames)


def _synthesize_one(job: Tuple[str, str, Voice]) -> Tuple[str, int, bool]:
    """Write one WAV (atomically) unless a valid one exists; return (path, num_samples, synthesised)."""
    from speechlm.synth.engines import synthesize

    path_str, text, voice = job
    path = Path(path_str)
    n = _existing_num_samples(path)
    if n is not None:
        return path_str, n, False
    audio, sr = synthesize(text, voice), SAMPLE_RATE
    tmp = path.with_name(path.stem + ".tmp.wav")
    sf.write(str(tmp), audio, sr, subtype="PCM_16")
    os.replace(tmp, path)
    return path_str, int(len(audio)), True


def run_synthesis_jobs(jobs: List[Tuple[str, str, Voice]], num_jobs: int) -> Dict[str, Tuple[int, bool]]:
    """Synthesise (path, text, voice) jobs in ``num_jobs`` processes; {path: (num_samples, new)}."""
    results = {}
    progress = tqdm(total=len(jobs), desc="synthesising", unit="utt", mininterval=2.0)
    if num_jobs <= 1:
        _init_worker()
        it = map(_synthesize_one, jobs)
        pool = None
    else:
        # spawn: forking a process that already ran torch/espeak can deadlock.
        pool = multiprocessing.get_context("spawn").Pool(num_jobs, initializer=_init_worker)
        it = pool.imap_unordered(_synthesize_one, jobs, chunksize=16)
    try:
        for path, n, synthesised in it:
            results[path] = (n, synthesised)
            progress.update()
    finally:
        progress.close()
        if pool is not None:
            pool.close()
            pool.join()
    return results
