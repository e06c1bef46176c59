"""Per-language transcript normalisation for real transcripts (en, es, fr, it, ru): Asterisk's
prompts (``speechlm prepare asterisk``) and every corpus ``speechlm import`` reads (``--language``).

Upstream transcripts (e.g. Asterisk's ``core-sounds-<lang>.txt``) are written for people: they
carry capitals, punctuation, digits, typographic quotes and bracketed notes about sounds. ASR
training and scoring need the words that were spoken, written one way. The rules, applied in
this order (each change is counted under the rule's name, see :class:`RuleCounts`):

1. ``unicode``: NFC composition, so ``e`` + combining accent and ``é`` are one letter.
2a. ``abbreviation`` (English only): the titles and abbreviations of written English become the
   words read aloud (:data:`EN_ABBREVIATIONS`): ``Mr.`` -> ``mister``, ``Mrs.`` -> ``missus``,
   ``Dr.`` -> ``doctor``, ``St.`` -> ``saint`` before a capitalised word and ``street`` elsewhere,
   ``&c.``/``etc.`` -> ``et cetera``, ``i.e.`` -> ``that is``, ``No. 5`` -> ``number 5`` ... with
   or without the full stop. Without it, a sentence splitter would also end a sentence at
   ``Mr.`` (:func:`expand_abbreviations` is the same rule on its own, for book text).
2b. ``ordinal`` (English only): ``1st``, ``22nd``, ``4th`` become ``first``, ``twenty-second``,
   ``fourth`` (before rule 5, which would take them for numbers glued to letters).
2c. ``it-accent-repair`` (Italian only): the upstream Italian file lost some accented letters to
   ``?``. A ``?`` standing alone between words is ``è``; the damaged words ``sar?``, ``pu?``,
   ``cos?``, ``pi?`` become ``sarà``, ``può``, ``così``, ``più``. Any other ``?`` is punctuation
   (``Casella di posta?`` is a real question).
3. ``symbol-note``: a bracketed group without letters (``a [@]``, ``trattino [-]``,
   ``spazio []``) shows the symbol whose name is spoken beside it; it is dropped, the words kept.
4. Excluded, ``description``: a ``[...]``, ``(...)`` or ``<...>`` group with letters in it
   (``[tono simple]``, ``(beep)``, ``(1 secondo di silenzio)``, ``Sus saludos [temporales]``,
   ``Pour (emphase)``) describes a sound or is a note whose words may or may not be spoken; the
   whole prompt is left out rather than trained or scored on a guess.
5. Excluded, ``number-ambiguous``: a number that is not a plain integer (``28.8``, ``28,8``)
   or that is glued to letters (``H.323``, ``h-323``, ``3D``, ``28Kilobit``): how it was read
   (point/comma, digit by digit, letter names) cannot be known from the text.
6. ``number``: a plain integer becomes its cardinal in words, in the prompt's language
   (num2words): ``marque 2`` -> ``marque dos``, ``500`` -> ``quinientos``, ``cinquecento``,
   ``cinq cents``, ``пятьсот``. Known limit: a number read digit by digit (a PIN such as
   ``1234``) is still written as a cardinal.
7. ``apostrophe``: typographic apostrophes (``’ ‘ ` ´ ʼ``) become ``'``. An apostrophe between
   two letters is part of the word (French and Italian elision: ``l'ultimo``, ``d'agent`` are
   one word each, as they are spoken); anywhere else it is punctuation.
8. ``hyphen``: a hyphen or dash between letters separates words (``dix-sept`` -> ``dix sept``,
   ``souhaitez-vous`` -> ``souhaitez vous``, ``не-административных`` -> ``не административных``),
   so a compound is scored the same however the transcriber wrote it.
9. ``yo`` (Russian only): ``ё`` is written ``е`` (the upstream file writes ``решётку`` and
   ``решетку`` for the same spoken word).
10. ``punctuation``: every other character that is not a letter or a kept apostrophe (``. , ; :
    ! ? ¿ ¡ " « » “ ” … / + = * #`` and stray symbols) becomes a space.
11. ``case``: lower case (Unicode ``str.lower``).
12. Excluded, ``empty``: nothing is left (an empty line, or only punctuation).

Accents are kept as written (``último``/``ultimo`` stay two spellings: the Spanish file is
inconsistent and this module does not guess). Whitespace is collapsed to single spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from speechlm.base.errors import SpeechlmError
from speechlm.text.symbols import LANGUAGE_CODES

LANGUAGES: Dict[str, str] = dict(zip(LANGUAGE_CODES, ("Spanish", "French", "Italian", "Russian")))
"""The language codes with a language token, with their names (Lhotse's ``language`` field)."""

NORMALIZE_LANGUAGES: Dict[str, str] = {"en": "English", **LANGUAGES}
"""The languages :func:`normalize_transcript` knows (numbers are spelled out in them)."""

# Rule names, in the order the module docstring lists them.
RULES = ("unicode", "abbreviation", "ordinal", "it-accent-repair", "symbol-note", "number", "apostrophe", "hyphen", "yo",
         "punctuation", "case")
EXCLUSIONS = ("description", "number-ambiguous", "empty")

EN_ABBREVIATIONS: Dict[str, str] = {
    "Mr": "mister", "Mrs": "missus", "Messrs": "messieurs", "Dr": "doctor", "Capt": "captain",
    "Col": "colonel", "Gen": "general", "Lieut": "lieutenant", "Lt": "lieutenant",
    "Sgt": "sergeant", "Rev": "reverend", "Prof": "professor", "Hon": "honourable",
    "Gov": "governor", "Jr": "junior", "Sr": "senior", "Mt": "mount", "Ft": "fort",
}
"""English abbreviations (case as written, full stop optional) and the words read for them;
``St``, ``No``, ``etc``, ``&c``, ``i.e.``, ``e.g.`` have rules of their own (they depend on the
next word, or are not titles)."""

_EN_ABBREVIATION = re.compile(  # the lookahead first: most positions fail it at once
    r"(?=[A-Z&ein])(?:(?P<title>\b(?:" + "|".join(EN_ABBREVIATIONS) + r")\b\.?(?=\s|$))"
    r"|(?P<saint>\bSt\b\.?(?=\s+[A-Z]))|(?P<street>\bSt\b\.?)"
    r"|(?P<number>\b[Nn]o\.\s*(?=\d))"
    r"|(?P<etc>(?:&[cC]|\b[Ee][Tt][Cc])\.?(?=\W|$))"
    r"|(?P<ie>\b[iI]\.\s?[eE]\.)|(?P<eg>\b[eE]\.\s?[gG]\.))")
_EN_ABBREVIATION_WORDS = {"saint": "saint", "street": "street", "number": "number ",
                          "etc": "et cetera", "ie": "that is", "eg": "for example"}
_EN_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")

_IT_DAMAGED = {"sar?": "sarà", "pu?": "può", "cos?": "così", "pi?": "più"}
_IT_DAMAGED_RE = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in _IT_DAMAGED) + r")(?=\W|$)",
                            re.IGNORECASE)
