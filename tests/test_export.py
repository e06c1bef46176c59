"""ONNX export of a trained CTC model: log-probs equal torch's on real audio, metadata for other
runtimes, and `speechlm transcribe --backend onnx` says what `--backend torch` says."""

import json
import os
import shutil

import pytest
import torch

from conftest import FSDD
from speechlm.base.errors import SpeechlmError

FILES = [FSDD / f"{d}_{spk}_{i}.wav" for spk in ("theo", "jackson") for d in range(10) for i in (0, 5)]


@pytest.fixture(scope="module")
def exported(tiny_ctc, tmp_path_factory):
    from speechlm.cli import main

    exp = tmp_path_factory.mktemp("export") / "exp"
    shutil.copytree(tiny_ctc, exp)
    assert main(["export", "--model-dir", str(exp), "--format", "onnx"]) == 0
    return exp


def test_onnx_log_probs_equal_torch_on_real_audio(exported, tiny_asr):
    from speechlm.data.datamodule import make_loader
    from speechlm.data.features import load_cuts
    from speechlm.export.onnx import OnnxAcousticModel
    from speechlm.models.experiment import load_experiment

    exp = load_experiment(exported)
    onnx_model = OnnxAcousticModel.from_dir(exported, exp.tokenizer)
    worst, frames = 0.0, 0
    for split in ("test", "train"):  # batches of several sizes and lengths (dynamic axes)
        loader, _ = make_loader(load_cuts(tiny_asr[split]), exp.cfg.data, train=False, max_duration=4)
        for batch in loader:
            with torch.no_grad():
                ref = exp.model.encode_for_decoding(batch["feats"], batch["feat_lens"])
            got = onnx_model(batch["feats"], batch["feat_lens"])
            assert torch.equal(got.lengths, ref.lengths)
            for i, n in enumerate(ref.lengths.tolist()):
                worst = max(worst, float((got.log_probs[i, :n] - ref.log_probs[i, :n]).abs().max()))
                frames += n
    assert frames > 200 and worst < 1e-4, worst


def test_onnx_metadata_and_tokens(exported):
    from speechlm.export.onnx import onnx_metadata
    from speechlm.text.tokenizer import Tokenizer

    meta = onnx_metadata(exported / "model.onnx")
    pieces = Tokenizer(exported / "tokenizer.model").pieces()
    assert int(meta["vocab_size"]) == len(pieces) and meta["blank_id"] == "0"
    assert meta["subsampling_factor"] == "4" and meta["output_frame_shift_ms"] == "40"
    assert meta["feature_dim"] == "80" and meta["sample_rate"] == "16000" and meta["cmvn"] == "in graph"
    assert json.loads(meta["tokens"]) == pieces
    lines = (exported / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "<blk> 0" and len(lines) == len(pieces)


def test_onnx_backend_matches_torch_word_for_word(exported):
    from speechlm.api import Recognizer

    for method in ("ctc-greedy", "ctc-prefix-beam"):
        said = {}
        for backend in ("torch", "onnx"):
            rec = Recognizer.from_dir(exported, method, backend=backend)
            said[backend] = [t.words for t in rec.transcribe_many(FILES, timestamps=False)]
        assert said["onnx"] == said["torch"] and len(said["torch"]) == len(FILES)
        assert sum(map(len, said["torch"])) >= 20  # the model says something


def test_onnx_backend_refusals(exported, tmp_path):
    from speechlm.api import Recognizer

    with pytest.raises(SpeechlmError, match="the ONNX export holds the CTC part only"):
        Recognizer.from_dir(exported, "attention-rescoring", backend="onnx")
    exp = tmp_path / "exp"
    shutil.copytree(exported, exp)
    later = (exp / "model.onnx").stat().st_mtime + 10
    os.utime(exp / "final.pt", (later, later))  # trained again after the export
    with pytest.raises(SpeechlmError, match="is older than .*final.pt.*export --model-dir"):
        Recognizer.from_dir(exp, backend="onnx")
    (exp / "model.onnx").unlink()
    with pytest.raises(SpeechlmError, match="model.onnx not found: run `speechlm export"):
        Recognizer.from_dir(exp, backend="onnx")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_export_equals_torch(exported, tiny_asr, tmp_path):
    from speechlm.cli import main
    from speechlm.data.datamodule import make_loader
    from speechlm.data.features import load_cuts
    from speechlm.models.experiment import load_experiment

    out = tmp_path / "m.pt"
    assert main(["export", "--model-dir", str(exported), "--format", "torchscript", "--out", str(out)]) == 0
    ts = torch.jit.load(str(out))
    exp = load_experiment(exported)
    loader, _ = make_loader(load_cuts(tiny_asr["test"]), exp.cfg.data, train=False, max_duration=2)
    for batch in loader:
        with torch.no_grad():
            ref = exp.model.encode_for_decoding(batch["feats"], batch["feat_lens"])
            log_probs, lens = ts(batch["feats"], batch["feat_lens"])
        assert torch.equal(lens, ref.lengths)
        assert float((log_probs - ref.log_probs).abs().max()) < 1e-5
    assert (tmp_path / "tokens.txt").is_file()


def test_onnx_export_keeps_utterance_cmn(tiny_ctc, tiny_asr, tmp_path):
    """A model with encoder.utterance_cmn exports it into the graph (batched, padded inputs)."""
    import yaml

    from speechlm.cli import main
    from speechlm.data.datamodule import make_loader
    from speechlm.data.features import load_cuts
    from speechlm.export.onnx import OnnxAcousticModel
    from speechlm.models.experiment import load_experiment

    exp_dir = tmp_path / "exp"
    shutil.copytree(tiny_ctc, exp_dir)
    cfg = yaml.safe_load((exp_dir / "config.yaml").read_text())
    cfg["encoder"]["utterance_cmn"] = True
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["export", "--model-dir", str(exp_dir), "--format", "onnx"]) == 0
    exp = load_experiment(exp_dir)
    assert exp.cfg.encoder.utterance_cmn
    onnx_model = OnnxAcousticModel.from_dir(exp_dir, exp.tokenizer)
    loader, _ = make_loader(load_cuts(tiny_asr["test"]), exp.cfg.data, train=False, max_duration=4)
    batch = next(iter(loader))
    assert batch["feat_lens"].min() < batch["feat_lens"].max()  # padding in the batch
    with torch.no_grad():
        ref = exp.model.encode_for_decoding(batch["feats"], batch["feat_lens"])
        shifted = exp.model.encode_for_decoding(batch["feats"] + 0.5, batch["feat_lens"])
    got = onnx_model(batch["feats"], batch["feat_lens"])
    for i, n in enumerate(ref.lengths.tolist()):
        assert (got.log_probs[i, :n] - ref.log_probs[i, :n]).abs().max() < 1e-4
        assert (shifted.log_probs[i, :n] - ref.log_probs[i, :n]).abs().max() < 1e-4  # offset removed
