"""Kill -9 trials: a recipe killed at random points always finishes with the same results.

One uninterrupted run of a small recipe (egs/yesno by default) in a scratch copy is the
reference. Then, N times: a fresh copy runs until a random moment (uniform over 5-95% of the
reference's wall time), its whole process group is killed with SIGKILL, and ``./run.sh`` is run
again, to completion, with the same arguments. Each re-run must exit 0 and leave the same final
outputs as the reference:

- ``exp/asr/decode-test/wer-summary-test.txt``, less its RTF column (a timing);
- the rows stage 5 added to RESULTS.md, less their date, commit and RTF columns (a row written
  twice, by the killed run and again by the re-run, is a difference);
- the weights in ``exp/asr/final.pt`` (a hash of every tensor; the file itself also holds the
  run's random id).

Prints one JSON line: trials, how many re-runs completed and were identical, where each kill
landed (seconds, stage) and what differed.

    python benchmarks/kill_trials.py --trials 3              # yesno, ~4x its run time
    python benchmarks/kill_trials.py --trials 1 --train-args "train.num_epochs=5"   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# columns of a RESULTS.md results table that differ between identical runs (found by name in the
# table's header row, so a new column such as CER does not shift them)
VOLATILE_COLUMNS = ("date", "commit", "RTF")


def copy_recipe(root: Path, name: str) -> Path:
    """``egs/<name>`` (run.sh, conf/, local/, RESULTS.md) under ``root`` beside a link to tools/."""
    (root / "egs").mkdir(parents=True)
    os.symlink(REPO / "tools", root / "tools")
    src, dst = REPO / "egs" / name, root / "egs" / name
    dst.mkdir()
    for item in ("run.sh", "RESULTS.md"):
        shutil.copy2(src / item, dst / item)
    for folder in ("conf", "local"):
        if (src / folder).is_dir():
            shutil.copytree(src / folder, dst / folder)
    return dst


def start(recipe: Path, args: list, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    with open(log, "ab") as out:
        return subprocess.Popen(["./run.sh", *args], cwd=recipe, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # its own process group


def run_to_end(recipe: Path, args: list, log: Path) -> int:
    return start(recipe, args, log).wait()


def outputs(recipe: Path, original_results: list) -> dict:
    """The final outputs compared between runs."""
    import torch

    summary = recipe / "exp" / "asr" / "decode-test" / "wer-summary-test.txt"
    final = recipe / "exp" / "asr" / "final.pt"
    weights = None
    if final.is_file():
        state = torch.load(final, map_location="cpu", weights_only=True)["model"]
        digest = hashlib.sha256()
        for key in sorted(state):
            digest.update(key.encode())
            digest.update(state[key].cpu().contiguous().numpy().tobytes())
        weights = digest.hexdigest()[:16]
    rows, volatile = [], set()
    for line in (recipe / "RESULTS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| date |"):  # a results table's header: where its volatile columns are
            volatile = {i for i, name in enumerate(cells) if name in VOLATILE_COLUMNS}
        elif line.startswith("| ") and line not in original_results and re.match(r"\| \d{4}-", line):
            rows.append(" | ".join(c for i, c in enumerate(cells) if i not in volatile))
    wer = None
    if summary.is_file():  # settings, WER (and RTF, a timing: left out)
        lines = [line.split("\t") for line in summary.read_text().splitlines()]
        keep = [i for i, name in enumerate(lines[0]) if name != "RTF"] if lines else []
        wer = "\n".join("\t".join(cells[i] for i in keep if i < len(cells)) for cells in lines)
    return {"wer_summary": wer,
            "results_rows": sorted(rows), "final_weights": weights}


def last_stage(log: Path) -> str:
    stages = re.findall(r"== stage (\d+) \(([^)]*)\): started", log.read_text(errors="replace"))
    return f"{stages[-1][0]} ({stages[-1][1]})" if stages else "before stage 0"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--recipe", default="yesno", help="a recipe in egs/ that runs offline")
    p.add_argument("--corpus-dir", default=str(DATA / "yesno"), help="passed as --corpus-dir")
    p.add_argument("--train-args", default="", help="passed as --train-args (e.g. fewer epochs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    p.add_argument("--keep", action="store_true", help="keep the scratch folders")
    a = p.parse_args()
    args = ["--corpus-dir", a.corpus_dir] + (["--train-args", a.train_args] if a.train_args else [])
    rng = random.Random(a.seed)
    scratch = Path(tempfile.mkdtemp(prefix="speechlm-kill-"))
    original = (REPO / "egs" / a.recipe / "RESULTS.md").read_text().splitlines()

    ref_dir = copy_recipe(scratch / "reference", a.recipe)
    t0 = time.time()
    rc = run_to_end(ref_dir, args, scratch / "reference.log")
    ref_seconds = time.time() - t0
    if rc != 0:
        sys.exit(f"the uninterrupted run failed (exit {rc}); see {scratch / 'reference.log'}")
    reference = outputs(ref_dir, original)

    kills, completed, identical, differences = [], 0, 0, []
    for n in range(1, a.trials + 1):
        recipe = copy_recipe(scratch / f"trial-{n}", a.recipe)
        log = scratch / f"trial-{n}.log"
        at = rng.uniform(0.05, 0.95) * ref_seconds
        proc = start(recipe, args, log)
        try:
            proc.wait(timeout=at)
            kills.append({"at_s": round(at, 1), "stage": "finished before the kill"})
        except subprocess.TimeoutExpired:
            stage = last_stage(log)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills.append({"at_s": round(at, 1), "stage": stage})
        with open(log, "a") as f:
            f.write("\n==== killed; re-running ====\n")
        rc = run_to_end(recipe, args, log)
        completed += rc == 0
        got = outputs(recipe, original)
        differ = [k for k in reference if got[k] != reference[k]]
        if rc != 0:
            differ.insert(0, f"re-run exit {rc}")
        if differ:
            differences.append({"trial": n, "differ": differ, "log": str(log)})
        else:
            identical += 1
    print(json.dumps({"benchmark": "kill_trials", "recipe": a.recipe, "trials": a.trials,
                      "completed": completed, "identical": identical, "kills": kills,
                      "differences": differences, "reference_s": round(ref_seconds, 1),
                      "reference_wer_rows": reference["results_rows"],
                      "scratch": str(scratch) if a.keep or differences else None}))
    if not (a.keep or differences):
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
