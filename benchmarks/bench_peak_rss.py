"""Peak resident memory of a training run: `speechlm train` with the FSDD config, 1 epoch, FSDD test cuts.

The training runs as a child process; its peak RSS is read from getrusage(RUSAGE_CHILDREN).
"""

import logging
import resource
import shutil
import subprocess
import sys

from common import DIGITS, REPO, emit, fsdd_features, workdir
from speechlm.text.tokenizer import train_sentencepiece


def main() -> None:
    logging.disable(logging.INFO)
    work = workdir()
    cuts = fsdd_features(work, "test")
    tok = train_sentencepiece(DIGITS * 5, work / "lang", vocab_size=40)
    cmd = [sys.executable, "-m", "speechlm.cli", "train", "--config", str(REPO / "egs/fsdd/conf/asr.yaml"),
           "--exp-dir", str(work / "exp"), "--train-cuts", str(cuts), "--tokenizer", str(tok),
           "--set", "train.num_epochs=1", "train.average_last=1"]
    subprocess.run(cmd, check=True, capture_output=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    emit({"benchmark": "train_peak_rss", "peak_rss_mib": round(peak_kib / 1024, 1),
          "config": "egs/fsdd/conf/asr.yaml", "epochs": 1, "num_cuts": 250})
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
