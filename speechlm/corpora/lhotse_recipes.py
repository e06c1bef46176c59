"""What the corpora read with Lhotse's own recipes share: download errors, transcript
normalisation and writing speechlm train/dev/test manifests. The corpora:

* LibriSpeech (OpenSLR 12): ``LibriSpeech/<part>/<speaker>/<chapter>/*.flac`` with one
  ``<speaker>-<chapter>.trans.txt`` per chapter. ``parts`` picks the training data: ``100h``
  (train-clean-100), ``960h`` (all three training parts) or ``mini`` (train-clean-5); dev is
  dev-clean and test test-clean (mini: dev-clean-2 is the test set and there is no dev).
* LJSpeech 1.1: one female speaker, ``LJSpeech-1.1/wavs/*.wav`` and ``metadata.csv``
  (``id|text|normalized text``). ASR uses the normalised text. Upstream has no split: with the
  ids sorted, the last ``2 n`` clips are dev then test, ``n = min(250, N // 20)`` (at least 1),
  so every machine gets the same split.

Transcripts are lowercased with punctuation other than apostrophes removed, as WER is scored on
words. Lhotse does the reading; speechlm's helpers validate and write the manifests
(``<prefix>_{recordings,supervisions,cuts}_<split>.jsonl.gz``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, Optional

from speechlm.data.corpus import Pathlike, finish_split, normalize_text
from speechlm.base.errors import SpeechlmError

logger = logging.getLogger(__name__)

def asr_text(text: str) -> str:
    """Lowercase words: punctuation other than apostrophes becomes a space."""
    return normalize_text(re.sub(r"[^\w' ]+", " ", text.replace("’", "'")))


def _download(corpus: str, fetch, target_dir: Path, **kwargs):
    try:
        return fetch(target_dir, **kwargs)
    except Exception as e:  # network and archive errors come in many types
        raise SpeechlmError(
            f"could not download {corpus} into {target_dir} ({type(e).__name__}: {e}). If you are "
            "offline, copy the corpus by hand and pass its folder with --corpus-dir."
        ) from e


def _write_splits(splits: Dict[str, tuple], output_dir: Optional[Pathlike], prefix: str) -> str:
    counts = []
    for name, (recs, sups) in splits.items():
        sups = [s for s in (s.transform_text(asr_text) for s in sups) if s.text]
        used = {s.recording_id for s in sups}
        recs = [r for r in recs if r.id in used]
        finish_split(recs, sups, output_dir, prefix, name)
        counts.append(f"{name}={len(sups)}")
    return ", ".join(counts)
