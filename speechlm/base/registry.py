"""The three tables that say what speechlm can do: model families, decoding methods, corpora.

Each entry is declared once, here for the built-in ones, and everything else reads the tables:
the CLI's verbs, choices and help, config validation, which decoding methods a model supports,
the ablation tables. An entry names its code as ``"module:attribute"`` strings (resolved on first
use, so listing the tables loads no torch) or as the objects themselves.

Adding one (see CONTRIBUTING.md): write the module, then ``MODEL_FAMILIES.register(...)``,
``DECODING_METHODS.register(...)`` or ``CORPORA.register(...)`` -- for a built-in, as a line
below; from your own package, at its import, with the module named in ``SPEECHLM_PLUGINS``
(comma-separated module names the CLI imports before it reads the tables).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Iterator, List, Tuple, TypeVar, Union

from speechlm.base.errors import SpeechlmError

Ref = Union[str, Callable[..., Any], type]  # "package.module:attribute", or the object itself


def resolve(ref: Ref) -> Any:
    """The object a :data:`Ref` names (imported on first use)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ModelFamily:
    """A kind of model (``model.kind`` in a config).

    :param build: ``(cfg: ExperimentConfig, vocab_size: int) -> torch.nn.Module``.
    :param trainer: the :class:`speechlm.train.trainer.Trainer` subclass that trains it.
    :param train_verb: the ``speechlm`` verb that trains it (``train`` takes cut manifests).
    :param provides: what its decoding interface offers; a decoding method applies when its
        ``needs`` are a subset. ``ctc``: ``model.encode_for_decoding(feats, lens)`` returns an
        :class:`speechlm.models.asr.Encoded` with CTC log-probs; ``attention``: also a decoder
        prefix, ``model.decoder_start`` / ``model.lm.step`` / ``model.score_hyps``.
    :param sections: the config sections its model and trainer read (for help).
    :param tokenizer: ``(exp_dir, cfg) -> tokenizer`` of a trained exp dir; default: the
        sentencepiece model ``exp_dir/tokenizer.model``.
    """

    name: str
    help: str
    build: Ref
    trainer: Ref
    train_verb: str = "train"
    provides: Tuple[str, ...] = ()
    sections: Tuple[str, ...] = ()
    tokenizer: Ref = ""


@dataclass(frozen=True)
class DecodingMethod:
    """A way of turning a batch's :class:`~speechlm.models.asr.Encoded` into words.

    :param build: ``(ctx: speechlm.decode.methods.DecodeContext) -> fn``, where
        ``fn(encoded) -> list of word lists``, one per utterance; called once per decoding run.
    :param needs: model capabilities (:attr:`ModelFamily.provides`) it requires.
    :param resources: what else it reads: ``lang_dir`` (HLG.fst from recipe stage 2),
        ``text_lm`` (a stage-3 text LM: ``--lm-checkpoint`` or ``decode.lm_checkpoint``).
    :param options: the ``decode.*`` config keys it reads (for help).
    """

    name: str
    help: str
    build: Ref
    needs: Tuple[str, ...] = ("ctc",)
    resources: Tuple[str, ...] = ()
    options: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Corpus:
    """A corpus that ``speechlm prepare NAME`` turns into Lhotse manifests.

    :param add_arguments: ``(parser) -> None``: the corpus's own options (besides ``--out-dir``).
    :param prepare: ``(args) -> str``: do it; returns a one-line summary for the user.
    """

    name: str
    help: str
    add_arguments: Ref
    prepare: Ref


E = TypeVar("E")


