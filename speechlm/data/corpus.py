"""Helpers shared by every corpus importer: checked audio loading, skip accounting,
duplicate-id detection, text normalisation, downloads and atomic manifest writing.

A corpus module (``speechlm/corpora/<name>.py``) or importer lists its files, derives ids and transcripts,
calls :func:`load_recording` per file and hands the result to :func:`write_manifests`.
Bad input raises :class:`~speechlm.base.errors.SpeechlmError` naming the file; with
``on_error="skip"`` unreadable audio is left out and counted in a :class:`SkipCounter`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union

from speechlm.base.errors import SpeechlmError

if TYPE_CHECKING:  # lhotse and soundfile load on first use: listing corpora stays fast
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

Pathlike = Union[str, Path]
T = TypeVar("T")
Manifests = Dict[str, Tuple["RecordingSet", "SupervisionSet"]]

logger = logging.getLogger(__name__)

ON_ERROR_CHOICES = ("raise", "skip")


class SkipCounter:
    """Counts items an importer leaves out, grouped by reason, and reports them once.

    >>> skips = SkipCounter("fsdd")
    >>> skips.add("name does not match {digit}_{speaker}_{index}.wav", "notes.wav")
    >>> skips.total
    1
    """

    def __init__(self, corpus: str, max_examples: int = 3) -> None:
        self.corpus = corpus
        self.max_examples = max_examples
        self.items: Dict[str, List[str]] = defaultdict(list)

    def add(self, reason: str, item: Pathlike) -> None:
        self.items[reason].append(str(item))

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.items.values())

    def count(self, reason: str) -> int:
        return len(self.items.get(reason, []))

    def lines(self) -> List[str]:
        """One line per reason: ``skipped N items: reason (examples ...)``."""
        out = []
        for reason, items in sorted(self.items.items()):
            examples = ", ".join(items[: self.max_examples])
            more = ", ..." if len(items) > self.max_examples else ""
            out.append(f"{self.corpus}: skipped {len(items)} items: {reason} ({examples}{more})")
        return out

    def report(self) -> None:
        """Log every reason as a warning; silent when nothing was skipped."""
        for line in self.lines():
            logger.warning(line)


class UniqueIds:
    """Remembers which file produced each id; a second file with the same id is an error."""

    def __init__(self, what: str = "utterance id") -> None:
        self.what = what
        self.owner: Dict[str, Path] = {}

    def add(self, item_id: str, path: Pathlike) -> None:
        path = Path(path)
        first = self.owner.setdefault(item_id, path)
        if first != path:
            raise SpeechlmError(
                f"duplicate {self.what} '{item_id}': produced by both {first} and {path}. "
                "Remove or rename one of the two files."
            )


def list_named_wavs(folder: Path, parse: Callable[[Path], Optional[T]], id_of: Callable[[T], str],
                    skips: SkipCounter, bad_name: str, none_found: str) -> List[T]:
    """Every ``*.wav`` in ``folder``, sorted by name, as ``parse(path)``; a file ``parse`` rejects
    (None) is counted in ``skips`` under ``bad_name``, a repeated ``id_of(item)`` is an error,
    and no file at all is the error ``none_found`` (it should say which folder to pass)."""
    items, ids = [], UniqueIds()
    for path in sorted(folder.glob("*.wav"), key=lambda p: p.name):
        item = parse(path)
        if item is None:
            skips.add(bad_name, path.name)
            continue
        ids.add(id_of(item), path)
        items.append(item)
    if not items:
        raise SpeechlmError(f"{folder}: {none_found}")
    return items


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR_CHOICES:
        raise SpeechlmError(f"on_error must be one of {ON_ERROR_CHOICES}, got '{on_error}'")


_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)  # data sizes a streaming writer leaves behind


def _wav_data_sizes(path: Path) -> Optional[Tuple[int, int]]:
    """(bytes of audio a RIFF/WAVE header declares, bytes the file holds after that header), or
    None for another format or a header that does not say."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while len(chunk := f.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return size, path.stat().st_size - f.tell()
            f.seek(size + (size & 1), os.SEEK_CUR)
    return None


