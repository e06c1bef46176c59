"""Generic importers: a corpus in a common layout -> validated Lhotse manifests, split train/dev/test.

Three layouts are read (``KINDS``):

* ``kaldi-dir``: a Kaldi data directory — ``wav.scp`` (``<recording-id> <audio path>``),
  ``text`` (``<utterance-id> <transcript>``), ``utt2spk`` (optional; speakers unknown without it)
  and optional ``segments`` (``<utterance-id> <recording-id> <start> <end>``). Relative audio
  paths are looked up from the data dir, then its parent and grandparent (Kaldi recipes list
  them relative to the ``s5`` folder). Piped commands (``sox ... |``) and ``ark:offset`` entries
  are refused: convert them to audio files first. A folder whose subfolders ``train``/``dev``/
  ``test`` are data dirs gives those splits.
* ``folder``: audio files (``.wav .flac .ogg .mp3``) each with a same-named ``.txt`` or ``.lab``
  transcript. A file in a subfolder takes the subfolder's name as its speaker (``spk1/a.wav``);
  ``speaker_regex`` (a ``(?P<speaker>...)`` group matched on the file name) overrides that.
  Top-level subfolders named ``train``/``dev``/``test`` give those splits. The path may also be
  one audio file (with its transcript beside it).
* ``tsv``: a ``.tsv`` / ``.csv`` table with a header row naming its columns: ``path`` (or
  ``audio``, ``wav``, ``file``), ``text`` (or ``transcript``, ``sentence``), optionally
  ``speaker`` (or ``spk``, ``client_id``), ``id`` and ``split``. Paths are relative to the table.
  A table without a header names its columns with ``columns`` (``--columns path,text,speaker``;
  ``-`` for a column to ignore): every row is then an utterance.

Every utterance is checked (audio present and readable, transcript non-empty and UTF-8, ids
unique, segments inside their recording). With ``on_error="raise"`` (the default) all problems
are collected first and reported in one error naming the files; with ``"skip"`` the bad
utterances are left out and the same report is logged as warnings.

Transcripts are normalised in the corpus's language (``language``, default English) by
:func:`speechlm.text.normalize.normalize_transcript`: lower case, punctuation removed, digits
spelled out, hyphenated words split; a transcript with a bracketed note in words (``(5 seconds
of silence)``) or a number whose reading is unknown (``28.8``, ``H.323``) is left out and counted
(never an error). The summary line says how many transcripts each rule changed, and a warning
names dev/test characters that no training transcript has (a tokenizer trained on the training
text could not spell them). ``lowercase=False`` (``--keep-case``) only collapses whitespace.

A corpus may be a test set only: a given split without train (all rows ``split=test``, only a
``test/`` folder), ``test_fraction=1.0``, or a corpus too small to split (one file). That is how
a trained model is scored on new data (``speechlm decode --data``).

When the corpus has no split, one is made without randomness (:func:`auto_split`): by speaker
when every utterance has one and there are at least 3 speakers, else by recording (else, for a
few long segmented recordings, by segment).

``unlabeled=True`` (``speechlm import ... --unlabeled``) reads the audio alone, for
self-supervised pretraining: transcripts are neither needed nor read (a folder's audio files
without ``.txt``; a Kaldi dir's ``wav.scp`` and optional ``segments``, no ``text``; a table's
``path`` column). Everything goes to one split, ``unlabeled``, whose cuts have no supervision
(whole files) or supervisions without text (segments); a test split that the corpus gives is
left out, so test audio never reaches pretraining.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lhotse import CutSet, Recording, SupervisionSegment

from speechlm.data.corpus import (
    Pathlike,
    SkipCounter,
    UniqueIds,
    check_on_error,
    finish_split,
    load_recording,
    manifest_paths,
    whole_recording_supervision,
)
from speechlm.base.errors import SpeechlmError
from speechlm.base.files import read_text_file
from speechlm.data.audio_io import AUDIO_SUFFIXES
from speechlm.data.import_options import KINDS
from speechlm.text.normalize import NORMALIZE_LANGUAGES, RuleCounts, check_language, normalize_transcript

logger = logging.getLogger(__name__)

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
SPLIT_NAMES = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev",
               "test": "test", "eval": "test"}
# Files beside a corpus that are documentation, not transcripts.
_DOC_STEMS = {"readme", "license", "licence", "copying", "source", "notes"}
_TABLE_COLUMNS = {
    "path": ("path", "audio", "wav", "file", "filename", "audio_path"),
    "text": ("text", "transcript", "transcription", "sentence"),
    "speaker": ("speaker", "spk", "speaker_id", "client_id"),
    "id": ("id", "utt_id", "utterance_id"),
    "split": ("split", "subset"),
}
MIN_SPEAKERS_FOR_SPEAKER_SPLIT = 3


@dataclass
class Utterance:
    """One transcribed utterance as a corpus lists it, before its audio is read."""

    id: str
    audio: Path
    text: Optional[str]  # None: unlabeled audio
    source: str  # where it was listed, for messages: "text:12", "a/b.txt" ...
    speaker: Optional[str] = None
    recording_id: str = ""  # defaults to id (one utterance per file)
    start: float = 0.0
    end: Optional[float] = None  # None: to the end of the recording
    split: Optional[str] = None  # given by the corpus layout

    def __post_init__(self) -> None:
        self.recording_id = self.recording_id or self.id


@dataclass
class ImportResult:
    """What :func:`import_corpus` found; ``manifests`` maps split -> (RecordingSet, SupervisionSet)."""

    kind: str
    path: Path
    manifests: Dict[str, tuple]
    split_how: str  # "given by the corpus", "by speaker", "by recording"
    num_skipped: int = 0
    speakers: List[str] = field(default_factory=list)
    normalization: str = ""  # "en: changed: number 3, ...; excluded: description 1" (RuleCounts)
    unseen_chars: str = ""  # dev/test characters no training transcript has, e.g. "'ñ' (2 utterances)"

    @property
    def splits(self) -> List[str]:
        return [s for s in ("train", "dev", "test") if s in self.manifests]

    @property
    def num_utterances(self) -> int:
        return sum(len(sups) or len(recs) for recs, sups in self.manifests.values())

    @property
    def hours(self) -> float:
        return sum(sum(s.duration for s in sups) if len(sups) else sum(r.duration for r in recs)
                   for recs, sups in self.manifests.values()) / 3600

    def summary(self) -> str:
        counts = ", ".join(f"{s}={len(sups) or len(recs)}" for s in self.splits or list(self.manifests)
                           for recs, sups in [self.manifests[s]])
        spk = f", {len(self.speakers)} speakers" if self.speakers else ", speakers unknown"
        skipped = f", {self.num_skipped} skipped" if self.num_skipped else ""
        norm = f"; transcripts {self.normalization}" if self.normalization else ""
        return (f"{self.kind} {self.path}: {self.num_utterances} utterances, {self.hours:.2f} h"
                f"{spk}{skipped}; split {self.split_how}: {counts}{norm}")


# --- reading files -------------------------------------------------------------------------


def _kaldi_table(path: Path) -> List[Tuple[int, str, str]]:
    """``(line number, key, rest)`` for each non-empty line of a Kaldi ``key value...`` file."""
    rows = []
    for n, line in enumerate(read_text_file(path).splitlines(), 1):
        fields = line.strip().split(maxsplit=1)  # Kaldi allows tabs as well as spaces
        if fields:
            rows.append((n, fields[0], fields[1].strip() if len(fields) > 1 else ""))
    return rows


def _add_id(ids: UniqueIds, item_id: str, where: str, problems: SkipCounter) -> bool:
    """Record ``item_id``; False (and a counted problem) when another place produced it."""
    try:
        ids.add(item_id, where)
    except SpeechlmError:
        problems.add(f"duplicate id (first seen at {ids.owner[item_id]})", where)
        return False
    return True


# --- kaldi-dir -----------------------------------------------------------------------------


def _kaldi_audio_path(value: str, data_dir: Path, where: str) -> Path:
    if value.endswith("|") or value == "-" or re.search(r"\.ark:\d+$", value):
        raise SpeechlmError(
            f"{where}: '{value}' is a piped command or archive offset, which is not supported: "
            "speechlm reads audio files. Convert the audio to files first (e.g. run each "
            "command with its output redirected to <recording-id>.wav) and list those paths "
            "in wav.scp."
        )
    path = Path(value)
    if path.is_absolute():
        return path
    for base in (data_dir, data_dir.parent, data_dir.parent.parent):
        if (base / path).exists():
            return (base / path).absolute()
    return (data_dir / path).absolute()


def list_kaldi_dir(data_dir: Path, problems: SkipCounter, split: Optional[str] = None,
                   unlabeled: bool = False) -> List[Utterance]:
    """Utterances of one Kaldi data dir (``wav.scp``, ``text``, optional ``utt2spk``/``segments``;
    ``unlabeled``: ``text`` is not read, every segment or recording is an utterance)."""
    for name in ("wav.scp",) if unlabeled else ("wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise SpeechlmError(
                f"{data_dir}: not a Kaldi data dir: {name} is missing (expected wav.scp, text, "
                "utt2spk and optionally segments)."
            )
    wavs: Dict[str, Path] = {}
    rec_ids = UniqueIds("recording id")
    for n, key, value in _kaldi_table(data_dir / "wav.scp"):
        where = f"{data_dir / 'wav.scp'}:{n}"
        if not value:
            problems.add("wav.scp line has no audio path", where)
        elif _add_id(rec_ids, key, where, problems):
            wavs[key] = _kaldi_audio_path(value, data_dir, where)
    segments: Dict[str, Tuple[str, float, Optional[float]]] = {}
    if (data_dir / "segments").is_file():
        for n, key, value in _kaldi_table(data_dir / "segments"):
            fields = value.split()
            try:
                rec, start, end = fields[0], float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                problems.add("segments line is not '<utt> <recording> <start> <end>'",
                             f"{data_dir / 'segments'}:{n}")
                continue
            segments[key] = (rec, start, end if end > 0 else None)
    speakers: Dict[str, str] = {}
    has_utt2spk = (data_dir / "utt2spk").is_file()
    if has_utt2spk:
        speakers = {key: value for _, key, value in _kaldi_table(data_dir / "utt2spk")}
    else:
        logger.warning(f"{data_dir}: no utt2spk, so speakers are unknown")

    if unlabeled:
        listed = segments or {k: (k, 0.0, None) for k in wavs}
        for key in sorted(k for k, (rec, _, _) in listed.items() if rec not in wavs):
            problems.add("no audio: recording id not in wav.scp", f"{data_dir / 'segments'}: {key}")
        return [Utterance(key, wavs[rec], None, f"{data_dir}: {key}", speakers.get(key), rec, start, end, split)
                for key, (rec, start, end) in listed.items() if rec in wavs]
    utts, ids, with_text = [], UniqueIds(), set()
    for n, key, text in _kaldi_table(data_dir / "text"):
        where = f"{data_dir / 'text'}:{n}"
        if not _add_id(ids, key, where, problems):
            continue
        with_text.add(key)
        rec, start, end = segments.get(key, (key, 0.0, None)) if segments else (key, 0.0, None)
        if segments and key not in segments:
            problems.add("utterance is not in segments", where)
        elif rec not in wavs:
            problems.add("no audio: recording id not in wav.scp", where)
        elif has_utt2spk and key not in speakers:
            problems.add("utterance is not in utt2spk", where)
        else:
            utts.append(Utterance(key, wavs[rec], text, where, speakers.get(key), rec, start, end, split))
    listed = set(segments) if segments else set(wavs)
    for key in sorted(listed - with_text):
        problems.add("no transcript: id not in text", f"{data_dir}: {key}")
    return utts


# --- folder --------------------------------------------------------------------------------


def _transcript_for(audio: Path) -> Optional[Path]:
    for suffix in TRANSCRIPT_SUFFIXES:
        if audio.with_suffix(suffix).is_file():
            return audio.with_suffix(suffix)
    return None


def list_folder(
    root: Path, problems: SkipCounter, split: Optional[str] = None, speaker_regex: Optional[str] = None,
    unlabeled: bool = False,
) -> List[Utterance]:
    """Audio files under ``root`` with same-named ``.txt``/``.lab`` transcripts (``root`` may
    also be one audio file: that file alone); ``unlabeled``: the audio files alone."""
    pattern = re.compile(speaker_regex) if speaker_regex else None
    if pattern is not None and "speaker" not in pattern.groupindex:
        raise SpeechlmError(f"speaker regex {speaker_regex!r} needs a (?P<speaker>...) group")
    if root.is_file():
        base = root.parent
        files = [root] + [t for t in map(root.with_suffix, TRANSCRIPT_SUFFIXES) if t.is_file()]
    else:
        base = root
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    utts, ids = [], UniqueIds()
    for path in audio:
        rel = path.relative_to(base)
        transcript, text = None, None
        if not unlabeled:
            transcript = _transcript_for(path)
            if transcript is None:
                problems.add(f"audio without a transcript ({'/'.join(TRANSCRIPT_SUFFIXES)})", path)
                continue
            try:
                text = read_text_file(transcript)
            except SpeechlmError:
                problems.add("transcript is not UTF-8 text", transcript)
                continue
        speaker = rel.parts[0] if len(rel.parts) > 1 else None
        if pattern is not None:
            m = pattern.search(path.stem)
            if m is None:
                problems.add(f"file name does not match speaker regex {speaker_regex!r}", path)
                continue
            speaker = m["speaker"]
        utt_id = "-".join(rel.with_suffix("").parts)
        if _add_id(ids, utt_id, str(path), problems):
            utts.append(Utterance(utt_id, path, text, str(transcript or path), speaker, split=split))
    audio_stems = {p.with_suffix("") for p in audio}
    for path in files if not unlabeled else ():
        if (path.suffix.lower() in TRANSCRIPT_SUFFIXES and path.with_suffix("") not in audio_stems
                and path.stem.lower() not in _DOC_STEMS):
            problems.add("transcript without an audio file", path)
    return utts


# --- tsv -----------------------------------------------------------------------------------


def _table_columns(header: Sequence[str], path: Path, unlabeled: bool = False) -> Dict[str, int]:
    names = [h.strip().lower() for h in header]
    cols = {}
    for role, aliases in _TABLE_COLUMNS.items():
        for i, name in enumerate(names):
            if name in aliases:
                cols.setdefault(role, i)
    missing = [r for r in ("path",) if r not in cols] if unlabeled else \
        [r for r in ("path", "text") if r not in cols]
    if missing:
        raise SpeechlmError(
            f"{path}:1: the first row must be a header naming the columns, with at least "
            f"'path' and 'text' (optional 'speaker', 'id', 'split'); found {[h.strip() for h in header]}, "
            f"no {missing}. A table without a header row: name its columns with --columns, "
            "e.g. --columns path,text,speaker ('-' for a column to ignore)."
        )
    return cols


def parse_columns(columns: str | Sequence[str], unlabeled: bool = False) -> List[str]:
    """``"path,text,-,speaker"`` -> the role of each column of a header-less table, checked."""
    roles = [c.strip() for c in (columns.split(",") if isinstance(columns, str) else columns)]
    known = sorted(_TABLE_COLUMNS) + ["-"]
    bad = [r for r in roles if r not in known]
    twice = sorted({r for r in roles if r != "-" and roles.count(r) > 1})
    missing = [r for r in (("path",) if unlabeled else ("path", "text")) if r not in roles]
    if bad or twice or missing:
        why = (f"unknown column name(s) {bad}" if bad else f"{twice} named twice" if twice
               else f"no {missing} column")
        raise SpeechlmError(
            f"--columns {','.join(roles)!s}: {why}; name each column, in order, one of {known} "
            "('-' to ignore it), with at least path and text, e.g. --columns path,text,speaker"
        )
    return roles


def list_table(path: Path, problems: SkipCounter, columns: Optional[Sequence[str]] = None,
               unlabeled: bool = False) -> List[Utterance]:
    """Utterances listed in a TSV/CSV with a header row, or without one when ``columns`` names
    the columns (see the module docstring); ``unlabeled``: the text column is not read."""
    text = read_text_file(path)
    suffix = path.suffix.lower()
    delimiter = "\t" if suffix == ".tsv" else "," if suffix == ".csv" else (
        "\t" if "\t" in text.partition("\n")[0] else ",")
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        raise SpeechlmError(f"{path}: the table is empty (expected a header row, then one row per utterance)")
    if columns:
        roles = parse_columns(columns, unlabeled)
        cols = {role: i for i, role in enumerate(roles) if role != "-"}
        width, first, against = len(roles), 1, f"--columns ({len(roles)})"
    else:
        cols = _table_columns(rows[0], path, unlabeled)
        width, first, against = len(rows[0]), 2, f"the header ({len(rows[0])})"
    utts, ids = [], UniqueIds()
    for n, row in enumerate(rows[first - 1:], first):
        where = f"{path}:{n}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            problems.add(f"row has a different number of fields than {against}", where)
            continue
        get = lambda role: row[cols[role]].strip() if role in cols else ""  # noqa: E731
        audio = Path(get("path"))
        utt_id = get("id") or audio.stem
        split = get("split").lower() or None
        if split is not None and split not in SPLIT_NAMES:
            problems.add(f"split is not one of {sorted(SPLIT_NAMES)}", where)
            continue
        if _add_id(ids, utt_id, where, problems):
            utts.append(Utterance(utt_id, audio if audio.is_absolute() else path.parent / audio,
                                  None if unlabeled else get("text"), where, get("speaker") or None,
                                  split=SPLIT_NAMES.get(split or "")))
    return utts


# --- splitting -----------------------------------------------------------------------------


def _stable_order(keys) -> List[str]:
    """Keys in a fixed pseudo-random order (same on every machine and Python version)."""
    return sorted(keys, key=lambda k: (hashlib.sha1(k.encode("utf-8")).hexdigest(), k))


def _fill(groups: Dict[str, List[Utterance]], total: int, dev_fraction: float, test_fraction: float):
    remaining = _stable_order(groups)
    out: Dict[str, List[Utterance]] = {"test": [], "dev": []}
    for name, fraction in (("test", test_fraction), ("dev", dev_fraction)):
        target = max(1, round(fraction * total)) if fraction > 0 else 0
        for key in list(remaining):
            if len(out[name]) >= target or len(remaining) == 1:
                break
            if len(out[name]) + len(groups[key]) <= 2 * target:  # a too-big group stays in train
                out[name].extend(groups[key])
                remaining.remove(key)
    out["train"] = [u for key in remaining for u in groups[key]]
    return out


def auto_split(
    utts: List[Utterance], dev_fraction: float = 0.1, test_fraction: float = 0.1
) -> Tuple[Dict[str, List[Utterance]], str]:
    """Split a corpus that has no split of its own; deterministic (no random numbers).

    Groups (speakers when every utterance has one and there are at least
    ``MIN_SPEAKERS_FOR_SPEAKER_SPLIT``, else recordings, else segments) are visited in a fixed hash order and
    moved to test, then dev, until each holds its fraction of the utterances; a group more than
    twice that size is left in train, and train always keeps at least one group.

    ``test_fraction`` 1.0 makes the whole corpus a test set (an evaluation-only corpus; dev is
    then empty), and so does a corpus too small to give both a train and a test part (with a
    warning: a single recording, for instance).
    """
    if test_fraction == 1.0:
        return {"test": list(utts)}, "all test (--test-fraction 1)"
    if not (0 <= dev_fraction < 1 and 0 < test_fraction < 1 and dev_fraction + test_fraction < 1):
        raise SpeechlmError(f"split fractions must be in [0, 1) and sum below 1 (or test 1.0: all "
                            f"test): dev={dev_fraction}, test={test_fraction}")
    speakers = {u.speaker for u in utts}
    attempts = []
    if None not in speakers and len(speakers) >= MIN_SPEAKERS_FOR_SPEAKER_SPLIT:
        attempts.append(("by speaker", lambda u: u.speaker))
    attempts.append(("by recording", lambda u: u.recording_id))
    if any(u.recording_id != u.id for u in utts):  # segments of a few long recordings
        attempts.append(("by utterance", lambda u: u.id))
    for how, key in attempts:
        groups: Dict[str, List[Utterance]] = defaultdict(list)
        for u in utts:
            groups[key(u)].append(u)
        out = _fill(groups, len(utts), dev_fraction, test_fraction)
        if out["test"] and out["train"]:
            return {k: v for k, v in out.items() if v}, how
        logger.info(f"split {how} gives an empty train or test set; trying the next way")
    logger.warning(
        f"the corpus is too small to split into train and test ({len(utts)} utterances): all of it "
        "is a test set. To train on it, add audio or give the split yourself (train/ and test/ "
        "folders, or a 'split' column).")
    return {"test": list(utts)}, "all test (too small to split)"


def given_split(utts: List[Utterance], what: str) -> Dict[str, List[Utterance]]:
    """The corpus's own split (utterances it leaves unassigned go to train). It must have test
    utterances; train may be absent: an evaluation-only corpus (all rows split=test, only a
    test/ folder)."""
    out: Dict[str, List[Utterance]] = defaultdict(list)
    for u in utts:
        out[u.split or "train"].append(u)
    if not out.get("test"):
        raise SpeechlmError(
            f"{what}: the corpus gives its own split but has no usable 'test' utterances; "
            "give a test split, or no split at all (one is then made for you)."
        )
    return dict(out)


# --- manifests -----------------------------------------------------------------------------


def _lister(kind: str, path: Path, problems: SkipCounter, speaker_regex: Optional[str],
            columns: Optional[Sequence[str]] = None, unlabeled: bool = False) -> List[Utterance]:
    if columns and kind != "tsv":
        raise SpeechlmError(f"--columns names the columns of a header-less table: it means nothing "
                            f"for a {kind}; leave it out")
    if kind == "tsv":
        if not path.is_file():
            raise SpeechlmError(f"{path}: table not found (expected a .tsv or .csv file)")
        return list_table(path, problems, columns, unlabeled)
    if kind == "folder" and path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        return list_folder(path, problems, None, speaker_regex, unlabeled)  # one recording (+ its transcript)
    if not path.is_dir():
        raise SpeechlmError(f"{path}: not a directory (expected a {kind}"
                            + (", or one audio file" if kind == "folder" else "") + ")")
    split_dirs = {SPLIT_NAMES[d.name]: d for d in sorted(path.iterdir())
                  if d.is_dir() and d.name in SPLIT_NAMES}
    if kind == "kaldi-dir":
        if (path / "wav.scp").is_file() or not split_dirs:
            return list_kaldi_dir(path, problems, unlabeled=unlabeled)
        return [u for s, d in split_dirs.items() for u in list_kaldi_dir(d, problems, s, unlabeled)]
    if kind == "folder":
        if not split_dirs:
            return list_folder(path, problems, None, speaker_regex, unlabeled)
        return [u for s, d in split_dirs.items()
                for u in list_folder(d, problems, s, speaker_regex, unlabeled)]
    raise SpeechlmError(f"unknown corpus kind '{kind}'; choose one of {KINDS}")


def _check_problems(problems: SkipCounter, on_error: str, what: str) -> None:
    if not problems.total:
        return
    if on_error == "skip":
        problems.report()
        return
    lines = [f"  {len(items)} x {reason}: " + ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
             for reason, items in sorted(problems.items.items())]
    raise SpeechlmError(
        f"{what}: {problems.total} problem(s) found:\n" + "\n".join(lines) +
        "\nFix these files, or re-run with --on-error skip to leave those utterances out."
    )


def _supervision(u: Utterance, rec: Recording, problems: SkipCounter) -> Optional[SupervisionSegment]:
    if u.end is None and u.start == 0.0:
        if u.text is None:  # unlabeled whole file: the cut is the recording, no supervision
            return None
        return whole_recording_supervision(rec, u.text, speaker=u.speaker)
    end = rec.duration if u.end is None else min(u.end, rec.duration)
    if u.start < 0 or end <= u.start or (u.end or 0) > rec.duration + 0.05:
        problems.add(f"segment is outside its recording (duration {rec.duration:.2f} s)", u.source)
        return None
    return SupervisionSegment(id=u.id, recording_id=rec.id, start=u.start, duration=round(end - u.start, 6),
                              channel=rec.channel_ids[0], text=u.text, speaker=u.speaker)


def _read_audio(utts: List[Utterance], problems: SkipCounter):
    """Load each recording once; return the utterances kept and their supervisions."""
    recordings: Dict[str, Optional[Recording]] = {}
    kept = []
    for u in utts:
        if u.recording_id not in recordings:
            recordings[u.recording_id] = load_recording(u.audio, u.recording_id, on_error="skip", skips=problems)
        rec = recordings[u.recording_id]
        sup = _supervision(u, rec, problems) if rec is not None else None
        if sup is not None or (rec is not None and u.text is None and u.end is None and u.start == 0.0):
            kept.append((u, rec, sup))
    return kept


def _write_segment_cuts(recs, sups, out_dir: Path, prefix: str, split: str) -> None:
    """Replace the per-recording cuts by one cut per segment (the unit ASR trains on)."""
    final = manifest_paths(out_dir, prefix, split)["cuts"]
    tmp = final.with_name(f".tmp.{final.name}")
    CutSet.from_manifests(recordings=recs, supervisions=sups).trim_to_supervisions(
        keep_overlapping=False).to_file(tmp)
    tmp.replace(final)


def _import_unlabeled(kind: str, path: Path, utts: List[Utterance], problems: SkipCounter,
                      output_dir: Optional[Pathlike], prefix: str, on_error: str) -> ImportResult:
    """The ``unlabeled`` split of :func:`import_corpus`: audio without text, test audio left out."""
    what = f"{kind} {path}"
    test = [u for u in utts if u.split == "test"]
    if test:
        logger.warning(f"{what}: --unlabeled leaves out the {len(test)} utterances of the corpus's "
                       "test split (test audio is never used for pretraining)")
    utts = [u for u in utts if u.split != "test"]
    if not utts and not problems.total:
        raise SpeechlmError(f"{what}: no audio found" + (" outside the test split" if test else "")
                            + f" (audio files: {' '.join(AUDIO_SUFFIXES)})")
    kept = _read_audio(utts, problems)
    _check_problems(problems, on_error, what)
    if not kept:
        raise SpeechlmError(f"{what}: no usable audio left after skipping the problems above")
    recs = {rec.id: rec for _, rec, _ in kept}
    sups = [sup for _, _, sup in kept if sup is not None]
    manifests = {"unlabeled": finish_split(list(recs.values()), sups, output_dir, prefix, "unlabeled")}
    if sups and output_dir is not None:  # segments: one cut per segment, as for labelled data
        _write_segment_cuts(*manifests["unlabeled"], Path(output_dir), prefix, "unlabeled")
    speakers = sorted({u.speaker for u, _, _ in kept if u.speaker})
    result = ImportResult(kind, path, manifests, "none (unlabeled audio, test split left out)",
                          problems.total, speakers)
    logger.info(result.summary())
    return result


def import_corpus(
    kind: str,
    path: Pathlike,
    output_dir: Optional[Pathlike] = None,
    prefix: str = "corpus",
    on_error: str = "raise",
    lowercase: bool = True,
    language: str = "en",
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    speaker_regex: Optional[str] = None,
    columns: Optional[str | Sequence[str]] = None,
    unlabeled: bool = False,
) -> ImportResult:
    """Read a ``kaldi-dir``, ``folder`` or ``tsv`` corpus, check it, split it, write manifests.

    :param kind: one of :data:`KINDS` (see the module docstring for each layout).
    :param path: the data dir, folder or table.
    :param output_dir: if given, writes ``<prefix>_{recordings,supervisions,cuts}_<split>.jsonl.gz``.
    :param prefix: manifest name prefix (the recipe's corpus name).
    :param on_error: ``"raise"``: any problem stops the import with one message listing them all;
        ``"skip"``: bad utterances are left out and reported as warnings.
    :param lowercase: normalise transcripts with :func:`speechlm.text.normalize.normalize_transcript`
        in ``language`` (case, punctuation, digits to words, bracketed notes; its docstring lists the
        rules; changes and exclusions are counted in the summary); False: only whitespace.
    :param language: the transcripts' language code (``en es fr it ru``).
    :param dev_fraction: share of utterances for dev when the corpus has no split (0: no dev).
    :param test_fraction: share of utterances for test when the corpus has no split.
    :param speaker_regex: ``folder`` only: regex with a ``(?P<speaker>...)`` group on file names.
    :param columns: ``tsv`` only: the columns of a table without a header row, e.g.
        ``"path,text,speaker"`` (``-`` for a column to ignore).
    :param unlabeled: read the audio alone (no transcripts) into one split ``unlabeled``, for
        self-supervised pretraining; a test split the corpus gives is left out.
    :return: an :class:`ImportResult` (manifests per split, sizes, how it was split).
    """
    check_on_error(on_error)
    path = Path(path)
    what = f"{kind} {path}"
    problems = SkipCounter(what)
    ids = UniqueIds()  # across split folders too
    if lowercase and not unlabeled:
        check_language(language, "--language", NORMALIZE_LANGUAGES)
    utts = [u for u in _lister(kind, path, problems, speaker_regex, columns, unlabeled)
            if _add_id(ids, u.id, u.source, problems)]
    if unlabeled:
        return _import_unlabeled(kind, path, utts, problems, output_dir, prefix, on_error)
    counts, excluded = RuleCounts(), SkipCounter(what)
    for u in utts:
        if not lowercase:
            u.text = " ".join(u.text.split())
        elif u.text.strip():
            result = normalize_transcript(u.text, language)
            if result.excluded:
                text = " ".join(u.text.split())
                excluded.add(EXCLUSION_WHY[result.excluded],
                             f"{u.source}: {text[:60] + '...' if len(text) > 60 else text!r}")
            u.text = counts.add(result) or ""
            if result.excluded:
                continue
        if not u.text:
            problems.add("empty transcript", u.source)
    utts = [u for u in utts if u.text]
    excluded.report()
    if not utts and not problems.total:
        raise SpeechlmError(
            f"{what}: no utterances found. Expected "
            + {"kaldi-dir": "wav.scp and text files",
               "tsv": "rows (after the header)" if columns else "rows after the header",
               "folder": f"audio files ({' '.join(AUDIO_SUFFIXES)}) with same-named .txt/.lab transcripts"}[kind]
            + "."
        )
    kept = _read_audio(utts, problems)
    _check_problems(problems, on_error, what)
    if not kept:
        raise SpeechlmError(f"{what}: no usable utterances left after skipping the problems above")
    by_id = {u.id: (rec, sup) for u, rec, sup in kept}
    if any(u.split for u, _, _ in kept):
        splits, how = given_split([u for u, _, _ in kept], what), "given by the corpus"
    else:
        splits, how = auto_split([u for u, _, _ in kept], dev_fraction, test_fraction)
    manifests = {}
    segmented = any(sup.start > 0 or sup.duration < rec.duration - 1e-3 for rec, sup in by_id.values())
    for name in ("train", "dev", "test"):
        if name not in splits:
            continue
        recs = {by_id[u.id][0].id: by_id[u.id][0] for u in splits[name]}
        sups = [by_id[u.id][1] for u in splits[name]]
        manifests[name] = finish_split(list(recs.values()), sups, output_dir, prefix, name)
        if segmented and output_dir is not None:
            _write_segment_cuts(*manifests[name], Path(output_dir), prefix, name)
    speakers = sorted({u.speaker for u, _, _ in kept if u.speaker})
    unseen = unseen_characters({name: [u.text for u in split] for name, split in splits.items()})
    if unseen:
        logger.warning("%s: dev/test transcripts use characters no training transcript has: %s. "
                       "A tokenizer trained on the training text cannot spell them (each counts as "
                       "an error); normalise them in the data or move such utterances to train",
                       what, unseen)
    result = ImportResult(kind, path, manifests, how, problems.total, speakers,
                          f"({language}) {counts.line()}" if lowercase else "", unseen)
    logger.info(result.summary())
    return result


# why normalize_transcript leaves a transcript out, as an import's skip reason
EXCLUSION_WHY = {
    "description": "transcript has a bracketed note with words, e.g. '(5 seconds of silence)' "
                   "(whether its words were spoken is unknown)",
    "number-ambiguous": "transcript has a number whose reading is unknown, e.g. '28.8', 'H.323'",
    "empty": "transcript is only punctuation",
}


def unseen_characters(texts_by_split: Dict[str, List[str]], max_shown: int = 8) -> str:
    """"" when every dev/test character occurs in some training transcript, else e.g.
    ``"'ñ' (2 utterances), 'ç' (1 utterance)"``."""
    known = {ch for t in texts_by_split.get("train", ()) for ch in t}
    if not known:
        return ""
    users: Dict[str, int] = {}
    for name in ("dev", "test"):
        for text in texts_by_split.get(name, ()):
            for ch in set(text) - known:
                users[ch] = users.get(ch, 0) + 1
    shown = sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))[:max_shown]
    more = ", ..." if len(users) > max_shown else ""
    return ", ".join(f"{ch!r} ({n} utterance{'s' if n > 1 else ''})" for ch, n in shown) + more

