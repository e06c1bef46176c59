"""egs/librispeech and egs/ljspeech: stage 0 on fake corpora laid out exactly like upstream, and
their training configs for a few steps (the real corpora are far too big for this machine)."""

import gzip
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, tiny_overrides
from speechlm.base.config import load_config
from speechlm.corpora.librispeech import prepare_librispeech_splits
from speechlm.corpora.ljspeech import prepare_ljspeech_splits
from speechlm.base.errors import SpeechlmError
from speechlm.train.ctc import CtcTrainer

ENV = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")


def noise(path, sr, seconds=0.4):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    sf.write(str(path), (0.1 * rng.standard_normal(int(sr * seconds))).astype("float32"), sr)


def fake_librispeech(root, parts=("train-clean-100", "dev-clean", "test-clean"), first=0):
    """<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac + <speaker>-<chapter>.trans.txt"""
    for k, part in enumerate(parts, first):
        for spk in (100 + 10 * k, 101 + 10 * k):
            chapter = root / part / str(spk) / "2000"
            lines = []
            for utt in range(2):
                uid = f"{spk}-2000-{utt:04d}"
                noise(chapter / f"{uid}.flac", 16000)
                lines.append(f"{uid} HE SAID IT'S {part.upper().replace('-', ' ')}")
            (chapter / f"{spk}-2000.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def fake_ljspeech(root, n=12):
    """LJSpeech-1.1/metadata.csv (id|text|normalized) + wavs/<id>.wav at 22.05 kHz"""
    lines = []
    for i in range(1, n + 1):
        uid = f"LJ001-{i:04d}"
        noise(root / "wavs" / f"{uid}.wav", 22050)
        lines.append(f"{uid}|Printing, in 1 sense.|Printing, in one sense, number {i}.")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def recipe_copy(tmp_path, name):
    """egs/<name>/run.sh in a scratch checkout (tools linked), so stage 0 writes nothing in the repo."""
    (tmp_path / "egs" / name).mkdir(parents=True)
    (tmp_path / "tools").symlink_to(REPO / "tools")
    shutil.copy(REPO / "egs" / name / "run.sh", tmp_path / "egs" / name / "run.sh")
    return tmp_path / "egs" / name / "run.sh"


def sups(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def test_librispeech_stage0_on_fake_corpus(tmp_path):
    corpus = fake_librispeech(tmp_path / "LibriSpeech")
    run = recipe_copy(tmp_path, "librispeech")
    r = subprocess.run([str(run), "--stop-stage", "0", "--corpus-dir", str(corpus), "--nj", "1"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    manifests = run.parent / "data" / "manifests"
    for split in ("train", "dev", "test"):
        rows = sups(manifests / f"librispeech_supervisions_{split}.jsonl.gz")
        assert len(rows) == 4
    test = sups(manifests / "librispeech_supervisions_test.jsonl.gz")
    assert test[0]["text"] == "he said it's test clean" and test[0]["speaker"] == "120"


def test_librispeech_960h_needs_all_parts(tmp_path):
    corpus = fake_librispeech(tmp_path / "LibriSpeech")
    with pytest.raises(SpeechlmError, match=r"\['train-clean-360', 'train-other-500'\] not found.*--download"):
        prepare_librispeech_splits(corpus, None, parts="960h")
    fake_librispeech(corpus, parts=("train-clean-360", "train-other-500"), first=3)
    assert prepare_librispeech_splits(corpus, None, parts="960h", num_jobs=1) == "train=12, dev=4, test=4"


def test_ljspeech_stage0_on_fake_corpus(tmp_path):
    corpus = fake_ljspeech(tmp_path / "LJSpeech-1.1")
    run = recipe_copy(tmp_path, "ljspeech")
    r = subprocess.run([str(run), "--stop-stage", "0", "--corpus-dir", str(corpus)],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    manifests = run.parent / "data" / "manifests"
    counts = {s: len(sups(manifests / f"ljspeech_supervisions_{s}.jsonl.gz")) for s in ("train", "dev", "test")}
    assert counts == {"train": 10, "dev": 1, "test": 1}
    test = sups(manifests / "ljspeech_supervisions_test.jsonl.gz")[0]
    assert test["id"] == "LJ001-0012" and test["text"] == "printing in one sense number 12"


def test_ljspeech_not_a_corpus(tmp_path):
    with pytest.raises(SpeechlmError, match="not an LJSpeech folder"):
        prepare_ljspeech_splits(tmp_path)


@pytest.mark.parametrize("conf", ["librispeech/conf/asr_100h.yaml", "librispeech/conf/asr_960h.yaml",
                                  "ljspeech/conf/asr.yaml"])
def test_big_configs_train_a_few_steps(conf, tiny_asr, tmp_path):
    path = REPO / "egs" / conf
    full = load_config(path)
    assert full.encoder.d_model >= 256 and full.encoder.d_model % full.encoder.num_heads == 0
    # the recipe's config with the model shrunk and one epoch: every other key is exercised
    cfg = load_config(path, tiny_overrides(1) + ["data.num_workers=0", "train.log_interval=1",
                                                 "train.keep_last=1", "train.average_last=1"])
    final = CtcTrainer(cfg, tmp_path / "exp", tiny_asr["train"], None, tiny_asr["tokenizer"]).run()
    assert final.is_file()
