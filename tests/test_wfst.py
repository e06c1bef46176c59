"""WFST graphs (H, L, G, HLG) and decoding with kaldi-decoder on hand-built CTC posteriors."""

import math
import os
import time

import kaldifst
import pytest
import torch

from speechlm.decode.wfst import HLGDecoder, build_hlg, build_token_graph, graph_info
from speechlm.base.errors import SpeechlmError
from speechlm.text.lang import (
    add_disambig_symbols,
    map_oovs,
    prepare_lang_dir,
    read_table,
    words_to_ids,
)
from speechlm.text.ngram import arpa_to_fst, train_arpa
from speechlm.text.tokenizer import Tokenizer, train_sentencepiece

LN10 = math.log(10.0)
# LM text where "yes" and "no" alternate: the bigram strongly prefers yes->no, no->yes.
LM_TEXT = ["yes no yes no yes", "no yes no yes no", "yes no yes", "no yes no"] * 5


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    d = tmp_path_factory.mktemp("wfst")
    texts = ["yes no no yes", "no yes yes no", "yes yes no no"] * 10
    tok = Tokenizer(train_sentencepiece(texts, d / "tok", vocab_size=12))
    prepare_lang_dir(d / "lang", tok, ["yes", "no", "yes"])
    return d, tok


def posteriors(frames, vocab_size, floor=1e-4):
    """frames: list of {token_id: prob}; the rest of each frame's mass is spread thinly."""
    p = torch.full((1, len(frames), vocab_size), floor)
    for t, f in enumerate(frames):
        for i, v in f.items():
            p[0, t, i] = v
    return torch.log_softmax(p.log(), dim=-1), torch.tensor([len(frames)])


def spell(ids):
    """Clean frames spelling token ids with blanks around each token."""
    frames = []
    for i in ids:
        frames += [{0: 0.99}, {i: 0.99}, {i: 0.99}]
    return frames + [{0: 0.99}]


def ambiguous_posteriors(tok):
    """"yes <?> yes" where the middle word is acoustically a near tie that leans to "yes"."""
    yes, no = tok.encode("yes"), tok.encode("no")
    # middle word: each frame puts 0.5 on the "yes" spelling and 0.4 on the "no" spelling,
    # both stretched to a common length by repeating their last piece (CTC collapses repeats)
    width = max(len(yes), len(no))

    def stretched(ids):
        assert all(a != b for a, b in zip(ids, ids[1:]))  # no repeats that would collapse
        return ids + [ids[-1]] * (width - len(ids))

    middle = []
    for y, m in zip(stretched(yes), stretched(no)):
        f = {0: 0.1}
        f[y] = f.get(y, 0.0) + 0.5
        f[m] = f.get(m, 0.0) + 0.4
        middle.append(f)
    frames = spell(yes) + middle + spell(yes)
    return posteriors(frames, tok.vocab_size)


def test_lang_dir_files(lang):
    d, tok = lang
    tokens = read_table(d / "lang" / "tokens.txt")
    assert tokens == {p: i for i, p in enumerate(tok.pieces())}
    words = (d / "lang" / "words.txt").read_text().split()[::2]
    assert words == ["<eps>", "no", "yes", "<unk>", "#0", "<s>", "</s>"]
    lex = dict(line.split(" ", 1) for line in (d / "lang" / "lexicon.txt").read_text().splitlines())
    assert lex["yes"].split() == tok.sp.encode("yes", out_type=str)


def test_decode_clean_posteriors_over_lexicon_graph(lang):
    d, tok = lang
    arpa = train_arpa(["yes no", "no yes"], 1, d / "uni.arpa")  # flat unigram: no LM bias
    hlg = build_hlg(d / "lang", arpa, d / "HLG_uni.fst")
    lp, n = posteriors(spell(tok.encode("yes no yes")), tok.vocab_size)
    dec = HLGDecoder(hlg, d / "lang" / "words.txt", beam=10.0)
    assert dec.decode(lp, n) == [["yes", "no", "yes"]]
    compact = build_hlg(d / "lang", arpa, d / "HLG_compact.fst", compact_topo=True)
    assert HLGDecoder(compact, d / "lang" / "words.txt").decode(lp, n) == [["yes", "no", "yes"]]
    # batch of two with padding: the second utterance is shorter
    lp2, n2 = posteriors(spell(tok.encode("no")), tok.vocab_size)
    batch = torch.full((2, lp.size(1), lp.size(2)), -1e4)
    batch[0], batch[1, : lp2.size(1)] = lp[0], lp2[0]
    assert dec.decode(batch, torch.tensor([n.item(), n2.item()])) == [["yes", "no", "yes"], ["no"]]
    assert dec.decode(batch, torch.tensor([n.item(), 0])) == [["yes", "no", "yes"], []]
    with pytest.raises(SpeechlmError, match="built for"):  # a model with another vocabulary
        dec.decode(lp[:, :, :-1], n)
    # token-level (lexicon-free) graph spells the pieces
    tg = build_token_graph(d / "lang", d / "T.fst")
    pieces = HLGDecoder(tg, d / "lang" / "tokens.txt").decode(lp, n)[0]
    assert pieces == tok.sp.encode("yes no yes", out_type=str)


