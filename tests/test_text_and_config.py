"""Tokenizer (fixed special ids, clear errors), configs (unknown keys, types, overrides), features."""

import pytest
import torch

from speechlm.base.config import DataConfig, load_config, save_config
from speechlm.data.datamodule import spec_augment
from speechlm.base.errors import SpeechlmError
from speechlm.text import symbols as sym
from speechlm.text.tokenizer import Tokenizer, train_sentencepiece

TEXT = ["set an alarm for seven", "what is twelve times nine", "call mom at five"] * 20


def test_special_ids_are_fixed(tmp_path):
    for model_type in ("unigram", "bpe", "char", "word"):
        tok = Tokenizer(train_sentencepiece(TEXT, tmp_path / model_type, vocab_size=40, model_type=model_type))
        assert tok.pieces()[: sym.NUM_SPECIALS] == list(sym.SPECIAL_SYMBOLS)
        assert (sym.BLANK_ID, sym.UNK_ID, sym.SOS_EOS_ID, sym.ASR_ID, sym.TTS_ID) == (0, 1, 2, 3, 4)
        ids = tok.encode("call mom at seven")
        assert min(ids) >= sym.NUM_SPECIALS
        assert tok.decode(ids) == "call mom at seven"


def test_unencodable_text_names_the_item(tmp_path):
    tok = Tokenizer(train_sentencepiece(TEXT, tmp_path, vocab_size=40))
    with pytest.raises(SpeechlmError, match=r"utt-7.*\['é'\]"):
        tok.encode("café", item="utt-7")


def test_foreign_sentencepiece_model_is_refused(tmp_path):
    import sentencepiece as spm

    (tmp_path / "t.txt").write_text("\n".join(TEXT))
    spm.SentencePieceTrainer.train(input=str(tmp_path / "t.txt"), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=20, minloglevel=2)
    with pytest.raises(SpeechlmError, match="not trained by speechlm"):
        Tokenizer(tmp_path / "plain.model")
    with pytest.raises(SpeechlmError, match="not found"):
        Tokenizer(tmp_path / "missing.model")


