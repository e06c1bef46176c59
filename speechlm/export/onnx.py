"""ONNX export of a CTC-capable model: fbank ``x (N, T, 80)`` + ``x_lens (N,)`` ->
``log_probs (N, T', V)`` + ``log_probs_len (N,)``, with the global CMVN, the encoder and the CTC
head inside the graph; batch and time axes dynamic.

The model's metadata (``onnx`` metadata_props) says what a runtime needs to use it without
speechlm: vocabulary size, blank id, subsampling, frame shifts, feature settings and the
tokens themselves; ``tokens.txt`` (``<piece> <id>`` a line) is written beside it. Input and
output names follow icefall's CTC exports (``x``, ``x_lens``, ``log_probs``,
``log_probs_len``).

:class:`OnnxAcousticModel` runs it with onnxruntime and returns the same
:class:`~speechlm.models.asr.Encoded` as the torch model's ``encode_for_decoding`` (CTC part
only), so every CTC decoding method runs on it.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from speechlm.base.errors import SpeechlmError
from speechlm.data.features import FRAME_SHIFT, NUM_MEL_BINS, SAMPLING_RATE
from speechlm.export.graph import CtcGraph, example_inputs
from speechlm.models.asr import Encoded
from speechlm.models.encoder import SUBSAMPLING_FACTOR
from speechlm.models.experiment import load_experiment
from speechlm.text.symbols import BLANK_ID
from speechlm.text.tokenizer import Tokenizer

log = logging.getLogger("speechlm.export")

ONNX_NAME = "model.onnx"
TOKENS_NAME = "tokens.txt"
OPSET = 17


def export_onnx(model_dir: str | Path, out: Optional[str | Path] = None, avg: int = 0,
                opset: int = OPSET) -> Path:
    """Write ``model_dir``'s CTC model as ONNX (default ``MODEL_DIR/model.onnx``) with metadata
    and ``tokens.txt`` beside it; returns the ONNX file's path."""
    import onnx

    exp = load_experiment(model_dir, "cpu", avg=avg, needs="ctc", option="--model-dir")
    out = Path(out) if out else exp.exp_dir / ONNX_NAME
    if out.suffix != ".onnx":
        raise SpeechlmError(f"--out {out}: the file name must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp.{out.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes that are fixed by design
        torch.onnx.export(
            CtcGraph(exp.model).eval(), example_inputs(), str(tmp), dynamo=False, opset_version=opset,
            input_names=["x", "x_lens"], output_names=["log_probs", "log_probs_len"],
            dynamic_axes={"x": {0: "N", 1: "T"}, "x_lens": {0: "N"},
                          "log_probs": {0: "N", 1: "T_out"}, "log_probs_len": {0: "N"}})
    proto = onnx.load(str(tmp))
    pieces = exp.tokenizer.pieces()
    meta = {
        "model_type": "speechlm_ctc", "model_kind": exp.cfg.model.kind, "version": "1",
        "vocab_size": len(pieces), "blank_id": BLANK_ID, "subsampling_factor": SUBSAMPLING_FACTOR,
        "frame_shift_ms": int(round(FRAME_SHIFT * 1000)),
        "output_frame_shift_ms": int(round(FRAME_SHIFT * SUBSAMPLING_FACTOR * 1000)),
        "feature_dim": NUM_MEL_BINS, "sample_rate": SAMPLING_RATE,
        "features": "lhotse Fbank: 25 ms povey window, 10 ms shift, 80 mel bins, log power, "
                    "no dither, no CMVN (CMVN is in the graph)",
        "normalize_samples": 1,
        "cmvn": ("per speaker, before the graph: subtract the mean and divide by the std of the "
                 "speaker's (or the recording's) fbank frames" if exp.cfg.data.speaker_cmvn else "in graph"),
        "tokens": json.dumps(pieces, ensure_ascii=False),
        "checkpoint": exp.checkpoint, "comment": f"exported by speechlm from {exp.exp_dir}",
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    write_tokens(exp.tokenizer, out.parent)
    log.info("exported %s (%s, %s) -> %s", exp.exp_dir, exp.cfg.model.kind, exp.checkpoint, out)
    return out


def write_tokens(tokenizer: Tokenizer, folder: Path) -> Path:
    """``tokens.txt``: ``<piece> <id>`` a line (the symbol table sherpa-onnx and k2 read)."""
    path = folder / TOKENS_NAME
    path.write_text("".join(f"{p} {i}\n" for i, p in enumerate(tokenizer.pieces())), encoding="utf-8")
    return path


def onnx_metadata(path: str | Path) -> Dict[str, str]:
    import onnxruntime as ort

    return dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                .get_modelmeta().custom_metadata_map)


class OnnxAcousticModel:
    """An exported model under onnxruntime: ``(feats, lens) -> Encoded`` (CTC log-probs)."""

    def __init__(self, path: str | Path, tokenizer: Optional[Tokenizer] = None, threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise SpeechlmError(f"{self.path} not found: export the model first "
                                f"(speechlm export --model-dir DIR --format onnx)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a bad file
            raise SpeechlmError(f"{self.path}: not a loadable ONNX model ({e}); export it again") from None
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        if self.metadata.get("model_type") != "speechlm_ctc":
            raise SpeechlmError(f"{self.path} was not exported by `speechlm export` (no speechlm metadata)")
        if tokenizer is not None and int(self.metadata["vocab_size"]) != tokenizer.vocab_size:
            raise SpeechlmError(f"{self.path} has vocabulary size {self.metadata['vocab_size']} but "
                                f"{tokenizer.model_path} has {tokenizer.vocab_size}: export it again")

    @classmethod
    def from_dir(cls, model_dir: str | Path, tokenizer: Optional[Tokenizer] = None,
                 path: Optional[str | Path] = None) -> "OnnxAcousticModel":
        """The model dir's ``model.onnx`` (or ``path``); one older than the dir's ``final.pt``
        is refused (it would decode with stale weights)."""
        model_dir = Path(model_dir)
        onnx_path = Path(path) if path else model_dir / ONNX_NAME
        final = model_dir / "final.pt"
        if not onnx_path.is_file():
            raise SpeechlmError(f"{onnx_path} not found: run `speechlm export --model-dir {model_dir} "
                                "--format onnx` first")
        if final.is_file() and final.stat().st_mtime > onnx_path.stat().st_mtime:
            raise SpeechlmError(f"{onnx_path} is older than {final}: the model was trained again; "
                                f"run `speechlm export --model-dir {model_dir} --format onnx` again")
        return cls(onnx_path, tokenizer)

    def __call__(self, feats: torch.Tensor, lens: torch.Tensor) -> Encoded:
        log_probs, out_lens = self.session.run(
            ["log_probs", "log_probs_len"],
            {"x": np.ascontiguousarray(feats.cpu().numpy(), dtype=np.float32),
             "x_lens": lens.cpu().numpy().astype(np.int64)})
        return Encoded(torch.from_numpy(log_probs), torch.from_numpy(out_lens))