def _truncation(path: Path, duration: float) -> Optional[str]:
    """Why ``path`` is a cut-off WAV (its header promises more audio than the file holds), or None."""
    sizes = _wav_data_sizes(path)
    if sizes is None or sizes[0] in _WAV_UNKNOWN_SIZES or sizes[0] <= sizes[1]:
        return None
    declared = duration * sizes[0] / max(sizes[1], 1)
    return (f"audio file is truncated (its header promises {declared:.2f} s of audio, the file "
            f"holds {duration:.2f} s: an interrupted copy or download)")


def _audio_problem(path: Path) -> Optional[str]:
    """Return why ``path`` is unusable audio, or None when it is fine.

    Reads the header and the first block of samples: enough to catch missing, corrupt,
    truncated and empty files without decoding whole corpora twice.
    """
    import soundfile as sf

    if not path.is_file():
        return "audio file is missing"
    try:
        info = sf.info(str(path))
        if info.frames == 0:
            return "audio file is empty (0 samples)"
        with sf.SoundFile(str(path)) as f:
            if len(f.read(frames=min(info.frames, 1024))) == 0:
                return "audio file is empty (0 samples)"
        return _truncation(path, info.duration)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        return f"audio file is corrupt or not a supported format ({e})"


def load_recording(
    path: Pathlike,
    rec_id: str,
    on_error: str = "raise",
    skips: Optional[SkipCounter] = None,
) -> Optional[Recording]:
    """Build a lhotse :class:`Recording` for one audio file after checking it is usable.

    :param path: the audio file.
    :param rec_id: id to give the recording (importers derive it from the file name).
    :param on_error: ``"raise"`` raises :class:`SpeechlmError` for a missing, empty or corrupt
        file; ``"skip"`` returns None instead and counts the reason in ``skips``.
    :param skips: where skipped files are counted (only used with ``on_error="skip"``).
    :return: the Recording, or None when the file was skipped.
    """
    from lhotse import Recording

    check_on_error(on_error)
    path = Path(path).absolute()
    problem = _audio_problem(path)
    if problem is None:
        try:
            return Recording.from_file(path, recording_id=rec_id)
        except Exception as e:  # lhotse raises a variety of types for unreadable audio
            problem = f"audio file could not be read by lhotse ({e})"
    if on_error == "skip":
        if skips is not None:
            skips.add(problem.split(" (")[0], path)
        return None
    raise SpeechlmError(
        f"{path}: {problem}. Replace or delete the file, or re-run with on_error='skip' "
        "to leave unreadable audio out."
    )


def whole_recording_supervision(recording: Recording, text: str, **kwargs) -> SupervisionSegment:
    """A supervision spanning all of ``recording`` with the same id (one utterance per file)."""
    from lhotse import SupervisionSegment

    return SupervisionSegment(
        id=recording.id,
        recording_id=recording.id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        text=text,
        **kwargs,
    )


def normalize_text(text: str) -> str:
    """Lowercase and collapse runs of whitespace to single spaces (no leading/trailing)."""
    return re.sub(r"\s+", " ", text.lower()).strip()


def manifest_paths(out_dir: Pathlike, prefix: str, split: str) -> Dict[str, Path]:
    """Where :func:`write_manifests` puts the three manifests of one split."""
    out_dir = Path(out_dir)
    return {
        kind: out_dir / f"{prefix}_{kind}_{split}.jsonl.gz"
        for kind in ("recordings", "supervisions", "cuts")
    }


