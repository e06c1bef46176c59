"""Language tokens (speechlm.text.symbols): fixed ids 5-8 only in a tokenizer trained with
languages=True; a tokenizer trained without them is unchanged, so existing recipes keep their ids."""

import random

import pytest

from speechlm.base.errors import SpeechlmError
from speechlm.text import symbols as sym
from speechlm.text.tokenizer import Tokenizer, train_sentencepiece

_rng = random.Random(0)
YESNO = [" ".join(_rng.choice(["yes", "no"]) for _ in range(8)) for _ in range(30)]
FOUR = ["hola mundo", "bonjour le monde", "ciao mondo", "привет мир"] * 10


def test_tokenizer_without_languages_is_unchanged(tmp_path):
    """The yesno recipe's tokenizer (vocab 13), as it was before language tokens existed."""
    tok = Tokenizer(train_sentencepiece(YESNO, tmp_path, vocab_size=13))
    assert tok.pieces() == ["<blk>", "<unk>", "<sos/eos>", "<asr>", "<tts>", "▁yes", "o", "n", "y",
                            "s", "e", "▁", "▁no"]
    assert tok.language_ids == {} and tok.encode("yes no") == [5, 12]
    assert tok.encode_target("yes no", "English") == [5, 12]  # language ignored
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString((tmp_path / "bpe.model").read_bytes())
    assert list(proto.trainer_spec.control_symbols) == ["<asr>", "<tts>"]


def test_language_tokens_at_fixed_ids(tmp_path):
    tok = Tokenizer(train_sentencepiece(FOUR, tmp_path, vocab_size=40, languages=True))
    assert tok.pieces()[:9] == list(sym.SPECIAL_SYMBOLS + sym.LANGUAGE_SYMBOLS)
    assert tok.language_ids == {"es": 5, "fr": 6, "it": 7, "ru": 8}
    plain = tok.encode("привет мир")
    assert tok.encode_target("привет мир", "Russian") == [8, *plain]
    assert tok.encode_target("привет мир", "ru") == [8, *plain]
    assert tok.decode([8, *plain]) == "привет мир"  # the language token is not text
    assert min(plain) >= 9
    with pytest.raises(SpeechlmError, match="cut x has no language.*multilingual"):
        tok.encode_target("hola", None, item="cut x")
    with pytest.raises(SpeechlmError, match="unknown language code 'English'"):
        tok.encode_target("hola", "English")
