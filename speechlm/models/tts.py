"""Text-to-speech from the pretrained text LM: ``<tts> y1 .. yn <sos/eos>`` -> 80-dim log-mel.

Design note — why non-autoregressive (FastSpeech-like) and not autoregressive:

- The budget is a few CPU minutes of training on ~1000 utterances of one voice. An
  autoregressive mel decoder must first learn attention (text <-> frames) before it says
  anything intelligible, and it fails by skipping/repeating words or never stopping; that takes
  far longer than minutes to train reliably. With durations given, the model is a plain
  regression from an upsampled text sequence to frames: it trains in a few hundred steps, never
  babbles, and synthesises a whole utterance in one parallel forward pass.
- Durations come from the recipe's own CTC ASR model (:mod:`speechlm.decode.align`, Viterbi
  forced alignment): no external aligner, and the same tokens as the LM.
- The LM backbone is reused as the text encoder: its embedding, blocks and final norm start from
  the stage-3 checkpoint (``tts.lm_init``) and are run *bidirectionally* (same parameters,
  no causal mask): each token's sound depends on the following tokens too, and the pretrained
  weights adapt to the wider context during fine-tuning. ``<tts>`` starts from the
  ``<sos/eos>`` embedding, as ``<asr>`` does for ASR.

Model: LM embedding + blocks (bidirectional) -> duration predictor (conv, log durations) and
length regulator (each token's vector repeated for its frames, plus its position within the
token) -> ``tts.decoder_layers`` FFT blocks (bidirectional rotary self-attention + a feed-forward
with a conv over time, kernel ``tts.decoder_kernel``) -> linear to 80 normalised log-mel bins. Loss: L1 on normalised mel + ``tts.duration_weight`` * MSE on
log(1 + duration). ``<tts>`` / ``<sos/eos>`` carry the leading / trailing silence.

With ``tts.llm_layers > 0`` each token's embedding also gets its word's context vector from a frozen
pretrained LLM (``llm.source``; :mod:`speechlm.models.tts_llm`), projected to the model width.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.base.config import ExperimentConfig, LMConfig, TTSConfig
from speechlm.base.errors import SpeechlmError
from speechlm.models.encoder import lengths_to_mask
from speechlm.models.experiment import init_part
from speechlm.models.lm import TransformerLM, checked_lm_state
from speechlm.models.tts_llm import LLMWordFeatures
from speechlm.data.tts_data import pad_features, pad_inputs, tts_input
from speechlm.models.vocoder import NUM_MELS, MelSpec
from speechlm.text.symbols import SOS_EOS_ID, TTS_ID
from speechlm.text.tokenizer import Tokenizer


def encode_text(text: str, tokenizer: Tokenizer, item: str = "") -> List[int]:
    """Normalised (lower case, single spaces) text -> token ids; empty text or characters the
    tokenizer cannot encode are a SpeechlmError naming ``item``."""
    from speechlm.data.corpus import normalize_text

    norm = normalize_text(text)
    where = f" ({item})" if item else ""
    if not norm:
        raise SpeechlmError(f"empty text{where}: give at least one word to synthesise")
    return tokenizer.encode(norm, item=item or "the text to synthesise")


def mel_spec(cfg: TTSConfig) -> MelSpec:
    return MelSpec(n_fft=cfg.n_fft, hop_length=cfg.hop_length)


class DurationPredictor(nn.Module):
    """Two conv layers over the encoded tokens -> log(1 + frames) per token."""

    def __init__(self, d_model: int, kernel: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2)
                                   for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(2))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x * mask[..., None]
        for conv, norm in zip(self.convs, self.norms):
            x = self.dropout(norm(F.relu(conv(x.transpose(1, 2)).transpose(1, 2)))) * mask[..., None]
        return self.out(x).squeeze(-1)


def length_regulate(h: torch.Tensor, durations: torch.Tensor, token_lens: torch.Tensor):
    """Repeat token vectors ``h (B, N, D)`` by ``durations (B, N)`` (zero past ``token_lens``).

    :return: frames ``(B, T, D)``, frame lengths ``(B,)`` and per-frame position features
        ``(B, T, 2)``: where in its token the frame is (0..1) and the token's length (/ 50).
    """
    durations = durations * lengths_to_mask(token_lens, durations.size(1))
    frame_lens = durations.sum(1)
    t_max = max(int(frame_lens.max()), 1)
    b = h.size(0)
    out = h.new_zeros(b, t_max, h.size(2))
    pos = h.new_zeros(b, t_max, 2)
    for i in range(b):  # batch is small; each row is one vectorised repeat_interleave
        d = durations[i]
        idx = torch.repeat_interleave(torch.arange(d.numel(), device=h.device), d)
        n = idx.numel()
        start = torch.cumsum(d, 0) - d
        within = torch.arange(n, device=h.device) - start[idx]
        out[i, :n] = h[i, idx]
        pos[i, :n, 0] = (within.float() + 0.5) / d[idx].float()
        pos[i, :n, 1] = d[idx].float() / 50.0
    return out, frame_lens, pos


class ConvFeedForward(nn.Module):
    """Pre-norm feed-forward with a conv over time (FastSpeech's FFT block): neighbouring frames
    shape each other, which a per-frame linear layer cannot do."""

    def __init__(self, d_model: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.conv = nn.Conv1d(d_model, 2 * d_model, kernel, padding=kernel // 2)
        self.proj = nn.Linear(2 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.conv((self.norm(x) * mask[..., None]).transpose(1, 2)).transpose(1, 2)
        return x + self.dropout(self.proj(self.dropout(F.silu(y))))


class DecoderBlock(nn.Module):
    """Bidirectional rotary self-attention + conv feed-forward, over mel-rate frames."""

    def __init__(self, d_model: int, num_heads: int, kernel: int, dropout: float):
        super().__init__()
        from speechlm.models.encoder import RotarySelfAttention

        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = RotarySelfAttention(d_model, num_heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.ff = ConvFeedForward(d_model, kernel, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), mask))
        return self.ff(x, mask)


class TtsModel(nn.Module):
    """:param llm_dim: > 0: the width of the LLM word features (:mod:`speechlm.models.tts_llm`)
    added to the token embeddings; the extractor itself is ``word_features`` (not a submodule:
    frozen, and not in the checkpoint)."""

    def __init__(self, lm_cfg: LMConfig, cfg: TTSConfig, vocab_size: int, llm_dim: int = 0):
        super().__init__()
        self.cfg = cfg
        self.lm = TransformerLM(lm_cfg, vocab_size)  # the text encoder: embedding + blocks + norm
        d = lm_cfg.d_model
        self.llm_proj = (nn.Sequential(nn.LayerNorm(llm_dim), nn.Linear(llm_dim, d)) if llm_dim else None)
        self.word_features = None  # an LLMWordFeatures when llm_dim > 0
        self.duration = DurationPredictor(d, cfg.duration_kernel, lm_cfg.dropout)
        self.frame_pos = nn.Linear(2, d)
        self.decoder = nn.ModuleList(DecoderBlock(d, lm_cfg.num_heads, cfg.decoder_kernel,
                                                  lm_cfg.dropout) for _ in range(cfg.decoder_layers))
        self.out_norm = nn.LayerNorm(d)
        self.mel_out = nn.Linear(d, NUM_MELS)
        # mel statistics of the training set: the model predicts normalised frames
        self.register_buffer("mel_mean", torch.zeros(NUM_MELS))
        self.register_buffer("mel_std", torch.ones(NUM_MELS))

    def set_mel_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp_min(1e-3))

    def source_digest(self):
        """Fingerprint of the LLM the word features come from (None without them); a checkpoint
        is only loaded onto the LLM it was trained with (speechlm.models.experiment.load_weights)."""
        return self.word_features.digest() if self.word_features is not None else None

    def encode(self, tokens: torch.Tensor, token_lens: torch.Tensor,
               llm_feats: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = lengths_to_mask(token_lens, tokens.size(1))
        x = self.lm.embed(tokens)
        if self.llm_proj is not None:
            if llm_feats is None:
                raise SpeechlmError("this TTS model reads LLM word features (tts.llm_layers): "
                                    "give llm_feats")
            has = (llm_feats.abs().sum(-1, keepdim=True) > 0).to(x.dtype)  # not <tts>, <sos/eos>, pad
            x = x + self.llm_proj(llm_feats.to(x.dtype)) * has
        x = self.lm.input_dropout(x)
        for block in self.lm.blocks:
            x = block(x, mask, causal=False)
        return self.lm.final_norm(x)

    def decode(self, h: torch.Tensor, durations: torch.Tensor, token_lens: torch.Tensor):
        frames, frame_lens, pos = length_regulate(h, durations, token_lens)
        x = frames + self.frame_pos(pos)
        mask = lengths_to_mask(frame_lens, x.size(1))
        for block in self.decoder:
            x = block(x, mask)
        return self.mel_out(self.out_norm(x)), frame_lens

    def forward(self, tokens, token_lens, durations, mels=None, mel_lens=None, llm_feats=None):
        """With ``mels``: :meth:`loss` (so DDP's wrapper sees the forward); else :meth:`predict`."""
        if mels is not None:
            return self.loss(tokens, token_lens, durations, mels, mel_lens, llm_feats)
        return self.predict(tokens, token_lens, durations, llm_feats)

    def predict(self, tokens, token_lens, durations, llm_feats=None):
        """Teacher-forced durations -> normalised mel ``(B, T, 80)``, frame lengths, and the
        predicted log(1 + duration) ``(B, N)``."""
        h = self.encode(tokens, token_lens, llm_feats)
        log_dur = self.duration(h, lengths_to_mask(token_lens, tokens.size(1)))
        mel, frame_lens = self.decode(h, durations, token_lens)
        return mel, frame_lens, log_dur

    def loss(self, tokens, token_lens, durations, mels, mel_lens, llm_feats=None) -> Tuple[torch.Tensor, dict]:
        """Summed per-utterance loss (mean L1 per frame and bin + w * mean duration MSE)."""
        pred, frame_lens, log_dur = self.predict(tokens, token_lens, durations, llm_feats)
        if not torch.equal(frame_lens.cpu(), mel_lens.cpu()):
            raise SpeechlmError("TTS batch: durations do not sum to the mel lengths")
        target = (mels[:, : pred.size(1)] - self.mel_mean) / self.mel_std
        fmask = lengths_to_mask(frame_lens, pred.size(1))[..., None].float()
        l1 = ((pred - target).abs() * fmask).sum((1, 2)) / (frame_lens.float() * NUM_MELS)
        tmask = lengths_to_mask(token_lens, tokens.size(1)).float()
        dur_target = torch.log1p(durations.float())
        mse = (((log_dur - dur_target) ** 2) * tmask).sum(1) / token_lens.float()
        total = (l1 + self.cfg.duration_weight * mse).sum()
        return total, {"mel_l1": float(l1.detach().sum()), "dur_mse": float(mse.detach().sum())}

    @torch.no_grad()
    def infer(self, sentences: Sequence[Sequence[int]], speed: float = 1.0,
              llm_feats: Optional[Sequence[torch.Tensor]] = None) -> List[torch.Tensor]:
        """Token id lists (without ``<tts>`` / ``<sos/eos>``) -> log-mel ``(T_i, 80)`` each;
        ``llm_feats``: their :meth:`LLMWordFeatures.token_features` when the model reads them."""
        tokens, token_lens = pad_inputs([tts_input(s) for s in sentences], self.mel_mean.device)
        feats = None
        if llm_feats is not None:
            feats = pad_features(llm_feats, tokens.size(1)).to(tokens.device)
        h = self.encode(tokens, token_lens, feats)
        log_dur = self.duration(h, lengths_to_mask(token_lens, tokens.size(1)))
        durations = torch.clamp(torch.round(torch.expm1(log_dur) / speed), min=0).long()
        inner = lengths_to_mask(token_lens - 1, tokens.size(1)) & (torch.arange(
            tokens.size(1), device=tokens.device) > 0)[None]
        durations = torch.where(inner, durations.clamp_min(1), durations)  # every token is heard
        mel, frame_lens = self.decode(h, durations, token_lens)
        mel = mel * self.mel_std + self.mel_mean
        return [mel[i, : int(frame_lens[i])] for i in range(len(sentences))]


def load_lm_into_tts(model: TtsModel, path: str | Path) -> None:
    """Initialise the text encoder from a stage-3 LM checkpoint; refuse one that does not fit."""
    state = checked_lm_state(path, "tts.lm_init", model.lm.vocab_size, model.lm.cfg,
                             user="TTS tokenizer (--tokenizer)")
    init_part(model.lm, state, "tts.lm_init")
    with torch.no_grad():  # <tts> plays the LM's sentence-start role
        model.lm.embed.weight[TTS_ID] = model.lm.embed.weight[SOS_EOS_ID]


def build_tts(cfg: ExperimentConfig, vocab_size: int, word_features=None) -> TtsModel:
    """The ``tts`` model family's builder (speechlm.base.registry); with ``tts.llm_layers`` it
    loads the LLM of ``llm.source`` as the word-feature extractor unless given one."""
    if cfg.tts.llm_layers and word_features is None:
        word_features = LLMWordFeatures(cfg.llm.source, cfg.llm.cache_dir, cfg.tts.llm_layers)
    model = TtsModel(cfg.lm, cfg.tts, vocab_size, word_features.dim if word_features else 0)
    model.word_features = word_features
    return model


class Synthesizer:
    """Text -> waveform: a trained TTS model dir plus its Griffin-Lim vocoder settings."""

    def __init__(self, model_dir: str | Path, device="cpu"):
        from speechlm.models.vocoder import GriffinLim

        from speechlm.models.experiment import load_experiment

        exp = load_experiment(model_dir, device, needs="tts", option="--model-dir")
        self.model, self.cfg, self.tokenizer = exp.model, exp.cfg, exp.tokenizer
        if self.model.word_features is not None:
            self.model.word_features.to(device)
        self.spec = mel_spec(self.cfg.tts)
        self.vocoder = GriffinLim(self.spec, iters=self.cfg.tts.griffin_lim_iters).to(device)

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    def mels(self, texts: Sequence[str], items: Sequence[str] = ()) -> List[torch.Tensor]:
        from speechlm.data.corpus import normalize_text

        ids = [encode_text(t, self.tokenizer, items[i] if items else "")
               for i, t in enumerate(texts)]
        feats = None
        if self.model.word_features is not None:
            feats = self.model.word_features.token_features(
                [normalize_text(t) for t in texts], [[self.tokenizer.id_to_piece(i) for i in s] for s in ids])
        return self.model.infer(ids, llm_feats=feats)

    def vocode(self, mels: Sequence[torch.Tensor], batch_size: int = 16) -> List[torch.Tensor]:
        """Griffin-Lim in batches of similar length (padded with silence, trimmed after)."""
        from speechlm.models.vocoder import LOG_FLOOR

        order = sorted(range(len(mels)), key=lambda i: mels[i].size(0))
        waves: List[torch.Tensor] = [torch.empty(0)] * len(mels)
        silence = float(torch.log(torch.tensor(LOG_FLOOR)))
        for start in range(0, len(order), batch_size):
            group = order[start: start + batch_size]
            t_max = max(mels[i].size(0) for i in group)
            batch = torch.full((len(group), t_max, NUM_MELS), silence, device=mels[group[0]].device)
            for row, i in enumerate(group):
                batch[row, : mels[i].size(0)] = mels[i]
            out = self.vocoder(batch).cpu()
            for row, i in enumerate(group):
                waves[i] = out[row, : (mels[i].size(0) - 1) * self.spec.hop_length]
        return waves

    def __call__(self, texts: Sequence[str], items: Sequence[str] = ()) -> List[torch.Tensor]:
        return self.vocode(self.mels(texts, items))

    @classmethod
    def from_dir(cls, model_dir: str | Path, device="cpu") -> "Synthesizer":
        """The TTS model that ``speechlm train-tts`` wrote to ``model_dir``."""
        return cls(model_dir, device)

    def synthesize(self, text: str):
        """One sentence -> ``(waveform, sample_rate)``: a float32 numpy array in [-1, 1]."""
        return self([text], ["the text"])[0].clamp(-1, 1).numpy(), self.sample_rate
