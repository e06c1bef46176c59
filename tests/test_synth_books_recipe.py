"""End to end: egs/synth_books/run.sh, stages 0-5 on slices of five shared books, three engines
(festival is left out: about 0.5 s an utterance; flite only where installed) and a tiny model. Runs in a temporary copy of
the recipe (tests/conftest.py: copy_recipe); checks the stage contract and the reports, not WER."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import copy_recipe, needs_books
from test_synth_books import SLICES, _slice

# flite is a Debian package (`make engines`); where it is missing the other two engines still run
ENGINES = ["espeak", "piper"] + (["flite"] if shutil.which("flite") else [])
TINY = [
    "--num-train", "30", "--num-dev", "4", "--num-test", "6", "--engines", ",".join(ENGINES),
    "--dev-models", "", "--vocab-size", "120", "--nj", "1", "--methods", "ctc-greedy,hlg-1best",
    "--train-args", "encoder.d_model=32 encoder.num_layers=1 encoder.num_heads=2 encoder.subsampling_channels=8 "
    "train.num_epochs=1 train.average_last=1 optim.warmup_steps=1",
    "--lm-args", "lm.d_model=32 lm.num_layers=1 lm.num_heads=2 lm.sentences_per_epoch=300 "
    "lm.valid_sentences=50 train.num_epochs=1 train.average_last=1",
]


@needs_books
def test_synth_books_recipe_end_to_end(tmp_path):
    books = tmp_path / "books"
    for name in SLICES:
        (books / name).parent.mkdir(parents=True, exist_ok=True)
        (books / name).write_text(_slice(name, 400), encoding="utf-8")
    (tmp_path / "r").mkdir()
    recipe = copy_recipe(tmp_path / "r", "synth_books")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    out = subprocess.run(["bash", str(recipe / "run.sh"), "--books-dir", str(books), *TINY], cwd=recipe, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    for n in range(6):
        assert re.search(rf"== stage {n} \(.*\): done in \d+ s", out.stdout), f"stage {n}:\n{out.stdout[-3000:]}"
    assert (recipe / "data/text/lm_text.txt").stat().st_size > 10_000
    assert (recipe / "data/lang_bpe/HLG.fst").is_file() and (recipe / "exp/lm/final.pt").is_file()
    summary = (recipe / "exp/asr/decode-test/wer-summary-test.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in summary[1:]) == ["ctc-greedy", "hlg-1best"]
    results = (recipe / "RESULTS.md").read_text()
    assert "| test | ctc-greedy |" in results
    for engine in ENGINES:  # one test set per engine of the test split, scored from test's decode
        assert (recipe / f"exp/asr/decode-test_{engine}/wer-summary-test_{engine}.txt").is_file()
        row = [r for r in results.splitlines() if f"| test_{engine} | hlg-1best |" in r][-1]  # this run's
        assert "scored from the decode of test" in row
    assert not list((recipe / "exp/asr/log").glob("decode-test_*.log"))  # not decoded again
