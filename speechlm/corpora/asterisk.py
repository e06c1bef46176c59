"""Asterisk "core sounds" voice prompts: real studio recordings of telephone-system prompts, one
speaker per language (es, fr, it, ru), 8 kHz mono, about 25 minutes each.

Upstream: the Asterisk project's core-sounds release 1.6.1, ``wav`` flavour
(``asterisk-core-sounds-<lang>-wav-1.6.1.tar.gz``; CC-BY-SA-3.0 for es and fr, CC-BY-3.0 for it
and ru). One folder per language holds the prompt tree (``agent-alreadyon.wav``,
``digits/1.wav``, ``letters/a.wav`` ...) and ``core-sounds-<lang>.txt``, one line per prompt,
``<path without .wav>: <transcript>``, ``;`` starting a comment. ``--corpus-dir`` is the folder
holding the ``<lang>/`` folders (or, with one language, that language's folder itself); without it
the tarballs are downloaded.

Transcripts go through :mod:`speechlm.text.normalize` (rules there; the summary counts every rule
that changed a transcript and every prompt it excluded). Upstream quirks are counted skips, listed
in the summary: a line whose audio file is missing, an audio file without a line, a key listed
twice with different transcripts (which one the audio says is unknown), a malformed line. A line
that starts with its own key again (``conf-adminmenu: conf-adminmenu: ...``) has the echo removed.

Split, by prompt and deterministic, so that no test (or dev) sentence appears in the training
text: each transcript is cut into sentences at ``. ! ? ; …`` and every piece normalised; prompts
that share a normalised sentence (or their whole normalised text) form one group, and a group
goes to test, dev or train by a hash of its first sentence in sorted order (``test_fraction``,
``dev_fraction`` of the hash range). Identical sentences therefore never straddle splits; each
language is split on its own, so a multilingual run's test set is the union of the monolingual
ones.

Manifests (prefix ``asterisk``): ``train``, ``dev``, ``test``; with several languages also
``test_<lang>`` per language; with ``unlabeled`` folders (e.g. ``it_menardi``, a second Italian
voice without transcripts) an ``unlabeled`` split of cuts without supervisions, for pretraining.
Utterance ids are ``<lang>-<key>`` with ``/`` written ``-`` (``es-digits-1``); the speaker is
``asterisk-<lang>``; supervisions carry the language's name (``Spanish`` ...).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from speechlm.base.errors import SpeechlmError
from speechlm.data.corpus import (
    FileUtterance,
    Manifests,
    Pathlike,
    SkipCounter,
    UniqueIds,
    download_corpus,
    prepare_file_splits,
)
from speechlm.text.normalize import LANGUAGES, RuleCounts, normalize_transcript, parse_languages

logger = logging.getLogger(__name__)

VERSION = "1.6.1"
URL = ("https://downloads.asterisk.org/pub/telephony/sounds/releases/"
       "asterisk-core-sounds-{lang}-wav-" + VERSION + ".tar.gz")
PREFIX = "asterisk"
SENTENCE_END = re.compile(r"[.!?;…]+(?:\s|$)")

NO_AUDIO = "transcript line has no audio file"
NO_LINE = "audio file has no transcript line"
TWO_TRANSCRIPTS = "key listed twice with different transcripts"
BAD_LINE = "line is not '<key>: <transcript>'"
EXCLUDED = "transcript excluded by normalisation"


def transcript_file(lang: str) -> str:
    return f"core-sounds-{lang}.txt"


def download_asterisk(target_dir: Pathlike, langs: Sequence[str], force_download: bool = False,
                      url: str = URL) -> Path:
    """Download and unpack each language's upstream tarball (prompt tree + transcript) into
    ``target_dir/<lang>/``; returns ``target_dir`` (the ``corpus_dir`` of :func:`prepare_asterisk`)."""
    target_dir = Path(target_dir)
    for lang in langs:
        download_corpus(f"asterisk-{lang}", url.format(lang=lang), target_dir, lang,
                        f"asterisk-core-sounds-{lang}-wav-{VERSION}.tar.gz", select=lambda name: True,
                        force=force_download, keep_paths=True, suffixes=(".wav", ".txt"))
    return target_dir


def find_language_dir(corpus_dir: Pathlike, lang: str, single: bool) -> Path:
    """The folder holding ``core-sounds-<lang>.txt``: ``corpus_dir/<lang>/`` (or one level below
    it, as a tarball may unpack), or ``corpus_dir`` itself when it is the only language asked."""
    corpus_dir = Path(corpus_dir)
    name = transcript_file(lang)
    candidates = [corpus_dir / lang]
    if single:
        candidates.append(corpus_dir)
    for base in candidates:
        if (base / name).is_file():
            return base
        below = sorted(base.glob(f"*/{name}")) if base.is_dir() else []
        if len(below) == 1:
            return below[0].parent
    raise SpeechlmError(
        f"{corpus_dir}: no {name} in {corpus_dir / lang}/. Pass as --corpus-dir the folder that "
        f"holds the language folders ({', '.join(f'{c}/' for c in LANGUAGES)}), each with its "
        "prompt tree and core-sounds-<lang>.txt, or omit it to download the upstream tarballs."
    )


def read_transcripts(path: Path, skips: SkipCounter, counts: RuleCounts) -> Dict[str, str]:
    """``key -> raw transcript`` of one ``core-sounds-<lang>.txt``; comments and blank lines
    ignored; malformed lines and keys listed twice with different texts counted in ``skips``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpeechlmError(f"{path}: not UTF-8 text ({e}); convert it with iconv -t UTF-8") from None
    lines: Dict[str, str] = {}
    clashing = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        key, sep, transcript = line.partition(":")
        key = key.strip()
        if not sep or not key or " " in key:
            skips.add(BAD_LINE, f"{path.name}:{number}")
            continue
        transcript = transcript.strip()
        echo = f"{key}:"
        if transcript.startswith(echo):  # "conf-adminmenu: conf-adminmenu: ..."
            transcript = transcript[len(echo):].strip()
            counts.changed["key-echo"] += 1
        if key in lines and lines[key] != transcript:
            clashing.add(key)
        lines.setdefault(key, transcript)
    for key in sorted(clashing):
        skips.add(TWO_TRANSCRIPTS, f"{path.name}: {key}")
        del lines[key]
    return lines


