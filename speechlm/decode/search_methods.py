"""The search-based decoding methods of :mod:`speechlm.decode.recognize`'s registry, built from
a loaded model, its resolved config (``decode`` section) and, for shallow fusion, a text LM.

==================== ====================================================================
ctc-prefix-beam      frame-synchronous CTC prefix beam search (``decode.beam_size``)
attention-beam       label-synchronous beam search, (1 - w) decoder + w CTC prefix score
                     (``decode.ctc_weight`` = w), speech-LM models only
attention-rescoring  CTC prefix-beam n-best re-ranked by (1 - w) decoder + w CTC
lm-shallow-fusion    label-synchronous CTC prefix beam search + ``decode.lm_weight`` x text LM
attention-lm-fusion  attention-beam + ``decode.lm_weight`` x text LM (decoder, CTC and LM
                     jointly, as ESPnet's joint decoding), speech-LM models only
==================== ====================================================================

``decode.lm_weights`` gives a fusion method its own weight in place of ``decode.lm_weight``
(``{attention-lm-fusion: 0.3}``), so both fusions can run in one pass each at its best weight.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speechlm.config import ExperimentConfig
from speechlm.decode import search
from speechlm.decode.recognize import ATTENTION_METHODS
from speechlm.errors import SpeechlmError
from speechlm.text.tokenizer import Tokenizer


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


def load_text_lm(path: str | Path, vocab_size: int, device: torch.device,
                 key: str = "--lm-checkpoint"):
    """A stage-3 text LM for shallow fusion; its vocabulary must be the ASR model's. ``key``
    is the option that named ``path`` (for messages)."""
    from speechlm.config import LMConfig
    from speechlm.models.lm import TransformerLM, checked_lm_state

    state = checked_lm_state(path, key, vocab_size, random_init=False, user="ASR model")
    cfg = state["config"]
    lm_cfg = LMConfig(**{k: v for k, v in cfg["lm"].items() if k in LMConfig.__dataclass_fields__})
    lm = TransformerLM(lm_cfg, vocab_size)
    lm.load_state_dict(state["model"])
    return lm.to(device).eval()


def search_method(name: str, model, cfg: ExperimentConfig, tokenizer: Tokenizer, exp_dir: Path,
                  lm_checkpoint: str | Path | None = None):
    d = cfg.decode
    if d.beam_size < 1:
        raise SpeechlmError(f"decode.beam_size = {d.beam_size}: must be >= 1")
    words = lambda ids_list: [tokenizer.decode(ids).split() for ids in ids_list]
    is_slm = hasattr(model, "decoder_start")
    if name in ATTENTION_METHODS and not is_slm:
        raise SpeechlmError(f"{name} needs a model with an attention decoder (model.kind: speechlm); "
                            f"{exp_dir} has model.kind {cfg.model.kind!r}")

    if name == "ctc-prefix-beam":
        return lambda e: words(h[0][0] if h else [] for h in
                               search.ctc_prefix_beam_search(e.log_probs, e.lengths, d.beam_size))

    if name == "attention-rescoring":
        def rescoring(e):
            nbest = search.ctc_prefix_beam_search(e.log_probs, e.lengths, d.beam_size)

            def score(utt, hyps):
                utt = utt.to(e.prefix.device)
                return model.score_hyps(e.prefix[utt], e.prefix_lens[utt], hyps)

            return words(search.attention_rescoring(nbest, score, d.ctc_weight))
        return rescoring

    if name == "attention-beam":
        def attention_beam(e):
            dec = (lambda: model.decoder_start(e.prefix, e.prefix_lens), model.lm.step)
            return words(search.beam_search(e.log_probs, e.lengths, d.beam_size, decoder=dec,
                                            ctc_weight=d.ctc_weight, length_bonus=d.length_bonus))
        return attention_beam

    if name in ("lm-shallow-fusion", "attention-lm-fusion"):
        path, key = text_lm_source(lm_checkpoint, cfg)
        if not path:
            raise SpeechlmError(f"{name} needs a text LM: pass --lm-checkpoint "
                                "(e.g. exp/lm/final.pt from stage 3) or set decode.lm_checkpoint")
        device = next(model.parameters()).device
        lm = load_text_lm(path, tokenizer.vocab_size, device, key)
        joint = name == "attention-lm-fusion"
        lm_weight = d.lm_weight_for(name)

        def fusion(e):
            n = e.log_probs.size(0)
            text_lm = (lambda: lm.start(n, e.log_probs.device), lm.step)
            dec = (lambda: model.decoder_start(e.prefix, e.prefix_lens), model.lm.step)
            return words(search.beam_search(e.log_probs, e.lengths, d.beam_size,
                                            decoder=dec if joint else None,
                                            ctc_weight=d.ctc_weight, lm=text_lm,
                                            lm_weight=lm_weight, length_bonus=d.length_bonus))
        return fusion
    raise SpeechlmError(f"unknown search method {name!r}")
