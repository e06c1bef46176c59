"""Word n-gram LMs: train an ARPA file (kaldingram, Kneser-Ney) and turn it into G (kaldilm).

G's weights are costs in the tropical semiring: ``-ln(10) * log10 p`` on word arcs and
``-ln(10) * log10 backoff`` on the back-off arcs, whose input is ``#0`` (output epsilon);
``<s>``/``</s>`` become epsilons and the sentence-end probability a final weight.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Optional

import kaldifst

from speechlm.base.errors import SpeechlmError
from speechlm.text.lang import write_if_changed

log = logging.getLogger(__name__)


def train_arpa(text_lines: Iterable[str], order: int, out_path: str | Path) -> Path:
    """Train an interpolated-backoff Kneser-Ney ``order``-gram on whitespace-split lines.

    Lines are used as given (map OOVs first with :func:`speechlm.text.lang.map_oovs` if the
    LM must match a lexicon). Writes ``out_path`` atomically (left untouched when its content
    would not change, so graphs built from it stay up to date) and returns it.
    """
    from kaldingram.train import NgramCounts

    if not 1 <= order <= 5:
        raise SpeechlmError(f"n-gram order {order} for {out_path} is not supported: use 1..5")
    out_path = Path(out_path)
    counts = NgramCounts(order)
    n_lines = 0
    # kaldingram prints tqdm bars; keep library calls quiet.
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        for line in text_lines:
            words = line.split()
            if not words:
                continue
            counts.add_raw_counts_from_line(" ".join(words))
            n_lines += 1
        if n_lines == 0:
            raise SpeechlmError(f"no LM training text for {out_path}: the text is empty")
        counts.cal_discounting_constants()
        counts.cal_f()
        counts.cal_bow()
        buf = io.StringIO()
        counts.print_as_arpa(fout=buf)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    changed = write_if_changed(out_path, buf.getvalue())
    log.info("trained %d-gram LM on %d lines -> %s%s", order, n_lines, out_path,
             "" if changed else " (unchanged)")
    return out_path


def arpa_to_fst(
    arpa: str | Path,
    words_txt: str | Path,
    out_fst: Optional[str | Path] = None,
    max_order: int = -1,
) -> kaldifst.StdVectorFst:
    """Convert an ARPA LM to G over the word ids of ``words_txt`` (which must contain ``#0``).

    n-grams with words not in ``words_txt`` are dropped by kaldilm (with a warning).
    Returns G (ilabel-sorted); also writes it to ``out_fst`` (binary OpenFst) and
    ``out_fst`` + ``.txt`` (text format) when given.
    """
    import kaldilm

    arpa, words_txt = Path(arpa), Path(words_txt)
    for p in (arpa, words_txt):
        if not p.is_file():
            raise SpeechlmError(f"{p} not found: train the LM / prepare the lang dir first")
    if "#0" not in words_txt.read_text(encoding="utf-8").split():
        raise SpeechlmError(f"{words_txt} has no #0: rebuild it with prepare_lang_dir")
    check_arpa(arpa)  # kaldilm aborts the whole process on a malformed file
    try:
        text = kaldilm.arpa2fst(
            input_arpa=str(arpa),
            disambig_symbol="#0",
            read_symbol_table=str(words_txt),
            max_order=max_order,
        )
    except Exception as e:  # kaldilm raises RuntimeError on malformed ARPA
        raise SpeechlmError(f"cannot convert ARPA LM {arpa}: {e}") from e
    G = kaldifst.compile(text, acceptor=False)
    if G.num_states == 0 or G.start < 0:
        raise SpeechlmError(f"G from {arpa} is empty: do the ARPA's words match {words_txt}?")
    kaldifst.arcsort(G, sort_type="ilabel")
    if out_fst is not None:
        out_fst = Path(out_fst)
        out_fst.parent.mkdir(parents=True, exist_ok=True)
        Path(str(out_fst) + ".txt").write_text(text, encoding="utf-8")
        G.write(str(out_fst))
    return G



_COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")
_SECTION = re.compile(r"\\(\d+)-grams:")


def check_arpa(arpa: str | Path) -> None:
    """Raise SpeechlmError naming the line if ``arpa`` is not a well-formed ARPA file.

    (kaldilm aborts the whole process on a malformed file, so check first.)
    """
    arpa = Path(arpa)
    header, ended, order = False, False, 0
    declared: dict = {}
    found: dict = {}

    def bad(n: int, why: str) -> SpeechlmError:
        return SpeechlmError(f"{arpa}:{n}: malformed ARPA LM ({why}); retrain it with train_arpa")

    with open(arpa, encoding="utf-8", errors="replace") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or ended:
                continue
            if not header:
                header = line == "\\data\\"  # text before \data\ is allowed
                continue
            if order == 0 and line.startswith("ngram"):
                m = _COUNT.fullmatch(line)
                if not m:
                    raise bad(n, f"cannot parse count line {line!r}")
                declared[int(m.group(1))] = int(m.group(2))
            elif line == "\\end\\":
                ended = True
            elif _SECTION.fullmatch(line):
                order = int(_SECTION.fullmatch(line).group(1))
                if order not in declared:
                    raise bad(n, f"section {line!r} is not declared in \\data\\")
                found[order] = 0
            elif order > 0:
                fields = line.split()
                try:
                    float(fields[0])
                except ValueError:
                    raise bad(n, f"log-probability {fields[0]!r} is not a number") from None
                if len(fields) not in (order + 1, order + 2):
                    raise bad(n, f"expected {order} words in a {order}-gram line")
                found[order] += 1
            else:
                raise bad(n, f"unexpected line {line!r}")
    if not header or not declared:
        raise SpeechlmError(f"{arpa}: not an ARPA LM (no \\data\\ section with ngram counts)")
    if not ended:
        raise SpeechlmError(f"{arpa}: ARPA LM is truncated (no \\end\\); retrain it")
    for k, v in declared.items():
        if found.get(k, 0) != v:
            raise SpeechlmError(f"{arpa}: ARPA declares {v} {k}-grams but has {found.get(k, 0)}")
