"""Decode a set of cuts with several methods in one pass over the data.

The acoustic model runs once per batch; every method then decodes the same
:class:`~speechlm.models.asr.Encoded`, so the real-time factor of a method is
(shared forward time + its own search time) / audio time. Scoring and reports are
:mod:`speechlm.scoring.evaluate`'s.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from speechlm.data.datamodule import make_loader
from speechlm.data.features import FRAME_SHIFT, check_features, load_cuts
from speechlm.decode.streaming import encode_function
from speechlm.decode.methods import DecodeContext, build_methods
from speechlm.models.experiment import Experiment

log = logging.getLogger("speechlm.decode")


@dataclass
class Decoded:
    """Per method: (utterance id, reference words, hypothesis words) and the real-time factor."""

    results: Dict[str, List[Tuple[str, List[str], List[str]]]]
    rtf: Dict[str, float]
    audio_seconds: float


@torch.no_grad()
def decode_cuts(exp: Experiment, cuts_path: str | Path, methods: Sequence[str],
                lang_dir: Optional[str | Path] = None, lm_checkpoint: Optional[str] = None,
                desc: str = "decode") -> Decoded:
    """Decode every cut of ``cuts_path`` (with features) with each of ``methods``."""
    ctx = DecodeContext("", exp.model, exp.cfg, exp.tokenizer, exp.exp_dir,
                        Path(lang_dir) if lang_dir else None, lm_checkpoint)
    fns = build_methods(methods, ctx)
    cuts = load_cuts(cuts_path)
    check_features(cuts, exp.cfg.encoder.num_mel_bins, str(cuts_path))
    loader, _ = make_loader(cuts, exp.cfg.data, train=False, max_duration=exp.cfg.decode.batch_max_duration)
    dev = next(exp.model.parameters()).device
    encode = encode_function(exp.model, exp.cfg, list(fns))
    results: Dict[str, list] = {m: [] for m in fns}
    seconds = {m: 0.0 for m in fns}
    audio = 0.0
    refs = {c.id: " ".join(s.text for s in c.supervisions).split() for c in cuts}
    tty = sys.stderr.isatty()
    start, done = time.perf_counter(), 0
    for batch in tqdm(loader, desc=desc, disable=not tty):
        t0 = time.perf_counter()
        enc = encode(batch["feats"].to(dev), batch["feat_lens"].to(dev))
        forward = time.perf_counter() - t0
        audio += float(batch["feat_lens"].sum()) * FRAME_SHIFT
        for name, fn in fns.items():
            t0 = time.perf_counter()
            hyps = fn(enc)
            seconds[name] += forward + time.perf_counter() - t0
            results[name].extend((i, refs[i], h) for i, h in zip(batch["ids"], hyps))
        done += len(batch["ids"])
        if not tty:  # a log file has no progress bar: one line per batch
            log.info("%s: %d of %d utterances, %.0f s", desc, done, len(refs), time.perf_counter() - start)
    rtf = {m: seconds[m] / max(audio, 1e-9) for m in fns}
    return Decoded(results, rtf, audio)
