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
from speechlm.train.checkpoint import load_checkpoint
from speechlm.train.trainer import resolve_device

log = logging.getLogger("speechlm.decode")

# A method maps (log_probs (B,T,V), lengths (B,)) to one word list per utterance.
Method = Callable[[torch.Tensor, torch.Tensor], List[List[str]]]


def load_asr_model(exp_dir: str | Path, device: torch.device, checkpoint: str = "final.pt"):
    """The trained model, its resolved config and its tokenizer, all from ``exp_dir``."""
    exp_dir = Path(exp_dir)
    if not (exp_dir / "config.yaml").is_file():
        raise SpeechlmError(f"{exp_dir} is not a trained experiment dir (no config.yaml): "
                            "train first (recipe stage 4) or pass the right --exp-dir")
    cfg = load_config(exp_dir / "config.yaml")
    tokenizer = Tokenizer(exp_dir / "tokenizer.model")
    state = load_checkpoint(exp_dir / checkpoint, map_location="cpu")
    if state.get("vocab_size") != tokenizer.vocab_size:
        raise SpeechlmError(
            f"{exp_dir / checkpoint} has vocabulary size {state.get('vocab_size')} but "
            f"{exp_dir / 'tokenizer.model'} has {tokenizer.vocab_size}; they are not from one run"
        )
    model = CTCModel(cfg.encoder, tokenizer.vocab_size)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg, tokenizer


def build_methods(names: Sequence[str], tokenizer: Tokenizer, exp_dir: Path,
                  lang_dir: Optional[Path]) -> Dict[str, Method]:
    methods: Dict[str, Method] = {}
    for name in names:
        if name == "ctc-greedy":
            methods[name] = lambda lp, ln: [tokenizer.decode(ids).split() for ids in ctc_greedy(lp, ln)]
        elif name in ("hlg-1best",):
            methods[name] = _hlg_method(tokenizer, lang_dir)
        else:
            raise SpeechlmError(
                f"unknown decoding method {name!r}; available: ctc-greedy, hlg-1best"
            )
    return methods


def _hlg_method(tokenizer: Tokenizer, lang_dir: Optional[Path]) -> Method:
    if lang_dir is None or not (Path(lang_dir) / "HLG.fst").is_file():
        raise SpeechlmError(
            f"hlg-1best needs {lang_dir}/HLG.fst: build the lang dir first (recipe stage 2) "
            "and pass --lang-dir"
        )
    from speechlm.decode.wfst import HLGDecoder

    decoder = HLGDecoder(Path(lang_dir) / "HLG.fst", Path(lang_dir) / "words.txt")
    return decoder.decode


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
) -> Dict[str, Dict[str, float]]:
    """Decode ``cuts_path`` with every method; write icefall-style reports; return WER and RTF."""
    exp_dir = Path(exp_dir)
    dev = resolve_device(device)
    model, cfg, tokenizer = load_asr_model(exp_dir, dev)
    out_dir = Path(out_dir) if out_dir else exp_dir / f"decode-{set_name}"
    fns = build_methods(methods, tokenizer, exp_dir, Path(lang_dir) if lang_dir else None)
    cuts = load_cuts(cuts_path)
    loader, _ = make_loader(cuts, cfg.data, train=False, max_duration=cfg.decode.batch_max_duration)
    results: Dict[str, list] = {m: [] for m in fns}
    seconds = {m: 0.0 for m in fns}
    audio = 0.0
    refs = {c.id: " ".join(s.text for s in c.supervisions).split() for c in cuts}
    for batch in tqdm(loader, desc=f"decode {set_name}", disable=not sys.stderr.isatty()):
        t0 = time.perf_counter()
        log_probs, lens = model(batch["feats"].to(dev), batch["feat_lens"].to(dev))
        forward = time.perf_counter() - t0
        audio += float(batch["feat_lens"].sum()) * 0.01  # 10 ms frame shift
        for name, fn in fns.items():
            t0 = time.perf_counter()
            hyps = fn(log_probs, lens)
            seconds[name] += forward + time.perf_counter() - t0
            results[name].extend((i, refs[i], h) for i, h in zip(batch["ids"], hyps))
    rtf = {m: seconds[m] / max(audio, 1e-9) for m in fns}
    wers = score_and_write(
        out_dir, set_name, tag, results, extras={m: {"RTF": round(rtf[m], 4)} for m in fns},
        results_md=results_md, command=command, notes=f"exp: {exp_dir}",
    )
    for m in fns:
        log.info("%s %s: WER %.2f%%, RTF %.4f", set_name, m, wers[m], rtf[m])
    return {m: {"wer": wers[m], "rtf": rtf[m]} for m in fns}
