"""Streaming: chunked attention + a causal or chunk-cut convolution, computed chunk by chunk with
caches."""

import pytest
import torch

from speechlm.base.config import EncoderConfig
from speechlm.models.encoder import ConformerEncoder, EncoderStream


CONVS = ["causal", "chunk"]  # encoder.causal, encoder.chunk_conv


def causal_encoder(left_chunks=-1, conv="causal", **kw):
    torch.manual_seed(0)
    kw.setdefault("conv_kernel", 5)
    cfg = EncoderConfig(num_mel_bins=80, d_model=32, subsampling_channels=8, num_layers=2,
                        num_heads=4, dropout=0.0, causal=conv == "causal",
                        chunk_conv=conv == "chunk", left_chunks=left_chunks, **kw)
    return ConformerEncoder(cfg).eval()


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("left_chunks,chunk,lookahead", [(-1, 4, 0), (2, 3, 0), (0, 5, 0), (-1, 1, 0),
                                                         (-1, 4, 3), (1, 3, 5), (-1, 2, 1)])
def test_stream_equals_the_chunk_masked_whole_utterance(left_chunks, chunk, lookahead, conv):
    enc = causal_encoder(left_chunks, conv, conv_kernel=7 if chunk == 1 else 5, lookahead=lookahead)
    feats = torch.randn(1, 203, 80)
    with torch.no_grad():
        whole, lens = enc(feats, torch.tensor([203]), chunk_size=chunk)
    stream, outs, pos = EncoderStream(enc, chunk), [], 0
    for piece in [1, 6, 17, 40, 3, 100, 36]:  # arbitrary arrival sizes, 203 frames in all
        y = stream.accept(feats[:, pos:pos + piece])
        pos += piece
        if y is not None:
            assert y.size(1) % chunk == 0
            outs.append(y)
    last = stream.finish()
    outs += [last] if last is not None else []
    streamed = torch.cat(outs, dim=1)
    assert streamed.shape == whole.shape and int(lens) == whole.size(1) == 50
    assert torch.allclose(streamed, whole, atol=1e-5)


def test_chunked_attention_limits_what_a_frame_sees_and_full_context_differs():
    enc = causal_encoder()
    feats = torch.randn(1, 120, 80)
    changed = feats.clone()
    changed[:, 100:] += 3.0  # only the end changes
    with torch.no_grad():
        a, _ = enc(feats, torch.tensor([120]), chunk_size=4)
        b, _ = enc(changed, torch.tensor([120]), chunk_size=4)
        # input frames >= 100 reach output frames >= 24 (4t + 6 >= 100): earlier chunks unchanged
        assert torch.allclose(a[:, :20], b[:, :20], atol=1e-6)
        assert not torch.allclose(a[:, 24:], b[:, 24:])
        full, _ = enc(feats, torch.tensor([120]), chunk_size=0)
    assert not torch.allclose(full[:, :20], a[:, :20])  # full context sees ahead


def test_lookahead_lets_the_first_block_see_frames_after_the_chunk():
    feats = torch.randn(1, 120, 80)
    changed = feats.clone()
    changed[:, 68:72] += 3.0  # reaches encoder frames 16-17 only (4t .. 4t + 6), the chunk after 12-15
    outs = {}
    for lookahead in (0, 2):
        enc = causal_encoder(conv="chunk", lookahead=lookahead)
        with torch.no_grad():
            a, _ = enc(feats, torch.tensor([120]), chunk_size=4)
            b, _ = enc(changed, torch.tensor([120]), chunk_size=4)
        outs[lookahead] = (a, b)
        assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)  # earlier chunks: unchanged
    a, b = outs[0]
    assert torch.allclose(a[:, 12:16], b[:, 12:16], atol=1e-6)  # no lookahead: the chunk is blind to it
    a, b = outs[2]
    assert not torch.allclose(a[:, 12], b[:, 12])  # frame 12 sees frames 16-17 through block 0


def test_chunk_conv_sees_its_own_chunk_ahead_and_is_centred_with_full_context():
    enc = causal_encoder(conv="chunk")
    feats = torch.randn(1, 120, 80)
    changed = feats.clone()
    changed[:, 60:64] += 3.0  # reaches encoder frames 13-15, all in the chunk of frames 12-15
    with torch.no_grad():
        a, _ = enc(feats, torch.tensor([120]), chunk_size=4)
        b, _ = enc(changed, torch.tensor([120]), chunk_size=4)
        assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)  # earlier chunks: unchanged
        assert not torch.allclose(a[:, 12], b[:, 12])  # frame 12 sees ahead within its chunk
        # with full context it is the ordinary centred conv: the same weights in a full-context
        # encoder give the same outputs
        plain = causal_encoder(conv="none")
        plain.load_state_dict(enc.state_dict())
        full, _ = enc(feats, torch.tensor([120]), chunk_size=0)
        assert torch.allclose(full, plain(feats, torch.tensor([120]))[0], atol=1e-6)


@pytest.mark.parametrize("conv", CONVS)
def test_padding_in_a_chunked_batch_changes_nothing(conv):
    enc = causal_encoder(left_chunks=1, conv=conv)
    long, short = torch.randn(1, 150, 80), torch.randn(1, 60, 80)
    batch = torch.zeros(2, 150, 80)
    batch[0], batch[1, :60] = long[0], short[0]
    with torch.no_grad():
        y, lens = enc(batch, torch.tensor([150, 60]), chunk_size=3)
        alone, _ = enc(short, torch.tensor([60]), chunk_size=3)
    assert torch.isfinite(y).all()
    assert torch.allclose(y[1, :int(lens[1])], alone[0], atol=1e-5)


