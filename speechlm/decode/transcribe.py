"""Recognition of whole recordings: pieces split on pauses, fbank, batched acoustic model, one
decoding method, words with times from a CTC forced alignment, pieces stitched back together.

The acoustic model is any ``encode(feats, lens) -> Encoded`` (a torch model's
``encode_for_decoding``, or an exported ONNX model), so every backend decodes the same way; the
method is one of :func:`speechlm.decode.methods.build_methods`'s. Features come from
:func:`speechlm.data.features.fbank_extractor`, the extractor the models were trained with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from speechlm.base.errors import SpeechlmError
from speechlm.data.audio_io import SAMPLING_RATE, Audio
from speechlm.data.features import FRAME_SHIFT, fbank_extractor, frame_statistics
from speechlm.data.vad import VadConfig, split_on_pauses
from speechlm.decode.align import FRAME_TIME, ctc_forced_align
from speechlm.decode.methods import Method
from speechlm.models.asr import Encoded
from speechlm.text.tokenizer import Tokenizer

log = logging.getLogger("speechlm.transcribe")

EncodeFn = Callable[[torch.Tensor, torch.Tensor], Encoded]


@dataclass
class Word:
    """A recognised word: start and end in seconds from the start of the recording; confidence
    is the mean posterior of its tokens on the frames the alignment gave them."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass
class Transcript:
    """What one recording was recognised as."""

    source: str
    words: List[str]
    duration: float  # seconds of audio
    segments: List[Tuple[float, float]] = field(default_factory=list)  # the pieces decoded
    timed: Optional[List[Word]] = None  # with timestamps=True

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def to_dict(self) -> Dict:
        out = {"file": self.source, "text": self.text, "duration": round(self.duration, 3),
               "segments": [[round(s, 2), round(e, 2)] for s, e in self.segments]}
        if self.timed is not None:
            out["words"] = [{"word": w.word, "start": round(w.start, 2), "end": round(w.end, 2),
                             "confidence": round(w.confidence, 3)} for w in self.timed]
        return out

    def ctm_lines(self, utt_id: str) -> List[str]:
        """NIST CTM: ``<utterance> 1 <start> <duration> <word> <confidence>`` per word."""
        if self.timed is None:
            raise SpeechlmError("CTM needs word times: transcribe with timestamps")
        return [f"{utt_id} 1 {w.start:.2f} {w.end - w.start:.2f} {w.word} {w.confidence:.3f}"
                for w in self.timed]


@dataclass
class _Piece:
    audio: int  # index of its recording
    start: int  # sample range in the recording
    end: int
    feats: Optional[torch.Tensor] = None
    words: Optional[List[str]] = None
    timed: Optional[List[Word]] = None


def word_times(log_probs: torch.Tensor, words: List[str], tokenizer: Tokenizer,
               offset: float) -> List[Word]:
    """Times of ``words`` in ``log_probs (T, V)`` (one piece's CTC output) by a forced alignment
    of their tokens: a word spans its tokens' first to last aligned frame (40 ms frames).
    When the words cannot be aligned (more tokens than frames, or a word the tokenizer cannot
    encode, such as an HLG ``<unk>``), they share the piece evenly, with confidence 0."""
    try:
        pieces_of = [tokenizer.encode(w) for w in words]  # words outside the tokenizer: no times
        ids = [i for p in pieces_of for i in p]
        path = ctc_forced_align(log_probs, ids).tolist()
    except SpeechlmError:
        step = log_probs.size(0) * FRAME_TIME / max(len(words), 1)
        return [Word(w, offset + k * step, offset + (k + 1) * step, 0.0) for k, w in enumerate(words)]
    first: Dict[int, int] = {}
    last: Dict[int, int] = {}
    for t, k in enumerate(path):
        if k >= 0:
            first.setdefault(k, t)
            last[k] = t
    frames = torch.tensor([t for t, k in enumerate(path) if k >= 0])
    posts = log_probs[frames, torch.tensor([ids[path[t]] for t in frames.tolist()])].float().exp().tolist()
    post_of = dict(zip(frames.tolist(), posts))
    out, k0 = [], 0
    for w, p in zip(words, pieces_of):
        ks = range(k0, k0 + len(p))
        k0 += len(p)
        ts = [t for k in ks for t in range(first[k], last[k] + 1) if path[t] == k]
        out.append(Word(w, offset + first[ks[0]] * FRAME_TIME, offset + (last[ks[-1]] + 1) * FRAME_TIME,
                        float(np.mean([post_of[t] for t in ts]))))
    return out