def test_config_overrides_types_and_round_trip(tmp_path):
    cfg = load_config(None, ["encoder.d_model=64", "optim.lr=1", "decode.methods=[ctc-greedy]"])
    assert cfg.encoder.d_model == 64 and cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    with pytest.raises(SpeechlmError, match="unknown config key"):
        load_config(None, ["encoder.dmodel=3"])
    with pytest.raises(SpeechlmError, match="section.key"):
        load_config(None, ["bogus.x=3"])
    with pytest.raises(SpeechlmError, match="wrong type"):
        load_config(None, ["train.num_epochs=many"])
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(SpeechlmError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_spec_augment_masks_within_bounds_with_utterance_means():
    torch.manual_seed(0)
    cfg = DataConfig(num_freq_masks=1, freq_mask_width=10, num_time_masks=1, time_mask_ratio=0.1)
    lens = torch.tensor([200, 150, 100, 50])
    # Each bin of each utterance has its own constant value, so a masked cell must keep it.
    feats = torch.arange(4 * 80, dtype=torch.float).view(4, 1, 80).expand(4, 200, 80).clone()
    feats[:, :, 0] = torch.linspace(0, 1, 200)  # bin 0 varies over time: its fill is the valid mean
    out = spec_augment(feats, lens, cfg)
    assert out.shape == feats.shape
    assert torch.equal(out[:, :, 1:], feats[:, :, 1:])  # constant bins: the fill is the same value
    changed = out[:, :, 0] != feats[:, :, 0]
    assert changed.any()
    for b in range(4):
        expected = feats[b, : lens[b], 0].mean()
        assert torch.allclose(out[b, changed[b], 0], expected.expand(int(changed[b].sum())))
        # A time mask is at most 10% of the utterance; with the freq mask, bin 0 may be all masked.
        assert int(changed[b].sum()) <= int(lens[b] * 0.1) + 1 or bool(changed[b].all())


def test_freq_warp_moves_formants_like_a_vocal_tract_length_change(tiny_asr):
    from speechlm.data.datamodule import freq_warp
    from speechlm.data.features import fbank_extractor, load_cuts

    feats = torch.zeros(64, 3, 80)
    feats[:, :, 40] = 1.0  # one spectral peak ("formant") at bin 40 in every utterance
    torch.manual_seed(0)
    out = freq_warp(feats, 0.1)
    assert out.shape == feats.shape and out.min() >= 0 and out.max() <= 1  # interpolation only
    peak = (out[:, 0] * torch.arange(80.0)).sum(-1) / out[:, 0].sum(-1)  # centre of mass per utterance
    assert (peak - 40).abs().max() < 5 and peak.min() < 39 and peak.max() > 41  # both ways, bounded
    assert torch.equal(out[:, 0], out[:, 2])  # one factor per utterance, every frame alike
    torch.manual_seed(0)
    assert torch.equal(freq_warp(feats, 0.1), out)  # from torch's RNG: seeded, reproducible
    assert torch.equal(freq_warp(feats, 0.0), feats)
    # real speech: the warped features stay close to the originals (a plausible other voice)
    cut = next(iter(load_cuts(tiny_asr["test"])))
    real = torch.from_numpy(cut.load_features())[None]
    warped = freq_warp(real, 0.1)
    assert 0 < (warped - real).abs().mean() < 0.5 * (real - real.mean()).abs().mean()
    cfg = fbank_extractor().config
    assert (cfg.low_freq, cfg.high_freq) == (20.0, -400.0)  # the filter range freq_warp assumes


def test_end_crop_shortens_training_utterances_only_and_keeps_labels(tiny_asr):
    from lhotse.utils import LOG_EPSILON

    from speechlm.base.config import DataConfig
    from speechlm.data.datamodule import AsrDataset, end_crop
    from speechlm.data.features import load_cuts

    feats = torch.randn(200, 100, 80)
    lens = torch.full((200,), 100)
    lens[:100] = 40
    torch.manual_seed(0)
    out, new = end_crop(feats, lens, 0.25)
    assert (new <= lens).all() and (new >= (lens * 0.75).floor()).all()
    assert (new < lens).float().mean() > 0.9 and new.float().std() > 0  # each its own crop
    assert out.size(1) == int(new.max())
    for i in range(200):  # the kept frames are the first ones; what was cut is padding now
        assert torch.equal(out[i, :new[i]], feats[i, :new[i]])
        assert (out[i, new[i]:] == LOG_EPSILON).all()
    torch.manual_seed(0)
    assert torch.equal(end_crop(feats, lens, 0.25)[1], new)  # torch's RNG: a resumed run crops alike
    short = torch.tensor([20, 10])  # never below min_frames, nor longer than the utterance
    assert end_crop(torch.randn(2, 20, 80), short, 0.5, min_frames=16)[1].tolist()[1] == 10
    assert (end_crop(torch.randn(2, 20, 80), short, 0.5, min_frames=16)[1] >= torch.tensor([16, 10])).all()
    # through the dataset: training batches are cropped, texts unchanged; dev/test batches never
    cuts = load_cuts(tiny_asr["train"]).subset(first=4)
    cfg = DataConfig(end_crop=0.5, spec_augment=False)
    torch.manual_seed(1)
    train_batch = AsrDataset(cfg, train=True)[cuts]
    plain = AsrDataset(DataConfig(spec_augment=False), train=True)[cuts]
    assert train_batch["texts"] == plain["texts"] and (train_batch["feat_lens"] <= plain["feat_lens"]).all()
    assert (train_batch["feat_lens"] < plain["feat_lens"]).any()
    dev_batch = AsrDataset(cfg, train=False)[cuts]
    assert torch.equal(dev_batch["feat_lens"], plain["feat_lens"]) and torch.equal(dev_batch["feats"], plain["feats"])


def test_fbank_features(tiny_asr):
    from speechlm.data.features import load_cuts

    cut = next(iter(load_cuts(tiny_asr["test"])))
    feats = cut.load_features()
    assert feats.shape[1] == 80
    assert abs(feats.shape[0] - round(cut.duration * 100)) <= 2  # 10 ms frames at 16 kHz
    assert cut.sampling_rate == 16000


def test_small_sets_get_batches(tiny_asr):
    """A 3-cut set (too small for duration buckets) still yields every cut exactly once."""
    from speechlm.data.datamodule import make_loader
    from speechlm.data.features import load_cuts

    cuts = load_cuts(tiny_asr["test"]).subset(first=3)
    loader, _ = make_loader(cuts, DataConfig(), train=False)
    ids = [i for batch in loader for i in batch["ids"]]
    assert sorted(ids) == sorted(c.id for c in cuts)


def test_vocab_too_large_is_a_clear_error(tmp_path):
    with pytest.raises(SpeechlmError, match="vocab-size"):
        train_sentencepiece(["abc cab"] * 5, tmp_path, vocab_size=6)
