"""The built-in decoding methods: each ``*_method(ctx)`` returns ``fn(encoded) -> word lists``.

They are declared (name, what they need, options, help) in
:data:`speechlm.base.registry.DECODING_METHODS`, which the CLI, config validation and
:func:`build_methods` read.

==================== ====================================================================
ctc-greedy           best label per frame, repeats and blanks removed
ctc-prefix-beam      frame-synchronous CTC prefix beam search (``decode.beam_size``)
attention-beam       label-synchronous beam search, (1 - w) decoder + w CTC prefix score
                     (``decode.ctc_weight`` = w), speech-LM models only
attention-rescoring  CTC prefix-beam n-best re-ranked by (1 - w) decoder + w CTC
lm-shallow-fusion    label-synchronous CTC prefix beam search + ``decode.lm_weight`` x text LM
attention-lm-fusion  attention-beam + ``decode.lm_weight`` x text LM (decoder, CTC and LM
                     jointly, as ESPnet's joint decoding), speech-LM models only
hlg-1best            WFST decoding over HLG (lexicon + n-gram LM; kaldifst + kaldi-decoder)
hlg-nbest-lm         the HLG lattice's ``decode.nbest`` paths re-ranked with the text LM
==================== ====================================================================

``decode.lm_weights`` gives a fusion method its own weight in place of ``decode.lm_weight``
(``{attention-lm-fusion: 0.3}``), so both fusions can run in one pass each at its best weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from speechlm.base.config import ExperimentConfig
from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import DECODING_METHODS, MODEL_FAMILIES, methods_for, resolve
from speechlm.decode import search
from speechlm.decode.ctc import ctc_greedy
from speechlm.models.asr import Encoded
from speechlm.text.lang import check_tokens_match
from speechlm.text.tokenizer import Tokenizer

# A method maps one batch's Encoded to one word list per utterance.
Method = Callable[[Encoded], List[List[str]]]


@dataclass
class DecodeContext:
    """What a method's builder may use; built once per decoding run."""

    name: str  # the method being built
    model: object
    cfg: ExperimentConfig
    tokenizer: Tokenizer
    exp_dir: Path
    lang_dir: Optional[Path] = None  # for hlg-* (HLG.fst, words.txt)
    lm_checkpoint: Optional[str] = None  # --lm-checkpoint, for the text-LM methods

    @property
    def decode(self):
        return self.cfg.decode

    @property
    def device(self):
        return next(self.model.parameters()).device

    def words(self, ids_list) -> List[List[str]]:
        return [self.tokenizer.decode(ids).split() for ids in ids_list]


def build_methods(names: Sequence[str], ctx: DecodeContext) -> Dict[str, Method]:
    """Every named method for the model in ``ctx``; a method the model's family cannot run, or
    an unknown name, is one message listing what it can run."""
    family = MODEL_FAMILIES.get(ctx.cfg.model.kind)
    usable = methods_for(family)
    methods: Dict[str, Method] = {}
    for name in names:
        entry = DECODING_METHODS.get(name, "--methods")
        if name not in usable:
            raise SpeechlmError(
                f"{name} needs a model that provides {', '.join(entry.needs)}; {ctx.exp_dir} holds a "
                f"{family.name!r} model ({family.help}), whose methods are: {', '.join(usable)}")
        ctx.name = name
        methods[name] = resolve(entry.build)(ctx)
    return methods


# ---- CTC ---------------------------------------------------------------------------------
def ctc_greedy_method(ctx: DecodeContext) -> Method:
    return lambda e: ctx.words(ctc_greedy(e.log_probs, e.lengths))


def ctc_prefix_beam_method(ctx: DecodeContext) -> Method:
    beam = ctx.decode.beam_size
    return lambda e: ctx.words(h[0][0] if h else [] for h in
                               search.ctc_prefix_beam_search(e.log_probs, e.lengths, beam))


# ---- attention decoders ------------------------------------------------------------------
def _decoder(ctx: DecodeContext, e: Encoded):
    model = ctx.model
    return (lambda: model.decoder_start(e.prefix, e.prefix_lens), model.lm.step)


def attention_beam_method(ctx: DecodeContext) -> Method:
    d = ctx.decode
    return lambda e: ctx.words(search.beam_search(
        e.log_probs, e.lengths, d.beam_size, decoder=_decoder(ctx, e), ctc_weight=d.ctc_weight,
        length_bonus=d.length_bonus, ctc_pre_beam=d.ctc_pre_beam))


def attention_rescoring_method(ctx: DecodeContext) -> Method:
    d = ctx.decode

    def rescoring(e: Encoded):
        nbest = search.ctc_prefix_beam_search(e.log_probs, e.lengths, d.beam_size)

        def score(utt, hyps):
            utt = utt.to(e.prefix.device)
            return ctx.model.score_hyps(e.prefix[utt], e.prefix_lens[utt], hyps)

        return ctx.words(search.attention_rescoring(nbest, score, d.ctc_weight))
    return rescoring