class Transcriber:
    """Recordings -> :class:`Transcript` with one acoustic model and one decoding method."""

    def __init__(self, encode: EncodeFn, method: Method, tokenizer: Tokenizer,
                 vad: Optional[VadConfig] = None, batch_max_duration: float = 300.0,
                 speaker_cmvn: bool = False):
        """``speaker_cmvn``: the model was trained with ``data.speaker_cmvn``; each recording is
        normalised by the mean and std of its own frames (a recording is its speaker)."""
        self.encode, self.method, self.tokenizer = encode, method, tokenizer
        self.speaker_cmvn = speaker_cmvn
        self.vad = vad or VadConfig()
        self.vad.check()
        self.batch_frames = int(batch_max_duration / FRAME_SHIFT)
        self.extractor = fbank_extractor()
        self._said: set = set()

    def _notice(self, audio: Audio) -> None:
        for what in audio.conversions():  # said once per kind of conversion
            if what not in self._said:
                self._said.add(what)
                log.info("%s (first: %s)", what, audio.source)

    def _batches(self, pieces: List[_Piece]):
        """Pieces sorted by length, in batches of at most ``batch_frames`` padded frames."""
        order = sorted(range(len(pieces)), key=lambda i: -pieces[i].feats.size(0))
        batch: List[int] = []
        for i in order:
            if batch and (len(batch) + 1) * pieces[batch[0]].feats.size(0) > self.batch_frames:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    @torch.inference_mode()
    def __call__(self, audios: Sequence[Audio], timestamps: bool = True,
                 one_speaker: bool = False) -> List[Transcript]:
        """``one_speaker``: with ``speaker_cmvn``, the recordings share their pooled statistics."""
        pieces: List[_Piece] = []
        for n, audio in enumerate(audios):
            self._notice(audio)
            pieces.extend(_Piece(n, s, e) for s, e in split_on_pauses(audio.samples, SAMPLING_RATE, self.vad))
        for p in pieces:
            feats = self.extractor.extract(audios[p.audio].samples[p.start: p.end], SAMPLING_RATE)
            p.feats = torch.as_tensor(feats)
        pieces = [p for p in pieces if p.feats.size(0) >= 7]  # shorter than the subsampling's input
        if self.speaker_cmvn:
            groups = [pieces] if one_speaker else [[p for p in pieces if p.audio == n] for n in range(len(audios))]
            for mine in groups:
                if mine:
                    mean, std = frame_statistics((p.feats for p in mine), "the recordings")
                    for p in mine:
                        p.feats = (p.feats - mean) / std
        for batch in self._batches(pieces):
            feats = torch.nn.utils.rnn.pad_sequence([pieces[i].feats for i in batch], batch_first=True)
            lens = torch.tensor([pieces[i].feats.size(0) for i in batch])
            enc = self.encode(feats, lens)
            for i, words in zip(batch, self.method(enc)):
                pieces[i].words = words
            if timestamps:
                for row, i in enumerate(batch):
                    p = pieces[i]
                    lp = enc.log_probs[row, : int(enc.lengths[row])].cpu()
                    p.timed = word_times(lp, p.words, self.tokenizer, p.start / SAMPLING_RATE) if p.words else []
        out = []
        for n, audio in enumerate(audios):
            mine = [p for p in pieces if p.audio == n]  # in time order
            out.append(Transcript(
                audio.source, [w for p in mine for w in p.words], audio.duration,
                [(p.start / SAMPLING_RATE, p.end / SAMPLING_RATE) for p in mine],
                [w for p in mine for w in p.timed] if timestamps else None))
        return out
