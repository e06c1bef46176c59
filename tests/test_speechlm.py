"""Speech-LM ASR: LM checkpoints load (or are refused clearly), training and every decoding method
run end to end from the exp dir, batching does not change the loss."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import tiny_overrides
from test_lm import TINY_LM, _write_text

from speechlm.base.config import EncoderConfig, LMConfig, SpeechLMConfig, load_config
from speechlm.base.errors import SpeechlmError
from speechlm.models.speechlm_asr import SpeechLMAsr, load_lm_into
from speechlm.text.symbols import ASR_ID, SOS_EOS_ID
from speechlm.base.checkpoint import load_checkpoint, save_atomic

ALL_METHODS = ["ctc-greedy", "ctc-prefix-beam", "attention-beam", "attention-rescoring",
               "lm-shallow-fusion", "attention-lm-fusion"]


@pytest.fixture(scope="module")
def lm_ckpt(tiny_asr, tmp_path_factory):
    from speechlm.train.lm import LmTrainer

    root = tmp_path_factory.mktemp("lm")
    text = _write_text(root / "lm.txt", 200)
    cfg = load_config(None, TINY_LM + ["train.num_epochs=1", "train.average_last=1"])
    return LmTrainer(cfg, root / "exp", text, tiny_asr["tokenizer"]).run()


def _model(vocab):
    enc = EncoderConfig(d_model=32, num_layers=1, num_heads=2, subsampling_channels=8, dropout=0.0)
    return SpeechLMAsr(enc, LMConfig(d_model=32, num_layers=2, num_heads=2, dropout=0.0),
                       SpeechLMConfig(), vocab)


def test_lm_checkpoint_loads_into_asr_model(lm_ckpt):
    state = load_checkpoint(lm_ckpt)
    model = _model(state["vocab_size"])
    load_lm_into(model, lm_ckpt, model.lm.cfg)
    for key, value in state["model"].items():
        got = model.lm.state_dict()[key]
        if key == "embed.weight":  # <asr> starts as the LM's sentence start
            assert torch.equal(got[ASR_ID], value[SOS_EOS_ID])
            got, value = got[ASR_ID + 1:], value[ASR_ID + 1:]
        assert torch.equal(got, value), key


def test_mismatched_lm_checkpoint_is_refused(lm_ckpt, tmp_path):
    state = load_checkpoint(lm_ckpt)
    model = _model(state["vocab_size"] + 3)
    with pytest.raises(SpeechlmError, match="vocabulary size .* same sentencepiece model"):
        load_lm_into(model, lm_ckpt, model.lm.cfg)
    wrong_arch = _model(state["vocab_size"])
    cfg = LMConfig(d_model=32, num_layers=3, num_heads=2)
    with pytest.raises(SpeechlmError, match="different LM architecture"):
        load_lm_into(wrong_arch, lm_ckpt, cfg)
    not_lm = tmp_path / "asr.pt"
    save_atomic({**state, "config": {**state["config"], "model": {"kind": "ctc"}}}, not_lm)
    with pytest.raises(SpeechlmError, match="not a text-LM checkpoint"):
        load_lm_into(model, not_lm, model.lm.cfg)


def test_text_lm_errors_name_the_option_that_gave_the_path(lm_ckpt, tmp_path):
    """Every loader of a stage-3 LM (fine-tuning init, shallow fusion) goes through one check;
    its message names the option the user set and only offers random init where it exists."""
    from speechlm.decode.methods import text_lm_source
    from speechlm.models.experiment import model_from_checkpoint

    def load_text_lm(path, vocab_size, device, key="--lm-checkpoint"):
        return model_from_checkpoint(path, key, ("lm",), vocab_size, device, user="ASR model")

    vocab = load_checkpoint(lm_ckpt)["vocab_size"]
    with pytest.raises(SpeechlmError, match=r"decode\.lm_checkpoint = \S+ has vocabulary size "
                       rf"{vocab} but the ASR model has {vocab + 1}") as err:
        load_text_lm(lm_ckpt, vocab + 1, torch.device("cpu"), key="decode.lm_checkpoint")
    assert "random init" not in str(err.value)  # a fusion LM cannot be "random"
    with pytest.raises(SpeechlmError, match=r"speechlm\.lm_init = \S+ has vocabulary size .*"
                       r"or set speechlm\.lm_init='' for random init"):
        load_lm_into(_model(vocab + 1), lm_ckpt, LMConfig(d_model=32, num_layers=2, num_heads=2))
    missing = tmp_path / "no_lm.pt"
    with pytest.raises(SpeechlmError, match=r"--lm-checkpoint = \S+no_lm\.pt not found: run the "
                       r"recipe's stage 3 \(text-LM pretraining\) first$"):
        load_text_lm(missing, vocab, torch.device("cpu"))
    lm = load_text_lm(lm_ckpt, vocab, torch.device("cpu"))
    assert not lm.training and lm.vocab_size == vocab
    cfg = load_config(None, [])
    assert text_lm_source(None, cfg) == ("", None)
    cfg.speechlm.lm_init = "exp/lm/final.pt"
    assert text_lm_source(None, cfg) == ("exp/lm/final.pt", "speechlm.lm_init")
    assert text_lm_source(None, cfg, init_fallback=False) == ("", None)  # hlg-nbest-lm's rule
    cfg.decode.lm_checkpoint = "a.pt"
    assert text_lm_source(None, cfg) == ("a.pt", "decode.lm_checkpoint")
    assert text_lm_source("b.pt", cfg) == ("b.pt", "--lm-checkpoint")


def test_lm_trained_with_the_asr_task_keeps_its_asr_embedding(lm_ckpt, tmp_path):
    state = load_checkpoint(lm_ckpt)
    state["asr_task_trained"] = True  # as `train-lm --set lm.asr_task_weight=1` saves
    path = tmp_path / "asr_task_lm.pt"
    save_atomic(state, path)
    model = _model(state["vocab_size"])
    load_lm_into(model, path, model.lm.cfg)
    assert torch.equal(model.lm.embed.weight, state["model"]["embed.weight"])  # <asr> as learnt


def test_decoder_loss_batched_equals_unbatched():
    torch.manual_seed(0)
    model = _model(20).eval()
    feats, lens = torch.randn(3, 90, 80), torch.tensor([90, 50, 71])
    texts = [[5, 6, 7], [8], [9, 10, 11, 12]]
    with torch.no_grad():
        _, _, prefix, plens = model.encode_all(feats, lens)
        batched = model.decoder_loss(prefix, plens, texts)
        single = sum(model.decoder_loss(*model.encode_all(feats[i:i + 1, :lens[i]], lens[i:i + 1])[2:],
                                        [texts[i]]) for i in range(3))
    assert torch.allclose(batched, single, atol=1e-4)


def test_speechlm_train_and_decode_every_method(tiny_asr, lm_ckpt, tmp_path):
    from speechlm.cli import main

    exp = tmp_path / "asr"
    sets = tiny_overrides(epochs=2) + [
        "model.kind=speechlm", f"speechlm.lm_init={lm_ckpt}", "speechlm.freeze_lm_steps=2",
        "speechlm.lm_lr_scale=0.5", "decode.beam_size=2"]
    rc = main(["train", "--exp-dir", str(exp), "--train-cuts", str(tiny_asr["train"]),
               "--tokenizer", str(tiny_asr["tokenizer"]), "--set", *sets])
    assert rc == 0
    cfg = load_config(exp / "config.yaml")
    assert cfg.model.kind == "speechlm" and cfg.lm.num_layers == 2  # LM architecture adopted
    # each epoch's line gives the two losses apart
    epochs = [line for line in (exp / "log" / "train.log").read_text().splitlines() if "/2: train loss" in line]
    assert len(epochs) == 2 and all(re.search(r"train loss [\d.]+ \(ctc [\d.]+, decoder [\d.]+\)", e) for e in epochs)
    rc = main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]),
               "--methods", ",".join(ALL_METHODS), "--set", "decode.lm_weight=0.2"])
    assert rc == 0
    summary = (exp / "decode-test" / "wer-summary-test.txt").read_text()
    for m in ALL_METHODS:
        assert m in summary
    # decode.lm_weights: a weight per method. At 0, attention-lm-fusion is attention-beam, whatever
    # decode.lm_weight says (which lm-shallow-fusion still uses).
    rc = main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), "--out-dir",
               str(tmp_path / "w"), "--methods", "attention-beam,attention-lm-fusion", "--set",
               "decode.lm_weight=50", "decode.lm_weights={attention-lm-fusion: 0}"])
    assert rc == 0
    recogs = {m: (tmp_path / "w" / f"recogs-test-{m}.txt").read_text()
              for m in ("attention-beam", "attention-lm-fusion")}
    assert recogs["attention-beam"].strip() and recogs["attention-beam"] == recogs["attention-lm-fusion"]
    cfg = load_config(None, ["decode.lm_weight=0.5", "decode.lm_weights={hlg-nbest-lm: 2}"])
    assert cfg.decode.lm_weight_for("hlg-nbest-lm") == 2.0
    assert cfg.decode.lm_weight_for("lm-shallow-fusion") == 0.5
    for bad, match in (("{attention-beam: 1}", "methods with a text-LM weight"),
                       ("{lm-shallow-fusion: high}", "not a number"), ("0.5", "must be a mapping")):
        with pytest.raises(SpeechlmError, match=match):
            load_config(None, [f"decode.lm_weights={bad}"])
    conf = tmp_path / "conf.yaml"  # every entry commented out: no per-method weights
    conf.write_text("decode:\n  lm_weight: 0.7\n  lm_weights:\n    # attention-lm-fusion: 0.3\n")
    cfg = load_config(conf)
    assert cfg.decode.lm_weights == {} and cfg.decode.lm_weight_for("attention-lm-fusion") == 0.7


def test_attention_methods_on_ctc_model_are_refused(tiny_asr, lm_ckpt, tmp_path):
    from speechlm.scoring.evaluate import decode_and_score as recognize
    from speechlm.train.ctc import CtcTrainer

    exp = tmp_path / "ctc"
    CtcTrainer(load_config(None, tiny_overrides(epochs=1) + ["train.average_last=1"]), exp,
               tiny_asr["train"], None, tiny_asr["tokenizer"]).run()
    with pytest.raises(SpeechlmError, match="attention-beam needs a model that provides ctc, attention"):
        recognize(exp, tiny_asr["test"], "test", ["attention-beam"])
    with pytest.raises(SpeechlmError, match="only decode"):
        recognize(exp, tiny_asr["test"], "test", ["ctc-greedy"], overrides=["encoder.d_model=8"])
    # shallow fusion needs no decoder: it runs on a CTC model (it used to touch model.lm)
    res = recognize(exp, tiny_asr["test"], "test", ["lm-shallow-fusion"], lm_checkpoint=lm_ckpt)
    assert 0 <= res["lm-shallow-fusion"]["wer"] <= 1000


def test_frozen_lm_steps_leave_the_lm_untouched(tiny_asr, lm_ckpt, tmp_path):
    from speechlm.train.speechlm import SpeechLMTrainer

    cfg = load_config(None, tiny_overrides(epochs=1) + [
        "train.average_last=1", f"speechlm.lm_init={lm_ckpt}", "speechlm.freeze_lm_steps=1000"])
    trainer = SpeechLMTrainer(cfg, tmp_path / "asr", tiny_asr["train"], None, tiny_asr["tokenizer"])
    lm_before = {k: v.clone() for k, v in trainer.model.lm.state_dict().items()}
    enc_before = trainer.model.encoder.blocks[0].attn.qkv.weight.clone()
    trainer.run()
    for k, v in trainer.model.lm.state_dict().items():
        assert torch.equal(v, lm_before[k]), k
    assert not torch.equal(trainer.model.encoder.blocks[0].attn.qkv.weight, enc_before)


def test_text_rehearsal_adds_the_lm_loss_of_a_text_batch(tiny_asr, lm_ckpt, tmp_path):
    from speechlm.models.lm import sentence_nll
    from speechlm.train.speechlm import SpeechLMTrainer

    text = _write_text(tmp_path / "text.txt", 100, seed=1)
    cfg = load_config(None, tiny_overrides(epochs=1) + [
        "train.average_last=1", f"speechlm.lm_init={lm_ckpt}", "lm.dropout=0.0",
        "lm.valid_sentences=10", "speechlm.text_weight=2.0", f"speechlm.text={text}",
        "speechlm.text_max_tokens=40"])
    trainer = SpeechLMTrainer(cfg, tmp_path / "asr", tiny_asr["train"], None, tiny_asr["tokenizer"])
    assert len(trainer.text_sents) == 90  # the LM's 10 held-out sentences are not rehearsed
    loader, _ = trainer.make_loader(train=True)
    batch = next(iter(loader))
    trainer.model.train()
    with_text, n, parts = trainer.batch_loss(batch, trainer.model)
    trainer._text_batches, trainer._text_pass = None, 0  # replay: the batch it must have used
    text_batch = trainer.next_text_batch()
    sents, trainer.text_sents = trainer.text_sents, []
    without, _, parts_without = trainer.batch_loss(batch, trainer.model)
    text_nll = n * sentence_nll(trainer.model.lm, text_batch, trainer.device).mean()
    assert torch.allclose(with_text - without, 2.0 * (1 - 0.3) * text_nll, rtol=1e-4)
    # the parts, unweighted sums over the batch: the loss is their weighted sum
    assert set(parts) == {"ctc", "decoder", "text"} and set(parts_without) == {"ctc", "decoder"}
    assert torch.allclose(parts["text"], text_nll, rtol=1e-4)
    assert torch.allclose(without, 0.3 * parts["ctc"] + 0.7 * parts["decoder"], rtol=1e-5)
    # batches go on past the end of the text: every sentence comes round, none is empty
    trainer.text_sents = sents
    seen = [s for _ in range(60) for s in trainer.next_text_batch()]
    assert trainer._text_pass >= 2
    assert {tuple(s) for s in sents} <= {tuple(s) for s in seen}
    trainer.run()  # and a whole epoch trains with it


def test_text_rehearsal_needs_a_text_file(tiny_asr, tmp_path):
    from speechlm.train.speechlm import SpeechLMTrainer

    cfg = load_config(None, tiny_overrides(epochs=1) + ["speechlm.text_weight=1.0"])
    with pytest.raises(SpeechlmError, match="needs speechlm.text"):
        SpeechLMTrainer(cfg, tmp_path / "asr", tiny_asr["train"], None, tiny_asr["tokenizer"])
    cfg = load_config(None, tiny_overrides(epochs=1) + [
        "speechlm.text_weight=1.0", f"speechlm.text={tmp_path / 'missing.txt'}"])
    with pytest.raises(SpeechlmError, match="missing.txt not found"):
        SpeechLMTrainer(cfg, tmp_path / "asr", tiny_asr["train"], None, tiny_asr["tokenizer"])


@pytest.mark.parametrize("adapter_norm, prefix_bos", [(True, False), (False, True), (True, True)])
def test_prefix_options_scale_and_start_the_speech_prefix(adapter_norm, prefix_bos):
    """speechlm.adapter_norm: every prefix vector has the RMS of the decoder's token embeddings
    when the model is built; speechlm.prefix_bos: the prefix starts with <sos/eos>'s embedding,
    one position longer, and the model still trains and decodes through it."""
    enc = EncoderConfig(d_model=32, num_layers=1, num_heads=2, subsampling_channels=8, dropout=0.0)
    cfg = SpeechLMConfig(adapter_norm=adapter_norm, prefix_bos=prefix_bos)
    model = SpeechLMAsr(enc, LMConfig(d_model=32, num_layers=2, num_heads=2, dropout=0.0), cfg, 40).eval()
    plain = SpeechLMAsr(enc, LMConfig(d_model=32, num_layers=2, num_heads=2, dropout=0.0), SpeechLMConfig(), 40)
    feats, lengths = torch.randn(2, 61, 80), torch.tensor([61, 40])
    _, _, prefix, prefix_lens = model.encode_all(feats, lengths)
    _, _, plain_prefix, plain_lens = plain.encode_all(feats, lengths)
    assert torch.equal(prefix_lens, plain_lens + int(prefix_bos))
    speech = prefix[:, int(prefix_bos):]
    if prefix_bos:
        assert torch.allclose(prefix[:, 0], model.lm.embed.weight[SOS_EOS_ID].expand(2, -1))
    rms = model.lm.embed.weight.pow(2).mean().sqrt()
    got = speech[0].pow(2).mean(-1).sqrt()  # per position (row 0 is unpadded)
    assert torch.allclose(got, rms.expand_as(got), rtol=1e-3) == adapter_norm
    model.train()
    ctc, dec = model(feats, lengths, [[5, 6, 7], [8]])
    (ctc + dec).backward()
    if adapter_norm:
        assert model.adapter.out_scale.grad is not None
