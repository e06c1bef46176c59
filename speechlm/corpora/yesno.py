"""The Kaldi yesno corpus (OpenSLR SLR1): 60 WAVs at 8 kHz, one male non-native English speaker.

Each file says eight words, each "yes" or "no"; the transcript is the file name with
1 = yes and 0 = no (``0_1_1_0_0_1_1_0.wav`` -> "no yes yes no no yes yes no").

Split: the conventional Kaldi/lhotse one — the file list is *sorted* by name and alternate
files go to train and test (30/30, 240 test words), so the split is the same on every machine.
There is no dev split: with 30 training utterances, holding any out costs more than it
tells, and reusing test as dev would leak. Recipes tune on train or not at all.

Membership is decided from the sorted list of well-named files before any audio is read,
so a corrupt file skipped with ``on_error="skip"`` drops out without shifting the others.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Optional

from speechlm.data.corpus import (
    Manifests,
    Pathlike,
    SkipCounter,
    download_corpus,
    find_subdir,
    list_named_wavs,
    normalize_text,
    prepare_file_splits,
)

logger = logging.getLogger(__name__)

YESNO_URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
WORDS = {"0": "NO", "1": "YES"}
_NAME = re.compile(r"^[01](_[01]){7}$")
_BAD_NAME = "name is not eight 0/1 digits joined by '_' (e.g. 0_1_1_0_0_1_1_0.wav)"


def download_yesno(target_dir: Pathlike = ".", force_download: bool = False, url: str = YESNO_URL) -> Path:
    """Download ``waves_yesno.tar.gz`` from OpenSLR and extract it to ``target_dir/waves_yesno``;
    returns ``target_dir`` (the folder to pass to :func:`prepare_yesno`)."""
    return download_corpus("yesno", url, target_dir, "waves_yesno", "waves_yesno.tar.gz",
                           select=lambda name: True, force=force_download)


def transcript_from_name(stem: str) -> str:
    """``"0_1_1"`` -> ``"no yes yes"`` (lowercase, single spaces)."""
    return normalize_text(" ".join(WORDS[bit] for bit in stem.split("_")))


def list_yesno_files(corpus_dir: Pathlike, skips: SkipCounter) -> List[Path]:
    """All well-named ``*.wav`` files, sorted by name; others are counted in ``skips``."""
    wave_dir = find_subdir(corpus_dir, "waves_yesno", "yesno")
    files = list_named_wavs(
        wave_dir, lambda p: p if _NAME.match(p.stem) else None, lambda p: p.stem, skips, _BAD_NAME,
        "no yesno files (like 0_1_1_0_0_1_1_0.wav) found. Pass the folder that contains "
        "waves_yesno/ as --corpus-dir.")
    if len(files) != 60:
        logger.warning(f"yesno: found {len(files)} files in {wave_dir}, the corpus has 60")
    return files


def prepare_yesno(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    on_error: str = "raise",
) -> Manifests:
    """Build Lhotse manifests for yesno (train/test, no dev) and (optionally) write them.

    :param corpus_dir: the folder containing ``waves_yesno/``, or ``waves_yesno/`` itself.
    :param output_dir: if given, writes
        ``yesno_{recordings,supervisions,cuts}_{train,test}.jsonl.gz``.
    :param on_error: ``"raise"`` or ``"skip"`` for missing/empty/corrupt audio. Files whose
        names are not eight 0/1 digits are always skipped with a counted warning.
    :return: ``{"train": (RecordingSet, SupervisionSet), "test": (...)}``, items sorted by id;
        transcripts are lowercase words, e.g. ``"no yes yes no no yes yes no"``.
    """
    def list_splits(skips: SkipCounter):
        files = list_yesno_files(corpus_dir, skips)
        return {name: [(path, path.stem, transcript_from_name(path.stem), "yesno") for path in members]
                for name, members in (("train", files[0::2]), ("test", files[1::2]))}

    return prepare_file_splits("yesno", list_splits, output_dir, on_error)


def add_arguments(p) -> None:
    """``speechlm prepare yesno`` options."""
    p.add_argument("--corpus-dir", help="local copy (holds waves_yesno/); downloaded when omitted")
    p.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad audio: stop with an error, or skip it with a counted warning")


def prepare(args) -> str:
    corpus_dir = args.corpus_dir or download_yesno(Path(args.out_dir).parent / "download")
    m = prepare_yesno(corpus_dir, args.out_dir, on_error=args.on_error)
    return "yesno: " + ", ".join(f"{k}={len(v[0])}" for k, v in m.items())
