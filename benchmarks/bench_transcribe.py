"""`speechlm transcribe` on a 10-minute recording: real-time factor with the torch and ONNX
backends, and how far its words are from those of the recordings it was made of.

The recording is FSDD audio (8 kHz; the official test files first, then the others) read one
file after another with a pause of 0.3-1.0 s of low noise before each, until it lasts
``--minutes``; it is written as a WAV and transcribed whole (read, resample to 16 kHz, split on
pauses, fbank, batched model, ctc-greedy, word times by CTC alignment), as the verb does.

``--model-dir``: a trained FSDD model (e.g. egs/fsdd/exp/asr); its words on the whole recording
are scored against its words on each file alone (``agreement_wer``: 0 = the same words).
Without it, the FSDD recipe's architecture with random weights is timed (no agreement figure:
random weights say nothing meaningful).
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from common import DIGITS, FSDD, REPO, emit


def long_recording(minutes: float, seed: int = 0):
    """(samples at 8 kHz, the files in order)."""
    files = sorted((FSDD / "recordings").glob("*.wav"), key=lambda p: (int(p.stem.split("_")[2]) >= 5, p.name))
    rng = np.random.default_rng(seed)
    parts, used, total = [], [], 0
    for f in files:
        x, sr = sf.read(str(f), dtype="float32")
        gap = (1e-3 * rng.standard_normal(int(rng.uniform(0.3, 1.0) * sr))).astype("float32")
        parts += [gap, x]
        used.append(f)
        total += len(gap) + len(x)
        if total >= minutes * 60 * sr:
            break
    return np.concatenate(parts + [gap]), used


def random_model_dir(work: Path) -> Path:
    """The FSDD recipe's architecture with random weights, as a model dir."""
    from speechlm.base.config import load_config, save_config
    from speechlm.models.experiment import build_model
    from speechlm.text.tokenizer import Tokenizer, train_sentencepiece

    exp = work / "random-exp"
    exp.mkdir()
    cfg = load_config(REPO / "egs/fsdd/conf/asr.yaml")
    tok = Tokenizer(train_sentencepiece(DIGITS * 5, work / "lang", vocab_size=30))
    (exp / "tokenizer.model").write_bytes(tok.model_path.read_bytes())
    save_config(cfg, exp / "config.yaml")
    torch.manual_seed(0)
    model = build_model(cfg, tok.vocab_size)
    torch.save({"model": model.state_dict(), "vocab_size": tok.vocab_size, "config": cfg.to_dict()},
               exp / "final.pt")
    return exp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", help="a trained FSDD ASR exp dir (default: random weights)")
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    logging.disable(logging.INFO)
    from speechlm.api import Recognizer
    from speechlm.export.onnx import export_onnx
    from speechlm.scoring.wer import compute_wer

    work = Path(tempfile.mkdtemp(prefix="speechlm-bench-"))
    x, files = long_recording(args.minutes)
    wav = work / "long.wav"
    sf.write(str(wav), x, 8000)
    model_dir = Path(args.model_dir) if args.model_dir else random_model_dir(work)
    onnx_path = export_onnx(model_dir, work / "model.onnx")
    record = {"benchmark": "transcribe_long_rtf", "audio_seconds": round(len(x) / 8000, 1),
              "files": len(files), "model": "trained" if args.model_dir else "random-weights",
              "method": "ctc-greedy"}
    words = {}
    for backend in ("torch", "onnx"):
        rec = Recognizer.from_dir(model_dir, backend=backend, onnx_path=onnx_path)
        rec.transcribe(files[0])  # warm-up
        for timestamps in (False, True):
            t0 = time.perf_counter()
            result = rec.transcribe(wav, timestamps=timestamps)
            seconds = time.perf_counter() - t0
            key = f"rtf_{backend}" + ("_with_word_times" if timestamps else "")
            record[key] = round(seconds / result.duration, 5)
        words[backend] = result.words
        record["pieces"] = len(result.segments)
    record["onnx_words_equal_torch"] = words["onnx"] == words["torch"]
    if args.model_dir:
        rec = Recognizer.from_dir(model_dir)
        alone = [w for f in files for w in rec.transcribe(f, timestamps=False).words]
        agree = compute_wer([("long", alone, words["torch"])])
        record.update(agreement_wer=round(agree.wer, 2), agreement_errors=agree.num_errors,
                      words=agree.num_words)
        refs = [DIGITS[int(f.stem.split("_")[0])] for f in files]  # the file names say the digit
        record["wer_whole"] = round(compute_wer([("long", refs, words["torch"])]).wer, 2)
        record["wer_files"] = round(compute_wer([("files", refs, alone)]).wer, 2)
    emit(record)


if __name__ == "__main__":
    main()
