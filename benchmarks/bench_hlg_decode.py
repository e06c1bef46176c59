"""HLG 1-best WFST search beside CTC greedy search, on the same CTC log-probs.

The acoustic model runs once per batch (its time is reported separately as ``forward_rtf``);
each search then decodes the stored log-probs, best of ``--repeats`` timings. RTF = seconds of
compute / seconds of audio. Defaults: the trained yesno recipe (``egs/yesno``: run ./run.sh first).

    python benchmarks/bench_hlg_decode.py [--exp-dir D --lang-dir L --cuts C]
"""

import argparse
import logging
import os
import time
from pathlib import Path

import torch

from common import REPO, emit
from speechlm.data.datamodule import make_loader
from speechlm.data.features import load_cuts
from speechlm.decode.ctc import ctc_greedy
from speechlm.models.experiment import load_experiment
from speechlm.decode.wfst import HLGDecoder, graph_info

YESNO = REPO / "egs" / "yesno"


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exp-dir", default=str(YESNO / "exp/asr"))
    p.add_argument("--lang-dir", default=str(YESNO / "data/lang_bpe"))
    p.add_argument("--cuts", default=str(YESNO / "data/fbank/yesno_cuts_test.jsonl.gz"))
    p.add_argument("--recipe-dir", default=str(YESNO),
                   help="where the recipe ran: feature paths in the cuts are relative to it")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    logging.disable(logging.INFO)
    exp_dir, lang_dir, cuts_path = (Path(x).resolve() for x in (args.exp_dir, args.lang_dir, args.cuts))
    os.chdir(args.recipe_dir)

    device = torch.device("cpu")
    exp = load_experiment(exp_dir, device)
    model, cfg, tokenizer = exp.model, exp.cfg, exp.tokenizer
    hlg = HLGDecoder(lang_dir / "HLG.fst", lang_dir / "words.txt")
    cuts = load_cuts(cuts_path)
    loader, _ = make_loader(cuts, cfg.data, train=False, max_duration=cfg.decode.batch_max_duration)
    batches = list(loader)
    model(batches[0]["feats"], batches[0]["feat_lens"])  # warm-up
    t0 = time.perf_counter()
    outputs = [model(b["feats"], b["feat_lens"]) for b in batches]
    forward = time.perf_counter() - t0

    def greedy():
        for lp, n in outputs:
            [tokenizer.decode(ids).split() for ids in ctc_greedy(lp, n)]

    def hlg_1best():
        for lp, n in outputs:
            hlg.decode(lp, n)

    audio = sum(c.duration for c in cuts)
    size = graph_info(hlg.graph)
    emit({
        "benchmark": "hlg_decode_rtf",
        "ctc_greedy_rtf": round(_best_time(greedy, args.repeats) / audio, 6),
        "hlg_1best_rtf": round(_best_time(hlg_1best, args.repeats) / audio, 6),
        "forward_rtf": round(forward / audio, 6),
        "audio_seconds": round(audio, 1),
        "num_utterances": len(cuts),
        "graph_states": size["num_states"],
        "graph_arcs": size["num_arcs"],
        "graph": str(hlg.graph_path),
    })


if __name__ == "__main__":
    main()
