"""``speechlm ablation-table``: the pretraining-ablation tables are built from real decode/eval
outputs (wer-summary files as ``speechlm decode`` writes them), with hand-computed reductions."""

from __future__ import annotations

import json

import pytest

from speechlm.cli import main
from speechlm.base.errors import SpeechlmError
from speechlm.scoring.ablation import asr_ablation_table, tts_ablation_table
from speechlm.scoring.report import read_wer_summary, write_wer_summary


def _runs(root, runs):
    for name, rows in runs.items():
        d = root / name / "decode-test"
        d.mkdir(parents=True)
        write_wer_summary(d / "wer-summary-test.txt",
                          [(m, wer, {"RTF": rtf}) for m, wer, rtf in rows])


def test_asr_table_best_methods_and_relative_reduction(tmp_path, capsys):
    _runs(tmp_path, {
        "low-random": [("ctc-greedy", 60.0, 0.01), ("attention-beam", 50.0, 0.03)],
        "low-pretrained": [("ctc-greedy", 55.0, 0.01), ("attention-beam", 40.0, 0.04)],
        "full-random": [("ctc-greedy", 20.0, 0.01), ("attention-beam", 25.0, 0.03)],
        "full-pretrained": [("ctc-greedy", 21.0, 0.01)],
    })
    table = asr_ablation_table(tmp_path)
    lines = table.splitlines()
    # columns: conditions low then full, random init first within each
    assert lines[0] == "| method | low / random | low / pretrained | full / random | full / pretrained |"
    # rows in decoding-method order, a run without the method shows "-"
    assert lines[2] == "| ctc-greedy | 60.00 (0.01) | 55.00 (0.01) | 20.00 (0.01) | 21.00 (0.01) |"
    assert lines[3] == "| attention-beam | 50.00 (0.03) | 40.00 (0.04) | 25.00 (0.03) | - |"
    # (50 - 40) / 50 = 20 %; full: best random 20.00 (ctc-greedy) vs 21.00 -> -5 %
    assert ("- low: best random-init 50.00% (attention-beam) -> best pretrained 40.00% "
            "(attention-beam): 20.0% relative WER reduction") in lines
    assert ("- full: best random-init 20.00% (ctc-greedy) -> best pretrained 21.00% "
            "(ctc-greedy): -5.0% relative WER reduction") in lines
    assert main(["ablation-table", "--dir", str(tmp_path), "--command", "run it"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(table) and out.rstrip().endswith("command: `run it`")


def test_asr_table_errors_name_the_problem(tmp_path):
    with pytest.raises(SpeechlmError, match="train and decode the runs first"):
        asr_ablation_table(tmp_path)
    _runs(tmp_path, {"lowrandom": [("ctc-greedy", 1.0, 0.1)]})  # not <condition>-<init>
    with pytest.raises(SpeechlmError, match="train and decode"):
        asr_ablation_table(tmp_path)
    bad = tmp_path / "low-random" / "decode-test"
    bad.mkdir(parents=True)
    (bad / "wer-summary-test.txt").write_text("method WER\nctc-greedy 1.0\n")
    with pytest.raises(SpeechlmError, match="not a wer-summary file"):
        read_wer_summary(bad / "wer-summary-test.txt")


def test_tts_table(tmp_path):
    for init, mcd, wer in (("random", 3.05, 25.58), ("pretrained", 2.19, 5.14), ("pretrained-s1", 2.29, 6.14)):
        d = tmp_path / init
        (d / "eval-test").mkdir(parents=True)
        (d / "log").mkdir()
        (d / "eval-test" / "tts-summary.json").write_text(json.dumps({
            "num_utts": 100, "mcd_db": mcd, "wer_synthesised": {"hlg-1best": wer},
            "wer_reference": {"hlg-1best": 1.17}}))
        (d / "log" / "train.log").write_text("epoch 1/2: dev loss 0.9\nepoch 2/2: dev loss 0.4\n")
        (d / "train_seconds.txt").write_text("66\n")
    lines = tts_ablation_table(tmp_path, ["random", "pretrained"]).splitlines()
    assert lines[2] == "| random | 0.4 | 3.05 | 25.58 (1.17) | 66 |"
    assert lines[3] == "| pretrained | 0.4 | 2.19 | 5.14 (1.17) | 66 |"
    assert not any("Mean over seeds" in line for line in lines)
    lines = tts_ablation_table(tmp_path, ["random", "pretrained", "pretrained-s1"]).splitlines()
    assert lines[-2:] == ["- random, 1 seed: MCD-DTW 3.05 (3.05-3.05) dB; round-trip hlg-1best 25.58 (25.58-25.58)%",
                          "- pretrained, 2 seeds: MCD-DTW 2.24 (2.19-2.29) dB; round-trip hlg-1best 5.64 (5.14-6.14)%"]
    with pytest.raises(SpeechlmError, match="tts-summary.json missing"):
        tts_ablation_table(tmp_path, ["frozen"])


def test_asr_table_over_seeds_means_best_methods_and_reductions(tmp_path, capsys):
    s42, s1 = tmp_path / "ablation_s42", tmp_path / "ablation_s1"
    _runs(s42, {"low-random": [("ctc-greedy", 60.0, 0.01), ("attention-beam", 50.0, 0.03)],
                "low-pretrained": [("ctc-greedy", 55.0, 0.01), ("attention-beam", 40.0, 0.04)],
                "low-llm": [("ctc-greedy", 70.0, 0.01), ("attention-beam", 20.0, 0.2)]})
    _runs(s1, {"low-random": [("ctc-greedy", 44.0, 0.01), ("attention-beam", 54.0, 0.03)],
               "low-pretrained": [("ctc-greedy", 45.0, 0.01), ("attention-beam", 30.0, 0.04)]})
    lines = asr_ablation_table([s42, s1]).splitlines()
    # an arm only one seed has says so; cells are mean (min-max) over the seeds that have it
    assert lines[0] == "| method | low / random | low / llm (1 of 2 seeds) | low / pretrained |"
    assert lines[2] == "| ctc-greedy | 52.00 (44.00-60.00) | 70.00 (70.00-70.00) | 50.00 (45.00-55.00) |"
    assert lines[3] == "| attention-beam | 52.00 (50.00-54.00) | 20.00 (20.00-20.00) | 35.00 (30.00-40.00) |"
    # best method per seed, then the mean of those: random (50 + 44) / 2 = 47, pretrained 35
    assert ("- low / random: best method per seed ablation_s42 50.00 (attention-beam), "
            "ablation_s1 44.00 (ctc-greedy); mean 47.00 (44.00-50.00)") in lines
    # pretrained vs random (47 - 35) / 47 = 25.5 %; llm vs random (47 - 20) / 47 = 57.4 %,
    # vs the best other init (pretrained 35): (35 - 20) / 35 = 42.9 %
    assert ("- low / pretrained: relative WER reduction of the mean best, 25.5% against random; "
            "-75.0% against the best other init (llm, 20.00)") in lines
    assert not any(line.startswith("- low / random: relative") for line in lines)
    assert ("- low / llm: relative WER reduction of the mean best, 57.4% against random; "
            "42.9% against the best other init (pretrained, 35.00)") in lines
    assert main(["ablation-table", "--dir", str(s42), str(s1)]) == 0
    assert capsys.readouterr().out.splitlines()[3] == lines[3]
    with pytest.raises(SpeechlmError, match=str(tmp_path / "nothing")):
        asr_ablation_table([s42, tmp_path / "nothing"])
    assert main(["ablation-table", "--kind", "tts", "--dir", str(s42), str(s1)]) != 0
    assert "give one --dir" in capsys.readouterr().err


def test_asr_table_compares_ssl_encoder_arms_with_random_init_on_that_encoder(tmp_path):
    _runs(tmp_path, {"low-random": [("ctc-greedy", 50.0, 0.01)], "low-pretrained": [("ctc-greedy", 40.0, 0.01)],
                     "low-random+ssl": [("ctc-greedy", 20.0, 0.01)], "low-llm+ssl": [("ctc-greedy", 15.0, 0.1)]})
    lines = asr_ablation_table(tmp_path).splitlines()
    assert lines[0] == "| method | low / random | low / random+ssl | low / llm+ssl | low / pretrained |"
    # (20 - 15) / 20 = 25 % on the SSL encoder; (50 - 40) / 50 = 20 % on the random one
    assert ("- low: best random+ssl-init 20.00% (ctc-greedy) -> best llm+ssl 15.00% (ctc-greedy): "
            "25.0% relative WER reduction") in lines
    assert ("- low: best random-init 50.00% (ctc-greedy) -> best pretrained 40.00% (ctc-greedy): "
            "20.0% relative WER reduction") in lines
    assert ("- low: best random-init 50.00% (ctc-greedy) -> best random+ssl 20.00% (ctc-greedy): "
            "60.0% relative WER reduction") in lines  # the SSL encoder's own gain
    lines = asr_ablation_table([tmp_path, tmp_path]).splitlines()
    assert ("- low / llm+ssl: relative WER reduction of the mean best, 25.0% against random+ssl; "
            "25.0% against the best other init (random+ssl, 20.00)") in lines
