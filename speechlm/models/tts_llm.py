"""A pretrained LLM as a source of word context for the TTS text encoder (``tts.llm_layers > 0``).

The TTS model speaks the recipe's own tokens: its durations come from the CTC forced alignment,
which uses them, so the LLM cannot simply replace the text encoder's embedding (its byte-level BPE
cuts words elsewhere). Instead the frozen LLM (``llm.source``, SmolLM2-135M by default) reads the
sentence, and each word's vector in context -- the hidden state after the LLM's first
``tts.llm_layers`` blocks, averaged over the word's LLM tokens -- is added, through a learned
projection, to the embedding of every recipe token of that word, before the bidirectional text
encoder. This is how BERT-feature TTS conditions a phoneme encoder on word-level context
(Hayashi et al. 2019, "Pre-trained text embeddings for enhanced text-to-speech synthesis").

The LLM is frozen, so a sentence's features never change: training computes them once per
utterance; synthesis computes them for the sentences it is given. The LLM stays out of the
checkpoint (0.5 GB for SmolLM2); the checkpoint holds a fingerprint of its weights, and a model is
only loaded onto the LLM it was trained with.
"""

from __future__ import annotations

import hashlib
import logging
from typing import List, Sequence

import torch
import torch.nn.functional as F

from speechlm.base.errors import SpeechlmError

log = logging.getLogger(__name__)

WORD_START = "\u2581"  # sentencepiece's word-start mark


def token_words(pieces: Sequence[str], text: str) -> List[int]:
    """Word index (in ``text.split()``) of each sentencepiece piece of ``text``: a piece that
    starts with the word-start mark opens the next word."""
    words, out = -1, []
    for p in pieces:
        if p.startswith(WORD_START) or words < 0:
            words += 1
        out.append(words)
    if words + 1 != len(text.split()):
        raise SpeechlmError(f"text {text!r}: its {len(pieces)} tokens make {words + 1} words but it has "
                            f"{len(text.split())}; tts.llm_layers needs a sentencepiece tokenizer that "
                            "marks word starts (the recipe's data/lang_bpe/bpe.model)")
    return out


def char_words(text: str) -> List[int]:
    """Word index of each character of ``text`` (a space belongs to the word after it)."""
    out, w = [], 0
    for i, ch in enumerate(text):
        if ch == " " and i > 0 and text[i - 1] != " ":
            w += 1
        out.append(w)
    return out


class LLMWordFeatures:
    """The first ``num_layers`` blocks of a frozen LLM -> one vector per word of a sentence.

    :param source: ``llm.source`` (``smollm2``, a ``.gguf``, an HF model dir or hub id).
    :param key: the option that asked for the LLM (for messages).
    """

    def __init__(self, source: str, cache_dir: str, num_layers: int, key: str = "tts.llm_layers"):
        from speechlm.models.llm_weights import load_llm

        llm, tokenizer = load_llm(source, cache_dir)
        if not 1 <= num_layers <= len(llm.layers):
            raise SpeechlmError(f"{key} = {num_layers}: the LLM {source} has {len(llm.layers)} blocks; "
                                f"give 1..{len(llm.layers)} (or 0 for no LLM features)")
        llm.keep_layers(num_layers)
        for p in llm.parameters():
            p.requires_grad_(False)
        self.llm, self.tokenizer = llm.eval(), tokenizer
        self.source, self.num_layers = source, num_layers

    @property
    def dim(self) -> int:
        return self.llm.d_model

    def to(self, device) -> "LLMWordFeatures":
        self.llm.to(device)
        return self

    @torch.no_grad()
    def digest(self) -> str:
        """A fingerprint of the weights the features come from (embeddings' first rows, the first
        and the last kept block's query projection) and of how many blocks are used."""
        h = hashlib.sha1(str(self.num_layers).encode())
        for t in (self.llm.embed_tokens.weight[:64], self.llm.layers[0].self_attn.q_proj.weight,
                  self.llm.layers[-1].self_attn.q_proj.weight):
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @torch.no_grad()
    def words(self, texts: Sequence[str], batch_size: int = 16) -> List[torch.Tensor]:
        """``(num_words, dim)`` per text (normalised: lower case, single spaces), float32 on the
        CPU. The LLM sees the sentence-boundary token first, then the text; each word's vector is
        the layer-normalised mean of its LLM tokens' hidden states."""
        device = self.llm.embed_tokens.weight.device
        encs = []
        for text in texts:
            enc = self.tokenizer.hf.encode(text, add_special_tokens=False)
            encs.append((enc.ids, enc.offsets))
        out: List[torch.Tensor] = [torch.empty(0)] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encs[i][0]))
        for start in range(0, len(order), batch_size):
            group = order[start: start + batch_size]
            lens = torch.tensor([len(encs[i][0]) + 1 for i in group])
            ids = torch.zeros(len(group), int(lens.max()), dtype=torch.long)
            for row, i in enumerate(group):
                ids[row, : lens[row]] = torch.tensor([self.tokenizer.sos_eos_id, *encs[i][0]])
            hidden = self.llm.hidden_states(self.llm.embed_tokens(ids.to(device)), lens.to(device))
            hidden = F.layer_norm(hidden.float(), (hidden.size(-1),)).cpu()
            for row, i in enumerate(group):
                out[i] = self._pool(texts[i], encs[i][1], hidden[row, 1: lens[row]])
        return out

    @staticmethod
    def _pool(text: str, offsets, hidden: torch.Tensor) -> torch.Tensor:
        cw = char_words(text)
        n_words = len(text.split())
        index = torch.tensor([cw[min(max(e - 1, s), len(cw) - 1)] for s, e in offsets], dtype=torch.long)
        sums = torch.zeros(n_words, hidden.size(-1)).index_add_(0, index, hidden)
        counts = torch.bincount(index, minlength=n_words)
        if bool((counts == 0).any()):
            raise SpeechlmError(f"text {text!r}: the LLM tokenizer gives no token for word "
                                f"{int((counts == 0).nonzero()[0])}; cannot take its LLM features")
        return sums / counts[:, None]

    def token_features(self, texts: Sequence[str], token_pieces: Sequence[Sequence[str]],
                       batch_size: int = 16) -> List[torch.Tensor]:
        """Per text, ``(len(pieces) + 2, dim)``: each recipe token gets its word's vector; the
        ``<tts>`` and ``<sos/eos>`` positions around them get zeros."""
        feats = []
        for text, pieces, words in zip(texts, token_pieces, self.words(texts, batch_size)):
            idx = torch.tensor(token_words(pieces, text), dtype=torch.long)
            zero = words.new_zeros(1, words.size(1))
            feats.append(torch.cat([zero, words[idx], zero]))
        return feats
