"""WFST decoding of CTC posteriors: H (CTC topology), L (lexicon), G (n-gram) with kaldifst,
searched by kaldi-decoder.

Label conventions (why: token id 0 is both the CTC blank and OpenFst's epsilon):

- H's *input* labels are token id + 1, so blank (id 0) is label 1 and label 0 stays epsilon.
  kaldi-decoder's ``DecodableCtc`` reads column ``label - 1`` of the log-prob matrix, which
  undoes the shift; this is how icefall and sherpa build graphs for kaldi-decoder.
- H's *output* labels, and L's input labels, are plain token ids: blank is never emitted
  (it maps to epsilon), and every other token id is >= 1. So ``tokens.txt`` is the output
  symbol table of a token-level graph and ``words.txt`` that of HLG, with no offsets.
- L's disambiguation symbols ``#k`` get token-space labels ``vocab_size + k``; they are
  replaced by epsilon in det(L∘G) before composing with H.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import kaldifst
import numpy as np
import torch

from speechlm.base.errors import SpeechlmError
from speechlm.text import symbols as sym
from speechlm.text.lang import DISAMBIG0, read_lexicon, read_table
from speechlm.text.ngram import arpa_to_fst

log = logging.getLogger(__name__)


def _arc(ilabel: int, olabel: int, weight: float, nextstate: int) -> kaldifst.StdArc:
    return kaldifst.StdArc(ilabel=ilabel, olabel=olabel, weight=weight, nextstate=nextstate)


def build_ctc_topo(
    vocab_size: int, exclude: Iterable[int] = (), compact: bool = False
) -> kaldifst.StdVectorFst:
    """CTC topology H: input = token id + 1, output = token id (blank -> epsilon).

    ``standard``: one state per token (state 0 = blank), fully connected, so a repeated token
    needs a blank between (exact CTC; vocab_size^2 arcs). ``compact``: each token state has an
    epsilon arc back to the blank state instead of arcs to every other token (O(vocab) arcs;
    it also lets ``a a`` be read as two tokens without a blank, a common approximation).
    Token ids in ``exclude`` (e.g. task markers a CTC head never emits) get no arcs.
    """
    tokens = [t for t in range(1, vocab_size) if t not in set(exclude)]
    H = kaldifst.StdVectorFst()
    state = {0: H.add_state()}
    for t in tokens:
        state[t] = H.add_state()
    H.start = state[0]
    for s in state.values():
        H.set_final(s, 0.0)
    blank_in = sym.BLANK_ID + 1
    H.add_arc(state[0], _arc(blank_in, 0, 0.0, state[0]))
    for t in tokens:
        H.add_arc(state[0], _arc(t + 1, t, 0.0, state[t]))
        H.add_arc(state[t], _arc(t + 1, 0, 0.0, state[t]))  # the token repeats
        H.add_arc(state[t], _arc(blank_in, 0, 0.0, state[0]))
        if compact:
            H.add_arc(state[t], _arc(0, 0, 0.0, state[0]))
        else:
            for u in tokens:
                if u != t:
                    H.add_arc(state[t], _arc(u + 1, u, 0.0, state[u]))
    return H


def build_lexicon_fst(
    lexicon: Sequence[Tuple[str, List[str]]],
    token_ids: Dict[str, int],
    word_ids: Dict[str, int],
    lexicon_path: str = "lexicon",
) -> kaldifst.StdVectorFst:
    """L (no optional silence): token ids (and ``#k`` labels) -> word ids, one loop state.

    ``#k`` in a pronunciation gets label ``len(token_ids) + k``; a ``#0:#0`` self-loop lets G's
    back-off arcs through.
    """
    vocab_size = len(token_ids)
    L = kaldifst.StdVectorFst()
    loop = L.add_state()
    L.start = loop
    L.set_final(loop, 0.0)
    for word, pron in lexicon:
        if word not in word_ids:
            raise SpeechlmError(f"{lexicon_path}: word {word!r} is not in words.txt")
        labels = []
        for p in pron:
            if p.startswith("#") and p[1:].isdigit():
                labels.append(vocab_size + int(p[1:]))
            elif p in token_ids and token_ids[p] != sym.BLANK_ID:
                labels.append(token_ids[p])
            else:
                raise SpeechlmError(
                    f"{lexicon_path}: word {word!r} uses token {p!r} not in tokens.txt: "
                    "rebuild the lang dir with the tokenizer of this model"
                )
        src = loop
        for i, label in enumerate(labels):
            dst = loop if i == len(labels) - 1 else L.add_state()
            L.add_arc(src, _arc(label, word_ids[word] if i == 0 else 0, 0.0, dst))
            src = dst
    kaldifst.add_self_loops(L, isyms=[vocab_size], osyms=[word_ids[DISAMBIG0]])
    return L


def build_lg(L: kaldifst.StdVectorFst, G: kaldifst.StdVectorFst, first_disambig: int):
    """det(min(L∘G)) with the disambiguation labels (>= ``first_disambig``) made epsilon."""
    kaldifst.arcsort(L, sort_type="olabel")
    LG = kaldifst.compose(L, G)
    if kaldifst.determinize_star(LG):
        raise SpeechlmError("determinising L∘G hit the state limit: the lexicon is too ambiguous")
    kaldifst.minimize_encoded(LG)
    LG = _relabel_disambig(LG, first_disambig)
    kaldifst.rmepsilon(LG)
    kaldifst.connect(LG)
    kaldifst.arcsort(LG, sort_type="ilabel")
    return LG


def _relabel_disambig(fst: kaldifst.StdVectorFst, first_disambig: int) -> kaldifst.StdVectorFst:
    """Copy of ``fst`` with input labels >= ``first_disambig`` replaced by epsilon."""
    out = kaldifst.StdVectorFst()
    for _ in kaldifst.StateIterator(fst):
        out.add_state()
    out.start = fst.start
    for s in kaldifst.StateIterator(fst):
        out.set_final(s, fst.final(s))
        for a in kaldifst.ArcIterator(fst, s):
            ilabel = 0 if a.ilabel >= first_disambig else a.ilabel
            out.add_arc(s, _arc(ilabel, a.olabel, a.weight, a.nextstate))
    return out


def compose_h(H: kaldifst.StdVectorFst, X: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    kaldifst.arcsort(H, sort_type="olabel")
    HX = kaldifst.compose(H, X)
    kaldifst.connect(HX)
    kaldifst.arcsort(HX, sort_type="ilabel")
    if HX.num_states == 0:
        raise SpeechlmError("the decoding graph is empty: no word of G can be spelled by L and H")
    return HX


def graph_info(fst) -> Dict[str, int]:
    """``{"num_states": ..., "num_arcs": ...}`` of an FST."""
    n_states = fst.num_states
    return {"num_states": n_states, "num_arcs": sum(fst.num_arcs(s) for s in range(n_states))}


def _up_to_date(out_path: Path, inputs: Iterable[Path]) -> bool:
    if not out_path.is_file():
        return False
    t = out_path.stat().st_mtime
    return all(p.stat().st_mtime <= t for p in inputs)


def _write_fst(fst: kaldifst.StdVectorFst, out_path: Path, num_tokens: int) -> Dict[str, int]:
    """Write ``fst`` atomically, with ``<out_path>.json`` recording its token count and size."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    info = {"num_tokens": num_tokens, **graph_info(fst)}
    Path(str(out_path) + ".json").write_text(json.dumps(info) + "\n", encoding="utf-8")
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".fst.tmp")
    os.close(fd)
    try:
        fst.write(tmp)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return info


