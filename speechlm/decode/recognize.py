"""Decode a test set with several methods in one pass over the data; score them all at once.

The acoustic model runs once per batch; every method then decodes the same CTC log-probs, so
the real-time factor of a method is (shared forward time + its own search time) / audio time.
Model, config and tokenizer all come from the experiment dir written by training.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from tqdm import tqdm

from speechlm.config import ExperimentConfig, load_config
from speechlm.data.datamodule import make_loader
from speechlm.data.features import load_cuts
from speechlm.decode.ctc import ctc_greedy
from speechlm.errors import SpeechlmError
from speechlm.models.asr import CTCModel
from speechlm.scoring.report import score_and_write
from speechlm.text.tokenizer import Tokenizer
from speechlm.train.checkpoint import average_state_dicts, epoch_checkpoints, load_checkpoint
from speechlm.train.trainer import resolve_device

log = logging.getLogger("speechlm.decode")


@dataclass
class Encoded:
    """What the acoustic model computes once per batch, shared by every method."""

    log_probs: torch.Tensor  # CTC log-probs (B, T, V)
    lengths: torch.Tensor  # (B,)
    prefix: Optional[torch.Tensor] = None  # speech-LM models: LM prefix (B, P, D)
    prefix_lens: Optional[torch.Tensor] = None


# A method maps one batch's Encoded to one word list per utterance.
Method = Callable[[Encoded], List[List[str]]]

CTC_METHODS = ("ctc-greedy", "ctc-prefix-beam", "lm-shallow-fusion", "hlg-1best", "hlg-nbest-lm")
ATTENTION_METHODS = ("attention-beam", "attention-rescoring", "attention-lm-fusion")


def averaged_state(exp_dir: Path, avg: int) -> dict:
    """The last epoch checkpoint of ``exp_dir`` with its weights replaced by the average of the
    last ``avg`` epoch checkpoints (icefall's ``--avg``; training keeps ``train.keep_last``)."""
    paths = epoch_checkpoints(exp_dir)
    if avg < 1:
        raise SpeechlmError(f"--avg {avg}: must be >= 1 (or 0 for final.pt)")
    if len(paths) < avg:
        kept = ", ".join(p.name for p in paths) or "none"
        raise SpeechlmError(f"--avg {avg}: {exp_dir} keeps {len(paths)} epoch checkpoints ({kept}); "
                            f"use --avg <= {len(paths)}, or train with train.keep_last >= {avg}")
    state = load_checkpoint(paths[-1], map_location="cpu")
    state["model"] = average_state_dicts(paths[-avg:])
    state["averaged"] = [p.name for p in paths[-avg:]]
    log.info("model: average of %s", state["averaged"])
    return state


def load_asr_model(exp_dir: str | Path, device: torch.device, checkpoint: str = "final.pt",
                   overrides: Sequence[str] = (), avg: int = 0):
    """The trained model, its resolved config and its tokenizer, all from ``exp_dir``; the model
    kind (``model.kind``: ctc or speechlm) comes from the config. ``overrides`` may change the
    decode section only. ``avg`` > 0: the weights are the average of the last ``avg`` epoch
    checkpoints instead of ``checkpoint``."""
    exp_dir = Path(exp_dir)
    if not (exp_dir / "config.yaml").is_file():
        raise SpeechlmError(f"{exp_dir} is not a trained experiment dir (no config.yaml): "
                            "train first (recipe stage 4) or pass the right --exp-dir")
    bad = [o for o in overrides if not o.startswith("decode.")]
    if bad:
        raise SpeechlmError(f"decoding overrides {bad}: only decode.* keys can change at decoding "
                            "time (the model is what training wrote)")
    cfg = load_config(exp_dir / "config.yaml", overrides)
    tokenizer = Tokenizer(exp_dir / "tokenizer.model")
    if avg:
        state = averaged_state(exp_dir, avg)
        checkpoint = state["averaged"][-1]
    else:
        state = load_checkpoint(exp_dir / checkpoint, map_location="cpu")
    if state.get("vocab_size") != tokenizer.vocab_size:
        raise SpeechlmError(
            f"{exp_dir / checkpoint} has vocabulary size {state.get('vocab_size')} but "
            f"{exp_dir / 'tokenizer.model'} has {tokenizer.vocab_size}; they are not from one run"
        )
    if cfg.model.kind == "speechlm":
        from speechlm.models.speechlm_asr import SpeechLMAsr

        model = SpeechLMAsr(cfg.encoder, cfg.lm, cfg.speechlm, tokenizer.vocab_size)
    elif cfg.model.kind == "ctc":
        model = CTCModel(cfg.encoder, tokenizer.vocab_size)
    else:
        raise SpeechlmError(f"{exp_dir / 'config.yaml'}: model.kind {cfg.model.kind!r} is not an "
                            "ASR model (expected ctc or speechlm)")
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg, tokenizer


def build_methods(names: Sequence[str], tokenizer: Tokenizer, exp_dir: Path,
                  lang_dir: Optional[Path], model=None, cfg: Optional[ExperimentConfig] = None,
                  lm_checkpoint: Optional[str | Path] = None) -> Dict[str, Method]:
    methods: Dict[str, Method] = {}
    for name in names:
        if name == "ctc-greedy":
            methods[name] = lambda e: [tokenizer.decode(ids).split()
                                       for ids in ctc_greedy(e.log_probs, e.lengths)]
        elif name == "hlg-1best":
            hlg = _hlg_decoder(name, lang_dir)
            methods[name] = lambda e, hlg=hlg: hlg.decode(e.log_probs, e.lengths)
        elif name == "hlg-nbest-lm":
            methods[name] = _hlg_nbest_lm_method(tokenizer, lang_dir, model, cfg, lm_checkpoint)
        elif name in ("ctc-prefix-beam", "lm-shallow-fusion") + ATTENTION_METHODS:
            from speechlm.decode.search_methods import search_method

            methods[name] = search_method(name, model, cfg, tokenizer, exp_dir, lm_checkpoint)
        else:
            raise SpeechlmError(
                f"unknown decoding method {name!r}; available: {', '.join(CTC_METHODS + ATTENTION_METHODS)}"
            )
    return methods


def _hlg_decoder(name: str, lang_dir: Optional[Path], **opts):
    if lang_dir is None or not (Path(lang_dir) / "HLG.fst").is_file():
        raise SpeechlmError(
            f"{name} needs {lang_dir}/HLG.fst: build the lang dir first (recipe stage 2) "
            "and pass --lang-dir"
        )
    from speechlm.decode.wfst import HLGDecoder

    return HLGDecoder(Path(lang_dir) / "HLG.fst", Path(lang_dir) / "words.txt", **opts)


def _hlg_nbest_lm_method(tokenizer: Tokenizer, lang_dir: Optional[Path], model,
                         cfg: Optional[ExperimentConfig],
                         lm_checkpoint: Optional[str | Path]) -> Method:
    """HLG lattice n-best (``decode.nbest`` paths, scored by CTC log-prob + n-gram graph score)
    re-ranked with ``decode.lm_weight`` (or its ``decode.lm_weights`` entry) x the neural text
    LM's sentence log-prob."""
    from speechlm.decode.search_methods import load_text_lm, text_lm_source
    from speechlm.models.lm import sentence_nll

    d = cfg.decode
    hlg = _hlg_decoder("hlg-nbest-lm", lang_dir, lattice_beam=d.lattice_beam)
    path, key = text_lm_source(lm_checkpoint, cfg, init_fallback=False)
    if not path:
        raise SpeechlmError("hlg-nbest-lm needs a text LM: pass --lm-checkpoint "
                            "(e.g. exp/lm/final.pt from stage 3) or set decode.lm_checkpoint")
    if d.nbest < 1:
        raise SpeechlmError(f"decode.nbest = {d.nbest}: must be >= 1")
    device = next(model.parameters()).device
    lm = load_text_lm(path, tokenizer.vocab_size, device, key)
    lm_weight = d.lm_weight_for("hlg-nbest-lm")

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


@torch.no_grad()
def recognize(
    exp_dir: str | Path,
    cuts_path: str | Path,
    set_name: str,
    methods: Sequence[str],
    out_dir: Optional[str | Path] = None,
    lang_dir: Optional[str | Path] = None,
    device: str = "auto",
    results_md: Optional[str | Path] = None,
    command: Optional[str] = None,
    tag: str = "",
    overrides: Sequence[str] = (),
    lm_checkpoint: Optional[str | Path] = None,
    avg: int = 0,
) -> Dict[str, Dict[str, float]]:
    """Decode ``cuts_path`` with every method; write icefall-style reports; return WER and RTF.

    ``overrides`` (``decode.key=value``) change the decoding hyperparameters of the resolved
    config; ``lm_checkpoint`` is the text LM for lm-shallow-fusion (default: the config's).
    ``avg`` > 0 decodes the average of the last ``avg`` epoch checkpoints instead of final.pt;
    the report names then carry ``avg<avg>`` in their tag."""
    exp_dir = Path(exp_dir)
    dev = resolve_device(device)
    model, cfg, tokenizer = load_asr_model(exp_dir, dev, overrides=overrides, avg=avg)
    if avg:
        tag = f"{tag}-avg{avg}" if tag else f"avg{avg}"
    methods = list(methods) or list(cfg.decode.methods)
    out_dir = Path(out_dir) if out_dir else exp_dir / f"decode-{set_name}"
    fns = build_methods(methods, tokenizer, exp_dir, Path(lang_dir) if lang_dir else None,
                        model=model, cfg=cfg, lm_checkpoint=lm_checkpoint)
    cuts = load_cuts(cuts_path)
    loader, _ = make_loader(cuts, cfg.data, train=False, max_duration=cfg.decode.batch_max_duration)
    results: Dict[str, list] = {m: [] for m in fns}
    seconds = {m: 0.0 for m in fns}
    audio = 0.0
    refs = {c.id: " ".join(s.text for s in c.supervisions).split() for c in cuts}
    for batch in tqdm(loader, desc=f"decode {set_name}", disable=not sys.stderr.isatty()):
        t0 = time.perf_counter()
        feats, feat_lens = batch["feats"].to(dev), batch["feat_lens"].to(dev)
        if hasattr(model, "encode_all"):  # speech-LM: the decoder's prefix is computed once too
            enc = Encoded(*model.encode_all(feats, feat_lens))
        else:
            enc = Encoded(*model(feats, feat_lens))
        forward = time.perf_counter() - t0
        audio += float(batch["feat_lens"].sum()) * 0.01  # 10 ms frame shift
        for name, fn in fns.items():
            t0 = time.perf_counter()
            hyps = fn(enc)
            seconds[name] += forward + time.perf_counter() - t0
            results[name].extend((i, refs[i], h) for i, h in zip(batch["ids"], hyps))
    rtf = {m: seconds[m] / max(audio, 1e-9) for m in fns}
    wers = score_and_write(
        out_dir, set_name, tag, results, extras={m: {"RTF": round(rtf[m], 4)} for m in fns},
        results_md=results_md, command=command,
        notes=f"exp: {exp_dir}" + (f", average of the last {avg} epochs" if avg else ""),
    )
    for m in fns:
        log.info("%s %s: WER %.2f%%, RTF %.4f", set_name, m, wers[m], rtf[m])
    return {m: {"wer": wers[m], "rtf": rtf[m]} for m in fns}
