"""TorchScript export of a CTC-capable model (traced: the same graph as the ONNX export, with
dynamic batch and time), for C++/libtorch: ``torch.jit.load(path)(x, x_lens)`` gives
``(log_probs, log_probs_len)``; ``tokens.txt`` is written beside it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Optional

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.export.graph import CtcGraph, example_inputs
from speechlm.export.onnx import write_tokens
from speechlm.models.experiment import load_experiment

log = logging.getLogger("speechlm.export")

TORCHSCRIPT_NAME = "model.torchscript.pt"


def export_torchscript(model_dir: str | Path, out: Optional[str | Path] = None, avg: int = 0) -> Path:
    """Write ``model_dir``'s CTC model as TorchScript (default ``MODEL_DIR/model.torchscript.pt``)."""
    exp = load_experiment(model_dir, "cpu", avg=avg, needs="ctc", option="--model-dir")
    out = Path(out) if out else exp.exp_dir / TORCHSCRIPT_NAME
    if out.suffix != ".pt":
        raise SpeechlmError(f"--out {out}: the file name must end in .pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes that are fixed by design
        traced = torch.jit.trace(CtcGraph(exp.model).eval(), example_inputs())
    tmp = out.with_name(f".tmp.{out.name}")
    traced.save(str(tmp))
    tmp.replace(out)
    write_tokens(exp.tokenizer, out.parent)
    log.info("exported %s (%s, %s) -> %s", exp.exp_dir, exp.cfg.model.kind, exp.checkpoint, out)
    return out
