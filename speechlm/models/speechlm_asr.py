"""Speech-LM ASR: Conformer encoder -> adapter -> speech prefix that a text LM decodes.

One sequence per utterance, in the LM's token space::

    [speech prefix p1 .. pP] <asr> y1 .. yn <sos/eos>

The decoder loss is next-token cross-entropy on ``y1 .. yn <sos/eos>``; a CTC head on the
encoder adds a joint CTC loss (``speechlm.ctc_weight``) and drives the CTC-based searches.
Sequences are packed left-aligned and right-padded, so rotary positions (and so outputs) of an
utterance do not depend on what it is batched with. The LM part can start from a stage-3
checkpoint (:func:`load_lm_into`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import EncoderConfig, LMConfig, SpeechLMConfig
from speechlm.base.errors import SpeechlmError
from speechlm.models.asr import CTCModel, Encoded
from speechlm.models.encoder import lengths_to_mask
from speechlm.models.experiment import init_part
from speechlm.models.lm import KVCache, TransformerLM, checked_lm_state
from speechlm.text.symbols import ASR_ID, SOS_EOS_ID

log = logging.getLogger(__name__)


class Adapter(nn.Module):
    """Encoder frames ``(B, T, De)`` -> prefix ``(B, ceil(T / stride), Dlm)``."""

    def __init__(self, kind: str, d_in: int, d_out: int, stride: int, norm: bool = False):
        super().__init__()
        if kind not in ("stack", "conv"):
            raise SpeechlmError(f"speechlm.adapter = {kind!r}: expected 'stack' or 'conv'")
        if stride < 1:
            raise SpeechlmError(f"speechlm.adapter_stride = {stride}: must be >= 1")
        self.kind, self.stride = kind, stride
        if kind == "conv":
            self.conv = nn.Conv1d(d_in, d_in, kernel_size=stride, stride=stride)
            d_in_proj = d_in
        else:
            d_in_proj = d_in * stride
        self.proj = nn.Sequential(nn.Linear(d_in_proj, d_out), nn.GELU(), nn.Linear(d_out, d_out))
        # speechlm.adapter_norm: layer norm, then one learned scale (set by :meth:`start_scale`)
        self.out_scale = nn.Parameter(torch.ones(())) if norm else None

    @torch.no_grad()
    def start_scale(self, embeddings: torch.Tensor) -> None:
        """With ``adapter_norm``: start the output scale at the RMS of ``embeddings`` (the
        decoder's token embeddings), so the prefix enters the decoder at its tokens' scale."""
        if self.out_scale is not None:
            self.out_scale.fill_(float(embeddings.float().pow(2).mean().sqrt()))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        b, t, d = x.shape
        pad = (-t) % self.stride
        # Padded frames are zeroed so they cannot leak into a real prefix position.
        x = x.masked_fill(~lengths_to_mask(lengths, t)[..., None], 0.0)
        x = F.pad(x, (0, 0, 0, pad))
        if self.kind == "conv":
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = x.reshape(b, (t + pad) // self.stride, d * self.stride)
        out_lens = (lengths + self.stride - 1) // self.stride
        out = self.proj(x)
        if self.out_scale is not None:
            out = F.layer_norm(out, out.shape[-1:]) * self.out_scale
        return out, out_lens


class SpeechLMAsr(CTCModel):
    """A :class:`CTCModel` (CMVN, encoder, CTC head) plus adapter and LM decoder."""

    def __init__(self, encoder_cfg: EncoderConfig, lm_cfg: LMConfig, cfg: SpeechLMConfig,
                 vocab_size: int, blank_bias: float = 0.0):
        super().__init__(encoder_cfg, vocab_size, blank_bias)
        self.adapter = Adapter(cfg.adapter, encoder_cfg.d_model, lm_cfg.d_model, cfg.adapter_stride,
                               cfg.adapter_norm)
        self.lm = TransformerLM(lm_cfg, vocab_size)
        self.prefix_bos = self._start_prefix(cfg)

    def _start_prefix(self, cfg: SpeechLMConfig) -> bool:
        """The adapter's output scale from the decoder's embeddings (``adapter_norm``); whether the
        prefix starts with ``<sos/eos>`` (``prefix_bos``)."""
        if cfg.adapter_norm:  # (the LLM's ~50k rows are only read when needed)
            with torch.no_grad():
                self.adapter.start_scale(self.lm.embed(torch.arange(self.lm.vocab_size)))
        return cfg.prefix_bos

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, targets=None):
        """Without ``targets``: CTC log-probs and lengths (as :class:`CTCModel`). With them: the
        summed CTC and decoder losses (one forward, so DDP synchronises every parameter)."""
        if targets is None:
            return super().forward(feats, lengths)
        log_probs, enc_lens, prefix, prefix_lens = self.encode_all(feats, lengths)
        return (self.ctc_loss(log_probs, enc_lens, targets),
                self.decoder_loss(prefix, prefix_lens, targets))

    def encode_all(self, feats: torch.Tensor, lengths: torch.Tensor):
        """CTC log-probs, their lengths, the speech prefix and its lengths."""
        enc, enc_lens = self.encode(feats, lengths)
        prefix, prefix_lens = self.adapter(enc, enc_lens)
        if self.prefix_bos:  # [<sos/eos>] [speech]: rows stay left-aligned
            bos = self.lm.embed(torch.full((prefix.size(0), 1), SOS_EOS_ID, device=prefix.device))
            prefix, prefix_lens = torch.cat([bos.to(prefix.dtype), prefix], 1), prefix_lens + 1
        return self.ctc_head(enc).log_softmax(-1), enc_lens, prefix, prefix_lens

    def encode_for_decoding(self, feats: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        return Encoded(*self.encode_all(feats, lengths))

    def _pack(self, prefix: torch.Tensor, prefix_lens: torch.Tensor,
              texts: Sequence[Sequence[int]]):
        """``[prefix] <asr> y`` per utterance, left-aligned: embeddings ``(B, L, D)``, lengths."""
        b, p, d = prefix.shape
        dev = prefix.device
        text_lens = torch.tensor([len(t) + 1 for t in texts], dtype=torch.long, device=dev)
        lengths = prefix_lens + text_lens
        total = int(lengths.max())
        tokens = torch.full((b, int(text_lens.max())), ASR_ID, dtype=torch.long)
        for i, t in enumerate(texts):
            tokens[i, 1: len(t) + 1] = torch.tensor(list(t), dtype=torch.long)
        tok_emb = self.lm.embed(tokens.to(dev))
        x = prefix.new_zeros(b, total, d)
        x[:, :p] = prefix.masked_fill(~lengths_to_mask(prefix_lens, p)[..., None], 0.0)
        # scatter the token embeddings right after each utterance's own prefix
        j = torch.arange(tok_emb.size(1), device=dev)
        idx = (prefix_lens[:, None] + j[None]).clamp_max(total - 1)
        keep = j[None] < text_lens[:, None]
        rows = torch.arange(b, device=dev)[:, None].expand_as(idx)
        x[rows[keep], idx[keep]] = tok_emb[keep]
        return x, lengths, text_lens

    def decoder_loss(self, prefix, prefix_lens, texts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Summed cross-entropy of ``y1 .. yn <sos/eos>`` given ``[prefix] <asr>``."""
        x, lengths, _ = self._pack(prefix, prefix_lens, texts)
        logits = self.lm.forward_embeddings(x, lengths)
        b, total, _ = logits.shape
        target = torch.full((b, total), -100, dtype=torch.long)
        for i, t in enumerate(texts):
            start = int(prefix_lens[i])  # position of <asr>: predicts y1
            target[i, start: start + len(t) + 1] = torch.tensor([*t, SOS_EOS_ID], dtype=torch.long)
        return F.cross_entropy(logits.transpose(1, 2).float(), target.to(logits.device),
                               ignore_index=-100, reduction="sum")

    def decoder_start(self, prefix: torch.Tensor, prefix_lens: torch.Tensor):
        """Cache after ``[prefix] <asr>`` and log-probs of the first token (for beam search)."""
        x, lengths, _ = self._pack(prefix, prefix_lens, [[] for _ in range(prefix.size(0))])
        return self.lm.prefill(x, lengths)

    @torch.no_grad()
    def score_hyps(self, prefix, prefix_lens, hyps: Sequence[Sequence[int]]) -> torch.Tensor:
        """Decoder log-prob of each ``hyp <sos/eos>`` given its utterance's prefix ``(N,)``."""
        x, lengths, _ = self._pack(prefix, prefix_lens, hyps)
        logp = self.lm.forward_embeddings(x, lengths).float().log_softmax(-1)
        out = torch.zeros(len(hyps), device=prefix.device)
        for i, h in enumerate(hyps):
            start = int(prefix_lens[i])
            tgt = torch.tensor([*h, SOS_EOS_ID], dtype=torch.long, device=prefix.device)
            pos = torch.arange(start, start + len(h) + 1, device=prefix.device)
            out[i] = logp[i, pos, tgt].sum()
        return out


def build_speechlm(cfg, vocab_size: int) -> SpeechLMAsr:
    """The ``speechlm`` model family's builder (speechlm.base.registry)."""
    return SpeechLMAsr(cfg.encoder, cfg.lm, cfg.speechlm, vocab_size, cfg.model.ctc_blank_bias)


def asr_task_trained(state: dict) -> bool:
    """Whether a text-LM checkpoint has learnt ``<asr>`` (``lm.asr_task_weight`` > 0, in its own
    training or in the LM it continued through ``lm.init``)."""
    return bool(state.get("asr_task_trained")
                or state.get("config", {}).get("lm", {}).get("asr_task_weight", 0.0) > 0)


def load_lm_weights(lm: TransformerLM, path: str | Path, lm_cfg: LMConfig,
                    key: str = "speechlm.lm_init") -> dict:
    """Load a text-LM checkpoint into ``lm`` (the speech-LM's decoder, or an LM that continues
    training through ``lm.init``); refuse one that does not fit. ``key`` is the config option
    that named ``path`` (for messages). Returns the checkpoint."""
    state = checked_lm_state(path, key, lm.vocab_size, lm_cfg)
    init_part(lm, state, key)
    return state


def load_lm_into(model: SpeechLMAsr, path: str | Path, lm_cfg: LMConfig) -> None:
    """Initialise ``model.lm`` from a stage-3 LM checkpoint; refuse one that does not fit."""
    state = load_lm_weights(model.lm, path, lm_cfg)
    if not asr_task_trained(state):
        # an LM that never saw <asr>: it plays the sentence-start role, so start it from <sos/eos>
        with torch.no_grad():
            model.lm.embed.weight[ASR_ID] = model.lm.embed.weight[SOS_EOS_ID]
    model.adapter.start_scale(model.lm.embed.weight)  # adapter_norm: the loaded embeddings' scale
    log.info("LM part initialised from %s", path)


__all__ = ["Adapter", "KVCache", "SpeechLMAsr", "asr_task_trained", "build_speechlm", "load_lm_into",
           "load_lm_weights"]
