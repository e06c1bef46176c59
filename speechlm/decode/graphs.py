"""Stage-2 decoding graphs: a lang dir, word and token n-gram LMs, HLG and a token graph.

``speechlm prepare-lang`` calls :func:`prepare_lang_and_graphs`. Everything lands in the lang
dir, which is also the tokenizer's folder (``bpe.model`` is read, never written):

- ``tokens.txt words.txt lexicon*.txt oov_policy``   (:func:`speechlm.text.lang.prepare_lang_dir`)
- ``lm_<N>gram.arpa``          word N-gram on the LM text
- ``HLG.fst`` (+ ``.json``)     H ∘ det(L∘G): CTC token ids -> words (``hlg-*`` methods)
- ``tokens_lm_<N>gram.arpa``    token N-gram on the same text as tokenizer pieces
- ``token_graph.fst`` (+ ``.json``)  H ∘ G_tokens: CTC token ids -> pieces, lexicon-free

Files whose content would not change are not rewritten, so graphs are rebuilt only when their
inputs really changed (the builders compare modification times).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, List, Sequence

from speechlm.base.errors import SpeechlmError

log = logging.getLogger(__name__)

MAX_NGRAM_ORDER = 5  # kaldingram's Kneser-Ney trainer supports orders 1..5


def clip_ngram_order(order: int, lines: Sequence[Sequence[str]], what: str = "LM") -> int:
    """``order`` clipped to what the text can support.

    The longest n-gram a sentence of ``n`` words yields is ``<s> w1 .. wn </s>`` (``n + 2``
    symbols), so a higher order only adds empty sections. Orders above 5 are clipped too.
    """
    if int(order) < 1:
        raise SpeechlmError(f"n-gram order {order} for the {what} is not valid: use 1..5")
    longest = max((len(words) for words in lines), default=0)
    clipped = max(1, min(int(order), MAX_NGRAM_ORDER, longest + 2))
    if clipped != order:
        log.info("%s: n-gram order %d clipped to %d (longest sentence: %d symbols)",
                 what, order, clipped, longest)
    return clipped


def prepare_lang_and_graphs(
    lang_dir: str | Path,
    tokenizer_model: str | Path,
    text_lines: List[str],
    ngram_order: int = 3,
    oov_policy: str = "error",
) -> Dict[str, object]:
    """Build the lang dir, the word and token n-gram LMs, ``HLG.fst`` and ``token_graph.fst``.

    :param lang_dir: output folder (may be the tokenizer's own folder).
    :param tokenizer_model: sentencepiece model from ``speechlm train-tokenizer``.
    :param text_lines: LM training text, one sentence per line; its words form the lexicon.
    :param ngram_order: LM order, clipped to what the text supports (see :func:`clip_ngram_order`).
    :param oov_policy: ``"error"`` or ``"unk"``, recorded in the lang dir for scoring.
    :return: paths of every output, the order used, and the graph sizes (states, arcs).
    """
    from speechlm.decode.wfst import build_hlg, build_token_graph
    from speechlm.text.lang import check_oov_policy, prepare_lang_dir
    from speechlm.text.ngram import train_arpa
    from speechlm.text.tokenizer import Tokenizer

    check_oov_policy(oov_policy)
    t0 = time.time()
    lang_dir = Path(lang_dir)
    tokenizer = Tokenizer(tokenizer_model)
    sentences = [line.split() for line in text_lines if line.split()]
    if not sentences:
        raise SpeechlmError(
            f"no LM text for {lang_dir}: every given line is empty (check --text / --cuts)"
        )
    words = sorted({w for s in sentences for w in s})
    order = clip_ngram_order(ngram_order, sentences)

    prepare_lang_dir(lang_dir, tokenizer, words, oov_policy=oov_policy)
    text = [" ".join(s) for s in sentences]
    word_arpa = train_arpa(text, order, lang_dir / f"lm_{order}gram.arpa")
    hlg = build_hlg(lang_dir, word_arpa, lang_dir / "HLG.fst")

    pieces = [" ".join(tokenizer.id_to_piece(i) for i in tokenizer.encode(t, item="LM text"))
              for t in text]
    token_order = clip_ngram_order(ngram_order, [p.split() for p in pieces], "token LM")
    token_arpa = train_arpa(pieces, token_order, lang_dir / f"tokens_lm_{token_order}gram.arpa")
    token_graph = build_token_graph(lang_dir, lang_dir / "token_graph.fst", token_arpa=token_arpa)

    info: Dict[str, object] = {
        "lang_dir": str(lang_dir),
        "num_words": len(words),
        "num_tokens": tokenizer.vocab_size,
        "ngram_order": order,
        "lm": str(word_arpa),
        "hlg": str(hlg),
        "hlg_states": 0,
        "hlg_arcs": 0,
        "token_lm": str(token_arpa),
        "token_graph": str(token_graph),
        "token_graph_states": 0,
        "token_graph_arcs": 0,
    }
    for key, path in (("hlg", hlg), ("token_graph", token_graph)):
        size = _graph_size(path)
        info[f"{key}_states"], info[f"{key}_arcs"] = size["num_states"], size["num_arcs"]
    log.info(
        "lang %s: %d words, %d tokens, %d-gram LM; HLG %s (%d states, %d arcs); "
        "token graph %s (%d states, %d arcs); %.1fs",
        lang_dir, len(words), tokenizer.vocab_size, order, hlg, info["hlg_states"],
        info["hlg_arcs"], token_graph, info["token_graph_states"], info["token_graph_arcs"],
        time.time() - t0,
    )
    return info


def _graph_size(path: Path) -> Dict[str, int]:
    """States and arcs from the ``.json`` the builders write beside a graph (else count them)."""
    import json

    meta = Path(str(path) + ".json")
    if meta.is_file():
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            return {"num_states": int(data["num_states"]), "num_arcs": int(data["num_arcs"])}
        except (ValueError, KeyError, TypeError):
            pass  # stale or hand-edited: count from the graph itself
    import kaldifst

    from speechlm.decode.wfst import graph_info

    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise SpeechlmError(f"{path} is not a binary OpenFst graph: delete it and re-run stage 2")
    return graph_info(fst)
