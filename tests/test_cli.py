"""Bad input through the `speechlm` command: one clear `speechlm: error:` line, exit 2, no traceback."""

import gzip
import json
import subprocess
import sys


from conftest import REPO, tiny_overrides


def speechlm(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "speechlm.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "speechlm: error:" in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_help_lists_verbs():
    proc = speechlm("--help")
    assert proc.returncode == 0
    for verb in ("prepare", "compute-fbank", "train-tokenizer", "prepare-lang", "train", "decode"):
        assert verb in proc.stdout


def test_unknown_config_key(tiny_asr, tmp_path):
    proc = speechlm("train", "--exp-dir", tmp_path / "e", "--train-cuts", tiny_asr["train"],
                    "--tokenizer", tiny_asr["tokenizer"], "--set", "train.num_epoch=3")
    assert_clean_error(proc, "unknown config key(s) ['num_epoch']", "num_epochs")


def test_unknown_key_in_yaml_file(tiny_asr, tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("encoder:\n  d_modl: 64\n")
    proc = speechlm("train", "--config", conf, "--exp-dir", tmp_path / "e", "--train-cuts",
                    tiny_asr["train"], "--tokenizer", tiny_asr["tokenizer"])
    assert_clean_error(proc, str(conf), "d_modl")


def test_transcript_with_unencodable_characters(tiny_asr, tmp_path):
    # Copy the train manifest, putting a character the digit tokenizer never saw in one transcript.
    bad = tmp_path / "cuts_bad.jsonl.gz"
    with gzip.open(tiny_asr["train"], "rt") as f:
        lines = [json.loads(line) for line in f]
    lines[3]["supervisions"][0]["text"] = "fünf"
    with gzip.open(bad, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in lines)
    proc = speechlm("train", "--exp-dir", tmp_path / "e", "--train-cuts", bad,
                    "--tokenizer", tiny_asr["tokenizer"], "--set", *tiny_overrides(1))
    assert_clean_error(proc, lines[3]["id"], "'ü'", "cannot encode")
    assert not (tmp_path / "e" / "final.pt").exists()


def test_missing_inputs_are_named(tmp_path):
    proc = speechlm("compute-fbank", "--cuts", tmp_path / "nope.jsonl.gz", "--out", tmp_path / "o.jsonl.gz",
                    "--storage", tmp_path / "feats")
    assert_clean_error(proc, "nope.jsonl.gz", "not found")
    proc = speechlm("decode", "--exp-dir", tmp_path / "noexp", "--cuts", tmp_path / "c.jsonl.gz")
    assert_clean_error(proc, "noexp")


def test_unknown_decoding_method(tiny_asr, tmp_path):
    from speechlm.base.config import load_config
    from speechlm.train.ctc import CtcTrainer

    exp = tmp_path / "exp"
    CtcTrainer(load_config(None, tiny_overrides(1)), exp, tiny_asr["train"], None, tiny_asr["tokenizer"]).run()
    proc = speechlm("decode", "--exp-dir", exp, "--cuts", tiny_asr["test"], "--methods", "ctc-greedy,beam9")
    assert_clean_error(proc, "unknown decoding method 'beam9'")


def test_prepare_lang_max_text_lines_samples_the_text_and_keeps_every_transcript(tiny_asr, tmp_path):
    """A book-sized LM text makes an HLG too big for a laptop: --max-text-lines N builds the
    lexicon and n-gram from a seeded sample of N lines; the cuts' transcripts always count."""
    from conftest import DIGITS

    words = [a + b for a in DIGITS for b in DIGITS][:60]  # letters the digits' tokenizer knows
    text = tmp_path / "lm.txt"
    text.write_text("".join(f"{words[i]} {words[(i * 7) % 60]} one\n" for i in range(60)))
    out = tmp_path / "lang"
    proc = speechlm("prepare-lang", "--tokenizer", tiny_asr["tokenizer"], "--text", text,
                    "--cuts", tiny_asr["train"], "--out-dir", out, "--max-text-lines", 10)
    assert proc.returncode == 0, proc.stderr
    assert "10 of the 60 --text lines" in proc.stderr
    lexicon = {line.split()[0] for line in (out / "words.txt").read_text().splitlines()}
    assert {"zero", "nine", "one"} <= lexicon  # every digit of the transcripts
    sampled = lexicon & set(words)
    assert 0 < len(sampled) <= 20 and len(sampled) < 60
    again = tmp_path / "lang2"
    proc = speechlm("prepare-lang", "--tokenizer", tiny_asr["tokenizer"], "--text", text,
                    "--cuts", tiny_asr["train"], "--out-dir", again, "--max-text-lines", 10)
    assert (again / "words.txt").read_text() == (out / "words.txt").read_text()  # seeded
    proc = speechlm("prepare-lang", "--tokenizer", tiny_asr["tokenizer"], "--text", text,
                    "--out-dir", tmp_path / "lang3", "--max-text-lines", 0)
    assert_clean_error(proc, "--max-text-lines 0")