def test_dynamic_chunk_training_draws_full_context_and_chunks():
    enc = causal_encoder(dynamic_chunk=8).train()
    torch.manual_seed(1)
    draws = [enc.training_chunk_size() for _ in range(400)]
    assert 0.4 < draws.count(0) / 400 < 0.6 and set(draws) - {0} == set(range(1, 9))


def test_streaming_refuses_a_non_causal_encoder():
    cfg = EncoderConfig(num_mel_bins=80, d_model=32, subsampling_channels=8, num_layers=1)
    with pytest.raises(ValueError, match="encoder.causal: true or encoder.chunk_conv: true"):
        EncoderStream(ConformerEncoder(cfg), 4)


def test_a_chunk_conv_model_trains_with_dynamic_chunks_and_decodes_as_a_stream(tiny_asr, tiny_ctc, tmp_path):
    from conftest import FSDD, tiny_overrides
    from speechlm.api import Recognizer
    from speechlm.base.config import load_config
    from speechlm.base.errors import SpeechlmError
    from speechlm.decode.recognize import decode_cuts
    from speechlm.models.experiment import load_experiment
    from speechlm.train.ctc import CtcTrainer

    exp_dir = tmp_path / "exp"
    cfg = load_config(None, tiny_overrides(3) + ["encoder.chunk_conv=true", "encoder.dynamic_chunk=4"])
    CtcTrainer(cfg, exp_dir, tiny_asr["train"], None, tiny_asr["tokenizer"]).run()
    exp = load_experiment(exp_dir, torch.device("cpu"))
    whole = decode_cuts(exp, tiny_asr["test"], ["ctc-greedy"]).results["ctc-greedy"]
    exp.cfg.decode.streaming_chunk = 4
    streamed = decode_cuts(exp, tiny_asr["test"], ["ctc-greedy"]).results["ctc-greedy"]
    # the stream's log-probs are the chunk-masked whole-utterance ones: check a cut directly
    exp.model.eval()
    from speechlm.data.features import load_cuts
    cut = next(iter(load_cuts(tiny_asr["test"])))
    feats = torch.as_tensor(cut.load_features())[None]
    lens = torch.tensor([feats.size(1)])
    from speechlm.decode.streaming import StreamingEncode
    enc = StreamingEncode(exp.model, 4)(feats, lens)
    with torch.no_grad():
        ref, _ = exp.model.encoder((feats - exp.model.feat_mean) / exp.model.feat_std, lens, chunk_size=4)
        ref = exp.model.ctc_head(ref).log_softmax(-1)
    assert torch.allclose(enc.log_probs, ref, atol=1e-4)
    assert len(streamed) == len(whole) == 10

    rec = Recognizer.from_dir(exp_dir, overrides=["decode.streaming_chunk=2"])
    assert rec.transcribe(FSDD / "3_theo_0.wav").duration > 0
    with pytest.raises(SpeechlmError, match="full context.*encoder.chunk_conv=true encoder.dynamic_chunk=16"):
        Recognizer.from_dir(tiny_ctc, overrides=["decode.streaming_chunk=4"])


@pytest.mark.parametrize("conv", CONVS)
def test_a_chunk_covering_the_whole_utterance_equals_full_context(conv):
    enc = causal_encoder(conv=conv)
    feats = torch.randn(1, 90, 80)  # 21 encoder frames
    with torch.no_grad():
        full, _ = enc(feats, torch.tensor([90]), chunk_size=0)
    stream = EncoderStream(enc, 32)
    assert stream.accept(feats) is None  # fewer frames than a chunk: nothing final yet
    assert torch.allclose(stream.finish(), full, atol=1e-5)


def test_utterance_cmn_removes_a_fixed_channel_offset_and_ignores_padding():
    torch.manual_seed(0)
    cfg = EncoderConfig(num_mel_bins=80, d_model=32, subsampling_channels=8, num_layers=2,
                        num_heads=4, conv_kernel=5, dropout=0.0, utterance_cmn=True)
    enc = ConformerEncoder(cfg).eval()
    plain = ConformerEncoder(EncoderConfig(**{**cfg.__dict__, "utterance_cmn": False})).eval()
    plain.load_state_dict(enc.state_dict())
    feats = torch.randn(1, 90, 80)
    channel = torch.randn(1, 1, 80) * 2  # one microphone's fixed log-mel offset
    batch = torch.zeros(2, 130, 80)
    batch[0], batch[1, :90] = torch.randn(130, 80), feats[0] + channel[0]
    with torch.no_grad():
        a, _ = enc(feats, torch.tensor([90]))
        b, lens = enc(batch, torch.tensor([130, 90]))
        c, _ = plain(feats, torch.tensor([90]))
        d, _ = plain(feats + channel, torch.tensor([90]))
    assert torch.allclose(a[0], b[1, :int(lens[1])], atol=1e-5)  # offset and padding change nothing
    assert not torch.allclose(c, d, atol=1e-2)  # without it the offset does change the output


def test_streaming_refuses_an_utterance_cmn_model():
    from speechlm.base.errors import SpeechlmError
    from speechlm.decode.streaming import check_streamable

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = causal_encoder(utterance_cmn=True)
            self.ctc_head = torch.nn.Linear(32, 10)
    with pytest.raises(SpeechlmError, match="utterance_cmn"):
        check_streamable(Model(), 4)
    with pytest.raises(ValueError, match="utterance_cmn"):
        EncoderStream(causal_encoder(utterance_cmn=True), 4)
