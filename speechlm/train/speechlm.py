"""The ``speechlm`` model family's trainer: speech-LM ASR (stage 4), joint CTC + decoder loss,
the LM part from the stage-3 checkpoint (``speechlm.lm_init``)."""

from __future__ import annotations

from pathlib import Path

from speechlm.base.config import ExperimentConfig
from speechlm.base.errors import SpeechlmError
from speechlm.data.text_data import make_text_loader, read_lm_text
from speechlm.models.lm import adopt_lm_architecture, sentence_nll
from speechlm.models.speechlm_asr import SpeechLMAsr, load_lm_into
from speechlm.train.ctc import CtcTrainer


class SpeechLMTrainer(CtcTrainer):
    """Speech-LM ASR: joint CTC + decoder loss; LM part from ``speechlm.lm_init`` when set."""

    kind = "speechlm"
    family = "speechlm"  # model.kind

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, train_cuts: str | Path,
                 dev_cuts: str | Path | None, tokenizer_model: str | Path):
        cfg.model.kind = self.family
        if cfg.speechlm.lm_init:
            adopt_lm_architecture(cfg, cfg.speechlm.lm_init)
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
        model = super().build_model()  # the speechlm family's builder, CMVN
        if self.cfg.speechlm.lm_init:
            load_lm_into(model, self.cfg.speechlm.lm_init, self.cfg.lm)
        return model

    def special_param_groups(self):
        # the LM part has its own learning rate and may be frozen at first (then the encoder's)
        lm = (list(self.model.lm.parameters()), self.cfg.speechlm.lm_lr_scale,
              self.cfg.speechlm.freeze_lm_steps)
        return [lm] + super().special_param_groups()

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
        targets = [self.targets[i] for i in batch["ids"]]
        ctc, att = model(feats, lens, targets)  # through DDP's forward when distributed
        w = self.cfg.speechlm.ctc_weight
        loss = w * ctc + (1 - w) * att
        # logged apart, unweighted (per utterance): which of the two losses a model does not learn
        parts = {"ctc": ctc.detach(), "decoder": att.detach()}
        if self.text_sents and self.model.training:
            # Rehearsal: the decoder keeps modelling plain text (<sos/eos> y <sos/eos>) while it
            # learns to read speech; mean NLL per sentence, scaled to the speech batch.
            text = self.next_text_batch()
            text_nll = sentence_nll(self.model.lm, text, self.device).mean()
            loss = loss + self.cfg.speechlm.text_weight * (1 - w) * len(targets) * text_nll
            parts["text"] = text_nll.detach() * len(targets)
        return loss, len(targets), parts