def _load_G(arpa_or_G: Path, words_txt: Path, max_order: int) -> kaldifst.StdVectorFst:
    if not arpa_or_G.is_file():
        raise SpeechlmError(f"LM {arpa_or_G} not found: train it (recipe stage 2) first")
    with open(arpa_or_G, "rb") as f:
        head = f.read(64).lstrip()
    if head.startswith(b"\\data\\"):
        return arpa_to_fst(arpa_or_G, words_txt, max_order=max_order)
    G = kaldifst.StdVectorFst.read(str(arpa_or_G))
    if G is None:
        raise SpeechlmError(f"{arpa_or_G} is neither an ARPA LM nor a binary OpenFst G")
    kaldifst.arcsort(G, sort_type="ilabel")
    return G


def build_hlg(
    lang_dir: str | Path,
    arpa_or_G: str | Path,
    out_path: str | Path,
    max_order: int = -1,
    compact_topo: bool = False,
    force: bool = False,
) -> Path:
    """Build HLG = H ∘ det(L∘G) from a lang dir and an ARPA LM (or a binary G.fst).

    Skipped when ``out_path`` exists and is newer than its inputs (unless ``force``). The
    graph maps token id + 1 (see the module docstring) to word ids of ``lang_dir/words.txt``.
    """
    lang_dir, arpa_or_G, out_path = Path(lang_dir), Path(arpa_or_G), Path(out_path)
    tokens_txt, words_txt = lang_dir / "tokens.txt", lang_dir / "words.txt"
    lexicon_txt = lang_dir / "lexicon_disambig.txt"
    inputs = [tokens_txt, words_txt, lexicon_txt, arpa_or_G]
    for p in inputs:
        if not p.is_file():
            raise SpeechlmError(f"{p} not found: prepare the lang dir and LM (stage 2) first")
    if not force and _up_to_date(out_path, inputs):
        log.info("HLG %s is up to date; skipping", out_path)
        return out_path
    t0 = time.time()
    token_ids, word_ids = read_table(tokens_txt), read_table(words_txt)
    L = build_lexicon_fst(read_lexicon(lexicon_txt), token_ids, word_ids, str(lexicon_txt))
    G = _load_G(arpa_or_G, words_txt, max_order)
    LG = build_lg(L, G, first_disambig=len(token_ids))
    H = build_ctc_topo(len(token_ids), compact=compact_topo)
    HLG = compose_h(H, LG)
    info = _write_fst(HLG, out_path, num_tokens=len(token_ids))
    log.info("HLG %s: %s (%.1fs)", out_path, info, time.time() - t0)
    return out_path


