"""Word / character error statistics from kaldialign alignments.

One pass over ``(utt_id, ref_words, hyp_words)`` triples gives everything the report
writers need: totals (ins/del/sub), the per-utterance alignments, and per-word counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple, Union

import kaldialign

from speechlm.base.errors import SpeechlmError

# icefall prints "*" for the missing side of an insertion / deletion.
EPS = "*"

Result = Tuple[str, List[str], List[str]]
Alignment = List[Tuple[str, str]]

# Index into WerStats.word_counts[word]: how often the word was ...
CORR, REF_SUB, HYP_SUB, INS, DEL = range(5)


@dataclass
class UttAlignment:
    """One utterance: its words and their min-edit alignment (EPS marks a gap)."""

    utt_id: str
    ref: List[str]
    hyp: List[str]
    alignment: Alignment


@dataclass
class WerStats:
    """Error counts over a test set; ``wer`` is a percentage."""

    num_words: int = 0
    num_corr: int = 0
    ins: int = 0
    dels: int = 0
    subs: int = 0
    utts: List[UttAlignment] = field(default_factory=list)
    sub_counts: Counter = field(default_factory=Counter)  # (ref, hyp) -> n
    del_counts: Counter = field(default_factory=Counter)  # ref word -> n
    ins_counts: Counter = field(default_factory=Counter)  # hyp word -> n
    # word -> [corr, ref_sub, hyp_sub, ins, del]  (icefall's per-word layout)
    word_counts: Dict[str, List[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 5))

    @property
    def num_errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        return 100.0 * self.num_errors / self.num_words

    def summary(self, unit: str = "WER") -> str:
        """The one-line summary icefall logs, e.g. ``%WER 50.00% [2 / 4, 0 ins, 1 del, 1 sub ]``."""
        return (
            f"%{unit} {self.wer:.2f}% [{self.num_errors} / {self.num_words}, "
            f"{self.ins} ins, {self.dels} del, {self.subs} sub ]"
        )


def check_results(results: Sequence[Result]) -> List[Result]:
    """Validate the triples and return them sorted by utterance id."""
    seen = set()
    for item in results:
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise SpeechlmError(
                f"scoring: each result must be (utt_id, ref_words, hyp_words), got {item!r}"
            )
        utt_id, ref, hyp = item
        if not isinstance(utt_id, str) or not utt_id:
            raise SpeechlmError(f"scoring: utterance id must be a non-empty string, got {utt_id!r}")
        if utt_id in seen:
            raise SpeechlmError(f"scoring: utterance id {utt_id!r} appears twice in the results")
        seen.add(utt_id)
        for side, words in (("ref", ref), ("hyp", hyp)):
            # A plain string here would silently be scored character by character.
            if isinstance(words, str) or not all(isinstance(w, str) and w for w in words):
                raise SpeechlmError(
                    f"scoring: {side} of utterance {utt_id!r} must be a list of non-empty "
                    f"word strings (use text.split()), got {words!r}"
                )
    return sorted(results, key=lambda r: r[0])


def align_words(ref: Sequence[str], hyp: Sequence[str]) -> Alignment:
    """Min-edit alignment of two word lists as (ref_word, hyp_word) pairs; EPS marks a gap."""
    if EPS in ref or EPS in hyp:
        raise SpeechlmError(
            f"scoring: the word {EPS!r} is reserved as the alignment gap symbol; "
            "remove or map it during text normalisation"
        )
    return kaldialign.align(list(ref), list(hyp), EPS)


def compute_wer(results: Sequence[Result]) -> WerStats:
    """Score ``(utt_id, ref_words, hyp_words)`` triples; utterances are kept sorted by id.

    An utterance with an empty reference is allowed (its hyp words count as insertions),
    but a test set whose references hold no words at all has no defined WER and raises.
    """
    stats = WerStats()
    for utt_id, ref, hyp in check_results(results):
        ali = align_words(ref, hyp)
        stats.utts.append(UttAlignment(utt_id, list(ref), list(hyp), ali))
        stats.num_words += len(ref)
        for r, h in ali:
            if r == EPS:
                stats.ins += 1
                stats.ins_counts[h] += 1
                stats.word_counts[h][INS] += 1
            elif h == EPS:
                stats.dels += 1
                stats.del_counts[r] += 1
                stats.word_counts[r][DEL] += 1
            elif r != h:
                stats.subs += 1
                stats.sub_counts[(r, h)] += 1
                stats.word_counts[r][REF_SUB] += 1
                stats.word_counts[h][HYP_SUB] += 1
            else:
                stats.num_corr += 1
                stats.word_counts[r][CORR] += 1
    if stats.num_words == 0:
        raise SpeechlmError(
            f"scoring: the references of all {len(stats.utts)} utterances are empty, so the "
            "error rate is undefined; check the transcripts of the test set"
        )
    return stats


def text_to_chars(text: Union[str, Sequence[str]]) -> List[str]:
    """Characters of a text (or of a word list), whitespace dropped, as CER usually counts."""
    if not isinstance(text, str):
        text = " ".join(text)
    return [c for c in text if not c.isspace()]


TextOrWords = Union[str, Sequence[str]]


def compute_cer(results: Sequence[Tuple[str, TextOrWords, TextOrWords]]) -> WerStats:
    """Character error stats; ref/hyp may be strings or word lists. ``.wer`` is then the CER."""
    return compute_wer([(u, text_to_chars(r), text_to_chars(h)) for u, r, h in results])
