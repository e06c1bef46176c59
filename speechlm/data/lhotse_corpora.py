"""Large public corpora read with Lhotse's own recipes, written as speechlm train/dev/test manifests.

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
from typing import Dict, List, Optional

from speechlm.data.corpus import Pathlike, finish_split, normalize_text
from speechlm.errors import SpeechlmError

logger = logging.getLogger(__name__)

LIBRISPEECH_PARTS = {
    "100h": {"train": ["train-clean-100"], "dev": ["dev-clean"], "test": ["test-clean"]},
    "960h": {"train": ["train-clean-100", "train-clean-360", "train-other-500"],
             "dev": ["dev-clean"], "test": ["test-clean"]},
    "mini": {"train": ["train-clean-5"], "test": ["dev-clean-2"]},
}


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


def prepare_librispeech_splits(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    prefix: str = "librispeech",
    parts: str = "100h",
    download: bool = False,
    num_jobs: int = 2,
) -> str:
    """Read LibriSpeech with Lhotse and write train/dev/test manifests; returns the counts.

    :param corpus_dir: the ``LibriSpeech`` folder (holding ``train-clean-100/`` ...).
    :param parts: ``100h``, ``960h`` or ``mini`` (see the module docstring).
    :param download: fetch missing parts from OpenSLR into ``corpus_dir``'s parent first.
    """
    from lhotse.recipes import download_librispeech, prepare_librispeech

    if parts not in LIBRISPEECH_PARTS:
        raise SpeechlmError(f"librispeech parts must be one of {sorted(LIBRISPEECH_PARTS)}, got {parts!r}")
    corpus_dir = Path(corpus_dir)
    wanted = LIBRISPEECH_PARTS[parts]
    needed = [p for names in wanted.values() for p in names]
    missing = [p for p in needed if not (corpus_dir / p).is_dir()]
    if missing and download:
        if corpus_dir.name != "LibriSpeech":
            raise SpeechlmError(f"{corpus_dir}: to download, point --corpus-dir at a folder named LibriSpeech")
        _download("LibriSpeech", download_librispeech, corpus_dir.parent, dataset_parts=missing)
        missing = [p for p in needed if not (corpus_dir / p).is_dir()]
    if missing:
        raise SpeechlmError(
            f"{corpus_dir}: LibriSpeech parts {missing} not found (expected {corpus_dir}/<part>/"
            "<speaker>/<chapter>/*.flac). Pass the LibriSpeech folder, or download with --download."
        )
    read = prepare_librispeech(corpus_dir, dataset_parts=needed, output_dir=None, num_jobs=num_jobs)
    splits = {}
    for name, names in wanted.items():
        recs = [r for p in names for r in read[p]["recordings"]]
        sups = [s for p in names for s in read[p]["supervisions"]]
        if not recs:
            raise SpeechlmError(f"{corpus_dir}: no readable utterances in {names} (.trans.txt + .flac)")
        splits[name] = (recs, sups)
    return _write_splits(splits, output_dir, prefix)


def prepare_ljspeech_splits(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    prefix: str = "ljspeech",
    parts: Optional[str] = None,
    download: bool = False,
    num_jobs: int = 1,
) -> str:
    """Read LJSpeech with Lhotse and write train/dev/test manifests; returns the counts.

    :param corpus_dir: the ``LJSpeech-1.1`` folder (holding ``metadata.csv`` and ``wavs/``).
    :param download: fetch the corpus into ``corpus_dir``'s parent first when it is absent.
    """
    from lhotse.recipes import download_ljspeech, prepare_ljspeech

    corpus_dir = Path(corpus_dir)
    if download and not (corpus_dir / "metadata.csv").is_file():
        corpus_dir = _download("LJSpeech", download_ljspeech, corpus_dir.parent)
    if not (corpus_dir / "metadata.csv").is_file() or not (corpus_dir / "wavs").is_dir():
        raise SpeechlmError(
            f"{corpus_dir}: not an LJSpeech folder (expected metadata.csv and wavs/). "
            "Pass the LJSpeech-1.1 folder, or download with --download."
        )
    try:
        read = prepare_ljspeech(corpus_dir, output_dir=None)
    except ValueError as e:
        raise SpeechlmError(f"{corpus_dir / 'metadata.csv'}: a line is not 'id|text|normalized text' ({e})") from None
    sups = {s.id: s.transform_text(lambda _, s=s: s.custom["normalized_text"]) for s in read["supervisions"]}
    recs = {r.id: r for r in read["recordings"]}
    ids = sorted(recs)
    n = min(250, max(1, len(ids) // 20))
    if len(ids) < 3:
        raise SpeechlmError(f"{corpus_dir}: only {len(ids)} usable clips; need at least 3 for train/dev/test")
    groups: Dict[str, List[str]] = {"train": ids[: -2 * n], "dev": ids[-2 * n: -n], "test": ids[-n:]}
    splits = {k: ([recs[i] for i in v], [sups[i] for i in v]) for k, v in groups.items()}
    return _write_splits(splits, output_dir, prefix)


PREPARERS = {"librispeech": prepare_librispeech_splits, "ljspeech": prepare_ljspeech_splits}
