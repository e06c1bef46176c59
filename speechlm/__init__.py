"""speechlm: speech-language pretraining toolkit (text-LM pretraining, ASR/TTS fine-tuning)."""

__version__ = "0.1.0"
