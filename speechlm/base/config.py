"""Typed experiment configs: YAML in ``egs/<corpus>/conf/``, overridable as ``section.key=value``.

Every key is declared in a dataclass below, so a misspelt key is an error naming the file and the
key (never silently ignored). Training writes the resolved config next to its checkpoints;
decoding reads it from there, so architecture flags are never repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import DECODING_METHODS, MODEL_FAMILIES


@dataclass
class EncoderConfig:
    """Conformer encoder with conv2d subsampling (x4)."""

    num_mel_bins: int = 80
    d_model: int = 144
    subsampling_channels: int = 64  # conv2d subsampling width; the costliest layer at input rate
    num_layers: int = 6
    num_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    dropout: float = 0.1


@dataclass
class DataConfig:
    max_duration: float = 120.0  # seconds of audio per batch (Lhotse dynamic bucketing)
    max_cut_duration: float = 0.0  # training cuts longer than this (seconds) are left out, as
    #   icefall's remove_short_and_long_utt; 0: none. Dev and test cuts are never filtered.
    num_buckets: int = 10
    num_workers: int = 0
    shuffle: bool = True
    spec_augment: bool = True
    num_freq_masks: int = 2
    freq_mask_width: int = 15
    num_time_masks: int = 2
    time_mask_ratio: float = 0.05  # max width of a time mask as a fraction of the utterance


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-3
    warmup_steps: int = 300
    final_lr_ratio: float = 0.02  # cosine decay from lr to lr * ratio over the whole run
    grad_clip: float = 5.0


@dataclass
class TrainConfig:
    num_epochs: int = 20
    seed: int = 42
    log_interval: int = 20  # steps between log lines
    keep_last: int = 5  # epoch checkpoints kept on disk
    average_last: int = 3  # checkpoints averaged into the final model
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class DecodeConfig:
    methods: List[str] = field(default_factory=lambda: ["ctc-greedy"])
    batch_max_duration: float = 300.0
    beam_size: int = 4  # ctc-prefix-beam and the attention-* / lm-shallow-fusion searches
    ctc_weight: float = 0.3  # attention-*: (1 - w) * decoder + w * CTC
    lm_weight: float = 0.3  # lm-shallow-fusion / attention-lm-fusion / hlg-nbest-lm: + w * text-LM log-prob
    lm_weights: Dict[str, float] = field(default_factory=dict)  # per method, in place of lm_weight,
    #   e.g. {attention-lm-fusion: 0.3} (one decoding pass, a weight fit to each method)
    nbest: int = 10  # hlg-nbest-lm: paths taken from each utterance's HLG lattice
    lattice_beam: float = 8.0  # hlg-nbest-lm: lattice pruning beam (larger: more alternatives)
    length_bonus: float = 0.0  # per-token bonus in the label-synchronous searches
    lm_checkpoint: str = ""  # text LM for the fusion methods (default: speechlm.lm_init)

    def lm_weight_for(self, method: str) -> float:
        """The text-LM weight of ``method``: its ``lm_weights`` entry, else ``lm_weight``."""
        return float(self.lm_weights.get(method, self.lm_weight))


@dataclass
class ModelConfig:
    kind: str = "ctc"  # a model family of speechlm.base.registry.MODEL_FAMILIES: ctc | speechlm | lm | tts


@dataclass
class LMConfig:
    """Decoder-only Transformer text LM (pre-norm, rotary positions, tied embeddings)."""

    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    max_tokens: int = 6000  # tokens per LM training batch
    sentences_per_epoch: int = 0  # LM "epoch" = this many random sentences (0: all)
    valid_sentences: int = 1000  # held out from the LM text for validation perplexity
    init: str = ""  # start from this LM checkpoint's weights (continued pretraining); "" = random
    asr_task_weight: float = 0.0  # > 0: also learn to transcribe simulated CTC frame streams of
    #   each sentence, [frames] <asr> y <sos/eos>, from text alone (the speech-LM ASR's layout)
    asr_task_noise: float = 0.4  # per-sentence piece error rate of those streams ~ U(0, this)
    asr_task_max_repeat: int = 2  # frames per piece 1..this, then 0..this blank frames


@dataclass
class SpeechLMConfig:
    """Speech-LM ASR: encoder -> adapter -> prefix decoded by the (pretrained) text LM."""

    adapter: str = "stack"  # stack (frame stacking + projection) | conv (strided conv + projection)
    adapter_stride: int = 2  # encoder frames per prefix position
    ctc_weight: float = 0.3  # loss = w * CTC + (1 - w) * decoder cross-entropy
    lm_init: str = ""  # stage-3 LM checkpoint (e.g. exp/lm/final.pt); "" = random init
    freeze_lm_steps: int = 0  # LM parameters not updated for this many steps
    lm_lr_scale: float = 1.0  # learning rate of the LM part = optim.lr * this
    text_weight: float = 0.0  # > 0: mix a text-only LM batch into every step (rehearsal), weighted so
    #   1.0 makes a text sentence count as much as one utterance's decoder loss
    text: str = ""  # text for those batches, one sentence a line (e.g. data/text/lm_text.txt)
    text_max_tokens: int = 1500  # padded tokens per text batch


@dataclass
class TTSConfig:
    """Non-autoregressive TTS: text LM backbone (bidirectional) -> durations -> mel decoder."""

    lm_init: str = ""  # stage-3 LM checkpoint (e.g. exp/lm/final.pt); "" = random init
    decoder_layers: int = 2  # Transformer blocks over the upsampled (mel-rate) sequence
    decoder_kernel: int = 5  # conv width of their feed-forward (FastSpeech FFT blocks)
    duration_kernel: int = 3  # conv width of the duration predictor
    duration_weight: float = 1.0  # loss = mel L1 + w * log-duration MSE
    max_frames: int = 6000  # mel frames per training batch (padded)
    hop_length: int = 256  # mel analysis hop in samples at 16 kHz (16 ms)
    n_fft: int = 1024
    griffin_lim_iters: int = 32
    valid_utterances: int = 50  # held out from the training utterances for the dev loss


SECTIONS: Dict[str, type] = {
    "encoder": EncoderConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "decode": DecodeConfig,
    "model": ModelConfig,
    "lm": LMConfig,
    "speechlm": SpeechLMConfig,
    "tts": TTSConfig,
}


def register_section(name: str, cls: type) -> None:
    """Declare a config section (a dataclass with defaults) for a new model family's options;
    it is then read from YAML, overridable as ``name.key=value`` and saved with the config."""
    if name in SECTIONS and SECTIONS[name] is not cls:
        raise SpeechlmError(f"config section {name!r} is already declared")
    if not dataclasses.is_dataclass(cls):
        raise SpeechlmError(f"config section {name!r}: {cls!r} is not a dataclass")
    SECTIONS[name] = cls


class ExperimentConfig:
    """One instance of every declared section (:data:`SECTIONS`), e.g. ``cfg.encoder.d_model``."""

    encoder: EncoderConfig
    data: DataConfig
    optim: OptimConfig
    train: TrainConfig
    decode: DecodeConfig
    model: ModelConfig
    lm: LMConfig
    speechlm: SpeechLMConfig
    tts: TTSConfig

    def __init__(self, **sections: Any):
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            raise SpeechlmError(f"unknown config section(s) {unknown}; known: {sorted(SECTIONS)}")
        for name, cls in SECTIONS.items():
            setattr(self, name, sections[name] if name in sections else cls())

    def __getattr__(self, name: str) -> Any:  # a section declared after this config was made
        if name in SECTIONS:
            value = SECTIONS[name]()
            setattr(self, name, value)
            return value
        raise AttributeError(name)

    def to_dict(self) -> Dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExperimentConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ExperimentConfig({self.to_dict()})"


def _build(cls, values: Dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise SpeechlmError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = set(SECTIONS) if cls is ExperimentConfig else {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpeechlmError(
            f"{where}: unknown config key(s) {unknown}; known keys: {sorted(known)}"
        )
    if cls is ExperimentConfig:
        return cls(**{name: _build(SECTIONS[name], value, f"{where}.{name}")
                      for name, value in values.items()})
    return cls(**values)


def _set_override(tree: Dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise SpeechlmError(f"override {item!r}: expected section.key=value, e.g. train.num_epochs=3")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise SpeechlmError(
            f"override {item!r}: key must be section.key with section one of {sorted(SECTIONS)}"
        )
    tree.setdefault(parts[0], {})[parts[1]] = yaml.safe_load(raw)


def load_config(path: Optional[str | Path], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    tree: Dict[str, Any] = {}
    where = "config"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise SpeechlmError(f"config file {path} not found")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise SpeechlmError(f"{path}: not valid YAML: {e}") from None
    for item in overrides:
        _set_override(tree, item)
        where = f"{where} (with overrides)" if "overrides" not in where else where
    cfg = _build(ExperimentConfig, tree, where)
    _check_types(cfg, where)
    return cfg


def _coerce_number(default: Any, value: Any) -> Any:
    """YAML reads ``2e-3`` as a string and ``3.0`` as a float: take them as the declared type."""
    if isinstance(default, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) \
            and value.is_integer():
        return int(value)
    return value


def config_from_dict(tree: Dict[str, Any], where: str) -> ExperimentConfig:
    """A checked config from a saved dict (e.g. the ``config`` entry of a checkpoint)."""
    cfg = _build(ExperimentConfig, dict(tree), where)
    _check_types(cfg, where)
    return cfg


def _check_types(cfg: ExperimentConfig, where: str) -> None:
    for sname in SECTIONS:
        section = getattr(cfg, sname)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            value = _coerce_number(default, value)
            setattr(section, f.name, value)
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))
            ) or (isinstance(default, int) and not isinstance(default, bool)
                  and not isinstance(value, int)) or (isinstance(default, str) and not isinstance(value, str)) or (
                isinstance(default, list) and not isinstance(value, list)
            ):
                raise SpeechlmError(
                    f"{where}: {sname}.{f.name} = {value!r} has the wrong type; "
                    f"expected {type(default).__name__} like {default!r}"
                )
            if isinstance(default, float) and isinstance(value, int):
                setattr(section, f.name, float(value))
    if cfg.model.kind not in MODEL_FAMILIES:
        raise SpeechlmError(f"{where}: model.kind = {cfg.model.kind!r} is not a model family; "
                            f"known: {', '.join(MODEL_FAMILIES.names())}")
    lm_methods = [m.name for m in DECODING_METHODS if "text_lm" in m.resources]
    weights = cfg.decode.lm_weights
    if weights is None:  # `lm_weights:` in YAML with every entry under it commented out
        cfg.decode.lm_weights = weights = {}
    if not isinstance(weights, dict):
        raise SpeechlmError(f"{where}: decode.lm_weights = {weights!r} must be a mapping from "
                            f"method to weight, e.g. {{attention-lm-fusion: 0.3}}")
    for method, w in weights.items():
        if method not in lm_methods:
            raise SpeechlmError(f"{where}: decode.lm_weights has {method!r}; the methods with a "
                                f"text-LM weight are {', '.join(lm_methods)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise SpeechlmError(f"{where}: decode.lm_weights[{method!r}] = {w!r} is not a number")


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
