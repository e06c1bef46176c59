"""A pretrained LLM's own tokenizer (byte-level BPE) with speechlm's special tokens after its vocabulary.

The LLM's ids are never renumbered: its embedding rows stay where its pretraining put them.
speechlm's tokens take the ids right after the LLM's vocabulary, fixed in code
(:data:`LLM_SPECIAL_SYMBOLS`; ``<blk>`` = V, ``<asr>`` = V + 1, ``<tts>`` = V + 2, then the
language tokens ``<es> <fr> <it> <ru>``), and a tokenizer whose ids disagree is refused. The
sentence boundary (speechlm's ``<sos/eos>`` role) is the LLM's own document separator
(``<|endoftext|>`` for SmolLM2), so sentence starts and ends are what the LLM learnt.

Built with Hugging Face ``tokenizers`` either from a GGUF file's vocabulary and merges (GPT-2-style
byte-level BPE, with the pre-tokenizer the file names) or from a ``tokenizer.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from speechlm.base.errors import SpeechlmError
from speechlm.text import symbols as sym
from speechlm.text.tokenizer import with_language_token

log = logging.getLogger(__name__)

# Appended after the LLM's vocabulary, in this order (offset = index): never reorder, only append.
LLM_SPECIAL_SYMBOLS = (sym.BLANK, sym.ASR, sym.TTS, *sym.LANGUAGE_SYMBOLS)
BLANK_OFFSET, ASR_OFFSET, TTS_OFFSET = 0, 1, 2
FIRST_LANGUAGE_OFFSET = 3
# The LLM token that plays <sos/eos>: the first of these in its vocabulary, else its eos token.
SENTENCE_BOUNDARY_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "</s>")

# GGUF token types (llama.cpp's llama_token_type)
_CONTROL, _USER_DEFINED = 3, 4
# GGUF ``tokenizer.ggml.pre`` values whose split rule we build: individual digits, then GPT-2's regex
_DIGITS_THEN_GPT2 = ("smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva")
_GPT2 = ("gpt2", "gpt-2", "mpt", "olmo", "jais")


class LLMTokenizer:
    """An LLM's tokenizer (``tokenizers.Tokenizer``) extended with speechlm's special tokens.

    :param llm_vocab_size: rows of the LLM's embedding matrix; speechlm's tokens start there
        (a tokenizer with fewer tokens is padded with unused placeholders up to it).
    :param eos_id: the LLM's end-of-sequence id (used as the sentence boundary when none of
        :data:`SENTENCE_BOUNDARY_TOKENS` is in the vocabulary).
    :param multilingual: :meth:`encode_target` starts a target with its language token (the
        language tokens are reserved either way).
    """

    def __init__(self, hf_tokenizer, llm_vocab_size: int, source: str | Path,
                 eos_id: Optional[int] = None, multilingual: bool = False):
        from tokenizers import AddedToken

        self.hf = hf_tokenizer
        self.model_path = Path(source)
        self.llm_vocab_size = llm_vocab_size
        self.multilingual = multilingual
        have = hf_tokenizer.get_vocab_size(with_added_tokens=True)
        extended = hf_tokenizer.id_to_token(llm_vocab_size) == LLM_SPECIAL_SYMBOLS[0]  # saved by save()
        if have > llm_vocab_size and not extended:
            raise SpeechlmError(f"{source}: the tokenizer has {have} tokens but the LLM's embedding has "
                                f"{llm_vocab_size} rows: the tokenizer and the weights are not of one model")
        fill = [AddedToken(f"<|speechlm_unused_{i}|>", special=True, normalized=False)
                for i in range(have, llm_vocab_size)]
        hf_tokenizer.add_special_tokens(fill + [AddedToken(s, special=True, normalized=False)
                                                for s in LLM_SPECIAL_SYMBOLS])
        for offset, piece in enumerate(LLM_SPECIAL_SYMBOLS):
            got = hf_tokenizer.token_to_id(piece)
            if got != llm_vocab_size + offset:
                raise SpeechlmError(f"{source}: {piece!r} has id {got}, expected {llm_vocab_size + offset} "
                                    f"(right after the LLM's {llm_vocab_size} tokens); the LLM's own "
                                    f"vocabulary must not contain speechlm's tokens {LLM_SPECIAL_SYMBOLS}")
        self.blank_id = llm_vocab_size + BLANK_OFFSET
        self.asr_id = llm_vocab_size + ASR_OFFSET
        self.tts_id = llm_vocab_size + TTS_OFFSET
        self.language_ids: Dict[str, int] = {
            code: llm_vocab_size + FIRST_LANGUAGE_OFFSET + i for i, code in enumerate(sym.LANGUAGE_CODES)}
        self.sos_eos_id = self._sentence_boundary(eos_id, source)

    def _sentence_boundary(self, eos_id: Optional[int], source) -> int:
        for piece in SENTENCE_BOUNDARY_TOKENS:
            idx = self.hf.token_to_id(piece)
            if idx is not None and idx < self.llm_vocab_size:
                return idx
        if eos_id is None or not 0 <= eos_id < self.llm_vocab_size:
            raise SpeechlmError(f"{source}: the LLM has none of {SENTENCE_BOUNDARY_TOKENS} and no valid "
                                f"eos token id ({eos_id}); speechlm needs one as the sentence boundary")
        return eos_id

    # ---- the interface of speechlm.text.tokenizer.Tokenizer -----------------------------------
    @property
    def vocab_size(self) -> int:
        """The LLM's vocabulary plus speechlm's tokens: the rows the speech-LM's embedding needs."""
        return self.llm_vocab_size + len(LLM_SPECIAL_SYMBOLS)

    def id_to_piece(self, idx: int) -> str:
        return self.hf.id_to_token(int(idx))

    def pieces(self) -> List[str]:
        return [self.hf.id_to_token(i) for i in range(self.vocab_size)]

    def encode(self, text: str, item: str = "") -> List[int]:
        """Token ids of ``text`` (byte-level BPE encodes any text; no special tokens added)."""
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_target(self, text: str, language: Optional[str], item: str = "") -> List[int]:
        """:meth:`encode`, preceded by the language token when the tokenizer is multilingual."""
        return with_language_token(self.encode(text, item), language, self.language_ids,
                                   self.multilingual, item)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; speechlm's tokens and the LLM's control tokens are dropped."""
        return self.hf.decode([int(i) for i in ids if int(i) < self.llm_vocab_size],
                              skip_special_tokens=True)

    def save(self, path: str | Path) -> None:
        """Write the tokenizer, speechlm's tokens included, as a ``tokenizer.json``."""
        Path(path).write_text(self.hf.to_str(), encoding="utf-8")