def build_token_graph(
    lang_dir: str | Path,
    out_path: str | Path,
    token_arpa: Optional[str | Path] = None,
    compact_topo: bool = False,
    force: bool = False,
) -> Path:
    """Lexicon-free graph over tokens: H, or H ∘ G_tokens if a token-level ARPA is given.

    Outputs are token ids (symbol table ``tokens.txt``); special tokens other than blank get no
    arcs. The token ARPA is trained on piece sequences (``train_arpa`` on
    ``" ".join(tokenizer.sp.encode(text, out_type=str))`` lines); its back-off arcs become
    epsilons.
    """
    lang_dir, out_path = Path(lang_dir), Path(out_path)
    tokens_txt = lang_dir / "tokens.txt"
    inputs = [tokens_txt] + ([Path(token_arpa)] if token_arpa else [])
    for p in inputs:
        if not p.is_file():
            raise SpeechlmError(f"{p} not found: prepare the lang dir and LM (stage 2) first")
    if not force and _up_to_date(out_path, inputs):
        return out_path
    token_ids = read_table(tokens_txt)
    V = len(token_ids)
    specials = range(1, sym.NUM_SPECIALS)
    H = build_ctc_topo(V, exclude=specials, compact=compact_topo)
    if token_arpa is None:
        kaldifst.arcsort(H, sort_type="ilabel")
        graph = H
    else:
        # G over token ids: words.txt-like table where pieces keep their ids.
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "symbols.txt"
            extra = [DISAMBIG0, "<s>", "</s>"]
            lines = ["<eps> 0"] + [f"{p} {i}" for p, i in token_ids.items() if i != 0]
            lines += [f"{s} {V + k}" for k, s in enumerate(extra)]
            table.write_text("\n".join(lines) + "\n", encoding="utf-8")
            G = arpa_to_fst(token_arpa, table)
        graph = compose_h(H, _relabel_disambig(G, first_disambig=V))
    info = _write_fst(graph, out_path, num_tokens=V)
    log.info("token graph %s: %s", out_path, info)
    return out_path


def _lattice_to_word_acceptor(lat) -> kaldifst.StdVectorFst:
    """Lattice (graph, acoustic) costs -> acceptor over output labels with summed cost."""
    lines = []
    for line in lat.to_str(show_weight_one=True).splitlines():
        f = line.split()
        if len(f) == 5:
            c1, c2 = (float(x) for x in f[4].split(","))
            lines.append(f"{f[0]} {f[1]} {f[3]} {f[3]} {c1 + c2}")
        elif len(f) == 2:
            c1, c2 = (float(x) for x in f[1].split(","))
            lines.append(f"{f[0]} {c1 + c2}")
    return kaldifst.compile("\n".join(lines) + "\n")


