"""CTC greedy decoding real-time factor (model forward + batched greedy search), FSDD test set.

Uses the FSDD recipe's architecture with random weights: the cost does not depend on the weights.
"""

import logging
import shutil
import time

import torch

from common import REPO, emit, fsdd_features, workdir
from speechlm.base.config import load_config
from speechlm.data.datamodule import make_loader
from speechlm.data.features import load_cuts
from speechlm.decode.ctc import ctc_greedy
from speechlm.models.asr import CTCModel


@torch.no_grad()
def main() -> None:
    logging.disable(logging.INFO)
    work = workdir()
    cuts = load_cuts(fsdd_features(work, "test"))
    cfg = load_config(REPO / "egs/fsdd/conf/asr.yaml")
    model = CTCModel(cfg.encoder, 40).eval()
    loader, _ = make_loader(cuts, cfg.data, train=False, max_duration=cfg.decode.batch_max_duration)
    batches = list(loader)
    for b in batches[:1]:
        model(b["feats"], b["feat_lens"])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        ctc_greedy(*model(b["feats"], b["feat_lens"]))
    seconds = time.perf_counter() - t0
    audio = sum(c.duration for c in cuts)
    emit({"benchmark": "ctc_greedy_decode_rtf", "rtf": round(seconds / audio, 5),
          "audio_seconds": round(audio, 1), "wall_seconds": round(seconds, 3),
          "batch_max_duration": cfg.decode.batch_max_duration})
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
