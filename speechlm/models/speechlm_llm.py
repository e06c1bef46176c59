"""Speech-LM ASR on a pretrained LLM (``model.kind: speechlm-llm``): Conformer encoder -> adapter ->
speech prefix of a llama-family LLM (SmolLM2-135M by default, ``llm.source``), joint CTC on the encoder.

The LLM is frozen with LoRA adapters (``llm.finetune: lora``, rank / alpha / targets in ``llm.*``),
fully fine-tuned (``full``) or left as it is (``frozen``). The sequence layout, losses and decoding
interface are the ``speechlm`` family's (:class:`~speechlm.models.speechlm_asr.SpeechLMAsr`, which
this subclasses): ``[prefix] <asr> y1 .. yn <sos/eos>``. The decoder is the LLM seen through
:class:`SpeechSpaceLM`, in speechlm's token layout (:class:`~speechlm.text.llm_tokenizer.SpeechTokenView`),
so the CTC head and every CTC / attention decoding method run on it unchanged while the LLM's own
embedding rows keep their numbers.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import EncoderConfig, LLMConfig, SpeechLMConfig
from speechlm.base.errors import SpeechlmError
from speechlm.models.asr import CTCModel
from speechlm.models.llama import LlamaLM
from speechlm.models.llm_weights import load_llm
from speechlm.models.lora import apply_lora
from speechlm.models.speechlm_asr import Adapter, SpeechLMAsr
from speechlm.text.llm_tokenizer import SpeechTokenView, saved_tokenizer
from speechlm.text.symbols import SOS_EOS_ID

log = logging.getLogger(__name__)


class SpeechSpaceLM(nn.Module):
    """A :class:`LlamaLM` addressed by speechlm's token ids: ``rows[i]`` is the LLM embedding row
    of id ``i``; logits and log-probs come back in the same layout. TransformerLM's interface."""

    def __init__(self, llm: LlamaLM, rows: Sequence[int]):
        super().__init__()
        self.llm = llm
        self.register_buffer("rows", torch.tensor(list(rows), dtype=torch.long), persistent=False)

    @property
    def d_model(self) -> int:
        return self.llm.d_model

    @property
    def vocab_size(self) -> int:
        return self.rows.numel()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.embed_tokens(self.rows[ids])

    def forward_embeddings(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.llm.forward_embeddings(x, lengths).index_select(-1, self.rows)

    def hidden_states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.llm.hidden_states(x, lengths)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm.logits(hidden).index_select(-1, self.rows)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_embeddings(self.embed(tokens), lengths)

    def prefill(self, x: torch.Tensor, lengths: torch.Tensor):
        logp, cache = self.llm.prefill(x, lengths)
        return logp.index_select(-1, self.rows), cache

    def step(self, tokens: torch.Tensor, cache):
        logp, cache = self.llm.step(self.rows[tokens], cache)
        return logp.index_select(-1, self.rows), cache


class SpeechLLMAsr(SpeechLMAsr):
    """CMVN, encoder, CTC head (speechlm's layout), adapter into the LLM's width, the LLM."""

    def __init__(self, encoder_cfg: EncoderConfig, cfg: SpeechLMConfig, llm: LlamaLM, rows: Sequence[int],
                 blank_bias: float = 0.0):
        CTCModel.__init__(self, encoder_cfg, len(rows), blank_bias)  # not SpeechLMAsr's tiny text LM
        self.adapter = Adapter(cfg.adapter, encoder_cfg.d_model, llm.d_model, cfg.adapter_stride,
                               cfg.adapter_norm)
        self.lm = SpeechSpaceLM(llm, rows)
        self.prefix_bos = self._start_prefix(cfg)

    def decoder_loss(self, prefix, prefix_lens, texts: Sequence[Sequence[int]]) -> torch.Tensor:
        """:meth:`SpeechLMAsr.decoder_loss`, with the logits (a ~50k-word vocabulary) computed at
        the predicted positions only, not over the speech prefix."""
        x, lengths, _ = self._pack(prefix, prefix_lens, texts)
        hidden = self.lm.hidden_states(x, lengths)
        rows, cols, target = [], [], []
        for i, t in enumerate(texts):
            start = int(prefix_lens[i])  # position of <asr>: predicts y1
            rows += [i] * (len(t) + 1)
            cols += range(start, start + len(t) + 1)
            target += [*t, SOS_EOS_ID]
        dev = hidden.device
        picked = hidden[torch.tensor(rows, device=dev), torch.tensor(cols, device=dev)]
        return F.cross_entropy(self.lm.logits(picked).float(), torch.tensor(target, device=dev),
                               reduction="sum")

    def frozen_keys(self) -> list:
        """State-dict keys of the frozen LLM weights: checkpoints leave them out, the builder
        loads them from ``llm.source``."""
        return [f"lm.llm.{n}" for n, p in self.lm.llm.named_parameters() if not p.requires_grad]

    @torch.no_grad()
    def source_digest(self) -> str:
        """A fingerprint of the pretrained LLM weights (final norm, first block's Q, embeddings'
        first rows): a model is only restored onto the LLM it was trained on."""
        h = hashlib.sha1()
        llm = self.lm.llm
        attn = llm.layers[0].self_attn.q_proj
        q = attn.base.weight if hasattr(attn, "base") else attn.weight
        for t in (llm.norm.weight, q, llm.embed_tokens.weight[:64]):
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def prepare_finetuning(llm: LlamaLM, cfg: LLMConfig) -> str:
    """Freeze / adapt the LLM as ``llm.finetune`` says; returns a line for the log."""
    if cfg.finetune == "full":
        return "LLM fully fine-tuned"
    if cfg.finetune == "frozen":
        for p in llm.parameters():
            p.requires_grad_(False)
        return "LLM frozen"
    wrapped = apply_lora(llm, cfg.lora_targets, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
    trainable = sum(p.numel() for p in llm.parameters() if p.requires_grad)
    return (f"LLM frozen + LoRA rank {cfg.lora_rank} on {len(wrapped)} linear layers "
            f"({', '.join(cfg.lora_targets)}): {trainable:,} trainable LLM parameters")


def llm_speech_tokenizer(cfg) -> SpeechTokenView:
    """The tokenizer a ``speechlm-llm`` model trains with: its LLM's, in speechlm's layout."""
    tokenizer = load_llm(cfg.llm.source, cfg.llm.cache_dir)[1]
    tokenizer.multilingual = cfg.llm.languages
    return SpeechTokenView(tokenizer)


def experiment_tokenizer(exp_dir: str | Path, cfg) -> SpeechTokenView:
    """The tokenizer a trained ``speechlm-llm`` exp dir holds (``tokenizer.json``)."""
    tokenizer = saved_tokenizer(Path(exp_dir) / "tokenizer.json")
    tokenizer.multilingual = cfg.llm.languages
    return SpeechTokenView(tokenizer)


def build_speechlm_llm(cfg, vocab_size: int) -> SpeechLLMAsr:
    """The ``speechlm-llm`` family's builder: the LLM of ``llm.source`` (weights included),
    speechlm's rows appended, LoRA / freezing applied, encoder and adapter fresh."""
    llm, tokenizer = load_llm(cfg.llm.source, cfg.llm.cache_dir)
    tokenizer.multilingual = cfg.llm.languages
    view = SpeechTokenView(tokenizer)
    if view.vocab_size != vocab_size:
        raise SpeechlmError(f"llm.source = {cfg.llm.source}: its tokenizer gives {view.vocab_size} tokens "
                            f"but this model needs {vocab_size}: the experiment was trained on another LLM")
    if cfg.llm.num_layers:
        llm.keep_layers(cfg.llm.num_layers)
    llm.grow_vocab(tokenizer.vocab_size, init_from={tokenizer.asr_id: tokenizer.sos_eos_id})
    log.info("%s", prepare_finetuning(llm, cfg.llm))
    return SpeechLLMAsr(cfg.encoder, cfg.speechlm, llm, view.llm_rows(), cfg.model.ctc_blank_bias)
