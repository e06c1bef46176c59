"""Shared fixtures: a tiny real-speech ASR set (FSDD subset) built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FSDD = DATA / "fsdd" / "recordings"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

BOOKS = DATA / "text_en"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD}")
needs_books = pytest.mark.skipif(not BOOKS.is_dir(), reason=f"the books not found at {BOOKS}")


def require_shared(path: Path, what: str) -> None:
    """Skip when ../shared/data (beside the checkout) lacks a corpus: the only reason to skip."""
    if not path.is_dir():
        pytest.skip(f"{what} not found at {path} (see {path.parent}/SOURCE.md)")


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory):
    """40 train + 10 test FSDD cuts with fbank features and a tokenizer: a dict of paths."""
    require_shared(FSDD, "FSDD")
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    from speechlm.data.features import compute_fbank
    from speechlm.text.tokenizer import train_sentencepiece

    root = tmp_path_factory.mktemp("tiny_asr")

    def cuts_for(indexes, speakers):
        cuts = []
        for spk in speakers:
            for d in range(10):
                for i in indexes:
                    rec = Recording.from_file(FSDD / f"{d}_{spk}_{i}.wav", recording_id=f"{spk}-{d}-{i}")
                    sup = SupervisionSegment(id=rec.id, recording_id=rec.id, start=0,
                                             duration=rec.duration, text=DIGITS[d], speaker=spk)
                    cuts.append((rec, sup))
        return CutSet.from_manifests(
            recordings=RecordingSet.from_recordings(r for r, _ in cuts),
            supervisions=SupervisionSet.from_segments(s for _, s in cuts),
        )

    paths = {"root": root}
    for split, idx, spk in (("train", [5, 6], ["theo", "jackson"]), ("test", [0], ["theo"])):
        raw = root / f"raw_{split}.jsonl.gz"
        cuts_for(idx, spk).to_file(raw)
        paths[split] = root / f"cuts_{split}.jsonl.gz"
        compute_fbank(raw, paths[split], root / f"feats_{split}", num_jobs=1)
    paths["tokenizer"] = train_sentencepiece(DIGITS * 5, root / "lang", vocab_size=30)
    return paths


def tiny_overrides(epochs: int = 2):
    """Config overrides for a model that trains in seconds."""
    return [
        "encoder.d_model=32", "encoder.num_layers=1", "encoder.num_heads=2",
        "encoder.subsampling_channels=8", "encoder.dropout=0.0",
        f"train.num_epochs={epochs}", "train.average_last=2", "data.max_duration=8",
        "optim.warmup_steps=5", "data.num_buckets=2",
    ]


def copy_recipe(root: Path, name: str) -> Path:
    """A runnable copy of ``egs/<name>`` (run.sh, conf/, RESULTS.md) under ``root``, beside a
    symlink to the repository's tools/, so its ``../../tools`` paths resolve and nothing is
    written into the checkout."""
    import shutil

    (root / "egs").mkdir()
    os.symlink(REPO / "tools", root / "tools")
    src, dst = REPO / "egs" / name, root / "egs" / name
    dst.mkdir()
    shutil.copy2(src / "run.sh", dst / "run.sh")
    shutil.copytree(src / "conf", dst / "conf")
    shutil.copy2(src / "RESULTS.md", dst / "RESULTS.md")
    return dst


@pytest.fixture(scope="session")
def tiny_ctc(tiny_asr, tmp_path_factory):
    """A tiny CTC model trained on ``tiny_asr`` until it says words (imperfect ones: it learns
    from 40 utterances): its exp dir."""
    from speechlm.base.config import load_config
    from speechlm.train.ctc import CtcTrainer

    exp = tmp_path_factory.mktemp("tiny_ctc") / "exp"
    cfg = load_config(None, tiny_overrides(20) + ["data.max_duration=3", "optim.lr=0.004"])
    CtcTrainer(cfg, exp, tiny_asr["train"], None, tiny_asr["tokenizer"]).run()
    return exp


def fsdd_long_recording(files, seed=0, pause=(0.3, 1.0), noise=1e-3):
    """``files`` (FSDD WAVs, 8 kHz) read one after another with a pause of low noise before
    each: (samples at 8 kHz, [(start, end) sample range of each file])."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    parts, spans, pos = [], [], 0
    for f in files:
        x, sr = sf.read(str(f), dtype="float32")
        assert sr == 8000
        gap = (noise * rng.standard_normal(int(rng.uniform(*pause) * sr))).astype("float32")
        parts += [gap, x]
        spans.append((pos + len(gap), pos + len(gap) + len(x)))
        pos += len(gap) + len(x)
    parts.append((noise * rng.standard_normal(int(pause[1] * 8000))).astype("float32"))
    return np.concatenate(parts), spans
