"""Fbank extraction real-time factor: resample to 16 kHz + 80-dim log-mel, one process, FSDD test set."""

import logging
import shutil
import time


from common import emit, fsdd_cuts, workdir
from speechlm.data.features import compute_fbank, load_cuts


def main() -> None:
    logging.disable(logging.INFO)
    work = workdir()
    cuts = fsdd_cuts(work, "test")
    audio = sum(c.duration for c in load_cuts(cuts))
    t0 = time.perf_counter()
    compute_fbank(cuts, work / "out.jsonl.gz", work / "feats", num_jobs=1)
    seconds = time.perf_counter() - t0
    emit({"benchmark": "fbank_rtf", "rtf": round(seconds / audio, 5), "audio_seconds": round(audio, 1),
          "wall_seconds": round(seconds, 2), "num_cuts": len(load_cuts(cuts)), "num_jobs": 1})
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
