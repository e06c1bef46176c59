"""Decode a test set with a trained model and score it: icefall-style reports, RESULTS.md rows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

from speechlm.base.device import resolve_device
from speechlm.decode.methods import text_lm_source
from speechlm.decode.recognize import decode_cuts
from speechlm.decode.resources import find_resources, record_resources
from speechlm.models.experiment import load_experiment
from speechlm.scoring.report import score_methods

log = logging.getLogger("speechlm.decode")


def decode_and_score(
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
    """Decode ``cuts_path`` with every method; write icefall-style reports; return WER, CER and RTF.

    ``methods`` empty: the config's ``decode.methods``. ``overrides`` (``decode.key=value``)
    change the decoding hyperparameters of the resolved config; ``lm_checkpoint`` is the text LM
    for the fusion methods (default: the config's). ``avg`` > 0 decodes the average of the last
    ``avg`` epoch checkpoints instead of final.pt; the report names then carry ``avg<avg>``.
    With ``results_md``, one row per method goes into that file's section for ``exp_dir``.
    A lang dir or text LM not given is looked up from the exp dir, and the ones used are
    recorded there (:mod:`speechlm.decode.resources`).
    """
    exp_dir = Path(exp_dir)
    exp = load_experiment(exp_dir, resolve_device(device, "--device"), avg=avg,
                          overrides=overrides, needs="ctc")
    if avg:
        tag = f"{tag}-avg{avg}" if tag else f"avg{avg}"
    methods = list(methods) or list(exp.cfg.decode.methods)
    out_dir = Path(out_dir) if out_dir else exp_dir / f"decode-{set_name}"
    lang_dir, lm_checkpoint = find_resources(exp_dir, methods, lang_dir, lm_checkpoint)
    decoded = decode_cuts(exp, cuts_path, methods, lang_dir, lm_checkpoint, desc=f"decode {set_name}")
    record_resources(exp_dir, methods, lang_dir, text_lm_source(lm_checkpoint, exp.cfg)[0])
    rtf = decoded.rtf
    scores = score_methods(
        out_dir, set_name, tag, decoded.results, extras={m: {"RTF": round(rtf[m], 4)} for m in rtf},
        results_md=results_md, command=command, section=exp_dir,
        notes=f"exp: {exp_dir}" + (f", average of the last {avg} epochs" if avg else "")
        + (f", streaming in chunks of {exp.cfg.decode.streaming_chunk} frames "
           f"({exp.cfg.decode.streaming_chunk * 40} ms)" if exp.cfg.decode.streaming_chunk else "")
        + (f" + {exp.cfg.encoder.lookahead * 40} ms look-ahead"
           if exp.cfg.decode.streaming_chunk and exp.cfg.encoder.lookahead else "")
        + (f", blank penalty {exp.cfg.decode.blank_penalty:g}" if exp.cfg.decode.blank_penalty else ""),
    )
    for m in rtf:
        log.info("%s %s: WER %.2f%%, CER %.2f%%, RTF %.4f", set_name, m, scores[m]["wer"],
                 scores[m]["cer"], rtf[m])
    return {m: {**scores[m], "rtf": rtf[m]} for m in rtf}
