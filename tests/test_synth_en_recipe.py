"""End to end: the default recipe, egs/synth_en/run.sh, stages 0-5 with a tiny corpus and model.

Runs in a temporary copy of the recipe (run.sh, conf/, RESULTS.md) beside a symlink to tools/,
so nothing is written into the checkout. Checks the stage contract (outputs, .done markers,
logs, re-run skips) and the report files; the tiny model's WER is only checked to be a number.
"""

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "synth_en"
TINY = [
    "--num-text", "3000", "--num-train", "40", "--num-dev", "6", "--num-test", "8", "--vocab-size", "120",
    "--train-args", "encoder.d_model=32 encoder.num_layers=1 encoder.num_heads=2 "
    "encoder.subsampling_channels=8 train.num_epochs=1 train.average_last=1",
    "--lm-args", "lm.d_model=32 lm.num_layers=1 lm.num_heads=2 lm.sentences_per_epoch=300 "
    "lm.valid_sentences=50 train.num_epochs=1 train.average_last=1",
    "--tts-num-train", "30", "--tts-num-test", "4",
    "--tts-args", "train.num_epochs=1 train.average_last=1 tts.griffin_lim_iters=4 tts.valid_utterances=0",
]


def run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", str(recipe / "run.sh"), *args], cwd=recipe, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return copy_recipe(tmp_path_factory.mktemp("synth_en_recipe"), "synth_en")


def test_default_recipe_end_to_end(recipe):
    before = (recipe / "RESULTS.md").read_text()
    first = run(recipe, *TINY)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    out = first.stdout
    for n in range(6):
        assert re.search(rf"== stage {n} \(.*\): (done in \d+ s|skipped)", out), f"stage {n}:\n{out[-3000:]}"
    # Stage 0: held-out voices and sentences, validated manifests, LM text.
    assert (recipe / "data/text/lm_text.txt").read_text().count("\n") >= 2900
    for split in ("train", "dev", "test"):
        assert (recipe / f"data/manifests/synth_en_cuts_{split}.jsonl.gz").is_file()
        assert (recipe / f"data/fbank/synth_en_cuts_{split}.jsonl.gz").is_file()
    # Stage 4 output is self-describing; stage 5 wrote icefall-style reports and a RESULTS.md row.
    exp = recipe / "exp/asr"
    assert (exp / "config.yaml").is_file() and (exp / "final.pt").is_file()
    summary = (exp / "decode-test/wer-summary-test.txt").read_text().splitlines()
    assert summary[0].startswith("settings\tWER")
    wer = float(summary[1].split("\t")[1])
    assert wer >= 0
    # the default methods: greedy, WFST (HLG from the LM text's 3-gram) and its neural-LM n-best
    assert sorted(line.split("\t")[0] for line in summary[1:]) == ["ctc-greedy", "hlg-1best",
                                                                   "hlg-nbest-lm"]
    assert (recipe / "data/lang_bpe/HLG.fst").is_file()
    # TTS (stages 4-5 of tools/tts_stages.sh): one-voice model, synthesis, evaluation summary
    assert (recipe / "exp/tts/final.pt").is_file()
    assert "MCD" in (recipe / "exp/tts/eval-test/tts-summary.txt").read_text()
    after = (recipe / "RESULTS.md").read_text()
    # rows go under the last results table (not necessarily the end); nothing is lost
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    assert not [d for d in diff if d.startswith("- ")]
    added = [d[2:] for d in diff if d.startswith("+ ")]
    assert any(a.startswith("| ") and "./run.sh" in a for a in added), added
    assert "test WER" in out
    # A re-run skips every finished stage and changes nothing.
    again = run(recipe, *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already done, skipping") >= 5
    assert (recipe / "RESULTS.md").read_text() == after


def test_unknown_option_and_help(recipe):
    bad = run(recipe, "--num-trian", "3")
    assert bad.returncode == 2 and "unknown option --num-trian" in bad.stderr
    helped = run(recipe, "--help")
    assert helped.returncode == 0 and "--num-train" in helped.stdout and "[2000]" in helped.stdout
