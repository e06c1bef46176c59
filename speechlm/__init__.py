"""speechlm: speech-language pretraining toolkit (text-LM pretraining, ASR/TTS fine-tuning).

``from speechlm import Recognizer, Synthesizer`` uses trained models (see :mod:`speechlm.api`);
they are imported on first use, so ``import speechlm`` itself loads nothing heavy.
"""

__version__ = "0.1.0"

_LAZY = {"Recognizer": "speechlm.api", "Synthesizer": "speechlm.api", "Transcript": "speechlm.api"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'speechlm' has no attribute {name!r}")