def list_prompts(folder: Path) -> Dict[str, Path]:
    """``key -> wav`` for every ``*.wav`` under ``folder`` (key: relative path without .wav)."""
    return {p.relative_to(folder).with_suffix("").as_posix(): p
            for p in sorted(folder.rglob("*.wav")) if p.is_file() or p.is_symlink()}


def sentences(raw: str, lang: str, normalized: str) -> List[str]:
    """The normalised sentences of a transcript, and its whole normalised text."""
    pieces = {normalize_transcript(s, lang).text for s in SENTENCE_END.split(raw)}
    return sorted((pieces - {None}) | {normalized})


def _fraction(text: str) -> float:
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def assign_splits(prompts: Dict[str, List[str]], dev_fraction: float, test_fraction: float
                  ) -> Dict[str, str]:
    """``key -> split`` for prompts given as ``key -> normalised sentences``: prompts sharing a
    sentence are grouped (union-find) and a group's split is fixed by a hash of its smallest
    sentence, so no sentence is in two splits."""
    if not (0 <= dev_fraction < 1 and 0 <= test_fraction < 1 and dev_fraction + test_fraction < 1):
        raise SpeechlmError(f"asterisk: dev_fraction ({dev_fraction}) and test_fraction "
                            f"({test_fraction}) must be in [0, 1) and sum to less than 1")
    parent: Dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, sents in prompts.items():
        for s in sents:
            parent[find("s:" + s)] = find("p:" + key)
    groups: Dict[str, List[str]] = defaultdict(list)
    for key in prompts:
        groups[find("p:" + key)].append(key)
    out = {}
    for keys in groups.values():
        h = _fraction(min(s for k in keys for s in prompts[k]))
        split = "test" if h < test_fraction else "dev" if h < test_fraction + dev_fraction else "train"
        out.update((k, split) for k in keys)
    return out