_IT_LONE_Q = re.compile(r"(?<=\w )\?(?= \w)")
_GROUP = re.compile(r"\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>")
_LETTER = re.compile(r"[^\W\d_]")
_AMBIGUOUS_NUMBER = re.compile(r"\d[.,]\d|[^\W\d_][-.]?\d|\d[^\W\d_]")
_INTEGER = re.compile(r"\d+")
_TYPO_APOSTROPHES = re.compile(r"[’‘`´ʼ]")
_HYPHEN_BETWEEN_LETTERS = re.compile(r"(?<=[^\W\d_])[-‐‑‒–—](?=[^\W\d_])")
_NOT_WORD = re.compile(r"[^\w']|[\d_]")
_STRAY_APOSTROPHE = re.compile(r"(?<![^\W\d_])'|'(?![^\W\d_])")


@dataclass(frozen=True)
class Normalized:
    """The result for one transcript: ``text`` (None when excluded), the rules that changed it
    and, when excluded, the reason (one of :data:`EXCLUSIONS`)."""

    text: Optional[str]
    rules: Tuple[str, ...] = ()
    excluded: str = ""


def check_language(lang: str, option: str = "--langs", known: Optional[Dict[str, str]] = None) -> str:
    """``lang`` if it is in ``known`` (default: :data:`LANGUAGES`); otherwise a
    :class:`SpeechlmError` naming ``option`` and listing the known codes."""
    known = LANGUAGES if known is None else known
    if lang not in known:
        raise SpeechlmError(
            f"unknown language code {lang!r} ({option}); known: "
            + ", ".join(f"{code} ({name})" for code, name in known.items())
        )
    return lang


def language_code(language: str) -> str:
    """``"Spanish"`` or ``"es"`` -> ``"es"``; anything else is a :class:`SpeechlmError`."""
    names = {name: code for code, name in LANGUAGES.items()}
    return names.get(language) or check_language(language, "supervision language")


def parse_languages(text: str, option: str = "--langs") -> List[str]:
    """``"es,fr"`` -> ``["es", "fr"]``: each known, no repeats, at least one."""
    langs = [code.strip() for code in text.split(",") if code.strip()]
    if not langs:
        raise SpeechlmError(f"{option} is empty; give one or more of {', '.join(LANGUAGES)} "
                            "(comma-separated)")
    for code in langs:
        check_language(code, option)
    if len(set(langs)) != len(langs):
        raise SpeechlmError(f"{option} {text!r} names a language twice")
    return langs