# ---- text-LM fusion ------------------------------------------------------------------------
def text_lm_source(lm_checkpoint, cfg: ExperimentConfig, init_fallback: bool = True) -> tuple:
    """(path, option that named it) of the text LM a fusion method uses: ``--lm-checkpoint``,
    else ``decode.lm_checkpoint``, else (``init_fallback``) the LM the model was initialised
    from (``speechlm.lm_init``); ``("", None)`` when there is none."""
    sources = [(lm_checkpoint, "--lm-checkpoint"), (cfg.decode.lm_checkpoint, "decode.lm_checkpoint")]
    if init_fallback:
        sources.append((cfg.speechlm.lm_init, "speechlm.lm_init"))
    for path, key in sources:
        if path:
            return str(path), key
    return "", None


def load_text_lm(ctx: DecodeContext, init_fallback: bool = True):
    """The stage-3 text LM of a fusion method, on the model's device; its vocabulary must be
    the ASR model's."""
    from speechlm.models.experiment import model_from_checkpoint

    path, key = text_lm_source(ctx.lm_checkpoint, ctx.cfg, init_fallback)
    if not path:
        raise SpeechlmError(f"{ctx.name} needs a text LM: pass --lm-checkpoint "
                            "(e.g. exp/lm/final.pt from stage 3) or set decode.lm_checkpoint")
    return model_from_checkpoint(path, key, ("lm",), ctx.tokenizer.vocab_size, ctx.device,
                                 user="ASR model")


def lm_fusion_method(ctx: DecodeContext) -> Method:
    """lm-shallow-fusion (CTC + LM) and attention-lm-fusion (decoder + CTC + LM)."""
    d = ctx.decode
    lm = load_text_lm(ctx)
    joint = ctx.name == "attention-lm-fusion"
    lm_weight = d.lm_weight_for(ctx.name)

    def fusion(e: Encoded):
        n = e.log_probs.size(0)
        text_lm = (lambda: lm.start(n, e.log_probs.device), lm.step)
        return ctx.words(search.beam_search(
            e.log_probs, e.lengths, d.beam_size, decoder=_decoder(ctx, e) if joint else None,
            ctc_weight=d.ctc_weight, lm=text_lm, lm_weight=lm_weight, length_bonus=d.length_bonus,
            ctc_pre_beam=d.ctc_pre_beam))
    return fusion


# ---- WFST ----------------------------------------------------------------------------------
def _hlg_decoder(ctx: DecodeContext, **opts):
    lang_dir = ctx.lang_dir
    if lang_dir is None or not (Path(lang_dir) / "HLG.fst").is_file():
        where = f"the decoding graph {lang_dir}/HLG.fst" if lang_dir else "a lang dir with HLG.fst"
        raise SpeechlmError(
            f"{ctx.name} needs {where}, which is not there. In a recipe, stage "
            f"2 builds it when a hlg-* method is asked for: run from stage 2 with this method, e.g. "
            f"./run.sh --stage 2 --methods ctc-greedy,{ctx.name} (stage 2 and the stages after it "
            "run again). With `speechlm decode`: pass "
            "--lang-dir DIR, a dir that `speechlm prepare-lang` wrote")
    check_tokens_match(lang_dir, ctx.tokenizer, ctx.exp_dir / "tokenizer.model")
    from speechlm.decode.wfst import HLGDecoder

    return HLGDecoder(Path(lang_dir) / "HLG.fst", Path(lang_dir) / "words.txt", **opts)


def hlg_1best_method(ctx: DecodeContext) -> Method:
    hlg = _hlg_decoder(ctx)
    return lambda e: hlg.decode(e.log_probs, e.lengths)


def hlg_nbest_lm_method(ctx: DecodeContext) -> Method:
    """HLG lattice n-best (``decode.nbest`` paths, scored by CTC log-prob + n-gram graph score)
    re-ranked with ``decode.lm_weight`` (or its ``decode.lm_weights`` entry) x the neural text
    LM's sentence log-prob."""
    from speechlm.models.lm import sentence_nll

    d = ctx.decode
    hlg = _hlg_decoder(ctx, lattice_beam=d.lattice_beam)
    lm = load_text_lm(ctx, init_fallback=False)
    lm_weight = d.lm_weight_for(ctx.name)
    tokenizer, device = ctx.tokenizer, ctx.device

    def lm_logprob(hyps: List[List[str]]) -> List[float]:
        ids = [tokenizer.encode(" ".join(words)) if words else [] for words in hyps]
        return (-sentence_nll(lm, ids, device)).tolist()  # all n-best entries in one batch

    def rescore(e: Encoded) -> List[List[str]]:
        best = []
        for nbest in hlg.decode_nbest(e.log_probs, e.lengths, n=d.nbest):
            if not nbest:
                best.append([])
                continue
            lm_scores = lm_logprob([words for words, _ in nbest])
            totals = [score + lm_weight * s for (_, score), s in zip(nbest, lm_scores)]
            best.append(nbest[max(range(len(nbest)), key=totals.__getitem__)][0])
        return best

    return rescore
