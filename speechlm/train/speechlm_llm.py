"""The ``speechlm-llm`` model family's trainer: the ``speechlm`` trainer (joint CTC + decoder loss,
two learning rates, optional text rehearsal) with a pretrained LLM as the decoder and the LLM's
tokenizer (``llm.*``); ``--tokenizer`` is not used."""

from __future__ import annotations

import logging
from pathlib import Path

from speechlm.base.config import ExperimentConfig
from speechlm.base.errors import SpeechlmError
from speechlm.models.speechlm_llm import llm_speech_tokenizer
from speechlm.train.ctc import CtcTrainer
from speechlm.train.speechlm import SpeechLMTrainer

log = logging.getLogger("speechlm.train")


class SpeechLLMTrainer(SpeechLMTrainer):
    kind = "speechlm-llm"
    family = "speechlm-llm"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, train_cuts: str | Path,
                 dev_cuts: str | Path | None, tokenizer_model: str | Path):
        if cfg.speechlm.lm_init:
            raise SpeechlmError("speechlm.lm_init names a tiny text-LM checkpoint; model.kind speechlm-llm "
                                "takes its decoder from llm.source instead: leave speechlm.lm_init empty")
        super().__init__(cfg, exp_dir, train_cuts, dev_cuts, tokenizer_model)

    def load_tokenizer(self, tokenizer_model):
        if tokenizer_model:
            log.info("--tokenizer %s is not used: speechlm-llm uses the tokenizer of its LLM (llm.source = %s)",
                     tokenizer_model, self.cfg.llm.source)
        return llm_speech_tokenizer(self.cfg)

    def save_tokenizer(self) -> None:
        self.tokenizer.llm.save(self.exp_dir / "tokenizer.json")

    def model_state(self) -> dict:
        frozen = set(self.model.frozen_keys())
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def extra_state(self) -> dict:
        # Checkpoints hold what training changes; the frozen LLM (0.5 GB for SmolLM2) is read
        # again from llm.source, checked against this digest, when the model is loaded.
        return {"from_source_keys": self.model.frozen_keys(), "source_digest": self.model.source_digest(),
                "source_description": f"llm.source = {self.cfg.llm.source}"}

    def describe_data(self) -> str:
        llm = self.cfg.llm
        how = f"LoRA rank {llm.lora_rank} on {','.join(llm.lora_targets)}" if llm.finetune == "lora" else llm.finetune
        return f"{CtcTrainer.describe_data(self)}; decoder: LLM {llm.source} ({how})"