def validated_sets(
    recordings: Iterable[Recording],
    supervisions: Iterable[SupervisionSegment],
    prefix: str,
    split: str,
) -> Tuple[RecordingSet, SupervisionSet]:
    """Sort one split by id (identical output on every machine) and validate it with lhotse
    (recordings alone when there are no supervisions: unlabeled audio).

    :raises SpeechlmError: when the split is empty or lhotse's validation fails.
    """
    from lhotse import RecordingSet, SupervisionSet, validate, validate_recordings_and_supervisions

    recs = RecordingSet.from_recordings(sorted(recordings, key=lambda r: r.id))
    sups = SupervisionSet.from_segments(sorted(supervisions, key=lambda s: s.id))
    if len(recs) == 0:
        raise SpeechlmError(
            f"{prefix} split '{split}' has no usable recordings; check the corpus directory "
            "and the skipped-items warnings above."
        )
    multi = [r.id for r in recs if r.num_channels > 1]
    if multi:
        logger.warning(f"{prefix}: {split}: {len(multi)} of {len(recs)} recordings have more than "
                       f"one channel (e.g. {multi[0]}); their features will be computed from the "
                       "mean of the channels")
    try:
        if len(sups):
            validate_recordings_and_supervisions(recs, sups)
        else:  # unlabeled audio (lhotse's check fails on an empty SupervisionSet)
            validate(recs)
    except (AssertionError, ValueError) as e:
        raise SpeechlmError(f"{prefix} split '{split}' failed manifest validation: {e}") from e
    return recs, sups