def test_arpa_to_G_weights(tmp_path):
    (tmp_path / "words.txt").write_text(
        "<eps> 0\na 1\nb 2\n<unk> 3\n#0 4\n<s> 5\n</s> 6\n", encoding="utf-8"
    )
    (tmp_path / "lm.arpa").write_text(
        "\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1.0 <s> -0.5\n-0.5 </s>\n"
        "-0.3 a -0.2\n-0.7 b -0.1\n\n\\2-grams:\n-0.1 <s> a\n-0.2 a b\n\n\\end\\\n",
        encoding="utf-8",
    )
    G = arpa_to_fst(tmp_path / "lm.arpa", tmp_path / "words.txt", tmp_path / "G.fst")
    assert (tmp_path / "G.fst").is_file()
    arcs = {
        s: [(a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kaldifst.ArcIterator(G, s)]
        for s in kaldifst.StateIterator(G)
    }
    start = arcs[G.start]  # history <s>
    by_label = {il: (w, nxt) for il, _, w, nxt in start}
    assert by_label[1][0] == pytest.approx(0.1 * LN10, rel=1e-4)  # <s> a
    assert by_label[4][0] == pytest.approx(0.5 * LN10, rel=1e-4)  # backoff(<s>) on #0
    backoff_state = by_label[4][1]  # unigram history
    uni = {il: w for il, _, w, _ in arcs[backoff_state]}
    assert uni[2] == pytest.approx(0.7 * LN10, rel=1e-4)  # p(b)
    assert G.final(backoff_state).value == pytest.approx(0.5 * LN10, rel=1e-4)  # p(</s>)
    assert all(ol == 0 for il, ol, _, _ in start if il == 4)  # #0 arcs output epsilon


def test_oov_policy(lang):
    d, _ = lang
    table = read_table(d / "lang" / "words.txt")
    with pytest.raises(SpeechlmError, match="'maybe'"):
        words_to_ids(["yes", "maybe"], table, "error", item="utt1")
    assert words_to_ids(["yes", "maybe"], table, "unk") == [table["yes"], table["<unk>"]]
    assert map_oovs(["maybe", "no"], table, "unk") == ["<unk>", "no"]
    with pytest.raises(SpeechlmError, match="OOV policy"):
        words_to_ids(["yes"], table, "ignore")


def test_lm_disambiguates_noisy_posteriors(lang):
    d, tok = lang
    arpa = train_arpa(LM_TEXT, 2, d / "bi.arpa")
    hlg = build_hlg(d / "lang", arpa, d / "HLG_bi.fst")
    info = graph_info(kaldifst.StdVectorFst.read(str(hlg)))
    assert info["num_states"] > 0 and info["num_arcs"] > 0
    # cached: a second build is skipped and leaves the file untouched
    mtime = os.path.getmtime(hlg)
    time.sleep(0.01)
    assert build_hlg(d / "lang", arpa, d / "HLG_bi.fst") == hlg
    assert os.path.getmtime(hlg) == mtime

    lp, n = ambiguous_posteriors(tok)

    no_lm = build_token_graph(d / "lang", d / "T.fst")
    acoustic_only = HLGDecoder(no_lm, d / "lang" / "tokens.txt").decode(lp, n)[0]
    assert acoustic_only == tok.sp.encode("yes yes yes", out_type=str)
    uni = build_hlg(d / "lang", train_arpa(["yes no", "no yes"], 1, d / "u.arpa"), d / "HLG_u.fst")
    flat = HLGDecoder(uni, d / "lang" / "words.txt")  # equal p(yes), p(no): acoustics decide
    assert flat.decode(lp, n) == [["yes", "yes", "yes"]]
    dec = HLGDecoder(hlg, d / "lang" / "words.txt", lattice_beam=20.0)
    assert dec.decode(lp, n) == [["yes", "no", "yes"]]

    nbest = dec.decode_nbest(lp, n, n=5)[0]
    assert nbest[0][0] == ["yes", "no", "yes"]
    assert len(nbest) >= 2 and nbest[0][1] >= nbest[1][1]
    assert ["yes", "yes", "yes"] in [h for h, _ in nbest]


def test_missing_inputs_are_clear_errors(tmp_path, lang):
    d, _ = lang
    with pytest.raises(SpeechlmError, match="not found"):
        build_hlg(tmp_path / "nolang", d / "bi.arpa", tmp_path / "HLG.fst")
    with pytest.raises(SpeechlmError, match="not found"):
        HLGDecoder(tmp_path / "missing.fst", d / "lang" / "words.txt")
    with pytest.raises(SpeechlmError, match="empty"):
        train_arpa(["", "  "], 2, tmp_path / "x.arpa")
    # kaldilm would abort the process on this; we refuse it first, naming file and line
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=x\n", encoding="utf-8")
    with pytest.raises(SpeechlmError, match="bad.arpa:2"):
        arpa_to_fst(tmp_path / "bad.arpa", d / "lang" / "words.txt")


def test_disambig_symbols_for_homophones_and_prefixes():
    lex = [("a", ["x"]), ("b", ["x"]), ("c", ["x", "y"]), ("d", ["z"])]
    out, top = add_disambig_symbols(lex)
    assert out == [("a", ["x", "#1"]), ("b", ["x", "#2"]), ("c", ["x", "y"]), ("d", ["z"])]
    assert top == 2


def test_hlg_nbest_rescoring_with_neural_lm(lang, tmp_path):
    """hlg-nbest-lm re-ranks the HLG lattice's n-best with a real (tiny, trained) text LM."""
    from speechlm.base.config import ExperimentConfig, LMConfig
    from speechlm.decode.methods import DecodeContext, build_methods
    from speechlm.models.asr import Encoded
    from speechlm.models.lm import TransformerLM, lm_loss

    d, tok = lang
    build_hlg(d / "lang", train_arpa(LM_TEXT, 2, d / "bi.arpa"), d / "lang" / "HLG.fst")
    torch.manual_seed(0)
    lm_cfg = LMConfig(d_model=32, num_layers=1, num_heads=2, ff_mult=2, dropout=0.0)
    lm = TransformerLM(lm_cfg, tok.vocab_size)
    opt = torch.optim.Adam(lm.parameters(), lr=1e-2)
    for _ in range(40):  # an LM that has only ever seen "yes yes yes"
        loss, _ = lm_loss(lm, [tok.encode("yes yes yes")], "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({"model": lm.state_dict(), "vocab_size": tok.vocab_size,
                "config": {"model": {"kind": "lm"}, "lm": vars(lm_cfg)}}, tmp_path / "lm.pt")
    lp, n = ambiguous_posteriors(tok)
    enc = Encoded(lp, n)

    def decode(lm_weight):
        cfg = ExperimentConfig()
        cfg.decode.lm_weight, cfg.decode.nbest, cfg.decode.lattice_beam = lm_weight, 5, 20.0
        ctx = DecodeContext("", lm, cfg, tok, tmp_path, d / "lang", str(tmp_path / "lm.pt"))
        m = build_methods(["hlg-1best", "hlg-nbest-lm"], ctx)
        return {name: fn(enc)[0] for name, fn in m.items()}

    # weight 0: the lattice's own best path (the bigram prefers yes no yes), as hlg-1best
    assert decode(0.0) == {"hlg-1best": ["yes", "no", "yes"], "hlg-nbest-lm": ["yes", "no", "yes"]}
    # a heavy neural-LM weight flips it to the LM's sentence, which is in the 5-best
    assert decode(5.0)["hlg-nbest-lm"] == ["yes", "yes", "yes"]
    with pytest.raises(SpeechlmError, match="needs a text LM"):
        build_methods(["hlg-nbest-lm"], DecodeContext("", lm, ExperimentConfig(), tok, tmp_path,
                                                      d / "lang"))
