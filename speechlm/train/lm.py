"""The ``lm`` model family's trainer: text-LM pretraining (stage 3); writes validation perplexity."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import torch

from speechlm.base.config import ExperimentConfig
from speechlm.data.text_data import make_text_loader, read_lm_text
from speechlm.base.errors import SpeechlmError
from speechlm.base import checkpoint as ckpt
from speechlm.models.lm import TransformerLM, adopt_lm_architecture, asr_task_nll, lm_loss
from speechlm.models.speechlm_asr import asr_task_trained, load_lm_weights
from speechlm.train.trainer import Trainer

log = logging.getLogger("speechlm.train")


def perplexity(total_nll: float, num_tokens: int) -> float:
    """exp of the mean per-token negative log-likelihood (natural log)."""
    if num_tokens <= 0:
        raise SpeechlmError("perplexity: no tokens to evaluate")
    return math.exp(total_nll / num_tokens)


class LmTrainer(Trainer):
    """Decoder-only Transformer LM on a text file; the loss is per-token NLL."""

    kind = "lm"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, text: str | Path,
                 tokenizer_model: str | Path):
        cfg.model.kind = "lm"
        super().__init__(cfg, exp_dir, tokenizer_model)
        self.text_path = Path(text)
        self.train_sents, self.valid_sents = read_lm_text(text, self.tokenizer, cfg.lm.valid_sentences)
        self.has_dev = True
        if cfg.lm.init:
            adopt_lm_architecture(cfg, cfg.lm.init, key="lm.init")
        self.setup()

    def build_model(self) -> TransformerLM:
        model = TransformerLM(self.cfg.lm, self.tokenizer.vocab_size)
        # whether <asr> has been learnt, here or in the LM this one continues (load_lm_into)
        self.asr_task_trained = self.cfg.lm.asr_task_weight > 0
        if self.cfg.lm.init:
            state = load_lm_weights(model, self.cfg.lm.init, self.cfg.lm, key="lm.init")
            self.asr_task_trained = self.asr_task_trained or asr_task_trained(state)
            log.info("LM initialised from %s", self.cfg.lm.init)
        return model

    def extra_state(self) -> dict:
        return {"asr_task_trained": self.asr_task_trained}

    def describe_data(self) -> str:
        ntok = sum(len(s) + 1 for s in self.train_sents)
        task = ""
        if self.cfg.lm.asr_task_weight > 0:
            lm = self.cfg.lm
            task = (f"; transcription task on simulated CTC frames (weight {lm.asr_task_weight}, "
                    f"piece error rate U(0, {lm.asr_task_noise}), max repeat {lm.asr_task_max_repeat})")
        return (f"{len(self.train_sents)} training sentences ({ntok:,} tokens), "
                f"{len(self.valid_sents)} held out for validation ({self.text_path}){task}")

    def make_loader(self, train: bool):
        sents = self.train_sents if train else self.valid_sents
        dist_args = {"world_size": self.dist.world_size, "rank": self.dist.rank} if train else {}
        return make_text_loader(sents, self.cfg.lm.max_tokens, train, seed=self.cfg.train.seed,
                                sentences_per_epoch=self.cfg.lm.sentences_per_epoch, **dist_args)

    def batch_loss(self, batch: list[list[int]], model) -> tuple:
        lm = self.cfg.lm
        if lm.asr_task_weight <= 0 or not self.model.training:  # validation: plain perplexity
            return lm_loss(model, batch, self.device)  # model may be the DDP wrapper
        # Each sentence twice: as text (<sos/eos> y <sos/eos>) and as the transcript of a
        # simulated CTC frame stream ([frames] <asr> y <sos/eos>). The streams are drawn from
        # torch's generator, which the loop seeds per epoch (so a resumed run repeats them).
        loss, n = lm_loss(model, batch, self.device)
        rng = random.Random(int(torch.randint(0, 2 ** 31 - 1, ())))
        # A second batch (the streams are ~3x longer than the text): through the unwrapped
        # module, as rehearsal does; under DDP both forwards' gradients meet before the reduction.
        nll = asr_task_nll(self.model, batch, self.tokenizer.vocab_size, lm.asr_task_noise,
                           lm.asr_task_max_repeat, rng, self.device)
        return loss + lm.asr_task_weight * nll.sum(), n

    def validate(self) -> float:
        nll = super().validate()
        log.info("validation perplexity %.3f", math.exp(nll))
        return nll

    def run(self, resume: bool = False) -> Path:
        final = super().run(resume)
        # every rank: validate() all-reduces (each rank scores the whole held-out part)
        self.model.load_state_dict(ckpt.load_checkpoint(final, map_location=self.device)["model"])
        nll_per_token = self.validate()
        if self.dist.is_main:
            ppl = math.exp(nll_per_token)
            (self.exp_dir / "perplexity.txt").write_text(
                f"validation perplexity {ppl:.3f} ({len(self.valid_sents)} held-out sentences of "
                f"{self.text_path}; final.pt; per-token NLL {nll_per_token:.4f} nats, "
                f"<sos/eos> counted)\n")
            log.info("LM validation perplexity %.3f (final.pt) -> %s", ppl,
                     self.exp_dir / "perplexity.txt")
        return final
