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

import logging
import re
from pathlib import Path
from typing import List, Optional

from speechlm.data.corpus import (
    Manifests,
    Pathlike,
    SkipCounter,
    UniqueIds,
    check_on_error,
    download_file,
    extract_wavs,
    find_subdir,
    finish_split,
    load_recording,
    normalize_text,
    whole_recording_supervision,
)
from speechlm.errors import SpeechlmError

logger = logging.getLogger(__name__)

YESNO_URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
WORDS = {"0": "NO", "1": "YES"}
_NAME = re.compile(r"^[01](_[01]){7}$")
_BAD_NAME = "name is not eight 0/1 digits joined by '_' (e.g. 0_1_1_0_0_1_1_0.wav)"


def download_yesno(
    target_dir: Pathlike = ".",
    force_download: bool = False,
    url: str = YESNO_URL,
) -> Path:
    """Download ``waves_yesno.tar.gz`` from OpenSLR and extract it to ``target_dir/waves_yesno``.

    :param target_dir: where to put the archive and ``waves_yesno/*.wav``.
    :param force_download: download and extract again even if the data is present.
    :param url: archive URL (OpenSLR resource 1, or a mirror of it).
    :return: ``target_dir``, i.e. the folder to pass to :func:`prepare_yesno`.
    :raises SpeechlmError: when offline (suggests ``--corpus-dir``) or the archive is damaged.
    """
    target_dir = Path(target_dir)
    waves = target_dir / "waves_yesno"
    done = target_dir / ".yesno.completed"
    if done.is_file() and waves.is_dir() and not force_download:
        logger.info(f"yesno: {waves} already present, skipping download")
        return target_dir
    archive = download_file(url, target_dir / "waves_yesno.tar.gz", "yesno", force=force_download)
    n = extract_wavs(archive, waves, select=lambda name: True)
    done.touch()
    logger.info(f"yesno: extracted {n} files to {waves}")
    return target_dir


def transcript_from_name(stem: str) -> str:
    """``"0_1_1"`` -> ``"no yes yes"`` (lowercase, single spaces)."""
    return normalize_text(" ".join(WORDS[bit] for bit in stem.split("_")))


def list_yesno_files(corpus_dir: Pathlike, skips: SkipCounter) -> List[Path]:
    """All well-named ``*.wav`` files, sorted by name; others are counted in ``skips``."""
    wave_dir = find_subdir(corpus_dir, "waves_yesno", "yesno")
    files, ids = [], UniqueIds()
    for path in sorted(wave_dir.glob("*.wav"), key=lambda p: p.name):
        if not _NAME.match(path.stem):
            skips.add(_BAD_NAME, path.name)
            continue
        ids.add(path.stem, path)
        files.append(path)
    if not files:
        raise SpeechlmError(
            f"{wave_dir}: no yesno files (like 0_1_1_0_0_1_1_0.wav) found. "
            "Pass the folder that contains waves_yesno/ as --corpus-dir."
        )
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
    check_on_error(on_error)
    skips = SkipCounter("yesno")
    manifests: Manifests = {}
    try:
        files = list_yesno_files(corpus_dir, skips)
        for name, members in (("train", files[0::2]), ("test", files[1::2])):
            recs, sups = [], []
            for path in members:
                rec = load_recording(path, path.stem, on_error=on_error, skips=skips)
                if rec is None:
                    continue
                recs.append(rec)
                sups.append(
                    whole_recording_supervision(
                        rec, transcript_from_name(path.stem), speaker="yesno", language="English"
                    )
                )
            manifests[name] = finish_split(recs, sups, output_dir, "yesno", name)
    finally:
        skips.report()
    return manifests
