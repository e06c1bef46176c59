"""Using trained models from Python::

    from speechlm import Recognizer, Synthesizer

    asr = Recognizer.from_dir("egs/fsdd/exp/asr")            # method="ctc-greedy", backend="torch"
    print(asr.transcribe("call.wav").text)                    # a file: WAV/FLAC/OGG/MP3, any rate
    result = asr.transcribe((samples, 8000))                  # or (array, sample rate)
    [(w.word, w.start, w.end) for w in result.timed]          # word times (CTC alignment)

    wave, sr = Synthesizer.from_dir("egs/synth_en/exp/tts").synthesize("set an alarm")

``Recognizer`` loads the model dir once (any family that provides CTC, any decoding method it
supports, the torch model or its ONNX export) and turns recordings into
:class:`~speechlm.decode.transcribe.Transcript` objects; long recordings are split on pauses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from speechlm.base.device import resolve_device
from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import DECODING_METHODS
from speechlm.data.audio_io import Audio, load_audio, to_model_audio
from speechlm.data.vad import VadConfig
from speechlm.decode.methods import DecodeContext, build_methods, text_lm_source
from speechlm.decode.resources import LANG_IN_DIR, LM_IN_DIR, find_resources
from speechlm.decode.streaming import encode_function
from speechlm.decode.transcribe import Transcriber, Transcript, Word
from speechlm.export import BACKENDS
from speechlm.models.experiment import Experiment, load_experiment
from speechlm.models.tts import Synthesizer

__all__ = ["Recognizer", "Synthesizer", "Transcript", "Word", "BACKENDS", "bundle_model_dir"]

AudioInput = Union[str, Path, Tuple["object", int], Audio]
log = logging.getLogger(__name__)


class Recognizer:
    """A trained ASR model dir with one decoding method, ready to transcribe recordings."""

    def __init__(self, exp: Experiment, transcriber: Transcriber, method: str, backend: str):
        self.exp, self.transcriber, self.method, self.backend = exp, transcriber, method, backend

    @classmethod
    def from_dir(cls, model_dir: str | Path, method: str = "ctc-greedy", backend: str = "torch",
                 device: str = "cpu", lang_dir: Optional[str | Path] = None,
                 lm_checkpoint: Optional[str | Path] = None, avg: int = 0,
                 overrides: Sequence[str] = (), vad: Optional[VadConfig] = None,
                 onnx_path: Optional[str | Path] = None) -> "Recognizer":
        """Load ``model_dir`` (written by training: config.yaml, the tokenizer, final.pt).

        :param method: a decoding method the model's family supports (``speechlm decode --help``).
        :param backend: ``torch``, or ``onnx`` (``model.onnx`` from ``speechlm export``; the
            CTC-based methods only).
        :param lang_dir: / ``lm_checkpoint``: for hlg-* and the LM-fusion methods; by default
            found from the model dir (:mod:`speechlm.decode.resources`).
        :param overrides: ``decode.key=value`` changes (beam size, LM weight ...).
        :param vad: how long recordings are split (:class:`speechlm.data.vad.VadConfig`).

        Streaming: ``overrides=["decode.streaming_chunk=16"]`` runs the encoder chunk by chunk
        (:mod:`speechlm.decode.streaming`; a model trained with ``encoder.chunk_conv`` or
        ``encoder.causal``).
        """
        if backend not in BACKENDS:
            raise SpeechlmError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        exp = load_experiment(model_dir, resolve_device(device, "--device"), avg=avg,
                              overrides=overrides, needs="ctc", option="--model-dir")
        entry = DECODING_METHODS.get(method, "--method")
        if backend == "onnx" and exp.cfg.decode.streaming_chunk > 0:
            raise SpeechlmError("streaming runs the torch model (--backend torch); the ONNX export "
                                "is a whole-utterance graph")
        if backend == "onnx" and set(entry.needs) - {"ctc"}:
            raise SpeechlmError(f"--method {method} needs the model's {'+'.join(entry.needs)} parts; "
                                "the ONNX export holds the CTC part only: use --backend torch")
        lang, lm = find_resources(exp.exp_dir, [method], lang_dir, lm_checkpoint)
        ctx = DecodeContext("", exp.model, exp.cfg, exp.tokenizer, exp.exp_dir, lang, lm)
        fn = build_methods([method], ctx)[method]
        whole = None
        if backend == "onnx":
            from speechlm.export.onnx import OnnxAcousticModel

            whole = OnnxAcousticModel.from_dir(exp.exp_dir, exp.tokenizer, onnx_path)
        encode = encode_function(exp.model, exp.cfg, [method], whole)
        transcriber = Transcriber(encode, fn, exp.tokenizer, vad, exp.cfg.decode.batch_max_duration,
                                  speaker_cmvn=exp.cfg.data.speaker_cmvn)
        if exp.cfg.data.speaker_cmvn:
            log.warning("%s normalises features per speaker (data.speaker_cmvn): each recording is taken "
                        "as its own speaker unless the recordings are given as one speaker "
                        "(transcribe --one-speaker), which short recordings need (FSDD digits held out "
                        "by speaker: about 11%% WER with the speaker's pooled statistics, about 41%% with each "
                        "file's own; egs/fsdd/RESULTS.md)", model_dir)
        return cls(exp, transcriber, method, backend)

    @staticmethod
    def _audio(x: AudioInput, sample_rate: Optional[int] = None) -> Audio:
        if isinstance(x, Audio):
            return x
        if isinstance(x, (str, Path)):
            return load_audio(x)
        if isinstance(x, tuple) and len(x) == 2 and sample_rate is None:
            return to_model_audio(x[0], x[1])
        if sample_rate is not None:
            return to_model_audio(x, sample_rate)
        raise SpeechlmError("transcribe: give a file path, a (waveform, sample_rate) pair, or a "
                            "waveform with sample_rate=")

    def transcribe(self, x: AudioInput, sample_rate: Optional[int] = None,
                   timestamps: bool = True) -> Transcript:
        """One recording (a path, ``(waveform, sample_rate)``, or a waveform with
        ``sample_rate``) -> its :class:`Transcript` (``.text``, ``.words``, ``.timed``)."""
        return self.transcriber([self._audio(x, sample_rate)], timestamps)[0]

    def transcribe_many(self, items: Iterable[AudioInput], timestamps: bool = True,
                        chunk_seconds: float = 600.0, one_speaker: bool = False) -> Iterator[Transcript]:
        """Transcripts of ``items`` in order, decoded together in chunks of about
        ``chunk_seconds`` of audio (batches mix recordings; memory stays bounded).
        ``one_speaker``: the items are one speaker's, so a model trained with ``data.speaker_cmvn``
        normalises them with their pooled statistics (then all are decoded in one chunk)."""
        chunk: List[Audio] = []
        seconds = 0.0
        for x in items:
            chunk.append(self._audio(x))
            seconds += chunk[-1].duration
            if seconds >= chunk_seconds and not one_speaker:
                yield from self.transcriber(chunk, timestamps)
                chunk, seconds = [], 0.0
        if chunk:
            yield from self.transcriber(chunk, timestamps, one_speaker)


MODEL_FILES = ("config.yaml", "final.pt")
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")  # sentencepiece | an LLM's (speechlm-llm)
EXPORT_FILES = ("model.onnx", "tokens.txt")


def bundle_model_dir(model_dir: str | Path, out_dir: str | Path, lang_dir: Optional[str | Path] = None,
                     lm_checkpoint: Optional[str | Path] = None) -> List[str]:
    """A self-contained copy of a model dir, for every decoding method it can run anywhere:
    config.yaml, the tokenizer (``tokenizer.model``, or a ``speechlm-llm`` model's
    ``tokenizer.json``), final.pt, the ONNX export if there is one, ``lang/`` (HLG.fst,
    words.txt) and ``lm.pt`` (the text LM) where the model dir's resources give them
    (:mod:`speechlm.decode.resources`; ``lang_dir``/``lm_checkpoint`` override). Returns what
    was copied. A ``speechlm-llm`` model's frozen LLM weights are not in final.pt: they load from
    its ``llm.source`` (the shipped SmolLM2, or the file it names), which the bundle references."""
    import shutil

    from speechlm.base.config import load_config

    src, out = Path(model_dir), Path(out_dir)
    missing = [f for f in MODEL_FILES if not (src / f).is_file()]
    if not any((src / f).is_file() for f in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise SpeechlmError(f"--model-dir {src}: no {', '.join(missing)}: not a trained model dir "
                            "(training writes config.yaml, the tokenizer and final.pt)")
    if out.exists() and any(out.iterdir()):
        raise SpeechlmError(f"--out {out} exists and is not empty: give a new folder")
    methods = [m.name for m in DECODING_METHODS]
    lang, lm = find_resources(src, methods, lang_dir, lm_checkpoint)
    lm = lm or text_lm_source(None, load_config(src / "config.yaml"))[0] or None
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in MODEL_FILES + TOKENIZER_FILES + EXPORT_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
            copied.append(name)
    if lang is not None and (lang / "HLG.fst").is_file():
        (out / LANG_IN_DIR).mkdir()
        for name in ("HLG.fst", "words.txt", "tokens.txt"):  # tokens.txt: checked at decoding
            shutil.copy2(lang / name, out / LANG_IN_DIR / name)
        copied.append(f"{LANG_IN_DIR}/ (from {lang})")
    if lm and Path(lm).is_file():
        shutil.copy2(lm, out / LM_IN_DIR)
        copied.append(f"{LM_IN_DIR} (from {lm})")
    return copied
