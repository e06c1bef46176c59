"""Speech-side pretraining: unlabeled audio in, BEST-RQ pretraining, fine-tuning from it.

Real audio throughout: yesno recordings imported without any text, FSDD for fine-tuning.
"""

from __future__ import annotations

import gzip
import json
import os

import pytest
import torch

from conftest import DATA, require_shared, tiny_overrides
from speechlm.base.config import load_config
from speechlm.base.errors import SpeechlmError
from speechlm.cli import main

YESNO = DATA / "yesno" / "waves_yesno"
TINY_SSL = ["ssl.codebook_size=64", "ssl.codebook_dim=8", "ssl.num_codebooks=2", "ssl.mask_prob=0.1",
            "ssl.mask_span=3", "ssl.valid_cuts=1"]


def tiny_ssl_cfg(*extra):
    return load_config(None, tiny_overrides() + TINY_SSL + ["model.kind=ssl-bestrq", *extra])


def yesno_feats(n: int = 4):
    """fbank of ``n`` real yesno recordings, padded into one batch."""
    require_shared(YESNO, "yesno")
    from lhotse import Recording

    from speechlm.data.features import fbank_extractor

    extractor = fbank_extractor()
    feats = []
    for path in sorted(YESNO.glob("*.wav"))[:n]:
        rec = Recording.from_file(path).resample(16000)
        feats.append(torch.from_numpy(extractor.extract(rec.load_audio(), 16000))[:200])
    lens = torch.tensor([len(f) for f in feats])
    return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), lens


def test_quantizer_is_frozen_and_deterministic_for_a_seed():
    from speechlm.models.ssl import build_bestrq

    torch.manual_seed(0)
    a = build_bestrq(tiny_ssl_cfg())
    torch.manual_seed(1)  # the global RNG (encoder init) does not touch the quantiser
    b = build_bestrq(tiny_ssl_cfg())
    c = build_bestrq(tiny_ssl_cfg("ssl.quantizer_seed=7"))
    qa, qb, qc = a.quantizer, b.quantizer, c.quantizer
    assert list(qa.parameters()) == [] and set(dict(qa.named_buffers())) == {"projection", "codebooks"}
    assert torch.equal(qa.projection, qb.projection) and torch.equal(qa.codebooks, qb.codebooks)
    assert not torch.equal(qa.projection, qc.projection)
    assert qa.projection.shape == (2, 4 * 80, 8) and qa.codebooks.shape == (2, 64, 8)
    frames = torch.randn(50, 320)
    assert torch.equal(qa(frames), qb(frames)) and qa(frames).shape == (50, 2)
    # saved with the model, and what a fine-tuning run or an average reads back
    assert {"quantizer.projection", "quantizer.codebooks"} <= set(a.state_dict())
    before = {k: v.clone() for k, v in a.quantizer.state_dict().items()}
    opt = torch.optim.AdamW(a.parameters(), lr=1e-2)
    feats = torch.randn(2, 60, 80)
    loss, n, _ = a(feats, torch.tensor([60, 45]))
    (loss / n).backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in a.quantizer.state_dict().items())


def test_span_mask_covers_spans_inside_each_utterance():
    from speechlm.models.ssl import span_mask

    lens = torch.tensor([20, 7, 0, 3])
    gen = torch.Generator().manual_seed(3)
    mask = span_mask(lens, 20, prob=0.0001, span=4, generator=gen)
    assert torch.equal(mask, span_mask(lens, 20, 0.0001, 4, torch.Generator().manual_seed(3)))
    assert mask[0].sum() >= 4 and mask[1].sum() >= 4 and mask[2].sum() == 0 and mask[3].sum() == 3
    assert not mask[1, 7:].any() and not mask[3, 3:].any()  # never past the end
    assert span_mask(torch.tensor([100]), 100, 1.0, 1).all()