def write_manifests(
    recordings: Iterable[Recording],
    supervisions: Iterable[SupervisionSegment],
    out_dir: Pathlike,
    prefix: str,
    split: str,
) -> Tuple[RecordingSet, SupervisionSet, CutSet]:
    """Validate one split and write ``{prefix}_{recordings,supervisions,cuts}_{split}.jsonl.gz``.

    Each file is written under a temporary name and renamed into place, cuts last, so an
    interrupted run never leaves a complete-looking but partial manifest.

    :return: the sorted RecordingSet and SupervisionSet, and the CutSet built from them.
    """
    from lhotse import CutSet

    recs, sups = validated_sets(recordings, supervisions, prefix, split)
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups)
    paths = manifest_paths(out_dir, prefix, split)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for kind, manifest in (("recordings", recs), ("supervisions", sups), ("cuts", cuts)):
        final = paths[kind]
        # keep the .jsonl.gz suffixes so lhotse picks the right serialisation for the temp file
        tmp = final.with_name(f".tmp{os.getpid()}.{final.name}")
        try:
            manifest.to_file(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    return recs, sups, cuts


def finish_split(
    recordings: List[Recording],
    supervisions: List[SupervisionSegment],
    output_dir: Optional[Pathlike],
    prefix: str,
    split: str,
) -> Tuple[RecordingSet, SupervisionSet]:
    """Validate one split and, when ``output_dir`` is given, write its manifests."""
    if output_dir is None:
        recs, sups = validated_sets(recordings, supervisions, prefix, split)
    else:
        recs, sups, _ = write_manifests(recordings, supervisions, output_dir, prefix, split)
    logger.info(f"{prefix}: {split}: {len(recs)} utterances")
    return recs, sups


def download_file(url: str, dest: Path, corpus: str, force: bool = False) -> Path:
    """Fetch ``url`` to ``dest`` via a ``.part`` file; skip when ``dest`` already exists."""
    if dest.is_file() and not force:
        logger.info(f"{corpus}: {dest} already downloaded")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    logger.info(f"{corpus}: downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            shutil.copyfileobj(response, f)
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise SpeechlmError(
            f"could not download {corpus} from {url} ({e}). If you are offline, copy the "
            f"corpus by hand and pass its folder with --corpus-dir."
        ) from e
    os.replace(part, dest)
    return dest


def extract_wavs(
    archive: Path,
    dest_dir: Path,
    select: Callable[[str], bool],
    keep_paths: bool = False,
    suffixes: Tuple[str, ...] = (".wav",),
) -> int:
    """Extract the members of ``archive`` whose names end in one of ``suffixes`` and for which
    ``select(member_name)`` holds into ``dest_dir``, atomically: a temp folder renamed at the end.

    Flat by base name by default, so archive paths can never escape ``dest_dir``; with
    ``keep_paths`` the member's relative path is kept (a prompt tree such as ``digits/1.wav``),
    and members with absolute paths or ``..`` parts are ignored.
    """
    tmp_dir = dest_dir.with_name(f".tmp{os.getpid()}.{dest_dir.name}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    count = 0
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                name = member.name
                if not (member.isfile() and name.lower().endswith(suffixes) and select(name)):
                    continue
                rel = Path(name)
                if keep_paths and (rel.is_absolute() or ".." in rel.parts):
                    continue
                out_path = tmp_dir / (rel if keep_paths else rel.name)
                out_path.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                with src, open(out_path, "wb") as out:
                    shutil.copyfileobj(src, out)
                count += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise SpeechlmError(
            f"{archive}: archive is damaged or incomplete ({e}). Delete it and download again."
        ) from e
    if count == 0:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise SpeechlmError(f"{archive}: no .wav files found in the archive. Delete it and retry.")
    shutil.rmtree(dest_dir, ignore_errors=True)
    os.replace(tmp_dir, dest_dir)
    return count


def find_subdir(corpus_dir: Pathlike, name: str, corpus: str) -> Path:
    """Accept either the folder holding ``name/`` or ``name/`` itself; error if neither."""
    corpus_dir = Path(corpus_dir)
    if (corpus_dir / name).is_dir():
        return corpus_dir / name
    if corpus_dir.is_dir() and corpus_dir.name == name:
        return corpus_dir
    if corpus_dir.is_dir() and any(corpus_dir.glob("*.wav")):
        return corpus_dir
    raise SpeechlmError(
        f"{corpus_dir}: not a {corpus} corpus directory (expected it to contain '{name}/' "
        f"with .wav files). Pass the right --corpus-dir or download the corpus first."
    )


def download_corpus(corpus: str, url: str, target_dir: Pathlike, folder: str, archive_name: str,
                    select: Callable[[str], bool], force: bool = False, keep_paths: bool = False,
                    suffixes: Tuple[str, ...] = (".wav",)) -> Path:
    """Download ``url`` (a tarball) and extract its selected WAVs to ``target_dir/folder``,
    once: a ``.<corpus>.completed`` marker makes a second call a no-op (unless ``force``).
    ``keep_paths`` and ``suffixes``: see :func:`extract_wavs`.

    :return: ``target_dir``, the folder to pass to the corpus's ``prepare``.
    :raises SpeechlmError: when offline (suggests ``--corpus-dir``) or the archive is damaged.
    """
    target_dir = Path(target_dir)
    dest = target_dir / folder
    done = target_dir / f".{corpus}.completed"
    if done.is_file() and dest.is_dir() and not force:
        logger.info(f"{corpus}: {dest} already present, skipping download")
        return target_dir
    archive = download_file(url, target_dir / archive_name, corpus, force=force)
    n = extract_wavs(archive, dest, select=select, keep_paths=keep_paths, suffixes=suffixes)
    done.touch()
    logger.info(f"{corpus}: extracted {n} files to {dest}")
    return target_dir


# (audio file, utterance id, transcript, speaker[, language]) of a one-utterance-per-file
# corpus; a transcript of None makes a cut without supervision (unlabeled audio)
FileUtterance = Tuple[Path, str, Optional[str], str]


def prepare_file_splits(
    corpus: str,
    list_splits: Callable[[SkipCounter], Dict[str, List[FileUtterance]]],
    output_dir: Optional[Pathlike],
    on_error: str = "raise",
    language: str = "English",
) -> Manifests:
    """The prepare step of a corpus with one utterance per audio file.

    ``list_splits(skips)`` decides split membership from file names (before any audio is read,
    so a skipped file never shifts the others) and counts mis-named files in ``skips``; each
    file is then checked and loaded (:func:`load_recording`), and each split validated and,
    with ``output_dir``, written. Skips are reported once, also when a split fails. A member may
    carry its own language as a fifth item (else ``language``); a transcript of None gives a
    recording without supervision (its cut has no text: unlabeled audio).
    """
    check_on_error(on_error)
    skips = SkipCounter(corpus)
    manifests: Manifests = {}
    try:
        for name, members in list_splits(skips).items():
            recs, sups = [], []
            for path, utt_id, text, speaker, *own_language in members:
                rec = load_recording(path, utt_id, on_error=on_error, skips=skips)
                if rec is None:
                    continue
                recs.append(rec)
                if text is not None:
                    sups.append(whole_recording_supervision(
                        rec, text, speaker=speaker, language=own_language[0] if own_language else language))
            manifests[name] = finish_split(recs, sups, output_dir, corpus, name)
    finally:
        skips.report()
    return manifests
