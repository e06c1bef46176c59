"""End to end: egs/asterisk/run.sh on a small slice of the real prompts (digits and letters of es
and ru), monolingual (with the text LM and TTS on the Spanish voice) then multilingual, with tiny
models: stages 0-5, WER and CER reports, MCD and round-trip CER, language tokens in the
multilingual tokenizer, one RESULTS.md section per run, re-run skips."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, copy_recipe, require_shared, tiny_overrides

ASTERISK = DATA / "asterisk"
TINY = " ".join(tiny_overrides(2)).replace("data.max_duration=8", "data.max_duration=20")
TINY_LM = "lm.d_model=32 lm.num_layers=1 lm.num_heads=2 train.num_epochs=1 train.average_last=1"
TINY_TTS = "tts.decoder_layers=1 train.num_epochs=1 train.average_last=1 tts.griffin_lim_iters=4 " \
           "tts.valid_utterances=0"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    for lang in ("es", "ru"):
        require_shared(ASTERISK / lang, f"Asterisk {lang}")
    root = tmp_path_factory.mktemp("asterisk_recipe")
    corpus = root / "corpus"
    for lang in ("es", "ru"):
        src, dst = ASTERISK / lang, corpus / lang
        keep = []
        for line in (src / f"core-sounds-{lang}.txt").read_text(encoding="utf-8-sig").splitlines():
            key = line.partition(":")[0].strip()
            if key.startswith(("digits/", "letters/a", "letters/k")) and (src / f"{key}.wav").is_file():
                (dst / key).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src / f"{key}.wav", dst / f"{key}.wav")
                keep.append(line)
        (dst / f"core-sounds-{lang}.txt").write_text("\n".join(keep) + "\n", encoding="utf-8")
    dst = copy_recipe(root, "asterisk")
    return dst, corpus


def _run(recipe: Path, corpus: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        ["bash", str(recipe / "run.sh"), "--corpus-dir", str(corpus), "--speed-perturb", "", "--nj", "1",
         "--train-args", TINY, "--lm-args", TINY_LM, "--tts-args", TINY_TTS,
         *args],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _summary(path: Path) -> dict:
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    assert lines[0][:3] == ["settings", "WER", "CER"], lines
    return {row[0]: (float(row[1]), float(row[2])) for row in lines[1:]}


def test_monolingual_then_multilingual(recipe):
    recipe, corpus = recipe
    out = _run(recipe, corpus, "--langs", "es")
    scores = _summary(recipe / "exp/es/asr/decode-test/wer-summary-test.txt")
    assert set(scores) == {"ctc-greedy", "hlg-1best"}
    assert "== test WER" in out.stdout and "asterisk: train=" in out.stdout
    from speechlm.text.tokenizer import Tokenizer

    assert Tokenizer(recipe / "data/es/lang_bpe/bpe.model").language_ids == {}
    # the Spanish run also trained the text LM on its transcripts and TTS on the recorded voice
    assert (recipe / "data/es/text/lm_text.txt").read_text().count("\n") == \
        len((recipe / "data/es/text/lm_text.txt").read_text().splitlines()) > 5
    assert (recipe / "exp/es/lm/final.pt").is_file()
    tts = (recipe / "exp/es/tts/eval-test/tts-summary.txt").read_text()
    assert tts.startswith("MCD-DTW") and "round-trip CER (ctc-greedy)" in tts
    assert (recipe / "exp/es/tts/eval-test/mels.png").is_file()

    out = _run(recipe, corpus, "--langs", "es,ru")
    assert (recipe / "data/es_ru/manifests/asterisk_cuts_test.jsonl.gz").is_file()
    tok = Tokenizer(recipe / "data/es_ru/lang_bpe/bpe.model")
    assert tok.language_ids == {"es": 5, "fr": 6, "it": 7, "ru": 8}
    for lang in ("es", "ru"):
        scores = _summary(recipe / f"exp/es_ru/asr/decode-test_{lang}/wer-summary-test_{lang}.txt")
        assert set(scores) == {"ctc-greedy", "hlg-1best"}
        assert f"== test_{lang} WER" in out.stdout
    results = (recipe / "RESULTS.md").read_text()
    assert "## exp/es/asr" in results and "## exp/es_ru/asr" in results and "## exp/es/tts" in results
    assert "| test_ru | ctc-greedy |" in results and "| test | hlg-1best |" in results

    again = _run(recipe, corpus, "--langs", "es,ru")
    assert "started" not in again.stdout and again.stdout.count("already done") == 5


def test_unknown_language_stops_stage_0(recipe):
    recipe, corpus = recipe
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["bash", str(recipe / "run.sh"), "--corpus-dir", str(corpus), "--langs", "en"],
                          cwd=recipe, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "speechlm: error: unknown language code 'en' (--langs); known: es (Spanish)" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
