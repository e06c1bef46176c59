"""`speechlm new-recipe`: a recipe from the library's template, run end to end on real audio."""

import os
import re
import subprocess
import sys

import pytest

from conftest import DIGITS, FSDD, REPO, needs_fsdd
from speechlm.base.errors import SpeechlmError
from speechlm.recipe import TEMPLATE_DIR, new_recipe, size_for_hours

TINY = ("encoder.d_model=32 encoder.num_layers=1 encoder.num_heads=2 encoder.subsampling_channels=8 "
        "train.num_epochs=1 train.average_last=1 data.max_duration=8 optim.warmup_steps=5 data.num_buckets=2")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "speechlm.cli", *map(str, args)], cwd=cwd or REPO,
                          capture_output=True, text=True, env=ENV)


def fsdd_folder(root, speakers=("george", "jackson", "nicolas", "theo", "yweweler"), digits=range(4)):
    """A folder corpus: <speaker>/<name>.wav + .txt, real FSDD audio."""
    for spk in speakers:
        (root / spk).mkdir(parents=True)
        for d in digits:
            (root / spk / f"{d}_{spk}_0.wav").symlink_to(FSDD / f"{d}_{spk}_0.wav")
            (root / spk / f"{d}_{spk}_0.txt").write_text(DIGITS[d] + "\n")
    return root


def fsdd_kaldi(root, split, speakers, digits=range(6)):
    root.mkdir(parents=True)
    rows = [(f"{spk}-{d}", FSDD / f"{d}_{spk}_0.wav", DIGITS[d], spk) for spk in speakers for d in digits]
    (root / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _, _ in rows))
    (root / "text").write_text("".join(f"{u} {t.upper()}\n" for u, _, t, _ in rows))
    (root / "utt2spk").write_text("".join(f"{u} {s}\n" for u, _, _, s in rows))
    return root


