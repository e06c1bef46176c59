"""Trainers for the speech-language pretraining tasks, on the shared :class:`Trainer` loop:

- :class:`LmTrainer`: text-LM pretraining (stage 3); writes validation perplexity.
- :class:`SpeechLMTrainer`: speech-LM ASR (stage 4), LM part from the stage-3 checkpoint.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import torch

from speechlm.config import ExperimentConfig
from speechlm.data.text_data import make_text_loader, read_lm_text
from speechlm.errors import SpeechlmError
from speechlm.models.lm import (
    LM_ARCH_KEYS,
    TransformerLM,
    asr_task_nll,
    checked_lm_state,
    lm_loss,
    sentence_nll,
)
from speechlm.models.speechlm_asr import (
    SpeechLMAsr,
    asr_task_trained,
    load_lm_into,
    load_lm_weights,
)
from speechlm.train import checkpoint as ckpt
from speechlm.train.trainer import AsrTrainer, Trainer, lr_factor

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
        lm = cfg.lm
        if lm.asr_task_weight < 0:
            raise SpeechlmError(f"lm.asr_task_weight = {lm.asr_task_weight}: must be >= 0")
        if not 0.0 <= lm.asr_task_noise <= 1.0:
            raise SpeechlmError(f"lm.asr_task_noise = {lm.asr_task_noise}: must be in [0, 1]")
        if lm.asr_task_max_repeat < 1:
            raise SpeechlmError(f"lm.asr_task_max_repeat = {lm.asr_task_max_repeat}: must be >= 1")
        if lm.init:
            adopt_lm_architecture(cfg, lm.init, key="lm.init")
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


class SpeechLMTrainer(AsrTrainer):
    """Speech-LM ASR: joint CTC + decoder loss; LM part from ``speechlm.lm_init`` when set."""

    kind = "speechlm"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, train_cuts: str | Path,
                 dev_cuts: str | Path | None, tokenizer_model: str | Path):
        cfg.model.kind = "speechlm"
        if not 0.0 <= cfg.speechlm.ctc_weight <= 1.0:
            raise SpeechlmError(f"speechlm.ctc_weight = {cfg.speechlm.ctc_weight}: must be in [0, 1]")
        if cfg.speechlm.lm_init:
            adopt_lm_architecture(cfg, cfg.speechlm.lm_init)
        if cfg.speechlm.text_weight < 0:
            raise SpeechlmError(f"speechlm.text_weight = {cfg.speechlm.text_weight}: must be >= 0")
        if cfg.speechlm.text_weight > 0 and not cfg.speechlm.text:
            raise SpeechlmError("speechlm.text_weight > 0 needs speechlm.text: a text file, one "
                                "sentence a line (the recipe's LM text, e.g. data/text/lm_text.txt)")
        super().__init__(cfg, exp_dir, train_cuts, dev_cuts, tokenizer_model)
        self.text_sents: list[list[int]] = []
        self._text_batches = None  # iterator over the current pass of the text
        self._text_pass = 0  # passes started (the sampler's epoch)
        if cfg.speechlm.text_weight > 0:
            # the LM's own held-out sentences (lm.valid_sentences, the file's end) stay unseen
            self.text_sents, _ = read_lm_text(cfg.speechlm.text, self.tokenizer,
                                              cfg.lm.valid_sentences)

    def build_model(self) -> SpeechLMAsr:
        from speechlm.data.features import compute_cmvn

        model = SpeechLMAsr(self.cfg.encoder, self.cfg.lm, self.cfg.speechlm, self.tokenizer.vocab_size)
        model.set_cmvn(*compute_cmvn(self.train_cuts))
        if self.cfg.speechlm.lm_init:
            load_lm_into(model, self.cfg.speechlm.lm_init, self.cfg.lm)
        return model

    def setup(self) -> None:
        super().setup()
        # Two parameter groups: the LM part has its own learning rate and may be frozen at first.
        cfg = self.cfg
        lm_params = list(self.model.lm.parameters())
        lm_ids = {id(p) for p in lm_params}
        other = [p for p in self.model.parameters() if id(p) not in lm_ids]
        self.optimizer = torch.optim.AdamW(
            [{"params": other, "lr": cfg.optim.lr},
             {"params": lm_params, "lr": cfg.optim.lr * cfg.speechlm.lm_lr_scale}],
            lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        total = self.steps_per_epoch * cfg.train.num_epochs
        freeze = cfg.speechlm.freeze_lm_steps

        def base(s):
            return lr_factor(s, cfg.optim.warmup_steps, total, cfg.optim.final_lr_ratio)

        def lm_factor(s):
            return 0.0 if s < freeze else lr_factor(s - freeze, cfg.optim.warmup_steps,
                                                    max(total - freeze, 1), cfg.optim.final_lr_ratio)

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [base, lm_factor])

    def describe_data(self) -> str:
        init = self.cfg.speechlm.lm_init or "random init"
        text = ""
        if self.text_sents:
            text = (f"; text rehearsal: {len(self.text_sents)} sentences of {self.cfg.speechlm.text}, "
                    f"weight {self.cfg.speechlm.text_weight}")
        return f"{super().describe_data()}; LM part: {init}{text}"

    def next_text_batch(self) -> list[list[int]]:
        """The next text-only batch; passes over the text go on across epochs (deterministic)."""
        while True:
            if self._text_batches is None:
                self._text_pass += 1
                loader, sampler = make_text_loader(
                    self.text_sents, self.cfg.speechlm.text_max_tokens, train=True,
                    seed=self.cfg.train.seed, world_size=self.dist.world_size, rank=self.dist.rank)
                sampler.set_epoch(self._text_pass)
                self._text_batches = iter(loader)
            batch = next(self._text_batches, None)
            if batch is not None:
                return batch
            self._text_batches = None

    def batch_loss(self, batch: dict, model) -> tuple:
        feats = batch["feats"].to(self.device)
        lens = batch["feat_lens"].to(self.device)
        targets = [self.targets[t] for t in batch["texts"]]
        ctc, att = model(feats, lens, targets)  # through DDP's forward when distributed
        w = self.cfg.speechlm.ctc_weight
        loss = w * ctc + (1 - w) * att
        if self.text_sents and self.model.training:
            # Rehearsal: the decoder keeps modelling plain text (<sos/eos> y <sos/eos>) while it
            # learns to read speech; mean NLL per sentence, scaled to the speech batch.
            text = self.next_text_batch()
            text_nll = sentence_nll(self.model.lm, text, self.device).mean()
            loss = loss + self.cfg.speechlm.text_weight * (1 - w) * len(targets) * text_nll
        return loss, len(targets)


def adopt_lm_architecture(cfg: ExperimentConfig, lm_path: str | Path,
                          key: str = "speechlm.lm_init") -> None:
    """The LM part's architecture is the stage-3 LM's: copy it into ``cfg.lm`` (so the resolved
    config that decoding reads is right) instead of asking the user to repeat it. ``key`` is
    the config option that named ``lm_path`` (for messages)."""
    saved = checked_lm_state(lm_path, key)["config"].get("lm", {})
    for arch_key in LM_ARCH_KEYS:
        if arch_key in saved:
            setattr(cfg.lm, arch_key, saved[arch_key])