def test_masked_prediction_loss_falls_on_a_tiny_batch():
    from speechlm.models.ssl import build_bestrq

    feats, lens = yesno_feats()
    torch.manual_seed(0)
    model = build_bestrq(tiny_ssl_cfg("encoder.num_layers=2"))
    valid = torch.arange(feats.size(1))[None, :, None] < lens[:, None, None]
    frames = feats[valid.expand_as(feats)].view(-1, 80)
    model.set_cmvn(frames.mean(0), frames.std(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, accs = [], []
    for _ in range(40):
        loss, n, correct = model(feats, lens, torch.Generator().manual_seed(0))  # the same masks
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
        losses.append(loss.item() / n)
        accs.append(float(correct) / n)
    assert losses[0] > 3.0  # about log(64) at the start
    assert losses[-1] < 0.5 * losses[0] and accs[-1] > accs[0] + 0.3, (losses[::8], accs[::8])


@pytest.fixture(scope="module")
def ssl_exp(tmp_path_factory):
    """yesno audio imported as unlabeled (no .txt anywhere), fbank, 2 epochs of pretraining
    through the CLI: a dict of paths."""
    require_shared(YESNO, "yesno")
    root = tmp_path_factory.mktemp("ssl")
    corpus = root / "audio"
    (corpus / "spk").mkdir(parents=True)
    for wav in sorted(YESNO.glob("*.wav"))[:12]:
        os.symlink(wav, corpus / "spk" / wav.name)
    manifests, fbank, exp = root / "manifests", root / "fbank", root / "exp"
    assert main(["import", "folder", str(corpus), "--unlabeled", "--out-dir", str(manifests),
                 "--prefix", "yn"]) == 0
    raw = manifests / "yn_cuts_unlabeled.jsonl.gz"
    assert main(["compute-fbank", "--cuts", str(raw), "--out", str(fbank / "cuts.jsonl.gz"),
                 "--storage", str(fbank / "feats"), "--num-jobs", "1"]) == 0
    assert main(["train-ssl", "--exp-dir", str(exp), "--train-cuts", str(fbank / "cuts.jsonl.gz"),
                 "--set", *tiny_overrides(epochs=2), *TINY_SSL, "data.max_duration=20"]) == 0
    return {"raw": raw, "manifests": manifests, "cuts": fbank / "cuts.jsonl.gz", "exp": exp}


def test_unlabeled_cuts_flow_through_import_fbank_and_pretraining(ssl_exp):
    for path in (ssl_exp["raw"], ssl_exp["cuts"]):
        cuts = [json.loads(line) for line in gzip.open(path, "rt")]
        assert len(cuts) == 12 and all(not c.get("supervisions") for c in cuts)
        assert '"text"' not in gzip.open(path, "rt").read()
    assert sorted(p.name for p in ssl_exp["manifests"].iterdir()) == [
        "yn_cuts_unlabeled.jsonl.gz", "yn_recordings_unlabeled.jsonl.gz", "yn_supervisions_unlabeled.jsonl.gz"]
    exp = ssl_exp["exp"]
    assert (exp / "final.pt").is_file() and not (exp / "tokenizer.model").exists()
    assert "kind: ssl-bestrq" in (exp / "config.yaml").read_text()
    acc = (exp / "masked_accuracy.txt").read_text()
    assert acc.startswith("masked-prediction accuracy") and "1 cuts held out" in acc
    cost = json.loads((exp / "cost.json").read_text())
    assert cost["epochs"] == 2 and cost["audio_s_per_s"] > 0 and 0 <= cost["masked_accuracy"] <= 1
    log = (exp / "log" / "train.log").read_text()
    assert "validation: masked-prediction loss" in log and "11 unlabeled training cuts" in log


def test_import_unlabeled_leaves_out_a_given_test_split(tmp_path):
    require_shared(YESNO, "yesno")
    from speechlm.data.importers import import_corpus

    wavs = sorted(YESNO.glob("*.wav"))
    for split, files in (("train", wavs[:2]), ("test", wavs[2:3])):
        (tmp_path / "c" / split).mkdir(parents=True)
        for wav in files:
            os.symlink(wav, tmp_path / "c" / split / wav.name)
    result = import_corpus("folder", tmp_path / "c", unlabeled=True)
    assert result.splits == [] and set(result.manifests) == {"unlabeled"}
    recs, sups = result.manifests["unlabeled"]
    assert len(recs) == 2 and len(sups) == 0 and result.num_utterances == 2
    (tmp_path / "t.tsv").write_text("".join(f"{w}\n" for w in wavs[:2]))
    result = import_corpus("tsv", tmp_path / "t.tsv", columns="path", unlabeled=True)
    assert len(result.manifests["unlabeled"][0]) == 2
    with pytest.raises(SpeechlmError, match="no 'text'|no \\['text'\\]"):
        import_corpus("tsv", tmp_path / "t.tsv", columns="path")
    # a Kaldi dir without a text file: its segments become cuts whose supervisions have no text
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    (kaldi / "wav.scp").write_text(f"r1 {wavs[0]}\n")
    (kaldi / "segments").write_text("r1-a r1 0.0 2.0\nr1-b r1 2.5 5.0\n")
    out = tmp_path / "kaldi-manifests"
    result = import_corpus("kaldi-dir", kaldi, out, "k", unlabeled=True)
    assert result.num_utterances == 2
    from lhotse import load_manifest

    cuts = load_manifest(out / "k_cuts_unlabeled.jsonl.gz")
    assert sorted(c.id for c in cuts) == ["r1-a", "r1-b"] and [c.duration for c in cuts] == [2.0, 2.5]
    assert all(s.text is None for c in cuts for s in c.supervisions)


def test_finetuning_starts_from_the_ssl_encoder(ssl_exp, tiny_asr, tmp_path):
    from speechlm.base.checkpoint import load_checkpoint
    from speechlm.train.ctc import CtcTrainer

    final = ssl_exp["exp"] / "final.pt"
    ssl = load_checkpoint(final)["model"]
    cfg = load_config(None, tiny_overrides(epochs=1) + [
        f"encoder.init={final}", "encoder.freeze_steps=1000", "encoder.lr_scale=0.5"])
    trainer = CtcTrainer(cfg, tmp_path / "ft", tiny_asr["train"], None, tiny_asr["tokenizer"])
    enc = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    assert all(torch.equal(v, ssl[f"encoder.{k}"]) for k, v in enc.items())
    assert torch.equal(trainer.model.feat_mean, ssl["feat_mean"])  # the CMVN the encoder learnt with
    rest, encoder = trainer.optimizer.param_groups  # the encoder: its own scale, frozen at first
    assert encoder["initial_lr"] == 0.5 * rest["initial_lr"] and encoder["lr"] == 0.0 < rest["lr"]
    layered = CtcTrainer(load_config(None, tiny_overrides(epochs=1) + ["encoder.num_layers=2",
                                                                         "encoder.layer_lr_decay=0.5"]),
                         tmp_path / "layered", tiny_asr["train"], None, tiny_asr["tokenizer"])
    scales = [g["initial_lr"] / cfg.optim.lr for g in layered.optimizer.param_groups]
    assert scales == [1.0, 0.25, 0.5, 1.0]  # the rest; subsampling, block 1, block 2
    head = trainer.model.ctc_head.weight.detach().clone()
    trainer.run()
    # frozen for 1000 steps: the encoder is the SSL one still; the head has learnt
    assert all(torch.equal(v, trainer.model.encoder.state_dict()[k]) for k, v in enc.items())
    assert not torch.equal(head, trainer.model.ctc_head.weight.detach())


def test_finetuning_refuses_a_mismatched_or_wrong_checkpoint(ssl_exp, tiny_asr, tmp_path, capsys):
    final = ssl_exp["exp"] / "final.pt"
    args = ["train", "--exp-dir", str(tmp_path / "ft"), "--train-cuts", str(tiny_asr["train"]),
            "--tokenizer", str(tiny_asr["tokenizer"]), "--set", *tiny_overrides(epochs=1)]
    assert main(args + [f"encoder.init={final}", "encoder.d_model=48"]) == 2
    err = capsys.readouterr().err
    assert f"encoder.init = {final} has a different encoder architecture (d_model: 32 there, 48 here)" in err
    assert "--set encoder.d_model=32" in err and "Traceback" not in err
    assert main(args + [f"encoder.init={tmp_path / 'nowhere.pt'}"]) == 2
    assert "nowhere.pt not found" in capsys.readouterr().err
    torch.save({"model": {}, "config": {"model": {"kind": "lm"}}}, tmp_path / "lm.pt")
    assert main(args + [f"encoder.init={tmp_path / 'lm.pt'}"]) == 2
    assert "is not a ssl-bestrq or ctc or speechlm checkpoint (model.kind 'lm'" in capsys.readouterr().err
    # SSL checkpoints are trained by their own verb
    assert main(args + ["model.kind=ssl-bestrq"]) == 2
    assert "is trained with `speechlm train-ssl`" in capsys.readouterr().err


def test_pretraining_resumes_through_the_shared_loop(ssl_exp, tmp_path):
    exp = tmp_path / "ssl"
    args = ["train-ssl", "--exp-dir", str(exp), "--train-cuts", str(ssl_exp["cuts"]), "--set",
            *tiny_overrides(epochs=1), *TINY_SSL, "data.max_duration=20", "train.average_last=1"]
    assert main(args) == 0
    first = (exp / "epoch-1.pt").read_bytes()
    assert main(args + ["train.num_epochs=2", "--resume"]) == 0
    assert (exp / "epoch-1.pt").read_bytes() == first and (exp / "epoch-2.pt").is_file()
    assert "resumed from" in (exp / "log" / "train.log").read_text()
    assert json.loads((exp / "cost.json").read_text())["epochs"] == 1  # this invocation's


def test_speech_lm_asr_also_starts_from_the_ssl_encoder(ssl_exp, tiny_asr, tmp_path):
    from speechlm.base.checkpoint import load_checkpoint
    from speechlm.train.speechlm import SpeechLMTrainer

    final = ssl_exp["exp"] / "final.pt"
    cfg = load_config(None, tiny_overrides(epochs=1) + [
        "model.kind=speechlm", "lm.d_model=32", "lm.num_layers=1", "lm.num_heads=2",
        f"encoder.init={final}", "encoder.freeze_steps=3", "speechlm.lm_lr_scale=0.5"])
    trainer = SpeechLMTrainer(cfg, tmp_path / "slm", tiny_asr["train"], None, tiny_asr["tokenizer"])
    ssl = load_checkpoint(final)["model"]
    assert all(torch.equal(v, ssl[f"encoder.{k}"]) for k, v in trainer.model.encoder.state_dict().items())
    rest, lm, encoder = trainer.optimizer.param_groups  # LM part, then the encoder: own schedules
    assert lm["initial_lr"] == 0.5 * rest["initial_lr"] and encoder["lr"] == 0.0


def test_long_unlabeled_cuts_are_cut_into_windows(ssl_exp):
    from speechlm.data.features import load_cuts
    from speechlm.train.ssl import chunked

    cuts = load_cuts(ssl_exp["cuts"])
    windows = chunked(cuts, 2.5)
    assert len(windows) > 2 * len(cuts) and all(1.0 <= w.duration <= 2.5 for w in windows)
    first = next(iter(windows))
    assert first.id.endswith("-0") and abs(first.load_features().shape[0] - 250) <= 1
    assert chunked(cuts, 0) is cuts and chunked(cuts, 100.0) is cuts
    from lhotse import CutSet

    mixed = chunked(CutSet.from_cuts(list(windows) + list(cuts)), 3.0)  # short ones stay as they are
    assert {w.id for w in windows} <= {c.id for c in mixed} and all(c.duration <= 3.0 for c in mixed)


def test_fsdd_encoder_init_option_checks_its_file_and_excludes_ssl_conf(tmp_path):
    """egs/fsdd's --encoder-init (an encoder pretrained elsewhere, e.g. on asterisk's audio) says
    which file is missing, refuses to be combined with --ssl-conf, and runs no stage either way."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import copy_recipe

    recipe = copy_recipe(tmp_path, "fsdd")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    missing = subprocess.run(["./run.sh", "--encoder-init", "exp/nope.pt"], cwd=recipe, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "--encoder-init exp/nope.pt: no such file" in missing.stderr
    assert "local/pretrain_ssl_asterisk.sh" in missing.stderr
    (recipe / "enc.pt").write_bytes(b"")
    both = subprocess.run(["./run.sh", "--encoder-init", "enc.pt", "--ssl-conf", "conf/ssl.yaml"],
                          cwd=recipe, env=env, capture_output=True, text=True)
    assert both.returncode == 2 and "use one" in both.stderr, both.stdout + both.stderr
    assert not (recipe / "data").exists() and not (recipe / ".done").exists()


def test_encoder_config_carries_architecture_and_input_normalisation(tmp_path):
    from speechlm.cli.ssl import encoder_overrides

    conf = tmp_path / "asr.yaml"
    conf.write_text("encoder:\n  d_model: 96\n  num_layers: 3\n  utterance_cmn: true\n  dropout: 0.3\n")
    got = encoder_overrides(conf)
    assert "encoder.d_model=96" in got and "encoder.num_layers=3" in got
    assert "encoder.utterance_cmn=True" in got  # pretraining sees the inputs fine-tuning will
    assert not any(o.startswith("encoder.dropout") for o in got)  # training choices stay the SSL config's
    assert encoder_overrides("") == []
    conf.write_text("encoder:\n  d_model: 96\ndata:\n  speaker_cmvn: true\n")
    assert "data.speaker_cmvn=True" in encoder_overrides(conf)  # normalised per speaker, as fine-tuning


def test_fsdd_variant_runs_beside_the_default_and_asr_si_is_asr_plus_utterance_cmn(tmp_path):
    """egs/fsdd --variant NAME keeps a configuration's data/exp/.done dirs apart (-NAME); a bad
    name is refused before any stage; conf/asr_si.yaml is conf/asr.yaml plus utterance CMN
    (and without the end crop, which came after it was measured); conf/asr_spk.yaml is
    conf/asr_si.yaml with speaker CMVN instead."""
    import subprocess
    import sys
    from pathlib import Path

    from lhotse import CutSet

    from conftest import FSDD as recordings, copy_recipe
    from speechlm.base.config import load_config

    recipe = copy_recipe(tmp_path, "fsdd")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    bad = subprocess.run(["./run.sh", "--variant", "a/b"], cwd=recipe, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--variant a/b" in bad.stderr, bad.stdout + bad.stderr
    assert not (recipe / "data").exists() and not (recipe / ".done").exists()
    ok = subprocess.run(["./run.sh", "--corpus-dir", str(recordings.parent), "--split", "speaker",
                         "--heldout-speaker", "theo", "--conf", "conf/asr_si.yaml", "--variant", "si",
                         "--stop-stage", "0"], cwd=recipe, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert (recipe / "data/spk-theo-si/manifests/fsdd_cuts_test.jsonl.gz").is_file()
    assert (recipe / ".done/spk-theo-si").is_dir() and not (recipe / "data/spk-theo").exists()
    syn = subprocess.run(["./run.sh", "--corpus-dir", str(recordings.parent), "--split", "speaker",
                          "--heldout-speaker", "theo", "--variant", "si", "--synthetic-voices", "1",
                          "--stop-stage", "0"], cwd=recipe, env=env, capture_output=True, text=True)
    assert syn.returncode == 0, syn.stdout[-2000:] + syn.stderr[-2000:]
    train = CutSet.from_file(recipe / "data/spk-theo-si-syn1/manifests/fsdd_cuts_train.jsonl.gz")
    assert sum(c.id.startswith("synth-") for c in train) == 10  # beside, not over, the run without
    assert len(list((recipe / "data/synthetic_digits/wav").glob("*.wav"))) == 10  # shared by all runs
    assert (recipe / ".done/spk-theo-si/stage-0.done").is_file()
    si, base = load_config(recipe / "conf/asr_si.yaml"), load_config(recipe / "conf/asr.yaml")
    assert si.encoder.utterance_cmn and not base.encoder.utterance_cmn
    si.encoder.utterance_cmn = False
    assert base.data.end_crop > 0 and si.data.end_crop == 0  # asr_si was measured before the crop
    si.data.end_crop = base.data.end_crop
    assert si == base
    spk = load_config(recipe / "conf/asr_spk.yaml")  # the run measured as asr_si + these two keys
    assert spk.data.speaker_cmvn and not spk.encoder.utterance_cmn
    assert spk == load_config(recipe / "conf/asr_si.yaml", ["encoder.utterance_cmn=false", "data.speaker_cmvn=true"])
