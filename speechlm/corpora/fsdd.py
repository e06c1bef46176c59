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

``synthetic_voices > 0`` adds to the training split the ten digit words read by that many
synthetic voices (espeak-ng's English accents x voice variants, with their own rate and pitch,
and Piper's joe at several scales; :func:`synthetic_digits`), stored at FSDD's 8 kHz so that they
share its telephone band: more speakers for a model meant to hear voices it was not trained on.
Dev and test stay real FSDD speech.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from speechlm.base.errors import SpeechlmError
from speechlm.data.corpus import (
    Manifests,
    Pathlike,
    SkipCounter,
    download_corpus,
    find_subdir,
    list_named_wavs,
    prepare_file_splits,
)

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


def download_fsdd(target_dir: Pathlike = ".", force_download: bool = False, url: str = FSDD_URL) -> Path:
    """Download the pinned upstream snapshot and extract its ``recordings/`` folder into
    ``target_dir``; returns ``target_dir`` (the folder to pass to :func:`prepare_fsdd`)."""
    return download_corpus("fsdd", url, target_dir, "recordings", "fsdd.tar.gz",
                           select=lambda name: "/recordings/" in name, force=force_download)


def _parse_name(path: Path) -> Optional[FsddFile]:
    m = _NAME.match(path.stem)
    if m is None:
        return None
    return FsddFile(path, int(m["digit"]), m["speaker"], int(m["index"]))


def list_fsdd_files(corpus_dir: Pathlike, skips: SkipCounter) -> List[FsddFile]:
    """Parse every ``*.wav`` name in the corpus, sorted; mis-named files are counted in skips."""
    return list_named_wavs(
        find_subdir(corpus_dir, "recordings", "FSDD"), _parse_name, lambda f: f.utt_id, skips,
        _BAD_NAME, "no FSDD files named {digit}_{speaker}_{index}.wav found. Pass the folder that "
        "contains recordings/ as --corpus-dir.")


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


SYNTHETIC_RATE = 8000  # FSDD's own rate: synthetic digits get its band


def installed_synthetic_voices(seed: int = 0) -> List[dict]:
    """Every installed synthetic English voice (espeak-ng accents x variants; Piper's joe at its
    scales when piper-tts is installed), in a seeded order."""
    import random

    from speechlm.synth.engines import engine_status, get_engine

    status = engine_status()
    voices = [v for name in ("espeak", "piper") if status.get(name) is None for v in get_engine(name).voices(seed)]
    random.Random(seed).shuffle(voices)
    return voices


def synthetic_digits(out_dir: Pathlike, num_voices: int, seed: int = 0,
                     num_jobs: int = 2) -> List[tuple]:
    """The ten digit words read by the first ``num_voices`` of :func:`installed_synthetic_voices`, as
    8 kHz WAVs under ``out_dir`` (``wav16k/``: the engines' 16 kHz output, reused by a re-run;
    ``wav/``: resampled to FSDD's 8 kHz). Returns ``(path, utt_id, word, speaker)`` members."""
    import soundfile as sf
    import torch

    from speechlm.synth.jobs import SAMPLE_RATE, run_synthesis_jobs

    voices = installed_synthetic_voices(seed)
    if not 1 <= num_voices <= len(voices):
        raise SpeechlmError(f"--synthetic-voices {num_voices}: {len(voices)} synthetic voices are installed "
                            f"here (espeak-ng, Piper); give 1..{len(voices)} (or 0 for none)")
    out = Path(out_dir)
    (out / "wav16k").mkdir(parents=True, exist_ok=True)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    members, jobs = [], []
    for voice in voices[:num_voices]:
        for digit, word in enumerate(DIGIT_WORDS):
            utt_id = f"synth-{voice['id']}-{digit}"
            jobs.append((str(out / "wav16k" / f"{utt_id}.wav"), word, voice))
            members.append((out / "wav" / f"{utt_id}.wav", utt_id, word, f"synth-{voice['id']}"))
    run_synthesis_jobs(jobs, num_jobs)
    from lhotse.augmentation.resample import Resample

    down = Resample(SAMPLE_RATE, SYNTHETIC_RATE)
    for (src, _, _), (dst, *_rest) in zip(jobs, members):
        if dst.is_file():
            continue
        audio, _ = sf.read(src, dtype="float32")
        with torch.no_grad():
            low = down(torch.from_numpy(audio)[None]).squeeze(0).clamp(-1, 1).numpy()
        tmp = dst.with_name(dst.stem + ".tmp.wav")
        sf.write(str(tmp), low, SYNTHETIC_RATE, subtype="PCM_16")
        tmp.replace(dst)
    logger.info("fsdd: %d synthetic digit utterances from %d voices under %s", len(members), num_voices, out)
    return members


def prepare_fsdd(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    split: str = "official",
    heldout_speaker: Optional[str] = None,
    dev_fraction: float = 0.1,
    on_error: str = "raise",
    synthetic_voices: int = 0,
    synthetic_dir: Optional[Pathlike] = None,
    seed: int = 0,
    num_jobs: int = 2,
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
    :param synthetic_voices: > 0: the training split also gets the digits read by this many
        synthetic voices (:func:`synthetic_digits`, written under ``synthetic_dir``; ``seed``
        orders the voices, ``num_jobs`` synthesis processes).
    :return: ``{split name: (RecordingSet, SupervisionSet)}``, items sorted by id.
    """
    if synthetic_voices < 0:
        raise SpeechlmError(f"--synthetic-voices {synthetic_voices}: give 0 (none) or more")
    if synthetic_voices and synthetic_dir is None:
        raise SpeechlmError("fsdd synthetic voices need a directory for their audio (--synthetic-dir)")

    def list_splits(skips: SkipCounter):
        files = list_fsdd_files(corpus_dir, skips)
        splits = {name: [(f.path, f.utt_id, DIGIT_WORDS[f.digit], f.speaker) for f in members]
                  for name, members in assign_splits(files, split, heldout_speaker, dev_fraction).items()}
        if synthetic_voices:
            splits["train"] += synthetic_digits(synthetic_dir, synthetic_voices, seed, num_jobs)
        return splits

    return prepare_file_splits("fsdd", list_splits, output_dir, on_error)


def add_arguments(p) -> None:
    """``speechlm prepare fsdd`` options."""
    p.add_argument("--corpus-dir", help="local copy (holds recordings/); downloaded when omitted")
    p.add_argument("--split", default="official", choices=SPLITS,
                   help="official: index 0-4 is test; speaker: --heldout-speaker is test")
    p.add_argument("--heldout-speaker", help="--split speaker: the test speaker")
    p.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad audio: stop with an error, or skip it with a counted warning")
    p.add_argument("--synthetic-voices", type=int, default=0, metavar="N",
                   help="add the ten digits read by N synthetic voices (espeak-ng, Piper; 8 kHz like FSDD) "
                        "to the training split (default: 0, none)")
    p.add_argument("--synthetic-dir", help="where their audio goes (default: OUT_DIR/../synthetic_digits)")
    p.add_argument("--seed", type=int, default=0, help="orders the synthetic voices (default: 0)")
    p.add_argument("--num-jobs", type=int, default=2, help="synthesis processes (default: 2)")


def prepare(args) -> str:
    corpus_dir = args.corpus_dir or download_fsdd(Path(args.out_dir).parent / "download")
    synthetic_dir = args.synthetic_dir or Path(args.out_dir).parent / "synthetic_digits"
    m = prepare_fsdd(corpus_dir, args.out_dir, split=args.split, heldout_speaker=args.heldout_speaker,
                     on_error=args.on_error, synthetic_voices=args.synthetic_voices,
                     synthetic_dir=synthetic_dir, seed=args.seed, num_jobs=args.num_jobs)
    return f"fsdd ({args.split} split): " + ", ".join(f"{k}={len(v[0])}" for k, v in m.items())