class Registry(Generic[E]):
    """Name -> entry, in registration order; unknown names are a :class:`SpeechlmError` that
    lists the known ones."""

    def __init__(self, what: str):
        self.what = what
        self._entries: Dict[str, E] = {}

    def register(self, entry: E, replace: bool = False) -> E:
        name = entry.name  # type: ignore[attr-defined]
        if name in self._entries and not replace:
            raise SpeechlmError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str, option: str = "") -> E:
        if name not in self._entries:
            where = f" ({option})" if option else ""
            raise SpeechlmError(f"unknown {self.what} {name!r}{where}; known: {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> List[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))


MODEL_FAMILIES: Registry[ModelFamily] = Registry("model family (model.kind)")
DECODING_METHODS: Registry[DecodingMethod] = Registry("decoding method")
CORPORA: Registry[Corpus] = Registry("corpus")


def methods_for(family: ModelFamily) -> List[str]:
    """The decoding methods whose needs the family provides, in table order."""
    return [m.name for m in DECODING_METHODS if set(m.needs) <= set(family.provides)]


def load_plugins(env: str = "SPEECHLM_PLUGINS") -> None:
    """Import the modules named in ``$SPEECHLM_PLUGINS`` so their registrations take effect."""
    for name in filter(None, (n.strip() for n in os.environ.get(env, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise SpeechlmError(f"{env}: cannot import plugin module {name!r} ({e})") from None


# ---- built-in model families ---------------------------------------------------------------
_ASR_SECTIONS = ("encoder", "data", "optim", "train", "decode")
MODEL_FAMILIES.register(ModelFamily(
    "ctc", "Conformer encoder + CTC head", build="speechlm.models.asr:build_ctc",
    trainer="speechlm.train.ctc:CtcTrainer", provides=("ctc",), sections=_ASR_SECTIONS))
MODEL_FAMILIES.register(ModelFamily(
    "speechlm", "speech-LM ASR: Conformer -> adapter -> prefix of the (pretrained) text LM, joint CTC",
    build="speechlm.models.speechlm_asr:build_speechlm", trainer="speechlm.train.speechlm:SpeechLMTrainer",
    provides=("ctc", "attention"), sections=_ASR_SECTIONS + ("lm", "speechlm")))
MODEL_FAMILIES.register(ModelFamily(
    "speechlm-llm", "speech-LM ASR on a pretrained LLM (llm.source, SmolLM2 by default): Conformer -> "
    "adapter -> LLM prefix, LLM frozen + LoRA, joint CTC", build="speechlm.models.speechlm_llm:build_speechlm_llm",
    trainer="speechlm.train.speechlm_llm:SpeechLLMTrainer", provides=("ctc", "attention"),
    sections=_ASR_SECTIONS + ("speechlm", "llm"), tokenizer="speechlm.models.speechlm_llm:experiment_tokenizer"))
MODEL_FAMILIES.register(ModelFamily(
    "lm", "decoder-only Transformer text LM (stage-3 pretraining)", build="speechlm.models.lm:build_lm",
    trainer="speechlm.train.lm:LmTrainer", train_verb="train-lm", provides=("text_lm",),
    sections=("lm", "optim", "train")))
MODEL_FAMILIES.register(ModelFamily(
    "tts", "non-autoregressive TTS, text encoder from the text LM", build="speechlm.models.tts:build_tts",
    trainer="speechlm.train.tts:TtsTrainer", train_verb="train-tts", provides=("tts",),
    sections=("lm", "tts", "optim", "train")))
MODEL_FAMILIES.register(ModelFamily(
    "ssl-bestrq", "BEST-RQ self-supervised pretraining of the Conformer encoder on unlabeled audio "
    "(stage 3; fine-tune with encoder.init)", build="speechlm.models.ssl:build_bestrq",
    trainer="speechlm.train.ssl:BestRqTrainer", train_verb="train-ssl", provides=("ssl_encoder",),
    sections=("encoder", "ssl", "data", "optim", "train")))

# ---- built-in decoding methods -------------------------------------------------------------
_M = "speechlm.decode.methods"
DECODING_METHODS.register(DecodingMethod(
    "ctc-greedy", "best CTC label per frame, repeats and blanks removed", f"{_M}:ctc_greedy_method"))
DECODING_METHODS.register(DecodingMethod(
    "ctc-prefix-beam", "frame-synchronous CTC prefix beam search", f"{_M}:ctc_prefix_beam_method",
    options=("beam_size",)))
DECODING_METHODS.register(DecodingMethod(
    "attention-beam", "label-synchronous beam search: (1 - w) decoder + w CTC prefix score",
    f"{_M}:attention_beam_method", needs=("ctc", "attention"),
    options=("beam_size", "ctc_weight", "length_bonus")))
DECODING_METHODS.register(DecodingMethod(
    "attention-rescoring", "CTC prefix-beam n-best re-ranked by (1 - w) decoder + w CTC",
    f"{_M}:attention_rescoring_method", needs=("ctc", "attention"), options=("beam_size", "ctc_weight")))
DECODING_METHODS.register(DecodingMethod(
    "lm-shallow-fusion", "CTC prefix beam search + lm_weight x the stage-3 text LM",
    f"{_M}:lm_fusion_method", resources=("text_lm",),
    options=("beam_size", "lm_weight", "lm_weights", "lm_checkpoint", "length_bonus")))
DECODING_METHODS.register(DecodingMethod(
    "attention-lm-fusion", "attention-beam + lm_weight x the text LM (decoder, CTC and LM jointly)",
    f"{_M}:lm_fusion_method", needs=("ctc", "attention"), resources=("text_lm",),
    options=("beam_size", "ctc_weight", "lm_weight", "lm_weights", "lm_checkpoint", "length_bonus")))
DECODING_METHODS.register(DecodingMethod(
    "hlg-1best", "WFST: best path through HLG (lexicon + n-gram LM)", f"{_M}:hlg_1best_method",
    resources=("lang_dir",)))
DECODING_METHODS.register(DecodingMethod(
    "hlg-nbest-lm", "HLG lattice n-best re-ranked with lm_weight x the text LM",
    f"{_M}:hlg_nbest_lm_method", resources=("lang_dir", "text_lm"),
    options=("nbest", "lattice_beam", "lm_weight", "lm_weights", "lm_checkpoint")))

# ---- built-in corpora (speechlm prepare NAME) ----------------------------------------------
for _name, _help in (
    ("synth_en", "the embedded default corpus: English requests spoken by espeak-ng (no download)"),
    ("fsdd", "Free Spoken Digit Dataset: real spoken digits (--corpus-dir, or download)"),
    ("yesno", "Kaldi's yesno corpus (--corpus-dir, or download)"),
    ("librispeech", "LibriSpeech, read with Lhotse's recipe (--corpus-dir, --download)"),
    ("ljspeech", "LJSpeech, read with Lhotse's recipe (--corpus-dir, --download)"),
    ("synth_books", "book sentences read by every offline engine installed (espeak, Piper, flite, festival; no download)"),
    ("asterisk", "Asterisk voice prompts: es, fr, it, ru, one real voice each (--corpus-dir, or download)"),
):
    CORPORA.register(Corpus(_name, _help, add_arguments=f"speechlm.corpora.{_name}:add_arguments",
                            prepare=f"speechlm.corpora.{_name}:prepare"))
