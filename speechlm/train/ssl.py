"""The ``ssl-bestrq`` model family's trainer: BEST-RQ pretraining of the Conformer encoder on
fbank cuts whose text, if any, is never read (recipe stage 3; ``speechlm train-ssl``).

Validation (``--dev-cuts``, else ``ssl.valid_cuts`` held out from the training cuts) uses the
same masks every epoch, so its loss and masked-prediction accuracy compare across epochs; both
are logged and written to tensorboard, and the final model's go to ``EXP_DIR/masked_accuracy.txt``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from lhotse import CutSet

from speechlm.base import checkpoint as ckpt
from speechlm.base.config import ExperimentConfig
from speechlm.base.errors import SpeechlmError
from speechlm.data.datamodule import drop_long_cuts, make_loader
from speechlm.data.features import check_features, compute_cmvn, load_cuts
from speechlm.models.asr import init_encoder
from speechlm.models.ssl import BestRqModel, build_bestrq
from speechlm.train.trainer import Trainer

log = logging.getLogger("speechlm.train")

VALID_MASK_SEED = 1234  # validation masks and noise: the same every epoch


def chunked(cuts: CutSet, seconds: float) -> CutSet:
    """Cuts longer than ``seconds`` cut into windows of that length (long unlabeled recordings),
    a last window under a second dropped; shorter cuts as they are."""
    if seconds <= 0 or all(c.duration <= seconds for c in cuts):
        return cuts
    out = []
    for cut in cuts:
        if cut.duration <= seconds:
            out.append(cut)
        else:
            out.extend(w for w in cut.cut_into_windows(duration=seconds) if w.duration >= 1.0)
    log.info("ssl.chunk_duration=%g: %d cuts -> %d", seconds, len(cuts), len(out))
    return CutSet.from_cuts(out)


def stable_key(cut_id: str) -> str:
    """A fixed pseudo-random order of cut ids (not by name: that would hold out one speaker)."""
    return hashlib.sha1(cut_id.encode("utf-8")).hexdigest()


def combined(sets: List[CutSet], paths: Sequence) -> CutSet:
    """One CutSet of several manifests (e.g. a corpus's unlabeled audio and its training
    audio); an id in two of them is an error naming both."""
    if len(sets) == 1:
        return sets[0]
    seen: Dict[str, str] = {}
    for cuts, path in zip(sets, paths):
        for cut in cuts:
            if cut.id in seen:
                raise SpeechlmError(f"--train-cuts: cut {cut.id} is in both {seen[cut.id]} and {path}; "
                                    "give each audio once")
            seen[cut.id] = str(path)
    return CutSet.from_cuts(c for cuts in sets for c in cuts)


class BestRqTrainer(Trainer):
    """Masked prediction of frozen random-projection labels; no tokenizer, no text."""

    kind = "ssl"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path,
                 train_cuts: str | Path | Sequence[str | Path], dev_cuts: Optional[str | Path] = None):
        cfg.model.kind = "ssl-bestrq"
        super().__init__(cfg, exp_dir, None)
        paths = [train_cuts] if isinstance(train_cuts, (str, Path)) else list(train_cuts)
        self.train_path = ", ".join(map(str, paths))
        cuts = combined([self.read_cuts(p) for p in paths], paths)
        if dev_cuts:
            self.dev_cuts = self.read_cuts(dev_cuts)
            self.dev_what = str(dev_cuts)
        else:
            n = min(cfg.ssl.valid_cuts, len(cuts) // 10)
            held = set(sorted((c.id for c in cuts), key=stable_key)[:n])  # the same on every machine
            self.dev_cuts = CutSet.from_cuts(c for c in cuts if c.id in held) if n else None
            cuts = CutSet.from_cuts(c for c in cuts if c.id not in held) if n else cuts
            self.dev_what = f"{n} cuts held out of {self.train_path}"
        self.train_cuts = cuts
        self.has_dev = self.dev_cuts is not None and len(self.dev_cuts) > 0
        self.data_cfg = dataclasses.replace(cfg.data, spec_augment=False)  # masking is the task
        self.valid_correct = 0.0
        self.setup()

    def read_cuts(self, path: str | Path) -> CutSet:
        cuts = load_cuts(path)
        if len(cuts) == 0:
            raise SpeechlmError(f"{path}: no cuts")
        cuts = chunked(cuts, self.cfg.ssl.chunk_duration)
        cuts = drop_long_cuts(cuts, self.cfg.data.max_duration, str(path))
        check_features(cuts, self.cfg.encoder.num_mel_bins, str(path))
        return cuts

    def build_model(self) -> BestRqModel:
        model = build_bestrq(self.cfg)
        if not self.cfg.data.speaker_cmvn:  # else the batches come normalised per speaker
            model.set_cmvn(*compute_cmvn(self.train_cuts))
        if self.cfg.encoder.init:  # continued pretraining (its CMVN too)
            init_encoder(model, self.cfg.encoder.init, self.cfg.encoder,
                         speaker_cmvn=self.cfg.data.speaker_cmvn)
            log.info("encoder initialised from %s", self.cfg.encoder.init)
        return model

    def describe_data(self) -> str:
        hours = sum(c.duration for c in self.train_cuts) / 3600
        s = self.cfg.ssl
        dev = f"validation: {self.dev_what}" if self.has_dev else "no validation set"
        return (f"{len(self.train_cuts)} unlabeled training cuts ({hours:.2f} h, {self.train_path}); "
                f"{dev}; BEST-RQ {s.num_codebooks} x {s.codebook_size} labels (dim {s.codebook_dim}, "
                f"seed {s.quantizer_seed}), mask p {s.mask_prob:g} x {s.mask_span} frames")

    def extra_state(self) -> Dict:
        return {"ssl_hours": sum(c.duration for c in self.train_cuts) / 3600}

    def make_loader(self, train: bool):
        cuts = self.train_cuts if train else self.dev_cuts
        return make_loader(cuts, self.data_cfg, train=train, seed=self.cfg.train.seed,
                           world_size=self.dist.world_size, rank=self.dist.rank,
                           speaker_cmvn=self.speaker_cmvn(train, cuts, self.data_cfg), with_text=False)

    def batch_loss(self, batch: Dict, model) -> tuple:
        feats = batch["feats"].to(self.device)
        lens = batch["feat_lens"].to(self.device)
        generator = None if self.model.training else self.valid_generator
        loss, n, correct = model(feats, lens, generator)
        if not self.model.training:
            self.valid_correct += float(correct)
            self.valid_count += n
        return loss, max(n, 1)  # n = 0 (every utterance too short to mask): a zero loss

    @torch.no_grad()
    def validate(self) -> float:
        """Masked-prediction loss per label (nats) on the validation cuts, same masks every
        time; the accuracy is kept in ``last_accuracy``, logged and sent to tensorboard."""
        self.valid_generator = torch.Generator().manual_seed(VALID_MASK_SEED)
        self.valid_correct, self.valid_count = 0.0, 0
        loss = super().validate()
        correct, count = self.dist.all_reduce_sum([self.valid_correct, float(self.valid_count)])
        self.last_accuracy = correct / max(count, 1)
        log.info("validation: masked-prediction loss %.4f, accuracy %.2f%% (%d labels)", loss,
                 100 * self.last_accuracy, count)
        if self.tb is not None:
            self.tb.add_scalar("dev/masked_accuracy", self.last_accuracy, self.step)
        return loss

    def resume(self) -> bool:
        resumed = super().resume()
        self.start_epoch = self.epoch
        return resumed

    def run(self, resume: bool = False) -> Path:
        """Train, then score final.pt on the validation cuts: ``masked_accuracy.txt`` and
        ``cost.json`` (hours of audio, wall time, audio seconds per second)."""
        start = time.time()
        self.start_epoch = 0
        final = super().run(resume)
        epochs = self.cfg.train.num_epochs - self.start_epoch  # trained by this invocation
        wall = time.time() - start
        hours = sum(c.duration for c in self.train_cuts) / 3600
        self.tb = None  # closed by the loop
        accuracy = None
        if self.has_dev:  # every rank: validate() all-reduces
            self.model.load_state_dict(ckpt.load_checkpoint(final, map_location=self.device)["model"])
            loss = self.validate()
            accuracy = self.last_accuracy
        if self.dist.is_main:
            s = self.cfg.ssl
            (self.exp_dir / "masked_accuracy.txt").write_text(
                f"masked-prediction accuracy {100 * accuracy:.2f}%, loss {loss:.4f} nats per label "
                f"(final.pt; validation: {self.dev_what}; {s.num_codebooks} x {s.codebook_size} labels, "
                f"chance {100 / s.codebook_size:.2f}%)\n" if accuracy is not None else
                "no validation set (ssl.valid_cuts = 0, or under 10 training cuts)\n")
            cost = {"what": "ssl-bestrq pretraining", "train_hours": round(hours, 4), "epochs": epochs,
                    "wall_s": round(wall, 1), "audio_s_per_s": round(hours * 3600 * epochs / max(wall, 1e-9), 1),
                    "device": str(self.device), "world_size": self.dist.world_size,
                    "masked_accuracy": None if accuracy is None else round(accuracy, 4)}
            (self.exp_dir / "cost.json").write_text(json.dumps(cost) + "\n")
            log.info("%s -> %s; cost %s", (self.exp_dir / "masked_accuracy.txt").read_text().strip(),
                     self.exp_dir / "masked_accuracy.txt", json.dumps(cost))
        return final