def byte_level_bpe(tokens: Sequence[str], merges: Sequence[str], token_types: Sequence[int] = (),
                   pre: str = "gpt2", source: str = "the GGUF file"):
    """A ``tokenizers.Tokenizer`` from a GGUF vocabulary: GPT-2 byte-level BPE with merges
    ``"a b"``, and the split rule that ``tokenizer.ggml.pre`` names."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if pre in _DIGITS_THEN_GPT2:
        split = [pre_tokenizers.Digits(individual_digits=True)]
    elif pre in _GPT2 or not pre:
        split = []
    else:
        raise SpeechlmError(f"{source}: its tokenizer's pre-tokenizer {pre!r} is not one speechlm builds "
                            f"(it knows {', '.join(_DIGITS_THEN_GPT2 + _GPT2)}); give the model as a "
                            "Hugging Face dir with its tokenizer.json instead")
    vocab: Dict[str, int] = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    bad = [m for m, p in zip(merges, pairs) if len(p) != 2 or p[0] not in vocab or p[1] not in vocab]
    if bad:
        raise SpeechlmError(f"{source}: {len(bad)} merges name tokens not in its vocabulary "
                            f"(first: {bad[0]!r}); the file is damaged")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        split + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    types = list(token_types) or [1] * len(tokens)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == _CONTROL])
    tok.add_tokens([AddedToken(t, normalized=False) for t, ty in zip(tokens, types) if ty == _USER_DEFINED])
    return tok


def tokenizer_from_gguf_metadata(meta: dict, llm_vocab_size: int, source: str | Path,
                                 multilingual: bool = False) -> LLMTokenizer:
    """The :class:`LLMTokenizer` of a GGUF file, from its metadata
    (:func:`speechlm.base.llm_files.gguf_metadata`)."""
    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise SpeechlmError(f"{source}: its tokenizer is {model!r}; speechlm reads GPT-2-style byte-level "
                            "BPE ('gpt2') from GGUF; give a Hugging Face dir with tokenizer.json instead")
    tokens = meta.get("tokenizer.ggml.tokens") or []
    if len(tokens) != llm_vocab_size:
        raise SpeechlmError(f"{source}: its vocabulary has {len(tokens)} tokens but its embedding has "
                            f"{llm_vocab_size} rows: the file is inconsistent")
    hf = byte_level_bpe(tokens, meta.get("tokenizer.ggml.merges") or [],
                        meta.get("tokenizer.ggml.token_type") or [], meta.get("tokenizer.ggml.pre", ""),
                        str(source))
    return LLMTokenizer(hf, llm_vocab_size, source, meta.get("tokenizer.ggml.eos_token_id"), multilingual)


def tokenizer_from_json(path: str | Path, llm_vocab_size: int, eos_id: Optional[int] = None,
                        multilingual: bool = False) -> LLMTokenizer:
    """The :class:`LLMTokenizer` of a Hugging Face ``tokenizer.json``."""
    from tokenizers import Tokenizer

    try:
        hf = Tokenizer.from_file(str(path))
    except Exception as e:
        raise SpeechlmError(f"{path} is not a readable tokenizer.json ({type(e).__name__}: {e})") from None
    return LLMTokenizer(hf, llm_vocab_size, path, eos_id, multilingual)


class SpeechTokenView:
    """An :class:`LLMTokenizer` in speechlm's token layout, for the speech-LM ASR on an LLM.

    speechlm's CTC head and searches know blank, ``<sos/eos>`` ... by their fixed ids
    (:mod:`speechlm.text.symbols`: 0-4, then the language tokens when multilingual); here they
    keep those ids and the LLM's token ``i`` is ``i + offset``. :meth:`llm_rows` maps each of these
    ids to the LLM's embedding row, whose numbering is the LLM's own (``<sos/eos>`` is the LLM's
    sentence boundary, ``<asr>`` / ``<tts>`` / languages the rows after its vocabulary).
    Same interface as :class:`speechlm.text.tokenizer.Tokenizer`.
    """

    def __init__(self, llm: LLMTokenizer):
        self.llm = llm
        self.model_path = llm.model_path
        self.multilingual = llm.multilingual
        self.offset = sym.NUM_SPECIALS + (len(sym.LANGUAGE_CODES) if llm.multilingual else 0)
        self.language_ids = ({code: sym.FIRST_LANGUAGE_ID + i for i, code in enumerate(sym.LANGUAGE_CODES)}
                             if llm.multilingual else {})

    @property
    def vocab_size(self) -> int:
        return self.offset + self.llm.llm_vocab_size

    def llm_rows(self) -> List[int]:
        """The LLM embedding row of each id of this layout (length :attr:`vocab_size`)."""
        v = self.llm.llm_vocab_size
        specials = [v + BLANK_OFFSET, v + BLANK_OFFSET, self.llm.sos_eos_id, v + ASR_OFFSET, v + TTS_OFFSET]
        languages = [self.llm.language_ids[c] for c in sym.LANGUAGE_CODES] if self.multilingual else []
        return specials + languages + list(range(v))

    def id_to_piece(self, idx: int) -> str:
        idx = int(idx)
        if idx < sym.NUM_SPECIALS:
            return sym.SPECIAL_SYMBOLS[idx]
        if idx < self.offset:
            return sym.LANGUAGE_SYMBOLS[idx - sym.NUM_SPECIALS]
        return self.llm.id_to_piece(idx - self.offset)

    def pieces(self) -> List[str]:
        return [self.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, text: str, item: str = "") -> List[int]:
        return [i + self.offset for i in self.llm.encode(text, item)]

    def encode_target(self, text: str, language: Optional[str], item: str = "") -> List[int]:
        return with_language_token(self.encode(text, item), language, self.language_ids,
                                   self.multilingual, item)

    def decode(self, ids: Sequence[int]) -> str:
        return self.llm.decode([int(i) - self.offset for i in ids if int(i) >= self.offset])


def saved_tokenizer(path: str | Path) -> LLMTokenizer:
    """An :class:`LLMTokenizer` that :meth:`LLMTokenizer.save` wrote (e.g. into an exp dir): the
    LLM's vocabulary ends where speechlm's ``<blk>`` starts."""
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise SpeechlmError(f"{path} not found: the experiment was not trained on an LLM, or is incomplete")
    v = Tokenizer.from_file(str(path)).token_to_id(LLM_SPECIAL_SYMBOLS[0])
    if v is None:
        raise SpeechlmError(f"{path} has no {LLM_SPECIAL_SYMBOLS[0]}: not written by speechlm")
    return tokenizer_from_json(path, v)
