"""Free Spoken Digit Dataset (FSDD): English spoken digits, one digit per file, 8 kHz mono.

Upstream is the GitHub repository Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0,
Zohar Jackson and contributors). Files are ``recordings/{digit}_{speaker}_{index}.wav``;
the transcript is the digit's English word and the speaker is part of the name.

Splits:

* ``"official"`` (upstream README): index 0-4 is test, 5-49 is train.
* ``"speaker"``: every file of ``heldout_speaker`` is test, all other speakers train.

In both, dev is carved out of train without randomness: within each (speaker, digit) group the
lowest-indexed ``round(dev_fraction * group size)`` files go to dev. With the default 0.1 that is
index 5-9 in the official split (2,000 train / 250 dev / 250 test on 5 speakers) and index 0-4 of
each remaining speaker in the speaker split. ``dev_fraction=0`` gives no dev split.

Audio stays at its native 8 kHz in the manifests; the feature stage resamples.
"""

import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

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
    whole_recording_supervision,
)
from speechlm.errors import SpeechlmError

logger = logging.getLogger(__name__)

FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
    f"{FSDD_COMMIT}.tar.gz"
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
OFFICIAL_TEST_INDICES = range(0, 5)
SPLITS = ("official", "speaker")

_NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z0-9]+)_(?P<index>[0-9]+)$")
_BAD_NAME = "name does not match {digit}_{speaker}_{index}.wav"


class FsddFile(NamedTuple):
    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def utt_id(self) -> str:
        # speaker first (Kaldi convention) so sorted ids group by speaker
        return f"{self.speaker}-{self.digit}-{self.index:02d}"


def download_fsdd(
    target_dir: Pathlike = ".",
    force_download: bool = False,
    url: str = FSDD_URL,
) -> Path:
    """Download the pinned upstream snapshot and extract its ``recordings/`` folder.

    :param target_dir: where to put ``recordings/*.wav`` (and the downloaded archive).
    :param force_download: download and extract again even if the data is present.
    :param url: archive URL (a GitHub tarball whose top folder contains ``recordings/``).
    :return: ``target_dir``, i.e. the folder to pass to :func:`prepare_fsdd`.
    :raises SpeechlmError: when offline (suggests ``--corpus-dir``) or the archive is damaged.
    """
    target_dir = Path(target_dir)
    recordings = target_dir / "recordings"
    done = target_dir / ".fsdd.completed"
    if done.is_file() and recordings.is_dir() and not force_download:
        logger.info(f"fsdd: {recordings} already present, skipping download")
        return target_dir
    archive = download_file(url, target_dir / "fsdd.tar.gz", "fsdd", force=force_download)
    n = extract_wavs(archive, recordings, select=lambda name: "/recordings/" in name)
    done.touch()
    logger.info(f"fsdd: extracted {n} files to {recordings}")
    return target_dir


def _parse_name(path: Path) -> Optional[FsddFile]:
    m = _NAME.match(path.stem)
    if m is None:
        return None
    return FsddFile(path, int(m["digit"]), m["speaker"], int(m["index"]))


def list_fsdd_files(corpus_dir: Pathlike, skips: SkipCounter) -> List[FsddFile]:
    """Parse every ``*.wav`` name in the corpus, sorted; mis-named files are counted in skips."""
    rec_dir = find_subdir(corpus_dir, "recordings", "FSDD")
    files, ids = [], UniqueIds()
    for path in sorted(rec_dir.glob("*.wav")):
        item = _parse_name(path)
        if item is None:
            skips.add(_BAD_NAME, path.name)
            continue
        ids.add(item.utt_id, path)
        files.append(item)
    if not files:
        raise SpeechlmError(
            f"{rec_dir}: no FSDD files named {{digit}}_{{speaker}}_{{index}}.wav found. "
            "Pass the folder that contains recordings/ as --corpus-dir."
        )
    return files


def assign_splits(
    files: List[FsddFile],
    split: str = "official",
    heldout_speaker: Optional[str] = None,
    dev_fraction: float = 0.1,
) -> Dict[str, List[FsddFile]]:
    """Decide train/dev/test membership from names alone (see the module docstring)."""
    if split not in SPLITS:
        raise SpeechlmError(f"fsdd split must be one of {SPLITS}, got '{split}'")
    if not 0.0 <= dev_fraction < 1.0:
        raise SpeechlmError(f"fsdd dev_fraction must be in [0, 1), got {dev_fraction}")
    speakers = sorted({f.speaker for f in files})
    if split == "speaker" and heldout_speaker not in speakers:
        raise SpeechlmError(
            f"fsdd speaker split needs heldout_speaker set to one of {speakers}, "
            f"got {heldout_speaker!r}"
        )

    def is_test(f: FsddFile) -> bool:
        if split == "official":
            return f.index in OFFICIAL_TEST_INDICES
        return f.speaker == heldout_speaker

    out: Dict[str, List[FsddFile]] = {"train": [], "dev": [], "test": []}
    groups: Dict[tuple, List[FsddFile]] = defaultdict(list)
    for f in files:
        if is_test(f):
            out["test"].append(f)
        else:
            groups[(f.speaker, f.digit)].append(f)
    for group in groups.values():
        group.sort(key=lambda f: f.index)
        n_dev = math.floor(dev_fraction * len(group) + 0.5 + 1e-9)  # round half up
        out["dev"].extend(group[:n_dev])
        out["train"].extend(group[n_dev:])
    if not out["dev"]:
        del out["dev"]
    return out


def prepare_fsdd(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    split: str = "official",
    heldout_speaker: Optional[str] = None,
    dev_fraction: float = 0.1,
    on_error: str = "raise",
) -> Manifests:
    """Build Lhotse manifests for FSDD and (optionally) write them.

    :param corpus_dir: the folder containing ``recordings/``, or ``recordings/`` itself.
    :param output_dir: if given, writes ``fsdd_{recordings,supervisions,cuts}_{split}.jsonl.gz``
        for each split name (``train``, ``dev``, ``test``).
    :param split: ``"official"`` (index 0-4 test) or ``"speaker"`` (``heldout_speaker`` test).
    :param heldout_speaker: the test speaker for ``split="speaker"``, e.g. ``"theo"``.
    :param dev_fraction: share of each train (speaker, digit) group moved to dev,
        lowest indices first; 0 disables dev.
    :param on_error: ``"raise"`` or ``"skip"`` for missing/empty/corrupt audio. Files whose
        names do not follow the pattern are always skipped with a counted warning.
    :return: ``{split name: (RecordingSet, SupervisionSet)}``, items sorted by id.
    """
    check_on_error(on_error)
    skips = SkipCounter("fsdd")
    manifests: Manifests = {}
    try:
        files = list_fsdd_files(corpus_dir, skips)
        for name, members in assign_splits(files, split, heldout_speaker, dev_fraction).items():
            recs, sups = [], []
            for f in members:
                rec = load_recording(f.path, f.utt_id, on_error=on_error, skips=skips)
                if rec is None:
                    continue
                recs.append(rec)
                sups.append(
                    whole_recording_supervision(
                        rec, DIGIT_WORDS[f.digit], speaker=f.speaker, language="English"
                    )
                )
            manifests[name] = finish_split(recs, sups, output_dir, "fsdd", name)
    finally:
        skips.report()  # also when a split fails, so the reason is visible
    return manifests