def _number_words(lang: str) -> Callable[[int], str]:
    try:
        from num2words import num2words
    except ImportError:  # a declared dependency; a broken install gets a clear message
        raise SpeechlmError("digits in transcripts need the num2words package: "
                            "pip install num2words") from None
    return lambda n: num2words(n, lang=lang)


def expand_abbreviations(text: str, lang: str = "en") -> str:
    """The ``abbreviation`` rule alone: English abbreviations written out as the words read
    aloud (other languages: ``text`` unchanged). Safe to apply twice."""
    if lang != "en":
        return text
    return _EN_ABBREVIATION.sub(_abbreviation_words, text)


def _abbreviation_words(m: "re.Match[str]") -> str:
    kind = m.lastgroup
    return EN_ABBREVIATIONS[m[0].rstrip(".")] if kind == "title" else _EN_ABBREVIATION_WORDS[kind]


def _english_ordinals(text: str) -> str:
    if not _EN_ORDINAL.search(text):
        return text
    try:
        from num2words import num2words
    except ImportError:
        raise SpeechlmError("digits in transcripts need the num2words package: "
                            "pip install num2words") from None
    return _EN_ORDINAL.sub(lambda m: f" {num2words(int(m[1]), lang='en', to='ordinal')} ", text)


def normalize_transcript(text: str, lang: str) -> Normalized:
    """Apply the module's rules to one transcript in language ``lang`` (en, es, fr, it, ru)."""
    check_language(lang, "language", NORMALIZE_LANGUAGES)
    fired: List[str] = []

    def apply(rule: str, new: str, old: str) -> str:
        if new != old:
            fired.append(rule)
        return new

    t = apply("unicode", unicodedata.normalize("NFC", text), text)
    if lang == "en":
        t = apply("abbreviation", expand_abbreviations(t), t)
    if lang == "it":
        t = apply("it-accent-repair",
                  _IT_LONE_Q.sub("è", _IT_DAMAGED_RE.sub(lambda m: _IT_DAMAGED[m[1].lower()], t)), t)
    if lang == "en":
        t = apply("ordinal", _english_ordinals(t), t)
    groups = _GROUP.findall(t)
    if any(_LETTER.search(g) for g in groups):
        return Normalized(None, tuple(fired), "description")
    t = apply("symbol-note", _GROUP.sub(" ", t), t)
    if _AMBIGUOUS_NUMBER.search(t):
        return Normalized(None, tuple(fired), "number-ambiguous")
    if _INTEGER.search(t):
        words = _number_words(lang)
        t = apply("number", _INTEGER.sub(lambda m: f" {words(int(m[0]))} ", t), t)
    t = apply("apostrophe", _TYPO_APOSTROPHES.sub("'", t), t)
    t = apply("hyphen", _HYPHEN_BETWEEN_LETTERS.sub(" ", t), t)
    if lang == "ru":
        t = apply("yo", t.replace("ё", "е").replace("Ё", "Е"), t)
    t = apply("punctuation", _STRAY_APOSTROPHE.sub(" ", _NOT_WORD.sub(" ", t)), t)
    t = apply("case", t.lower(), t)
    t = " ".join(t.split())
    if not t:
        return Normalized(None, tuple(fired), "empty")
    return Normalized(t, tuple(fired))


class RuleCounts:
    """How many transcripts each rule changed and each exclusion removed, for a summary line.

    >>> counts = RuleCounts()
    >>> counts.add(normalize_transcript("Marque 2.", "es"))
    'marque dos'
    >>> counts.line()
    'changed: number 1, punctuation 1, case 1'
    """

    def __init__(self) -> None:
        self.changed: Counter = Counter()
        self.excluded: Counter = Counter()
        self.total = 0

    def add(self, result: Normalized) -> Optional[str]:
        """Count one result; returns its text (None when excluded)."""
        self.total += 1
        self.changed.update(result.rules)
        if result.excluded:
            self.excluded[result.excluded] += 1
        return result.text

    def count(self, rule: str) -> int:
        """Transcripts changed by ``rule``, or excluded for the reason ``rule``."""
        return self.changed.get(rule, 0) + self.excluded.get(rule, 0)

    def line(self) -> str:
        """``changed: rule n, ...; excluded: reason n, ...`` in the documented rule order."""
        known = RULES + tuple(sorted(set(self.changed) - set(RULES)))
        changed = ", ".join(f"{r} {self.changed[r]}" for r in known if self.changed[r])
        reasons = EXCLUSIONS + tuple(sorted(set(self.excluded) - set(EXCLUSIONS)))
        excluded = ", ".join(f"{r} {self.excluded[r]}" for r in reasons if self.excluded[r])
        parts = [f"changed: {changed}" if changed else "", f"excluded: {excluded}" if excluded else ""]
        return "; ".join(p for p in parts if p) or "no changes"
