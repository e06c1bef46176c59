"""Book text to speakable sentences and LM text: a folder of Project Gutenberg books (or any
folder of ``.txt`` books) in, normalised sentences out, split by whole books.

For each book file (``<folder>/**/*.txt``, in sorted order):

1. **Strip** Project Gutenberg's header and licence: the book is what lies between the line
   ``*** START OF THIS/THE PROJECT GUTENBERG EBOOK ... ***`` (or the old ``*END*THE SMALL
   PRINT!...*END*``) and the first of ``*** END OF THIS/THE PROJECT GUTENBERG EBOOK`` or a line
   ``End of (the) Project Gutenberg ...``. A file without a start marker is skipped and counted
   (``unmarked="skip"``, the default) or read whole (``unmarked="whole"``, for plain books).
   Paragraphs that credit the transcribers (``Produced by ...``) near the top are dropped.
2. **Paragraphs** are runs of non-blank lines, joined with spaces. ``[...]`` notes
   (``[Illustration: ...]``, footnote marks) are dropped; parentheses become commas, because a
   reader speaks what is inside them.
3. **Abbreviations** are written out first (``Mr.`` -> ``mister``,
   :func:`speechlm.text.normalize.expand_abbreviations`), so that their full stops do not end
   sentences; then a paragraph is **split into sentences** after ``.``, ``!`` or ``?`` (and any
   closing quote) followed by a space and a capital, digit or opening quote.
4. **Normalise** each sentence with :func:`speechlm.text.normalize.normalize_transcript` in
   English (numbers and ordinals as words, punctuation removed, lower case; the exclusions and
   rule counts are that module's). Also left out, and counted: ``heading`` (no lower-case letter
   in the original, e.g. ``CHAPTER XII``) and ``roman-numeral`` (``II``, ``XIV``: read as a
   number or a name, which cannot be known).
5. **Split by book**: books are ordered by a hash of ``seed`` and their path inside the folder;
   the first ``num_test_books`` are test books, the next ``num_dev_books`` dev books, the rest
   training books. Dev/test sentences are the speakable sentences (``min_words`` ..
   ``max_words`` words) of their books that occur nowhere in a training book. The LM text is
   every normalised sentence of the training books (any length) except a dev/test sentence;
   the training sentences to speak are its speakable ones, without repeats.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from speechlm.base.errors import SpeechlmError
from speechlm.text.normalize import RuleCounts, expand_abbreviations, normalize_transcript

logger = logging.getLogger(__name__)

BOOK_SPLITS = ("train", "dev", "test")
UNMARKED_CHOICES = ("skip", "whole")

_START = re.compile(r"^\s*\*{3}\s*START OF (?:THIS|THE) PROJECT GUTENBERG.*$|"
                    r"^\s*\*END\*THE SMALL PRINT!.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^\s*\*{3}\s*END OF (?:THIS|THE) PROJECT GUTENBERG.*$|"
                  r"^\s*End of (?:the )?Project Gutenberg.*$", re.IGNORECASE | re.MULTILINE)
_CREDIT = re.compile(r"^(?:Produced|Transcribed|Prepared|E-?text prepared|Scanned)\b.*\bby\b",
                     re.IGNORECASE)
_CREDIT_PARAGRAPHS = 12  # credits stand at the top of the book, before the title
_BRACKET_NOTE = re.compile(r"\[[^\[\]]*\]")
_PARENS = re.compile(r"[()]")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)_]))\s+(?=[\"'“‘(_]*[A-Z0-9])")
_LOWER = re.compile(r"[a-z]")
_ROMAN = re.compile(r"\b(?:[IVXLC]{2,}|V|X)\b")


class NoStartMarker(Exception):
    """A book file without Project Gutenberg's start marker."""


def strip_gutenberg(text: str) -> str:
    """The book between Project Gutenberg's start and end markers (see the module docstring).

    :raises NoStartMarker: when there is no start marker.
    """
    start = _START.search(text)
    if start is None:
        raise NoStartMarker
    body = text[start.end():]
    end = _END.search(body)
    return body[:end.start()] if end else body


