"""``data.speaker_cmvn``: features normalised by their speaker's mean and std (Kaldi's per-speaker
CMVN), in training, in decoding (the test speaker's own audio) and in ``transcribe`` (a
recording is its own speaker); streaming is refused."""

import pytest
import torch

from conftest import FSDD, tiny_overrides
from speechlm.base.config import DataConfig
from speechlm.cli import main
from speechlm.data.datamodule import make_loader
from speechlm.data.features import load_cuts


def normalised_frames(cuts, cfg):
    """Cut id -> its valid frames as the loader gives them."""
    loader, _ = make_loader(cuts, cfg, train=False)
    out = {}
    for batch in loader:
        for cut_id, f, n in zip(batch["ids"], batch["feats"], batch["feat_lens"]):
            out[cut_id] = f[: int(n)]
    return out


def test_each_speaker_is_normalised_over_its_own_cuts_and_a_cut_without_one_over_itself(tiny_asr):
    cuts = load_cuts(tiny_asr["train"])
    lone = cuts[0].drop_supervisions()  # unlabeled: no speaker, so it is its own
    lone.id = "lone"
    cuts = cuts.subset(cut_ids=[c.id for c in cuts][1:]) + type(cuts).from_cuts([lone])
    speakers = {c.id: c.supervisions[0].speaker for c in cuts if c.supervisions}
    got = normalised_frames(cuts, DataConfig(speaker_cmvn=True))
    assert set(got) == {c.id for c in cuts}
    for spk in ("theo", "jackson"):
        frames = torch.cat([f for i, f in got.items() if speakers.get(i) == spk]).double()
        assert frames.mean(0).abs().max() < 1e-4 and (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3
    alone = got["lone"].double()
    assert alone.mean(0).abs().max() < 1e-4 and (alone.std(0, unbiased=False) - 1).abs().max() < 1e-3
    raw = normalised_frames(cuts, DataConfig())  # off: the raw log-mel frames
    assert raw["lone"].mean() < -1 and not torch.allclose(raw["lone"], got["lone"])


def test_a_speaker_cmvn_model_trains_decodes_transcribes_and_refuses_to_stream(tiny_asr, tmp_path, capsys):
    from speechlm.api import Recognizer
    from speechlm.models.experiment import load_experiment

    exp = tmp_path / "exp"
    assert main(["train", "--exp-dir", str(exp), "--train-cuts", str(tiny_asr["train"]), "--tokenizer",
                 str(tiny_asr["tokenizer"]), "--set", *tiny_overrides(2), "data.speaker_cmvn=true"]) == 0
    model = load_experiment(exp).model
    assert torch.equal(model.feat_mean, torch.zeros(80)) and torch.equal(model.feat_std, torch.ones(80))
    # the statistics are computed once, not again for every loader (step count, each epoch)
    assert (exp / "log" / "train.log").read_text().count("speaker CMVN: statistics") == 1
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), "--methods", "ctc-greedy"]) == 0
    assert (exp / "decode-test" / "recogs-test-ctc-greedy.txt").is_file()

    capsys.readouterr()  # fine-tuning from it with global CMVN: refused before training
    rc = main(["train", "--exp-dir", str(tmp_path / "ft"), "--train-cuts", str(tiny_asr["train"]), "--tokenizer",
               str(tiny_asr["tokenizer"]), "--set", *tiny_overrides(1), f"encoder.init={exp / 'final.pt'}"])
    assert rc == 2 and "normalised per speaker" in capsys.readouterr().err
    assert not (tmp_path / "ft" / "epoch-1.pt").exists()
    rc = main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), "--methods", "ctc-greedy",
               "--set", "decode.streaming_chunk=4", "--out-dir", str(tmp_path / "stream")])
    assert rc == 2 and "data.speaker_cmvn" in capsys.readouterr().err
    assert not (tmp_path / "stream").exists()

    rec = Recognizer.from_dir(exp)
    seen = []
    encode = rec.transcriber.encode
    rec.transcriber.encode = lambda feats, lens: seen.append((feats, lens)) or encode(feats, lens)
    rec.transcribe(str(FSDD / "3_theo_0.wav"))
    (feats, lens), = seen
    frames = feats[0, : int(lens[0])].double()  # the recording normalised by its own statistics
    std = frames.std(0, unbiased=False)  # 0 in the bins above 4 kHz: 8 kHz audio has nothing there
    assert frames.mean(0).abs().max() < 1e-4 and ((std - 1).abs() < 1e-3).sum() >= 70
    assert torch.all(((std - 1).abs() < 1e-3) | (std < 1e-6))

    seen.clear()  # two recordings of one speaker: their pooled statistics
    wavs = [str(FSDD / "3_theo_0.wav"), str(FSDD / "7_theo_0.wav")]
    assert len(list(rec.transcribe_many(wavs, one_speaker=True))) == 2
    (feats, lens), = seen
    frames = torch.cat([feats[i, : int(lens[i])] for i in range(2)]).double()
    assert frames.mean(0).abs().max() < 1e-4
    assert feats[0, : int(lens[0])].double().mean(0).abs().max() > 1e-2  # not each its own
    capsys.readouterr()
    assert main(["transcribe", "--model-dir", str(exp), "--one-speaker", *wavs]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == wavs


def test_speaker_cmvn_is_a_checked_boolean():
    from speechlm.base.config import load_config
    from speechlm.base.errors import SpeechlmError

    assert load_config(None, ["data.speaker_cmvn=true"]).data.speaker_cmvn is True
    with pytest.raises(SpeechlmError, match="data.speaker_cmvn"):
        load_config(None, ["data.speaker_cmvn=maybe"])


def test_frame_statistics_pools_chunks_floors_the_std_and_refuses_no_frames():
    from speechlm.base.errors import SpeechlmError
    from speechlm.data.features import frame_statistics

    g = torch.Generator().manual_seed(0)
    frames = torch.randn(300, 5, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0, 0.0]) + 4.0
    mean, std = frame_statistics([frames[:7], frames[7:120], frames[120:]])
    assert torch.allclose(mean, frames.mean(0), atol=1e-5)
    assert torch.allclose(std[:4], frames[:, :4].std(0, unbiased=False), atol=1e-5)
    assert std[4] == pytest.approx(1e-5)  # a constant dimension: floored, never a division by 0
    with pytest.raises(SpeechlmError, match="the recordings have no frames"):
        frame_statistics([torch.zeros(0, 5)], "the recordings")