def run_recipe(recipe, *args):
    r = subprocess.run([str(recipe / "run.sh"), "--nj", "1", "--train-args", TINY, *args], cwd="/",
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def results_rows(recipe):
    return [line for line in (recipe / "RESULTS.md").read_text().splitlines()
            if re.match(r"\| \d{4}-\d\d-\d\d \| \S+ \| test \|", line)]


@needs_fsdd
def test_new_recipe_from_folder_runs_end_to_end(tmp_path):
    """A folder corpus with no split of its own: split by speaker, then stages 0-5."""
    corpus = fsdd_folder(tmp_path / "digits")
    r = cli("new-recipe", "digits", "--from", "folder", corpus, "--egs-dir", tmp_path / "egs")
    assert r.returncode == 0, r.stderr
    recipe = tmp_path / "egs" / "digits"
    assert sorted(p.name for p in recipe.iterdir()) == ["RESULTS.md", "conf", "local", "run.sh"]
    run_sh = (recipe / "run.sh").read_text()
    assert not re.search(r"@[A-Z_]+@", run_sh)  # every template placeholder filled
    assert f". {REPO / 'tools'}/parse_options.sh" in run_sh  # outside the checkout: absolute tools
    assert 'splits="train dev test"' in run_sh and "'tiny' config" in run_sh
    assert "# begin options" in run_sh and "# end options" in run_sh
    run_recipe(recipe)  # stages 0-5 with a tiny model, from another working directory
    assert sorted(p.name for p in (recipe / "data" / "manifests").glob("digits_cuts_*")) == \
        ["digits_cuts_dev.jsonl.gz", "digits_cuts_test.jsonl.gz", "digits_cuts_train.jsonl.gz"]
    assert all((recipe / ".done" / f"stage-{n}.done").is_file() for n in (0, 1, 2, 4, 5))
    rows = results_rows(recipe)
    # one row per default method: the best the recipe can run (stage 2 built the HLG graph)
    assert sorted(r.split(" | ")[3] for r in rows) == ["ctc-greedy", "hlg-1best"]
    assert all("cd egs/digits && ./run.sh --nj 1" in r for r in rows)
    # --tune: stage 5 again, each method at its best dev blank penalty, the rows say which
    run_recipe(recipe, "--stage", "5", "--tune", "decode.blank_penalty=0,2")
    table = (recipe / "exp/asr/decode-test/tune-dev.tsv").read_text().splitlines()
    assert len(table) == 5 and sum(r.endswith("*") for r in table) == 2, table
    tuned = results_rows(recipe)[len(rows):]
    assert len(tuned) == 2 and all("chosen on dev (blank_penalty from 0, 2;" in r for r in tuned)


@needs_fsdd
def test_new_recipe_from_kaldi_dir_with_given_split_runs_end_to_end(tmp_path):
    fsdd_kaldi(tmp_path / "kd" / "train", "train", ["george", "jackson", "nicolas"])
    fsdd_kaldi(tmp_path / "kd" / "test", "test", ["theo", "yweweler"])  # >= 8 cuts: decoding buckets
    out = new_recipe("kd", "kaldi-dir", tmp_path / "kd", egs_dir=tmp_path / "egs")
    run_sh = (out / "run.sh").read_text()
    assert 'splits="train test"' in run_sh and "speechlm import kaldi-dir" in run_sh
    run_recipe(out)  # stages 0-5 with a tiny model, from another working directory
    rows = results_rows(out)
    assert sorted(r.split(" | ")[3] for r in rows) == ["ctc-greedy", "hlg-1best"]
    assert all("cd egs/kd && ./run.sh --nj 1" in r for r in rows)
    assert (out / "exp" / "asr" / "decode-test" / "wer-summary-test.txt").is_file()


def test_new_recipe_inside_a_checkout_uses_relative_tools(tmp_path):
    (tmp_path / "repo" / "egs").mkdir(parents=True)
    (tmp_path / "repo" / "tools").symlink_to(REPO / "tools")
    corpus = tmp_path / "c"
    from test_importers import folder_corpus

    folder_corpus(corpus, per_speaker=2)
    out = new_recipe("c2", "folder", corpus, egs_dir=tmp_path / "repo" / "egs", size="small",
                     import_args="--dev-fraction 0.2")
    run_sh = (out / "run.sh").read_text()
    assert ". ../../tools/parse_options.sh" in run_sh and "import_args='--dev-fraction 0.2'" in run_sh
    # the 'small' config asked for, with its warm-up fitted to the few steps this corpus gives
    small = (TEMPLATE_DIR / "conf" / "small.yaml").read_text()
    conf = (out / "conf" / "asr.yaml").read_text()
    assert re.sub(r"warmup_steps: .*", "", conf) == re.sub(r"warmup_steps: .*", "", small)
    assert "warmup_steps: 500\n" in small and "# new-recipe: a tenth of the steps" in conf
    r = subprocess.run([str(out / "run.sh"), "--help"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and "--corpus-dir" in r.stdout and "--vocab-size" in r.stdout
    with pytest.raises(SpeechlmError, match="already exists"):
        new_recipe("c2", "folder", corpus, egs_dir=tmp_path / "repo" / "egs")


def test_new_recipe_bad_corpus_writes_nothing(tmp_path, capsys):
    from speechlm.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["new-recipe", "x", "--from", "folder", str(tmp_path / "empty"), "--egs-dir", str(tmp_path / "egs")]) == 2
    assert "no utterances found" in capsys.readouterr().err
    assert not (tmp_path / "egs" / "x").exists()
    assert main(["new-recipe", "9bad", "--from", "tsv", "x.tsv", "--egs-dir", str(tmp_path / "egs")]) == 2
    assert "recipe name" in capsys.readouterr().err


def test_every_registered_corpus_resolves():
    """``speechlm prepare NAME`` exists for every corpus in the registry, with its own options."""
    from speechlm.base.registry import CORPORA, resolve

    assert {"synth_en", "fsdd", "yesno", "librispeech", "ljspeech"} <= set(CORPORA.names())
    for entry in CORPORA:
        assert callable(resolve(entry.add_arguments)) and callable(resolve(entry.prepare))


def test_size_thresholds():
    assert size_for_hours(9 / 60) == "tiny" and size_for_hours(0.5) == "small"
    assert size_for_hours(9.9) == "small" and size_for_hours(10.0) == "large"


def test_template_configs_load():
    from speechlm.base.config import load_config

    for size in ("tiny", "small", "large"):
        load_config(TEMPLATE_DIR / "conf" / f"{size}.yaml")


def test_shared_asr_options_recipe_defaults_win(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
. "{REPO / 'tools'}/asr_options.sh"
# begin options
vocab_size=7            # recipe's own default
corpus_dir=/x           # recipe-only option
# end options
. "{REPO / 'tools'}/parse_options.sh"
echo "vocab=$vocab_size nproc=$nproc corpus=$corpus_dir args=$recipe_args"
""")
    script.chmod(0o755)
    help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True).stdout
    assert help_text.count("--vocab-size") == 1 and "recipe's own default [7]" in help_text
    assert "--nproc" in help_text and "--corpus-dir" in help_text
    out = subprocess.run([str(script), "--nproc", "3", "--corpus-dir", "a b"], capture_output=True, text=True).stdout
    assert out.rstrip("\n") == r"vocab=7 nproc=3 corpus=a b args=--nproc 3 --corpus-dir a\ b"
    bad = subprocess.run([str(script), "--no-such-option", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
