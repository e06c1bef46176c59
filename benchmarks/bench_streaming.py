"""Streaming latency: the encoder run chunk by chunk (``decode.streaming_chunk``), per chunk size.

For each chunk size N (encoder frames of 40 ms), real FSDD test utterances' features (or
``--cuts``) are fed to
:class:`speechlm.decode.streaming.StreamingEncode` as they would arrive, and the compute time of
each chunk is recorded. Reported per N: the chunk's duration (N x 40 ms), the mean and 95th
percentile compute time of a chunk, and the latency a word waits for at most:
chunk duration + the encoder's look-ahead (``encoder.lookahead`` x 40 ms) + 60 ms subsampling
look-ahead + p95 compute (``latency_ms``); the streaming
real-time factor (compute / audio); and, with a trained model, the first-token latency of each
utterance: from the moment the audio of its first non-blank frame has arrived to the moment that
frame's chunk is computed (the rest of the chunk + the look-aheads + the chunk's compute;
``first_token_ms_*``).

``--model-dir``: a streaming model (trained with ``encoder.chunk_conv=true
encoder.dynamic_chunk=16``, or ``encoder.causal``), e.g. egs/synth_en/exp/la4/s42. Without it, the
FSDD recipe's architecture made streamable (chunk-cut conv), with random weights, is timed
(latency does not depend on the weights).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import emit, fsdd_features


def streaming_model(model_dir):
    from speechlm.base.config import load_config
    from speechlm.models.asr import CTCModel
    from speechlm.models.experiment import load_experiment

    if model_dir:
        return load_experiment(model_dir, torch.device("cpu")).model.eval(), str(model_dir)
    cfg = load_config(Path(__file__).resolve().parents[1] / "egs/fsdd/conf/asr.yaml",
                      ["encoder.chunk_conv=true", "encoder.dynamic_chunk=16"])
    torch.manual_seed(0)
    return CTCModel(cfg.encoder, 64).eval(), "fsdd architecture, chunk-cut conv, random weights"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir")
    p.add_argument("--chunks", default="2,4,8,16", help="chunk sizes (encoder frames; FSDD digits "
                   "last about 0.4 s, 10 frames)")
    p.add_argument("--utterances", type=int, default=100)
    p.add_argument("--cuts", help="a cut manifest with features to stream instead of FSDD's test set "
                   "(e.g. egs/synth_en/data/fbank/synth_en_cuts_test.jsonl.gz for that recipe's model)")
    args = p.parse_args()
    from speechlm.data.features import load_cuts
    from speechlm.decode.streaming import FRAME_SECONDS, StreamingEncode

    model, what = streaming_model(args.model_dir)
    with tempfile.TemporaryDirectory() as work:
        cuts = list(load_cuts(args.cuts or fsdd_features(Path(work), "test")))[: args.utterances]
        feats = [torch.as_tensor(c.load_features())[None] for c in cuts]
    audio = sum(f.size(1) for f in feats) * 0.01
    ahead = model.encoder.cfg.lookahead  # encoder frames a chunk waits for after its end
    for n in [int(x) for x in args.chunks.split(",")]:
        enc = StreamingEncode(model, n)
        first = []  # per utterance: how long after its audio arrived the first token comes out
        for f in feats:
            done = len(enc.chunk_seconds)
            lp = enc(f, torch.tensor([f.size(1)])).log_probs[0]
            spoken = (lp.argmax(-1) != 0).nonzero()
            if args.model_dir and len(spoken):  # random weights emit nothing meaningful
                k = int(spoken[0])
                c = k // n
                end = min((c + 1) * n + ahead, lp.size(0))
                first.append((end - k) * FRAME_SECONDS * 1000 + 60 + enc.chunk_seconds[done + c] * 1000)
        t = np.array(enc.chunk_seconds) * 1000
        emit({"benchmark": "streaming", "model": what, "chunk_frames": n,
              "chunk_ms": round(n * FRAME_SECONDS * 1000), "chunks": len(t),
              "compute_ms_mean": round(float(t.mean()), 2), "compute_ms_p95": round(float(np.percentile(t, 95)), 2),
              "lookahead_ms": round(ahead * FRAME_SECONDS * 1000),
              "latency_ms": round((n + ahead) * FRAME_SECONDS * 1000 + 60 + float(np.percentile(t, 95)), 1),
              "rtf": round(float(t.sum()) / 1000 / audio, 4), "audio_s": round(audio, 1),
              "first_token_ms_mean": round(float(np.mean(first)), 1) if first else None,
              "first_token_ms_p95": round(float(np.percentile(first, 95)), 1) if first else None})


if __name__ == "__main__":
    main()