def book_paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of a stripped book, one line each, without notes and transcriber credits."""
    for i, block in enumerate(re.split(r"\n\s*\n", text)):
        para = " ".join(block.split())
        if not para or i < _CREDIT_PARAGRAPHS and _CREDIT.match(para):
            continue
        para = _PARENS.sub(",", _BRACKET_NOTE.sub(" ", para))
        if para.strip(" ,"):
            yield para


def split_sentences(paragraph: str) -> List[str]:
    """Sentences of one paragraph, abbreviations already written out (so ``Mr.`` ends none)."""
    return [s for s in _SENTENCE_END.split(expand_abbreviations(paragraph)) if s.strip()]


def normalize_book_sentence(sentence: str, counts: RuleCounts) -> Optional[str]:
    """The normalised sentence, or None (counted in ``counts``) when it is left out."""
    if not _LOWER.search(sentence):
        counts.excluded["heading"] += 1
        counts.total += 1
        return None
    if _ROMAN.search(sentence):
        counts.excluded["roman-numeral"] += 1
        counts.total += 1
        return None
    return counts.add(normalize_transcript(sentence, "en"))


def book_sentences(text: str, counts: RuleCounts) -> Iterator[str]:
    """Normalised sentences of one stripped book, in order."""
    for para in book_paragraphs(text):
        for sentence in split_sentences(para):
            norm = normalize_book_sentence(sentence, counts)
            if norm:
                yield norm


@dataclass
class BookText:
    """What :func:`prepare_book_text` found.

    ``speakable[split]``: sentences to speak for train/dev/test; ``lm_text``: LM sentences
    (training books only, no dev/test sentence); ``books[split]``: book paths (relative);
    ``skipped``: files left out and why.
    """

    lm_text: List[str]
    speakable: Dict[str, List[str]]
    books: Dict[str, List[str]]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    counts: RuleCounts = field(default_factory=RuleCounts)

    @property
    def lm_words(self) -> int:
        return sum(len(s.split()) for s in self.lm_text)

    def summary(self) -> str:
        books = ", ".join(f"{k}={len(v)}" for k, v in self.books.items())
        spk = ", ".join(f"{k}={len(v)}" for k, v in self.speakable.items())
        skipped = f"; skipped files: {len(self.skipped)}" if self.skipped else ""
        return (f"books {books}{skipped}; LM text: {len(self.lm_text)} sentences, "
                f"{self.lm_words} words; speakable sentences {spk}; {self.counts.line()}")


def list_books(folder: Union[str, Path]) -> List[Path]:
    """The ``.txt`` files under ``folder``, sorted; a clear error when there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise SpeechlmError(f"book folder {root} not found; give a folder of .txt books "
                            "(--books-dir), e.g. ../shared/data/text_en")
    books = sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not books:
        raise SpeechlmError(f"no .txt books under {root}; give a folder of plain-text books (--books-dir)")
    return books


def assign_books(names: Sequence[str], num_dev_books: int, num_test_books: int, seed: int) -> Dict[str, List[str]]:
    """Whole books to test, dev and train, ordered by a hash of ``seed`` and each name (the same
    on every machine, whatever order the files are listed in)."""
    if num_dev_books < 1 or num_test_books < 1 or num_dev_books + num_test_books >= len(names):
        raise SpeechlmError(
            f"cannot hold out {num_dev_books} dev and {num_test_books} test books from {len(names)} "
            "usable books; hold out at least 1 of each (--num-dev-books, --num-test-books) and leave "
            "at least one for training")
    order = sorted(names, key=lambda n: hashlib.sha1(f"{seed}:{n}".encode()).hexdigest())
    nt, nd = num_test_books, num_dev_books
    return {"train": sorted(order[nt + nd:]), "dev": sorted(order[nt:nt + nd]), "test": sorted(order[:nt])}


def _read_book(path: Path, unmarked: str) -> str:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SpeechlmError(f"{path} is not UTF-8 text; convert it (iconv -t UTF-8) or remove it") from None
    try:
        return strip_gutenberg(raw)
    except NoStartMarker:
        if unmarked == "whole":
            return raw
        raise


def prepare_book_text(
    books_dir: Union[str, Path],
    num_dev_books: int = 2,
    num_test_books: int = 2,
    min_words: int = 4,
    max_words: int = 20,
    seed: int = 0,
    unmarked: str = "skip",
) -> BookText:
    """Read, strip, split and normalise every book under ``books_dir`` (module docstring)."""
    if unmarked not in UNMARKED_CHOICES:
        raise SpeechlmError(f"--unmarked {unmarked!r}: choose one of {', '.join(UNMARKED_CHOICES)}")
    if not 1 <= min_words <= max_words:
        raise SpeechlmError(f"speakable length: need 1 <= min_words ({min_words}) <= max_words ({max_words})")
    root = Path(books_dir)
    counts = RuleCounts()
    per_book: Dict[str, List[str]] = {}
    skipped: List[Tuple[str, str]] = []
    for path in list_books(root):
        name = path.relative_to(root).as_posix()
        try:
            text = _read_book(path, unmarked)
        except NoStartMarker:
            skipped.append((name, "no Project Gutenberg START marker (--unmarked whole reads such files whole)"))
            continue
        sentences = list(book_sentences(text, counts))
        if not sentences:
            skipped.append((name, "no sentence left after normalisation"))
            continue
        per_book[name] = sentences
    for name, why in skipped:
        logger.warning("books: skipped %s: %s", name, why)
    books = assign_books(sorted(per_book), num_dev_books, num_test_books, seed)

    def speakable(sentences: Sequence[str]) -> List[str]:
        return [s for s in dict.fromkeys(sentences) if min_words <= s.count(" ") + 1 <= max_words]

    train_all = [s for name in books["train"] for s in per_book[name]]
    train_set = set(train_all)
    held: Dict[str, List[str]] = {}
    for split in ("dev", "test"):
        sents = speakable(s for name in books[split] for s in per_book[name])
        held[split] = [s for s in sents if s not in train_set]
    held["dev"] = [s for s in held["dev"] if s not in set(held["test"])]
    held_set = set(held["dev"]) | set(held["test"])
    lm_text = [s for s in train_all if s not in held_set]
    return BookText(lm_text=lm_text, speakable={"train": speakable(lm_text), **held},
                    books=books, skipped=skipped, counts=counts)
