"""Trainer on real (tiny) data: checkpoints, exact resume, averaging, decoding, DDP under torchrun."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, tiny_overrides
from speechlm.base.config import load_config
from speechlm.models.experiment import load_experiment
from speechlm.scoring.evaluate import decode_and_score as recognize
from speechlm.base.errors import SpeechlmError
from speechlm.base.checkpoint import epoch_checkpoints, load_checkpoint
from speechlm.train.ctc import CtcTrainer


def train(tiny_asr, exp_dir, epochs, resume=False, extra=()):
    cfg = load_config(None, tiny_overrides(epochs) + list(extra))
    trainer = CtcTrainer(cfg, exp_dir, tiny_asr["train"], tiny_asr["test"], tiny_asr["tokenizer"])
    return trainer.run(resume=resume)


def test_resume_continues_exactly(tiny_asr, tmp_path):
    # bit for bit on the CPU; on a GPU the kernels (CTC loss backward, atomics) sum in a varying
    # order, and Adam makes those roundings visible (seen on an H200: README "On a GPU")
    exp, cpu = tmp_path / "exp", ["train.device=cpu"]
    train(tiny_asr, exp, epochs=3, extra=cpu)
    straight = load_checkpoint(exp / "epoch-3.pt")
    # A run killed during epoch 3: its last checkpoint is epoch 2, and no final model exists.
    (exp / "epoch-3.pt").unlink()
    (exp / "final.pt").unlink()
    train(tiny_asr, exp, epochs=3, resume=True, extra=cpu)
    resumed = load_checkpoint(exp / "epoch-3.pt")
    assert straight["step"] == resumed["step"] > 0
    for key in straight["model"]:
        assert torch.equal(straight["model"][key], resumed["model"][key]), key
    assert straight["optimizer"]["state"][0]["exp_avg"].equal(resumed["optimizer"]["state"][0]["exp_avg"])
    # The check has teeth: epoch 3 really changed the weights.
    before = load_checkpoint(exp / "epoch-2.pt")
    assert not all(torch.equal(before["model"][k], resumed["model"][k]) for k in before["model"])


def test_outputs_and_averaging(tiny_asr, tmp_path):
    exp = tmp_path / "exp"
    final = train(tiny_asr, exp, epochs=3, extra=["train.keep_last=2", "train.average_last=2"])
    assert [p.name for p in epoch_checkpoints(exp)] == ["epoch-2.pt", "epoch-3.pt"]
    assert (exp / "config.yaml").is_file() and (exp / "tokenizer.model").is_file()
    assert (exp / "log" / "train.log").read_text().count("epoch 3/3") == 1
    assert list((exp / "tensorboard").iterdir())
    state = load_checkpoint(final)
    assert state["averaged"] == ["epoch-2.pt", "epoch-3.pt"]
    e2, e3 = (load_checkpoint(exp / f"epoch-{i}.pt")["model"] for i in (2, 3))
    key = "ctc_head.weight"
    assert torch.allclose(state["model"][key], (e2[key] + e3[key]) / 2, atol=1e-6)
    # The resolved config drives decoding: no architecture flags repeated.
    res = recognize(exp, tiny_asr["test"], "test", ["ctc-greedy"], results_md=tmp_path / "RESULTS.md",
                    command="pytest")
    wer = res["ctc-greedy"]["wer"]
    assert 0 <= wer <= 100 * 10  # insertions can exceed 100%
    summary = (exp / "decode-test" / "wer-summary-test.txt").read_text().splitlines()
    assert summary[0].startswith("settings\tWER") and summary[1].startswith("ctc-greedy\t")
    assert (exp / "decode-test" / "errs-test-ctc-greedy.txt").read_text().startswith("%WER")
    assert "`pytest`" in (tmp_path / "RESULTS.md").read_text()
    # Decoding another average of the kept epochs (icefall's --avg): K = train.average_last is
    # final.pt exactly; K = 1 is the last epoch; more than the kept checkpoints is refused.
    for k, want in ((2, state["model"]), (1, e3)):
        model = load_experiment(exp, avg=k).model
        got = model.state_dict()
        assert all(torch.equal(got[n], want[n]) for n in want), k
    with pytest.raises(SpeechlmError, match=r"--avg 3: .* keeps 2 epoch checkpoints \(epoch-2\.pt, "
                       r"epoch-3\.pt\); use --avg <= 2"):
        load_experiment(exp, avg=3)
    res1 = recognize(exp, tiny_asr["test"], "test", ["ctc-greedy"], avg=1)
    assert (exp / "decode-test" / "wer-summary-test-avg1.txt").is_file()
    assert summary == (exp / "decode-test" / "wer-summary-test.txt").read_text().splitlines()
    assert 0 <= res1["ctc-greedy"]["wer"] <= 1000


def test_torchrun_two_processes(tiny_asr, tmp_path):
    exp = tmp_path / "ddp"
    sets = tiny_overrides(2) + ["train.device=cpu"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "speechlm.cli", "train", "--exp-dir", str(exp), "--train-cuts", str(tiny_asr["train"]),
           "--dev-cuts", str(tiny_asr["test"]), "--tokenizer", str(tiny_asr["tokenizer"]), "--set", *sets]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (exp / "log" / "train.log").read_text()
    assert "world size 2" in log
    single = load_checkpoint(train(tiny_asr, tmp_path / "single", epochs=2).parent / "epoch-2.pt")
    ddp = load_checkpoint(exp / "epoch-2.pt")
    # Each rank saw half the batches: fewer optimizer steps than the single-process run.
    assert 0 < ddp["step"] < single["step"]


def test_max_cut_duration_leaves_long_training_cuts_out(tiny_asr, tmp_path):
    from speechlm.data.features import load_cuts

    durations = sorted(c.duration for c in load_cuts(tiny_asr["train"]))
    limit = durations[len(durations) // 2]
    cfg = load_config(None, tiny_overrides(1) + [f"data.max_cut_duration={limit}"])
    trainer = CtcTrainer(cfg, tmp_path / "exp", tiny_asr["train"], tiny_asr["test"], tiny_asr["tokenizer"])
    kept = [c.duration for c in trainer.train_cuts]
    assert 0 < len(kept) < len(durations) and max(kept) <= limit
    assert len(trainer.dev_cuts) == len(load_cuts(tiny_asr["test"]))  # dev is never filtered


def test_stall_monitor_warns_once_on_an_early_plateau_and_not_on_a_falling_loss():
    from speechlm.train.trainer import StallMonitor

    falling = StallMonitor(patience=4, min_drop=0.05, num_epochs=40)
    assert not any(falling.update(100 * 0.9 ** e) for e in range(40))

    # the yesno failure: a quick fall to ~8 per utterance, then flat
    stuck = StallMonitor(patience=4, min_drop=0.05, num_epochs=40)
    messages = [stuck.update(loss) for loss in [20, 8.1, 8.0, 7.9, 7.98, 8.02, 7.95, 7.99, 7.9, 7.97]]
    assert [bool(m) for m in messages].index(True) == 5  # epochs 3-6 stay within 5% of epoch 2's 8.1
    assert sum(bool(m) for m in messages) == 1 and "(epoch 2)" in messages[5]

    # a plateau that the run leaves in time, a noisy converged run (yesno seed 6's losses), and
    # one only in the second half give no warning
    leaves = StallMonitor(patience=4, min_drop=0.05, num_epochs=40)
    assert not any(leaves.update(x) for x in [21.5, 7.9, 7.8, 7.7, 22.6, 6.0, 4.4, 3.2, 0.98])
    converged = StallMonitor(patience=6, min_drop=0.05, num_epochs=40)
    assert not any(converged.update(x) for x in [16.4, 8.15, 7.59, 7.14, 5.99, 2.37, 0.96, 0.13, 0.40,
                                                 0.51, 1.18, 0.58, 0.48, 0.030, 0.21, 0.32, 0.45,
                                                 1.10, 0.30, 0.097])
    late = StallMonitor(patience=4, min_drop=0.05, num_epochs=10)
    assert not any(late.update(x) for x in [9, 8, 7, 6, 5, 4, 4, 4, 4, 4])
    off = StallMonitor(patience=0, min_drop=0.05, num_epochs=40)
    assert not any(off.update(8.0) for _ in range(20))
