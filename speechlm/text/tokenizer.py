"""Tokenizers over one token space whose special ids are fixed in :mod:`speechlm.text.symbols`.

A sentencepiece model is trained so that its first ids are exactly the special symbols
(``<blk>`` is sentencepiece's pad, ``<unk>`` its unk, ``<sos/eos>`` its bos, the task markers
control symbols); loading a model whose ids disagree is refused, so a checkpoint can never be
decoded with a silently shifted vocabulary. A multilingual model (``languages=True``) also has the
language tokens of :mod:`speechlm.text.symbols` as control symbols right after them; a target
sequence then starts with its language token (:meth:`Tokenizer.encode_target`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import sentencepiece as spm

from speechlm.base.errors import SpeechlmError
from speechlm.text import symbols as sym
from speechlm.text.normalize import language_code

log = logging.getLogger(__name__)


def with_language_token(ids: List[int], language: Optional[str], language_ids: Dict[str, int],
                        multilingual: bool, item: str = "", tokenizer: str = "") -> List[int]:
    """A target's ids, preceded by ``language``'s token (a code or a name) when the tokenizer is
    ``multilingual``; a multilingual target without a language is an error naming ``item``."""
    if not multilingual:
        return ids
    if not language:
        raise SpeechlmError(f"{item or 'a transcript'} has no language, but the tokenizer "
                            f"{tokenizer + ' ' if tokenizer else ''}is multilingual: set the "
                            "supervisions' language")
    return [language_ids[language_code(language)], *ids]


class Tokenizer:
    """A sentencepiece model with speechlm's fixed special ids."""

    def __init__(self, model_path: str | Path):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise SpeechlmError(
                f"tokenizer model {self.model_path} not found: run the recipe's stage 2 "
                "(speechlm train-tokenizer) first"
            )
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        for idx, piece in enumerate(sym.SPECIAL_SYMBOLS):
            if self.sp.id_to_piece(idx) != piece:
                raise SpeechlmError(
                    f"{self.model_path}: id {idx} is {self.sp.id_to_piece(idx)!r}, expected "
                    f"{piece!r}; this model was not trained by speechlm train-tokenizer"
                )
        self.language_ids = {}
        if self.sp.id_to_piece(sym.FIRST_LANGUAGE_ID) == sym.LANGUAGE_SYMBOLS[0]:
            for i, (code, piece) in enumerate(zip(sym.LANGUAGE_CODES, sym.LANGUAGE_SYMBOLS)):
                if self.sp.id_to_piece(sym.FIRST_LANGUAGE_ID + i) != piece:
                    raise SpeechlmError(f"{self.model_path}: id {sym.FIRST_LANGUAGE_ID + i} is "
                                        f"{self.sp.id_to_piece(sym.FIRST_LANGUAGE_ID + i)!r}, expected "
                                        f"the language token {piece!r}; retrain it with "
                                        "speechlm train-tokenizer --languages")
                self.language_ids[code] = sym.FIRST_LANGUAGE_ID + i

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def id_to_piece(self, idx: int) -> str:
        return self.sp.id_to_piece(idx)

    def pieces(self) -> List[str]:
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, text: str, item: str = "") -> List[int]:
        """Token ids of ``text``; characters the model cannot encode are an error naming ``item``."""
        ids = self.sp.encode(text)
        if sym.UNK_ID in ids:
            pieces = self.sp.encode(text, out_type=str)
            bad = sorted({p for p, i in zip(pieces, ids) if i == sym.UNK_ID})
            where = f" in {item}" if item else ""
            raise SpeechlmError(
                f"text{where} has characters the tokenizer {self.model_path} cannot encode: "
                f"{bad} (text: {text!r}); normalise the transcript or retrain the tokenizer "
                "on text that contains them"
            )
        return ids

    def encode_target(self, text: str, language: Optional[str], item: str = "") -> List[int]:
        """The training target of a transcript: :meth:`encode`, preceded by the language token
        of ``language`` (a code or a name, e.g. ``es`` or ``Spanish``) when this tokenizer has
        language tokens; a tokenizer without them ignores ``language``."""
        return with_language_token(self.encode(text, item), language, self.language_ids,
                                   bool(self.language_ids), item, str(self.model_path))

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) >= sym.NUM_SPECIALS])


def train_sentencepiece(
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 256,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    languages: bool = False,
) -> Path:
    """Train ``out_dir/bpe.model`` (with ``bpe.vocab``) from ``texts``; returns the model path.
    ``languages``: also reserve the language tokens (ids 5-8, see :mod:`speechlm.text.symbols`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [t.strip() for t in texts if t.strip()]
    if not lines:
        raise SpeechlmError(f"no text to train the tokenizer in {out_dir}: the training text is empty")
    text_file = out_dir / "train_text.txt"
    text_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefix = out_dir / "bpe"
    try:
        _train(text_file, prefix, vocab_size, model_type, character_coverage, languages)
    except RuntimeError as e:  # sentencepiece reports e.g. a vocabulary too large for the text
        raise SpeechlmError(
            f"tokenizer training on {text_file} failed: {str(e).split('] ')[-1]} "
            "(change --vocab-size)"
        ) from None
    model = prefix.with_suffix(".model")
    pieces = Tokenizer(model).vocab_size  # loading verifies the fixed ids
    log.info("tokenizer: %s (%d pieces)", model, pieces)
    return model


def _train(text_file: Path, prefix: Path, vocab_size: int, model_type: str,
           character_coverage: float, languages: bool = False) -> None:
    spm.SentencePieceTrainer.train(
        input=str(text_file),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=sym.BLANK_ID,
        pad_piece=sym.BLANK,
        unk_id=sym.UNK_ID,
        unk_piece=sym.UNK,
        bos_id=sym.SOS_EOS_ID,
        bos_piece=sym.SOS_EOS,
        eos_id=-1,
        control_symbols=[sym.ASR, sym.TTS, *(sym.LANGUAGE_SYMBOLS if languages else ())],
        hard_vocab_limit=False,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        minloglevel=2,
    )
