"""LibriSpeech (OpenSLR 12), read with Lhotse's recipe; see :mod:`speechlm.corpora.lhotse_recipes`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from speechlm.base.errors import SpeechlmError
from speechlm.corpora.lhotse_recipes import _download, _write_splits
from speechlm.data.corpus import Pathlike

LIBRISPEECH_PARTS = {
    "100h": {"train": ["train-clean-100"], "dev": ["dev-clean"], "test": ["test-clean"]},
    "960h": {"train": ["train-clean-100", "train-clean-360", "train-other-500"],
             "dev": ["dev-clean"], "test": ["test-clean"]},
    "mini": {"train": ["train-clean-5"], "test": ["dev-clean-2"]},
}


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


def add_arguments(p) -> None:
    """``speechlm prepare librispeech`` options."""
    p.add_argument("--corpus-dir", default=None, help="the LibriSpeech folder (train-clean-100/, dev-clean/ ...)")
    p.add_argument("--download", action="store_true", help="download from OpenSLR when absent")
    p.add_argument("--prefix", default="librispeech", help="manifest name prefix")
    p.add_argument("--num-jobs", type=int, default=2, help="parallel readers")
    p.add_argument("--parts", default="100h", choices=sorted(LIBRISPEECH_PARTS),
                   help="training data: 100h | 960h | mini (train-clean-5)")


def prepare(args) -> str:
    if not args.corpus_dir:
        raise SpeechlmError("prepare librispeech: give --corpus-dir (the LibriSpeech folder; "
                            "with --download it is created there)")
    counts = prepare_librispeech_splits(args.corpus_dir, args.out_dir, prefix=args.prefix,
                                        parts=args.parts, download=args.download, num_jobs=args.num_jobs)
    return f"librispeech ({args.parts}): {counts}"
