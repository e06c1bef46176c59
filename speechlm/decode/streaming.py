"""Streaming recognition: the acoustic model run chunk by chunk, as audio would arrive.

``decode.streaming_chunk = N`` (``speechlm decode --set decode.streaming_chunk=16``,
``speechlm transcribe --streaming --chunk-size 16``) replaces the model's whole-utterance
``encode_for_decoding`` with :class:`StreamingEncode`: each utterance's normalised features are fed
to :class:`speechlm.models.encoder.EncoderStream` a chunk at a time (``4 N`` input frames, N x 40
ms), which emits encoder frames as soon as their chunk is complete, using nothing after the chunk
(attention over the chunk and earlier ones, the first block's also over ``encoder.lookahead``
frames after it; the conv module causal or cut at the chunk's end). The CTC head is per frame, so
``ctc-greedy`` words are final once their frames are out; the WFST methods search the streamed
log-probs at the end of each piece of audio.

Latency of a chunk = the chunk's duration (N x 40 ms) + the encoder's look-ahead
(``encoder.lookahead`` x 40 ms) + the subsampling's look-ahead (60 ms of features) + the compute
time per chunk (:attr:`StreamingEncode.chunk_seconds` records it;
``benchmarks/bench_streaming.py`` reports it). Features themselves are computed per piece of audio
(fbank frames depend only on 25 ms of audio each, so computing them incrementally gives the same
frames).
"""

from __future__ import annotations

import dataclasses
import time
from typing import List

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.models.asr import Encoded
from speechlm.models.encoder import SUBSAMPLING_FACTOR, EncoderStream, can_stream
from speechlm.text.symbols import BLANK_ID

FRAME_SECONDS = 0.04  # one encoder frame: 4 feature frames of 10 ms


def check_streamable(model, chunk: int, option: str = "decode.streaming_chunk") -> None:
    """A clear error unless ``model`` can stream (a causal encoder and a CTC head)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(model, "ctc_head"):
        raise SpeechlmError(f"{option}: streaming needs a CTC model (an encoder and a CTC head)")
    if not can_stream(encoder.cfg):
        raise SpeechlmError(
            f"{option}={chunk}: this model was trained with full context (encoder.causal and "
            "encoder.chunk_conv false), so it cannot stream. Train one with --set "
            "encoder.chunk_conv=true encoder.dynamic_chunk=16 (README: Streaming)")
    if encoder.cfg.utterance_cmn:
        raise SpeechlmError(
            f"{option}={chunk}: this model was trained with encoder.utterance_cmn: true, which "
            "subtracts the mean of the whole utterance, so it cannot stream; decode it without "
            f"{option}")


class StreamingEncode:
    """An encode function (``(feats, lens) -> Encoded``) that streams each utterance."""

    def __init__(self, model, chunk: int):
        check_streamable(model, chunk)
        self.model, self.chunk = model, chunk
        self.chunk_seconds: List[float] = []  # compute time of each chunk in order, for latency

    @torch.no_grad()
    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        m = self.model
        outs = []
        step = self.chunk * SUBSAMPLING_FACTOR  # input frames a chunk of encoder frames needs
        for b in range(feats.size(0)):
            x = (feats[b:b + 1, : int(lengths[b])] - m.feat_mean) / m.feat_std
            stream, got = EncoderStream(m.encoder, self.chunk), []
            pieces = [x[:, start:start + step] for start in range(0, x.size(1), step)] + [None]
            for piece in pieces:  # None: the end of the audio (flush what waits)
                t0 = time.perf_counter()
                y = stream.finish() if piece is None else stream.accept(piece)
                if y is not None:
                    got.append(m.ctc_head(y).log_softmax(dim=-1))
                    k = -(-y.size(1) // self.chunk)  # chunks computed in this call (one time each)
                    self.chunk_seconds.extend([(time.perf_counter() - t0) / k] * k)
            outs.append(torch.cat(got, dim=1)[0] if got else feats.new_zeros(0, m.ctc_head.out_features))
        lens = torch.tensor([o.size(0) for o in outs], device=feats.device)
        log_probs = torch.nn.utils.rnn.pad_sequence(outs, batch_first=True)
        return Encoded(log_probs, lens)


def with_blank_penalty(encode, penalty: float):
    """``encode`` whose CTC log-probs have ``penalty`` subtracted from blank on every frame
    (``decode.blank_penalty``). Every path of a CTC search has one label per frame, so this is a
    cost per blank frame: a positive penalty lets the search emit more tokens (fewer deletions).
    ``encode`` itself when ``penalty`` is 0."""
    if not penalty:
        return encode

    def penalized(feats: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        e = encode(feats, lengths)
        log_probs = e.log_probs.clone()
        log_probs[..., BLANK_ID] -= penalty
        return dataclasses.replace(e, log_probs=log_probs)

    return penalized


def encode_function(model, cfg, methods=(), whole=None):
    """The encode function decoding uses: the model's own (or ``whole``, another whole-utterance
    one such as the ONNX export's), or :class:`StreamingEncode` when ``cfg.decode.streaming_chunk``
    > 0 (then every method must be CTC-only); with ``cfg.decode.blank_penalty`` applied
    (:func:`with_blank_penalty`)."""
    chunk = cfg.decode.streaming_chunk
    if chunk <= 0:
        return with_blank_penalty(whole or model.encode_for_decoding, cfg.decode.blank_penalty)
    from speechlm.base.registry import DECODING_METHODS

    if cfg.data.speaker_cmvn:
        raise SpeechlmError(
            f"decode.streaming_chunk={chunk}: this model was trained with data.speaker_cmvn: true, "
            "which needs the statistics of the speaker's whole audio, so it cannot stream; decode "
            "it without decode.streaming_chunk")
    for name in methods:
        if set(DECODING_METHODS.get(name, "--methods").needs) - {"ctc"}:
            raise SpeechlmError(f"decode.streaming_chunk={chunk}: --method(s) {name} needs the "
                                "whole utterance (attention decoder); stream with a CTC method")
    return with_blank_penalty(StreamingEncode(model, chunk), cfg.decode.blank_penalty)