@dataclass
class LanguageReport:
    """What one language's import found (for the summary line)."""

    lang: str
    counts: RuleCounts = field(default_factory=RuleCounts)
    splits: Dict[str, int] = field(default_factory=dict)
    skipped: Dict[str, int] = field(default_factory=dict)


def list_language(corpus_dir: Pathlike, lang: str, single: bool, skips: SkipCounter,
                  dev_fraction: float, test_fraction: float, report: LanguageReport
                  ) -> Dict[str, List[FileUtterance]]:
    """One language's prompts by split, as ``(wav, id, text, speaker, language)``."""
    folder = find_language_dir(corpus_dir, lang, single)
    before = {reason: len(items) for reason, items in skips.items.items()}
    lines = read_transcripts(folder / transcript_file(lang), skips, report.counts)
    audio = list_prompts(folder)
    for key in sorted(set(lines) - set(audio)):
        skips.add(NO_AUDIO, f"{lang}: {key}")
    for key in sorted(set(audio) - set(lines)):
        skips.add(NO_LINE, audio[key])
    texts, sents = {}, {}
    for key in sorted(set(lines) & set(audio)):
        result = normalize_transcript(lines[key], lang)
        if report.counts.add(result) is None:
            skips.add(f"{EXCLUDED} ({result.excluded})", f"{lang}: {key}")
            continue
        texts[key] = result.text
        sents[key] = sentences(lines[key], lang, result.text)
    ids = UniqueIds()
    out: Dict[str, List[FileUtterance]] = {"train": [], "dev": [], "test": []}
    for key, split in sorted(assign_splits(sents, dev_fraction, test_fraction).items()):
        utt_id = f"{lang}-{key.replace('/', '-')}"
        ids.add(utt_id, audio[key])
        out[split].append((audio[key], utt_id, texts[key], f"{PREFIX}-{lang}", LANGUAGES[lang]))
    report.splits = {k: len(v) for k, v in out.items()}
    report.skipped = {reason: n - before.get(reason, 0) for reason, items in sorted(skips.items.items())
                      if (n := len(items)) > before.get(reason, 0)}
    return out


def list_unlabeled(corpus_dir: Pathlike, folders: Iterable[str]) -> List[FileUtterance]:
    """Every ``*.wav`` under ``corpus_dir/<folder>/`` as an utterance without transcript."""
    out = []
    for name in folders:
        folder = Path(corpus_dir) / name
        if not folder.is_dir():
            raise SpeechlmError(f"--unlabeled {name}: {folder} is not a folder; name a folder of "
                                f"--corpus-dir ({corpus_dir}) such as it_menardi")
        prompts = list_prompts(folder)
        if not prompts:
            raise SpeechlmError(f"--unlabeled {name}: no .wav files under {folder}")
        out += [(path, f"{name}-{key.replace('/', '-')}", None, name) for key, path in prompts.items()]
    return out


