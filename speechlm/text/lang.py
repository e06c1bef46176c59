"""Lang directories for WFST decoding: token and word tables and a BPE lexicon.

A lang dir (icefall layout) holds:

- ``tokens.txt``: ``piece id`` per line, ids exactly the tokenizer's (``<blk>`` is 0).
- ``words.txt``: ``<eps> 0``, the sorted words, ``<unk>``, then ``#0``, ``<s>``, ``</s>``.
- ``lexicon.txt``: ``word piece1 piece2 ...`` (the tokenizer's segmentation of the word).
- ``lexicon_disambig.txt``: the same with ``#1``, ``#2``, ... appended where a pronunciation
  repeats or is a prefix of another, so that L∘G can be determinised.

OOV policy (words of a transcript or LM text that are not in ``words.txt``):

- ``"error"`` (default): :func:`words_to_ids` raises :class:`SpeechlmError` naming the word, so
  a vocabulary mismatch is never silently scored or decoded.
- ``"unk"``: the word maps to ``<unk>`` (which is always in ``words.txt``, with the lexicon entry
  ``<unk> <unk>``), as Kaldi's ``sym2int.pl --map-oov`` does.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from speechlm.base.errors import SpeechlmError
from speechlm.text import symbols as sym
from speechlm.text.tokenizer import Tokenizer

log = logging.getLogger(__name__)

EPS = "<eps>"
WORD_UNK = "<unk>"
DISAMBIG0 = "#0"
BOS_WORD, EOS_WORD = "<s>", "</s>"
RESERVED_WORDS = (EPS, WORD_UNK, DISAMBIG0, BOS_WORD, EOS_WORD)
OOV_POLICIES = ("error", "unk")


def prepare_lang_dir(
    lang_dir: str | Path,
    tokenizer: Tokenizer,
    words: Iterable[str],
    oov_policy: str = "error",
) -> Path:
    """Write tokens.txt, words.txt, lexicon.txt and lexicon_disambig.txt into ``lang_dir``.

    ``words`` may repeat and be in any order; reserved symbols (``<eps> <unk> #0 <s> </s>``)
    are skipped. A word the tokenizer cannot encode raises :class:`SpeechlmError`.
    ``oov_policy`` is recorded in ``lang_dir/oov_policy`` for later :func:`words_to_ids` calls.
    """
    check_oov_policy(oov_policy)
    lang_dir = Path(lang_dir)
    lang_dir.mkdir(parents=True, exist_ok=True)
    vocab = sorted({w for w in words if w and w not in RESERVED_WORDS})
    for w in vocab:
        if any(c.isspace() for c in w) or w.startswith("#"):
            raise SpeechlmError(
                f"word {w!r} cannot go into {lang_dir}/words.txt: words must not contain "
                "whitespace or start with '#' (reserved for disambiguation symbols)"
            )
    if not vocab:
        raise SpeechlmError(f"no words to put in {lang_dir}/words.txt: the word list is empty")

    pieces = tokenizer.pieces()
    _write_table(lang_dir / "tokens.txt", pieces)
    _write_table(lang_dir / "words.txt", [EPS, *vocab, WORD_UNK, DISAMBIG0, BOS_WORD, EOS_WORD])

    lexicon = [(w, _pronounce(tokenizer, w)) for w in vocab]
    lexicon.append((WORD_UNK, [sym.UNK]))
    _write_lexicon(lang_dir / "lexicon.txt", lexicon)
    disambig, _ = add_disambig_symbols(lexicon)
    _write_lexicon(lang_dir / "lexicon_disambig.txt", disambig)
    write_if_changed(lang_dir / "oov_policy", oov_policy + "\n")
    log.info("lang dir %s: %d tokens, %d words", lang_dir, len(pieces), len(vocab))
    return lang_dir


def check_oov_policy(policy: str) -> None:
    if policy not in OOV_POLICIES:
        raise SpeechlmError(f"unknown OOV policy {policy!r}: use one of {list(OOV_POLICIES)}")


def _pronounce(tokenizer: Tokenizer, word: str) -> List[str]:
    ids = tokenizer.encode(word, item=f"lexicon word {word!r}")
    return [tokenizer.id_to_piece(i) for i in ids]


def add_disambig_symbols(
    lexicon: Sequence[Tuple[str, List[str]]],
) -> Tuple[List[Tuple[str, List[str]]], int]:
    """Append ``#1, #2, ...`` to pronunciations that repeat or prefix another (Kaldi's rule).

    Returns the new lexicon and the highest disambiguation index used (0 if none; ``#0`` is
    always reserved for G's back-off arcs).
    """
    counts = Counter(" ".join(p) for _, p in lexicon)
    prefixes = set()
    for _, p in lexicon:
        for i in range(1, len(p)):
            prefixes.add(" ".join(p[:i]))
    next_index: Dict[str, int] = {}
    max_index = 0
    out = []
    for word, p in lexicon:
        key = " ".join(p)
        if counts[key] > 1 or key in prefixes:
            idx = next_index.get(key, 1)
            next_index[key] = idx + 1
            max_index = max(max_index, idx)
            p = [*p, f"#{idx}"]
        out.append((word, list(p)))
    return out, max_index


def read_table(path: str | Path) -> Dict[str, int]:
    """``symbol id`` lines -> dict; a missing or malformed file raises SpeechlmError."""
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"{path} not found: prepare the lang dir (recipe stage 2) first")
    table: Dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise SpeechlmError(f"{path}:{n}: expected 'symbol id', got {line!r}")
        table[parts[0]] = int(parts[1])
    return table


def check_tokens_match(lang_dir: str | Path, tokenizer: Tokenizer, tokenizer_path: str | Path) -> None:
    """The lang dir's tokens.txt lists the tokenizer's pieces with the same ids: a graph built
    for another tokenizer (even one of the same size) would decode into the wrong words."""
    tokens = Path(lang_dir) / "tokens.txt"
    table = read_table(tokens)
    pieces = tokenizer.pieces()
    ours = {p: i for i, p in enumerate(pieces)}
    if table == ours:
        return
    theirs = {i: p for p, i in table.items()}
    size = max(len(pieces), len(theirs))
    differ = [i for i in range(size) if theirs.get(i) != (pieces[i] if i < len(pieces) else None)]
    first = differ[0] if differ else 0  # (or the same ids twice in tokens.txt)
    raise SpeechlmError(
        f"{tokens} does not belong to the model's tokenizer {tokenizer_path}: {len(differ)} of "
        f"{size} token ids differ (id {first} is {theirs.get(first)!r} there, "
        f"{pieces[first] if first < len(pieces) else None!r} in the tokenizer). The lang dir was built "
        "for another tokenizer: give the lang dir made from this model's tokenizer, or rebuild it "
        "from it (recipe stage 2; speechlm prepare-lang --tokenizer)")


def read_lexicon(path: str | Path) -> List[Tuple[str, List[str]]]:
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"{path} not found: prepare the lang dir (recipe stage 2) first")
    lexicon = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise SpeechlmError(f"{path}:{n}: word {parts[0]!r} has no pronunciation")
        lexicon.append((parts[0], parts[1:]))
    return lexicon


def words_to_ids(
    words: Iterable[str], word_table: Dict[str, int], policy: str = "error", item: str = ""
) -> List[int]:
    """Map words to ids in ``word_table`` under the OOV policy (see the module docstring)."""
    check_oov_policy(policy)
    out = []
    for w in words:
        idx = word_table.get(w)
        if idx is None:
            if policy == "unk" and WORD_UNK in word_table:
                idx = word_table[WORD_UNK]
            else:
                where = f" in {item}" if item else ""
                raise SpeechlmError(
                    f"word {w!r}{where} is not in words.txt (OOV policy {policy!r}): add it to "
                    "the lexicon word list and rebuild the lang dir, or use oov_policy='unk'"
                )
        out.append(idx)
    return out


def map_oovs(words: Iterable[str], word_table: Dict[str, int], policy: str = "error",
             item: str = "") -> List[str]:
    """Like :func:`words_to_ids` but returns words (OOVs become ``<unk>`` in ``unk`` mode)."""
    ids = words_to_ids(list(words), word_table, policy, item)
    inv = {i: w for w, i in word_table.items()}
    return [inv[i] for i in ids]


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that text.

    Why: graphs built from these files are rebuilt when an input is newer than the graph, so
    re-running a stage with the same inputs must not touch them. Returns True if written.
    """
    path = Path(path)
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: overwrite it
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def _write_table(path: Path, symbols: Sequence[str]) -> None:
    write_if_changed(path, "".join(f"{s} {i}\n" for i, s in enumerate(symbols)))


def _write_lexicon(path: Path, lexicon: Sequence[Tuple[str, List[str]]]) -> None:
    write_if_changed(path, "".join(f"{w} {' '.join(p)}\n" for w, p in lexicon))
