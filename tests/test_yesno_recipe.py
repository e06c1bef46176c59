"""End to end: egs/yesno/run.sh (data prep -> fbank -> tokenizer + HLG -> training -> decoding).

The recipe runs in a temporary copy of its directory (run.sh, conf/, RESULTS.md) next to a
symlink to the repository's tools/, so the relative paths it uses (``../../tools``) resolve and
nothing is written into the checkout. Needs the local corpus copy beside the checkout.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_recipe, require_shared

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "yesno"
CORPUS = REPO.parent / "shared" / "data" / "yesno"


def _run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # The symlinked tools/ cannot find the checkout's .venv, so put this interpreter's on PATH.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run(
        ["bash", str(recipe / "run.sh"), "--corpus-dir", str(CORPUS), *args],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    require_shared(CORPUS / "waves_yesno", "yesno corpus")
    return copy_recipe(tmp_path_factory.mktemp("yesno_recipe"), "yesno")


def _wer(summary: str, method: str) -> float:
    m = re.search(rf"^{re.escape(method)}\t([0-9.]+)", summary, re.M)
    assert m, f"{method} missing from wer-summary:\n{summary}"
    return float(m.group(1))


def test_yesno_recipe_end_to_end_and_rerun(recipe):
    rows_before = (recipe / "RESULTS.md").read_text().count("| test |")
    first = _run(recipe)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    summary = (recipe / "exp/asr/decode-test/wer-summary-test.txt").read_text()
    greedy, hlg = _wer(summary, "ctc-greedy"), _wer(summary, "hlg-1best")
    assert hlg <= 5.0, f"hlg-1best WER {hlg}% (greedy {greedy}%) is far above the 0.42% anchor"
    for name in ("HLG.fst", "words.txt", "tokens.txt", "lm_3gram.arpa", "token_graph.fst"):
        assert (recipe / "data/lang_bpe" / name).is_file(), name
    results = (recipe / "RESULTS.md").read_text()
    assert results.count("| test |") == rows_before + 2, results  # one row per method
    assert "| test | hlg-1best |" in results and "| test | ctc-greedy |" in results

    again = _run(recipe)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "started" not in again.stdout, again.stdout
    for n in (0, 1, 2, 4, 5):
        assert f"== stage {n} " in again.stdout and "already done" in again.stdout
    assert again.stdout.count("already done") == 5, again.stdout


def test_streaming_option_trains_a_streaming_model_and_decodes_it_both_ways(recipe):
    """After the full run above: --streaming retrains stage 4 as a streaming model (the earlier
    run moved aside) and stage 5 scores it with full context and as a stream."""
    out = _run(recipe, "--stage", "4", "--streaming", "4", "--methods", "ctc-greedy",
               "--train-args", "train.num_epochs=3")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "inputs changed" in out.stdout
    cfg = (recipe / "exp/asr/config.yaml").read_text()
    assert "chunk_conv: true" in cfg and "dynamic_chunk: 16" in cfg
    assert list((recipe / "exp/asr/previous-runs").iterdir())
    dec = recipe / "exp/asr/decode-test"
    assert (dec / "wer-summary-test.txt").is_file()
    assert [p.name for p in dec.glob("wer-summary-test*stream4*")]
    assert "streaming in chunks of 4 frames (160 ms)" in (recipe / "RESULTS.md").read_text()


def test_tune_needs_a_dev_split(recipe):
    """yesno has train and test only: --tune stops before any stage runs, naming the option."""
    out = _run(recipe, "--stage", "4", "--tune", "decode.blank_penalty=0,1")
    assert out.returncode == 2 and "started" not in out.stdout, out.stdout + out.stderr
    assert "--tune 'decode.blank_penalty=0,1' needs a dev split" in out.stderr
