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


def test_tune_on_dev_decodes_the_test_set_with_each_methods_best(tiny_ctc, tiny_asr, tmp_path, capsys):
    """`--tune decode.blank_penalty=...`: the dev table holds what a plain decode at each value
    gives, each method gets its lowest dev WER (first listed on a tie), and the test set is
    decoded as a plain decode at that value would be; RESULTS.md rows say what was chosen."""
    exp = tmp_path / "exp"
    shutil.copytree(tiny_ctc, exp)
    dev, test = str(tiny_asr["train"]), str(tiny_asr["test"])  # the 40 training cuts as a dev set
    methods, values = "ctc-greedy,ctc-prefix-beam", ["0", "1.5", "6"]
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n")
    assert main(["decode", "--exp-dir", str(exp), "--cuts", test, "--methods", methods,
                 "--tune", f"decode.blank_penalty={','.join(values)}", "--tune-cuts", dev,
                 "--out-dir", str(tmp_path / "tuned"), "--results-md", str(results)]) == 0
    tuned = dict(line.split("\t")[1:3] for line in wer_lines(capsys.readouterr().out))
    rows = [r.split("\t") for r in (tmp_path / "tuned" / "tune-dev.tsv").read_text().splitlines()]
    assert rows[0] == ["decode.blank_penalty", "method", "WER", "CER", "chosen"] and len(rows) == 7
    for v in values:  # the table equals plain decodes of dev
        assert main(["decode", "--exp-dir", str(exp), "--cuts", dev, "--set-name", "dev",
                     "--methods", methods, "--set", f"decode.blank_penalty={v}",
                     "--out-dir", str(tmp_path / f"plain-dev-{v}")]) == 0
        plain = dict(line.split("\t")[1:3] for line in wer_lines(capsys.readouterr().out))
        for m, wer in plain.items():
            assert [r for r in rows if r[0] == v and r[1] == m][0][2] == wer.split()[1][:-1]
    for m in methods.split(","):
        mine = [r for r in rows[1:] if r[1] == m]
        best = min(mine, key=lambda r: (float(r[2]), float(r[3])))  # min keeps the first of ties
        assert [r[4] for r in mine] == ["*" if r is best else "" for r in mine]
        assert main(["decode", "--exp-dir", str(exp), "--cuts", test, "--methods", m,
                     "--set", f"decode.blank_penalty={best[0]}", "--out-dir", str(tmp_path / "p")]) == 0
        plain = dict(line.split("\t")[1:3] for line in wer_lines(capsys.readouterr().out))
        assert tuned[m] == plain[m]
        assert (tmp_path / "tuned" / f"recogs-test-{m}.txt").read_text() == \
            (tmp_path / "p" / f"recogs-test-{m}.txt").read_text()
        row = [line for line in results.read_text().splitlines() if f"| {m} |" in line]
        assert len(row) == 1 and f"blank_penalty={best[0]} chosen on dev (blank_penalty from " \
                                 f"0, 1.5, 6; dev WER {float(best[2]):.2f}%)" in row[0]


def test_tune_options_are_checked(tiny_ctc, tiny_asr, tmp_path, capsys):
    test, dev = str(tiny_asr["test"]), str(tiny_asr["train"])
    for args, msg in ((["--tune", "decode.blank_penalty=0,1"], "go together"),
                      (["--tune-cuts", dev], "go together"),
                      (["--tune", "decode.blank_penalty", "--tune-cuts", dev], "give decode.KEY=V1,V2"),
                      (["--tune", "optim.lr=1,2", "--tune-cuts", dev], "give decode.KEY=V1,V2"),
                      (["--tune", "decode.blank_penalty=1", "decode.blank_penalty=2", "--tune-cuts",
                        dev], "given twice"),
                      (["--tune", "decode.blank_penalty=0,1", "--tune-cuts", dev, "--set",
                        "decode.blank_penalty=2"], "in both --set and --tune"),
                      (["--tune", "decode.blank_penalty=0,1", "--tune-cuts", test],
                       "is the test set itself"),
                      (["--tune", "decode.blank_penalty=0,x", "--tune-cuts", dev],
                       "decode.blank_penalty = 'x' has the wrong type")):
        assert main(["decode", "--exp-dir", str(tiny_ctc), "--cuts", test, "--out-dir",
                     str(tmp_path / "o"), *args]) == 2, args
        assert msg in capsys.readouterr().err, args


def test_subsets_are_scored_from_the_decode_of_the_whole_set(tiny_ctc, tiny_asr, tmp_path, capsys):
    """--subset NAME=CUTS: reports of some of the decoded cuts, without decoding them again, equal
    to those of decoding them on their own; a cut outside the set or a bad name is refused first."""
    from lhotse import CutSet

    from speechlm.scoring.report import read_wer_summary

    cuts = CutSet.from_file(tiny_asr["test"]).to_eager()
    part = tmp_path / "part.jsonl.gz"
    CutSet.from_cuts(list(cuts)[3:7]).to_file(part)
    exp = tmp_path / "exp"
    shutil.copytree(tiny_ctc, exp)
    methods = ["--methods", "ctc-greedy,ctc-prefix-beam"]
    md = tmp_path / "RESULTS.md"
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), *methods,
                 "--subset", f"part={part}", "--results-md", str(md), "--command", "c"]) == 0
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(part), "--set-name", "part",
                 "--out-dir", str(tmp_path / "alone"), *methods]) == 0
    for m in ("ctc-greedy", "ctc-prefix-beam"):
        name = f"recogs-part-{m}.txt"
        recogs = (exp / "decode-part" / name).read_text()
        assert recogs == (tmp_path / "alone" / name).read_text() and recogs.count("ref=") == 4
    wers = [r[:2] for r in read_wer_summary(exp / "decode-part" / "wer-summary-part.txt")]
    assert wers == [r[:2] for r in read_wer_summary(tmp_path / "alone" / "wer-summary-part.txt")]
    assert "scored from the decode of test" in md.read_text() and "| part |" in md.read_text()
    # refused before decoding: a cut the set lacks, another transcript, the set's own name, no '='
    other = tmp_path / "other.jsonl.gz"
    CutSet.from_file(tiny_asr["train"]).subset(first=2).to_file(other)
    relabelled = tmp_path / "relabelled.jsonl.gz"
    cut = list(cuts)[3]
    cut.supervisions[0].text = "something else"
    CutSet.from_cuts([cut]).to_file(relabelled)
    capsys.readouterr()
    for arg, msg in ((f"o={other}", "is not in the decoded set"), (f"test={part}", "a name of its own"),
                     (f"r={relabelled}", "has another transcript there"),
                     (str(part), "expected NAME=CUTS"), (f"x={tmp_path / 'none.jsonl.gz'}", "not found")):
        assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), *methods,
                     "--out-dir", str(tmp_path / "bad"), "--subset", arg]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
