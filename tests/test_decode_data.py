"""Scoring a trained model on a new, test-only corpus in one command (`speechlm decode --data`):
the same WER and hypotheses as the long way round (import, compute-fbank, decode)."""

import shutil

import pytest

from conftest import DIGITS, FSDD
from speechlm.cli import main

SPEAKERS = ("theo", "jackson")


def fsdd_corpus(root, kind):
    """FSDD's index-0 recordings of two speakers (20) in layout ``kind``, without a split."""
    files = [(FSDD / f"{d}_{spk}_0.wav", spk, DIGITS[d]) for spk in SPEAKERS for d in range(10)]
    root.mkdir(parents=True)
    if kind == "tsv":
        rows = ["path\ttext\tspeaker"] + [f"{f}\t{t}\t{s}" for f, s, t in files]
        (root / "list.tsv").write_text("\n".join(rows) + "\n")
        return root / "list.tsv"
    if kind == "folder":
        for f, spk, text in files:
            (root / spk).mkdir(exist_ok=True)
            shutil.copy(f, root / spk / f.name)
            (root / spk / f.with_suffix(".txt").name).write_text(text.upper() + "\n")
        return root
    for name, lines in (("wav.scp", [f"{f.stem} {f}" for f, _, _ in files]),
                        ("text", [f"{f.stem} {t}" for f, _, t in files]),
                        ("utt2spk", [f"{f.stem} {s}" for f, s, _ in files])):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def wer_lines(out: str):
    return [line.split("\tRTF")[0] for line in out.splitlines() if "\tWER " in line]


@pytest.mark.parametrize("kind", ["tsv", "folder", "kaldi-dir"])
def test_decode_data_equals_the_long_way_round(kind, tiny_ctc, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(tiny_ctc, exp)
    corpus = fsdd_corpus(tmp_path / "corpus", kind)
    methods = ["--methods", "ctc-greedy,ctc-prefix-beam"]
    # the long way round: import (all of it a test set), features, decode
    m = tmp_path / "m"
    assert main(["import", kind, str(corpus), "--out-dir", str(m), "--test-fraction", "1.0"]) == 0
    assert main(["compute-fbank", "--cuts", str(m / "corpus_cuts_test.jsonl.gz"), "--out",
                 str(tmp_path / "f.jsonl.gz"), "--storage", str(tmp_path / "feats")]) == 0
    capsys.readouterr()
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tmp_path / "f.jsonl.gz"),
                 "--out-dir", str(tmp_path / "long"), *methods]) == 0
    long_way = wer_lines(capsys.readouterr().out)
    # one command
    assert main(["decode", "--exp-dir", str(exp), "--data", str(corpus), "--data-kind", kind,
                 "--out-dir", str(tmp_path / "short"), *methods]) == 0
    one_step = wer_lines(capsys.readouterr().out)
    assert len(long_way) == 2 and one_step == long_way
    for m_ in ("ctc-greedy", "ctc-prefix-beam"):
        name = f"recogs-test-{m_}.txt"
        recogs = (tmp_path / "short" / name).read_text()
        assert recogs == (tmp_path / "long" / name).read_text() and recogs.count("ref=") == 20
    cached = exp / "decode-test" / "data" / "cuts_test.jsonl.gz"
    mtime = cached.stat().st_mtime
    assert main(["decode", "--exp-dir", str(exp), "--data", str(corpus), "--data-kind", kind,
                 "--out-dir", str(tmp_path / "again"), *methods]) == 0
    assert wer_lines(capsys.readouterr().out) == long_way and cached.stat().st_mtime == mtime


def test_decode_data_options_are_checked(tiny_ctc, tmp_path, capsys):
    for args, msg in (([], "give either --cuts"),
                      (["--cuts", "c.jsonl.gz", "--data", "x"], "give either --cuts"),
                      (["--data", str(tmp_path)], "say its layout with --data-kind"),
                      (["--data", str(tmp_path / "none"), "--data-kind", "folder"], "not found")):
        assert main(["decode", "--exp-dir", str(tiny_ctc), *args]) == 2
        assert msg in capsys.readouterr().err
    corpus = fsdd_corpus(tmp_path / "c", "tsv")
    assert main(["decode", "--exp-dir", str(tiny_ctc), "--data", str(corpus), "--data-kind", "tsv",
                 "--data-cache", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "o")]) == 0
    assert (tmp_path / "cache" / "manifests" / "data_cuts_test.jsonl.gz").is_file()
