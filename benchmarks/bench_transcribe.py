"""`speechlm transcribe` on a 10-minute recording: real-time factor with the torch and ONNX
backends, and how far its words are from those of the recordings it was made of.

The recording is ``--corpus`` audio (FSDD: the official test files first, then the others;
yesno: its 60 files, again and again), 8 kHz, read one file after another with a pause of
0.3-1.0 s of low noise (-60 dB) before each, until it lasts ``--minutes``; it is written as a
WAV and transcribed whole (read, resample to 16 kHz, split on pauses, fbank, batched model,
ctc-greedy, word times by CTC alignment), as the verb does.

``--model-dir``: a model trained on that corpus (egs/fsdd/exp/asr, egs/yesno/exp/asr); its
words on the whole recording are scored against its words on each file alone
(``agreement_wer``: 0 = the same words) and against the file names' words (``wer_whole``,
``wer_files``). Without it, the FSDD recipe's architecture with random weights is timed (no
word figures: random weights say nothing meaningful). ``--pad``: seconds of pause kept around
each piece (VadConfig.pad).
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


YESNO = FSDD.parent / "yesno" / "waves_yesno"


def corpus_files(corpus: str):
    """The files in the order they are used, and each file's words."""
    if corpus == "yesno":
        files = sorted(YESNO.glob("*.wav"))
        return files, lambda f: ["yes" if c == "1" else "no" for c in f.stem.split("_")]
    files = sorted((FSDD / "recordings").glob("*.wav"), key=lambda p: (int(p.stem.split("_")[2]) >= 5, p.name))
    return files, lambda f: [DIGITS[int(f.stem.split("_")[0])]]


def long_recording(minutes: float, corpus: str = "fsdd", seed: int = 0):
    """(samples at 8 kHz, the files in order)."""
    files, _ = corpus_files(corpus)
    rng = np.random.default_rng(seed)
    parts, used, total = [], [], 0
    for f in files * 100:
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
    ap.add_argument("--model-dir", help="an ASR exp dir trained on --corpus (default: random weights)")
    ap.add_argument("--corpus", default="fsdd", choices=["fsdd", "yesno"])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--pad", type=float, help="VadConfig.pad (default: its default)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the best counts)")
    args = ap.parse_args()
    logging.disable(logging.INFO)
    from speechlm.api import Recognizer
    from speechlm.data.vad import VadConfig
    from speechlm.export.onnx import export_onnx
    from speechlm.scoring.wer import compute_wer

    vad = VadConfig() if args.pad is None else VadConfig(pad=args.pad)
    work = Path(tempfile.mkdtemp(prefix="speechlm-bench-"))
    x, files = long_recording(args.minutes, args.corpus)
    wav = work / "long.wav"
    sf.write(str(wav), x, 8000)
    model_dir = Path(args.model_dir) if args.model_dir else random_model_dir(work)
    onnx_path = export_onnx(model_dir, work / "model.onnx")
    record = {"benchmark": "transcribe_long_rtf", "audio_seconds": round(len(x) / 8000, 1),
              "files": len(files), "model": "trained" if args.model_dir else "random-weights",
              "method": "ctc-greedy", "corpus": args.corpus, "pad": vad.pad}
    words = {}
    for backend in ("torch", "onnx"):
        rec = Recognizer.from_dir(model_dir, backend=backend, onnx_path=onnx_path, vad=vad)
        rec.transcribe(wav)  # warm-up: every batch shape once
        for timestamps in (False, True):
            times = []
            for _ in range(args.repeats):  # the best of a few: a shared machine adds noise
                t0 = time.perf_counter()
                result = rec.transcribe(wav, timestamps=timestamps)
                times.append(time.perf_counter() - t0)
            key = f"rtf_{backend}" + ("_with_word_times" if timestamps else "")
            record[key] = round(min(times) / result.duration, 5)
        words[backend] = result.words
        record["pieces"] = len(result.segments)
    record["onnx_words_equal_torch"] = words["onnx"] == words["torch"]
    if args.model_dir:
        rec = Recognizer.from_dir(model_dir)
        alone = [w for t in rec.transcribe_many(files, timestamps=False) for w in t.words]
        agree = compute_wer([("long", alone, words["torch"])])
        record.update(agreement_wer=round(agree.wer, 2), agreement_errors=agree.num_errors,
                      words=agree.num_words)
        words_of = corpus_files(args.corpus)[1]
        refs = [w for f in files for w in words_of(f)]  # the file names say the words
        record["wer_whole"] = round(compute_wer([("long", refs, words["torch"])]).wer, 2)
        record["wer_files"] = round(compute_wer([("files", refs, alone)]).wer, 2)
    emit(record)


if __name__ == "__main__":
    main()
