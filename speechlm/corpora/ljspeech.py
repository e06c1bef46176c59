"""LJSpeech 1.1, read with Lhotse's recipe; see :mod:`speechlm.corpora.lhotse_recipes`."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from speechlm.base.errors import SpeechlmError
from speechlm.corpora.lhotse_recipes import _download, _write_splits
from speechlm.data.corpus import Pathlike


def prepare_ljspeech_splits(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    prefix: str = "ljspeech",
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


def add_arguments(p) -> None:
    """``speechlm prepare ljspeech`` options."""
    p.add_argument("--corpus-dir", default=None, help="the LJSpeech-1.1 folder (metadata.csv, wavs/)")
    p.add_argument("--download", action="store_true", help="download from OpenSLR when absent")
    p.add_argument("--prefix", default="ljspeech", help="manifest name prefix")
    p.add_argument("--num-jobs", type=int, default=2, help="parallel readers")


def prepare(args) -> str:
    if not args.corpus_dir:
        raise SpeechlmError("prepare ljspeech: give --corpus-dir (the LJSpeech-1.1 folder; "
                            "with --download it is created there)")
    counts = prepare_ljspeech_splits(args.corpus_dir, args.out_dir, prefix=args.prefix,
                                     download=args.download, num_jobs=args.num_jobs)
    return f"ljspeech: {counts}"
