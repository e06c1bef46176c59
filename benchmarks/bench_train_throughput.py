"""Training throughput (utterances/s, audio-seconds/s) of the FSDD recipe's config on real FSDD.

Fixed config: egs/fsdd/conf/asr.yaml, 2 epochs over the FSDD official dev+test cuts (500 utts),
single process, CPU. The first epoch is warm-up; the second is timed.
"""

import logging
import shutil
import time

from torch.utils.tensorboard import SummaryWriter

from common import DIGITS, REPO, emit, fsdd_features, workdir
from speechlm.base.config import load_config
from speechlm.data.features import load_cuts
from speechlm.models.asr import num_parameters
from speechlm.text.tokenizer import train_sentencepiece
from speechlm.train.ctc import CtcTrainer


def main() -> None:
    work = workdir()
    cuts = fsdd_features(work, "test")
    tok = train_sentencepiece(DIGITS * 5, work / "lang", vocab_size=40)
    cfg = load_config(REPO / "egs/fsdd/conf/asr.yaml", ["train.num_epochs=1", "train.average_last=1"])
    trainer = CtcTrainer(cfg, work / "exp", cuts, None, tok)
    logging.disable(logging.INFO)
    loader, _ = trainer.make_loader(train=True)
    trainer.tb = SummaryWriter(str(work / "tb"))  # train_epoch logs to it
    trainer.train_epoch(loader, 1)  # warm-up
    t0 = time.perf_counter()
    trainer.train_epoch(loader, 2)
    seconds = time.perf_counter() - t0
    data = load_cuts(cuts)
    audio = sum(c.duration for c in data)
    emit({"benchmark": "train_throughput", "config": "egs/fsdd/conf/asr.yaml",
          "params": num_parameters(trainer.model), "utts_per_s": round(len(data) / seconds, 1),
          "audio_s_per_s": round(audio / seconds, 1), "epoch_seconds": round(seconds, 2),
          "max_duration": cfg.data.max_duration})
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
