"""The ``ctc`` model family's trainer: Conformer-CTC on precomputed fbank cuts; the encoder may
start from a pretrained checkpoint (``encoder.init``, e.g. BEST-RQ's) with its own learning
rate, layer-wise decay and frozen steps (``encoder.lr_scale``, ``layer_lr_decay``,
``freeze_steps``). The ``speechlm`` family's trainer inherits all of it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional

from lhotse import CutSet

from speechlm.base.config import ExperimentConfig
from speechlm.base.errors import SpeechlmError
from speechlm.data.datamodule import drop_long_cuts, make_loader
from speechlm.data.features import check_features, compute_cmvn, load_cuts
from speechlm.models.asr import CTCModel, init_encoder
from speechlm.models.experiment import build_model
from speechlm.text.tokenizer import Tokenizer
from speechlm.train.trainer import ParamGroup, Trainer

log = logging.getLogger("speechlm.train")


def check_transcripts(cuts: CutSet, tokenizer: Tokenizer, where: str) -> Dict[str, List[int]]:
    """Encode every transcript up front, by cut id: a bad character fails now, naming the cut, not
    mid-epoch. With a multilingual tokenizer a target starts with the cut's language token."""
    encoded = {}
    for cut in cuts:
        text = " ".join(s.text for s in cut.supervisions)
        if not text.strip():
            raise SpeechlmError(f"{where}: cut {cut.id} has an empty transcript; remove it in data prep")
        language = cut.supervisions[0].language
        encoded[cut.id] = tokenizer.encode_target(text, language, item=f"{where}, cut {cut.id}")
    return encoded


class CtcTrainer(Trainer):
    """CTC speech recognition on precomputed fbank cuts."""

    kind = "asr"
    stall_advice = ("set model.ctc_blank_bias=3 if it is 0 (the CTC head then starts out predicting "
                    "blank, where training has to end up; egs/yesno/RESULTS.md), " + Trainer.stall_advice)

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, train_cuts: str | Path,
                 dev_cuts: Optional[str | Path], tokenizer_model: str | Path):
        super().__init__(cfg, exp_dir, tokenizer_model)
        self.train_cuts = self.read_cuts(train_cuts)
        limit = cfg.data.max_cut_duration
        if limit > 0:
            kept = self.train_cuts.filter(lambda c: c.duration <= limit).to_eager()
            log.info("data.max_cut_duration=%g: %d of %d training cuts kept", limit, len(kept),
                     len(self.train_cuts))
            self.train_cuts = kept
        self.dev_cuts = self.read_cuts(dev_cuts) if dev_cuts else None
        self.has_dev = self.dev_cuts is not None
        self.targets = check_transcripts(self.train_cuts, self.tokenizer, str(train_cuts))
        if self.dev_cuts is not None:
            self.targets.update(check_transcripts(self.dev_cuts, self.tokenizer, str(dev_cuts)))
        self.setup()

    def read_cuts(self, path: str | Path) -> CutSet:
        """A cut manifest checked before training: cuts, features of the encoder's dimension,
        none longer than a batch (those are left out, with a warning)."""
        cuts = load_cuts(path)
        if len(cuts) == 0:
            raise SpeechlmError(f"{path}: no cuts")
        cuts = drop_long_cuts(cuts, self.cfg.data.max_duration, str(path))
        check_features(cuts, self.cfg.encoder.num_mel_bins, str(path))
        return cuts

    def build_model(self) -> CTCModel:
        """The family's model (registry builder) with CMVN from the training cuts."""
        model = build_model(self.cfg, self.tokenizer.vocab_size)
        if not self.cfg.data.speaker_cmvn:  # else the batches come normalised per speaker
            model.set_cmvn(*compute_cmvn(self.train_cuts))
        if self.cfg.encoder.init:  # also its CMVN: the encoder learnt on features normalised so
            init_encoder(model, self.cfg.encoder.init, self.cfg.encoder,
                         speaker_cmvn=self.cfg.data.speaker_cmvn)
            log.info("encoder and feature normalisation initialised from %s", self.cfg.encoder.init)
        return model

    def special_param_groups(self) -> List[ParamGroup]:
        """The encoder's own group(s) when its learning rate or freezing differs from the rest:
        ``encoder.lr_scale``, ``freeze_steps``, and ``layer_lr_decay`` (one group per block)."""
        enc = self.cfg.encoder
        if enc.lr_scale == 1.0 and enc.freeze_steps == 0 and enc.layer_lr_decay == 1.0:
            return []
        encoder = self.model.encoder
        if enc.layer_lr_decay == 1.0:
            return [(list(encoder.parameters()), enc.lr_scale, enc.freeze_steps)]
        n = len(encoder.blocks)
        parts = [encoder.subsampling] + list(encoder.blocks)
        return [(list(part.parameters()), enc.lr_scale * enc.layer_lr_decay ** (n - i), enc.freeze_steps)
                for i, part in enumerate(parts)]

    def describe_data(self) -> str:
        hours = sum(c.duration for c in self.train_cuts) / 3600
        enc = self.cfg.encoder
        init = (f"; encoder from {enc.init} (lr x{enc.lr_scale:g}, layer decay {enc.layer_lr_decay:g}, "
                f"frozen {enc.freeze_steps} steps)") if enc.init else ""
        return f"{len(self.train_cuts)} training cuts ({hours:.2f} h){init}"

    def make_loader(self, train: bool):
        cuts = self.train_cuts if train else self.dev_cuts
        return make_loader(cuts, self.cfg.data, train=train, seed=self.cfg.train.seed,
                           world_size=self.dist.world_size, rank=self.dist.rank,
                           speaker_cmvn=self.speaker_cmvn(train, cuts, self.cfg.data))

    def batch_loss(self, batch: Dict, model) -> tuple:
        feats = batch["feats"].to(self.device)
        lens = batch["feat_lens"].to(self.device)
        log_probs, out_lens = model(feats, lens)
        targets = [self.targets[i] for i in batch["ids"]]
        return self.model.ctc_loss(log_probs, out_lens, targets), len(targets)