class HLGDecoder:
    """Decode CTC log-probs over a graph from :func:`build_hlg` or :func:`build_token_graph`.

    ``symbols_txt`` is the graph's output table (``words.txt`` for HLG, ``tokens.txt`` for a
    token graph). ``acoustic_scale`` multiplies the log-probs (graph costs stay as they are).
    """

    def __init__(
        self,
        graph_path: str | Path,
        symbols_txt: str | Path,
        beam: float = 16.0,
        max_active: int = 7000,
        min_active: int = 30,
        acoustic_scale: float = 1.0,
        lattice_beam: float = 8.0,
    ):
        import kaldi_decoder

        graph_path = Path(graph_path)
        if not graph_path.is_file():
            raise SpeechlmError(f"decoding graph {graph_path} not found: run build_hlg first")
        self.graph = kaldifst.StdVectorFst.read(str(graph_path))
        if self.graph is None:
            raise SpeechlmError(f"{graph_path} is not a binary OpenFst graph: rebuild it")
        self.graph_path = graph_path
        meta = Path(str(graph_path) + ".json")
        self.num_tokens = json.loads(meta.read_text())["num_tokens"] if meta.is_file() else None
        self.id2sym = {i: s for s, i in read_table(symbols_txt).items()}
        self.acoustic_scale = acoustic_scale
        self.beam, self.lattice_beam = beam, lattice_beam
        opts = kaldi_decoder.FasterDecoderOptions(
            beam=beam, max_active=max_active, min_active=min_active
        )
        self._decoder = kaldi_decoder.FasterDecoder(self.graph, opts)
        self._kd = kaldi_decoder

    def _decodables(self, log_probs: torch.Tensor, lengths: torch.Tensor):
        if log_probs.dim() != 3 or lengths.dim() != 1 or lengths.numel() != log_probs.size(0):
            raise SpeechlmError(
                f"expected log_probs [B,T,V] and lengths [B], got {tuple(log_probs.shape)} "
                f"and {tuple(lengths.shape)}"
            )
        if self.num_tokens is not None and log_probs.size(2) != self.num_tokens:
            raise SpeechlmError(
                f"log-probs have {log_probs.size(2)} token columns but {self.graph_path} was "
                f"built for {self.num_tokens} tokens: rebuild it with this model's lang dir"
            )
        lp = (log_probs.detach().float().cpu() * self.acoustic_scale).numpy()
        for b, n in enumerate(lengths.tolist()):
            if not 0 <= int(n) <= lp.shape[1]:
                raise SpeechlmError(f"length {n} of utterance {b} is outside 0..{lp.shape[1]}")
            yield self._kd.DecodableCtc(np.ascontiguousarray(lp[b, : int(n)])) if n else None

    def _words(self, labels: Iterable[int]) -> List[str]:
        return [self.id2sym.get(int(i), f"<id:{i}>") for i in labels if int(i) != 0]

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[str]]:
        """Best path per utterance as a list of output symbols (words or token pieces)."""
        out = []
        for decodable in self._decodables(log_probs, lengths):
            if decodable is None:
                out.append([])
                continue
            self._decoder.decode(decodable)
            ok, lat = self._decoder.get_best_path()
            if not ok:
                out.append([])
                continue
            ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(lat)
            out.append(self._words(olabels) if ok else [])
        return out

    def decode_nbest(
        self, log_probs: torch.Tensor, lengths: torch.Tensor, n: int = 5
    ) -> List[List[Tuple[List[str], float]]]:
        """Up to ``n`` distinct output sequences per utterance with their total log-score
        (acoustic_scale * log-prob - graph cost of the best alignment), best first."""
        cfg = self._kd.LatticeSimpleDecoderConfig(beam=self.beam, lattice_beam=self.lattice_beam)
        decoder = self._kd.LatticeSimpleDecoder(self.graph, cfg)
        out = []
        for decodable in self._decodables(log_probs, lengths):
            if decodable is None:
                out.append([])
                continue
            decoder.decode(decodable)
            ok, lat = decoder.get_raw_lattice()
            if not ok or lat.num_states == 0:
                out.append([])
                continue
            acc = _lattice_to_word_acceptor(lat)
            kaldifst.rmepsilon(acc)
            acc = kaldifst.determinize(acc)
            hyps = []
            for path in kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(acc, n=n)):
                _, _, olabels, w = kaldifst.get_linear_symbol_sequence(path)
                hyps.append((self._words(olabels), -float(w.value)))
            hyps.sort(key=lambda h: -h[1])
            out.append(hyps)
        return out