def prepare_asterisk(
    corpus_dir: Pathlike,
    output_dir: Optional[Pathlike] = None,
    langs: Sequence[str] = ("es", "fr", "it", "ru"),
    unlabeled: Sequence[str] = (),
    dev_fraction: float = 0.05,
    test_fraction: float = 0.15,
    on_error: str = "raise",
) -> Tuple[Manifests, List[LanguageReport], SkipCounter]:
    """Build (and with ``output_dir`` write) the manifests; see the module docstring.

    :param langs: language codes, one or more of es, fr, it, ru (may be empty with ``unlabeled``).
    :param unlabeled: folders of ``corpus_dir`` imported as audio without text (``unlabeled`` split).
    :param on_error: ``"raise"`` or ``"skip"`` for missing, empty or corrupt audio files.
    :return: the manifests by split, one report per language and the skip counts.
    """
    langs = list(langs)
    if not langs and not unlabeled:
        raise SpeechlmError("asterisk: nothing to import; give --langs and/or --unlabeled")
    if langs:
        parse_languages(",".join(langs))
    reports = [LanguageReport(lang) for lang in langs]
    seen: List[SkipCounter] = []

    def list_splits(skips: SkipCounter) -> Dict[str, List[FileUtterance]]:
        seen.append(skips)
        out: Dict[str, List[FileUtterance]] = defaultdict(list)
        for report in reports:
            by_split = list_language(corpus_dir, report.lang, len(langs) == 1, skips, dev_fraction,
                                     test_fraction, report)
            for split, members in by_split.items():
                out[split] += members
            if len(langs) > 1:
                out[f"test_{report.lang}"] = by_split["test"]
        if unlabeled:
            out["unlabeled"] = list_unlabeled(corpus_dir, unlabeled)
        return {k: v for k, v in out.items() if v or k == "train"}  # an empty train is an error

    manifests = prepare_file_splits(PREFIX, list_splits, output_dir, on_error)
    return manifests, reports, seen[0]


def summary(manifests: Manifests, reports: List[LanguageReport], skips: SkipCounter) -> str:
    """One line per language (splits, normalisation counts), the skips, the unlabeled audio."""
    lines = ["asterisk: " + ", ".join(f"{k}={len(v[0])}" for k, v in manifests.items())]
    for r in reports:
        splits = " ".join(f"{k}={n}" for k, n in r.splits.items())
        skipped = ", ".join(f"{reason} {n}" for reason, n in r.skipped.items()
                            if not reason.startswith(EXCLUDED)) or "none"
        lines.append(f"  {r.lang} ({LANGUAGES[r.lang]}): {r.counts.total} transcript lines with "
                     f"audio; {splits}; normalisation {r.counts.line()}; skipped: {skipped}")
    lines += [f"  {line}" for line in skips.lines()]
    if "unlabeled" in manifests:
        recs = manifests["unlabeled"][0]
        minutes = sum(r.duration for r in recs) / 60
        lines.append(f"  unlabeled: {len(recs)} recordings, {minutes:.1f} min, no text")
    return "\n".join(lines)


def add_arguments(p) -> None:
    """``speechlm prepare asterisk`` options."""
    p.add_argument("--corpus-dir", help="local copy: the folder holding es/ fr/ it/ ru/ (each a prompt "
                                        "tree + core-sounds-<lang>.txt); downloaded when omitted")
    p.add_argument("--langs", default="es,fr,it,ru",
                   help=f"comma-separated language codes, one or more of {','.join(LANGUAGES)}")
    p.add_argument("--unlabeled", default="",
                   help="comma-separated folders of --corpus-dir imported as audio without text "
                        "(split 'unlabeled'), e.g. it_menardi")
    p.add_argument("--dev-fraction", type=float, default=0.05, help="share of sentence groups in dev")
    p.add_argument("--test-fraction", type=float, default=0.15, help="share of sentence groups in test")
    p.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="bad audio: stop with an error, or skip it with a counted warning")


def prepare(args) -> str:
    langs = parse_languages(args.langs) if args.langs.strip() else []
    unlabeled = [f.strip() for f in args.unlabeled.split(",") if f.strip()]
    corpus_dir = args.corpus_dir
    if not corpus_dir:
        if unlabeled:
            raise SpeechlmError("--unlabeled needs --corpus-dir: the unlabeled folders are not "
                                "part of the upstream core-sounds tarballs")
        corpus_dir = download_asterisk(Path(args.out_dir).parent / "download", langs)
    m, reports, skips = prepare_asterisk(corpus_dir, args.out_dir, langs, unlabeled,
                                         args.dev_fraction, args.test_fraction, args.on_error)
    return summary(m, reports, skips)
