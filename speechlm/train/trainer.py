"""The training loop shared by every model family; each family's trainer (``train/<family>.py``)
subclasses :class:`Trainer` and says what a model, a batch and a loss are.

Single process or DDP under ``torchrun`` (gloo on CPU, nccl on CUDA) from the same command.
Each epoch reseeds the RNGs from ``seed + epoch`` and the sampler from the epoch number, so
``--resume`` after epoch k continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from tqdm import tqdm

from speechlm.base.config import ExperimentConfig, save_config
from speechlm.base.device import resolve_device
from speechlm.base.errors import SpeechlmError
from speechlm.base.logs import setup_logging
from speechlm.data.datamodule import SpeakerCmvn
from speechlm.models.asr import num_parameters
from speechlm.models.experiment import load_weights
from speechlm.models.encoder import ENCODER_ARCH_KEYS
from speechlm.text.tokenizer import Tokenizer
from speechlm.base import checkpoint as ckpt

log = logging.getLogger("speechlm.train")


class DistInfo:
    """Rank/world size from torchrun's environment; a plain run is rank 0 of 1."""

    def __init__(self, device: torch.device):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def all_reduce_sum(self, values: List[float]) -> List[float]:
        if self.world_size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()


def _add_parts(sums: Dict[str, float], parts: list) -> Dict[str, float]:
    """Add a batch's loss parts (``batch_loss``'s optional third item) to the epoch's ``sums``;
    returns them as floats."""
    values = {k: float(v) for k, v in (parts[0] if parts else {}).items()}
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v
    return values


def _parts_text(parts: Dict[str, float]) -> str:
    """`` (ctc 1.2345, decoder 0.5432)``, or nothing without parts."""
    return f" ({', '.join(f'{k} {v:.4f}' for k, v in parts.items())})" if parts else ""


def lr_factor(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``final_ratio`` at step ``total``."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    progress = min(1.0, step / max(total, 1))
    return warm * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def frozen_then(freeze: int, warmup: int, total: int, final_ratio: float) -> Callable[[int], float]:
    """The lr factor of a parameter group frozen for its first ``freeze`` steps: 0, then the
    usual warm-up and cosine decay over the steps that are left."""
    if freeze <= 0:
        return lambda s: lr_factor(s, warmup, total, final_ratio)
    return lambda s: 0.0 if s < freeze else lr_factor(s - freeze, warmup, max(total - freeze, 1),
                                                      final_ratio)


# one optimiser group: its parameters, learning rate = optim.lr * scale, steps it stays frozen
ParamGroup = Tuple[List[torch.nn.Parameter], float, int]


# a warm-up longer than this share of a run's steps leaves too little of the schedule after it
WARMUP_MAX_SHARE = 0.2


def warmup_warning(warmup: int, steps_per_epoch: int, num_epochs: int, lr: float) -> str:
    """"" when ``optim.warmup_steps`` is well below the run's total steps, else the message
    that says so: the numbers, how high the learning rate gets, and what to set."""
    total = steps_per_epoch * num_epochs
    if warmup <= WARMUP_MAX_SHARE * total:
        return ""
    peak = max(lr_factor(s, warmup, total, 0.0) for s in range(total))
    return (f"optim.warmup_steps = {warmup} is {warmup / total:.0%} of this run's {total} steps "
            f"({steps_per_epoch} a epoch x {num_epochs} epochs): the learning rate peaks at "
            f"{peak:.0%} of optim.lr = {lr:g} and decays before it is reached. Set "
            f"optim.warmup_steps to at most {int(WARMUP_MAX_SHARE * total)} "
            f"({WARMUP_MAX_SHARE:.0%} of the steps; e.g. --set optim.warmup_steps="
            f"{max(1, total // 10)}) or train more epochs")


class StallMonitor:
    """Notices a run that is not learning, early enough to stop it: in the first half of the run,
    the monitored loss (dev, else train) has not gone ``min_drop`` (relative) below its earlier
    best for ``patience`` epochs while it is still above :attr:`STILL_HIGH` (5%) of the first epoch's
    loss (a loss that has fallen far and then flattens is a converged run, not a stuck one).
    :meth:`update` returns the warning once, the first time that happens; ``history`` (epoch
    losses) is saved in checkpoints so a resumed run keeps counting."""

    STILL_HIGH = 0.05

    def __init__(self, patience: int, min_drop: float, num_epochs: int):
        self.patience, self.min_drop, self.num_epochs = patience, min_drop, num_epochs
        self.history: List[float] = []
        self.warned = False

    def stalled_since(self) -> int:
        """The epoch (1-based) whose loss the last ``patience`` epochs have not beaten, or 0."""
        h = self.history
        if self.patience <= 0 or len(h) <= self.patience:
            return 0
        before, window = h[:-self.patience], h[-self.patience:]
        best = min(before)
        if min(window) < best * (1 - self.min_drop) or min(window) <= self.STILL_HIGH * h[0]:
            return 0
        return before.index(best) + 1

    def update(self, loss: float) -> str:
        self.history.append(float(loss))
        epoch = len(self.history)
        if self.warned or epoch > max(self.num_epochs // 2, self.patience + 1):
            return ""
        since = self.stalled_since()
        if not since:
            return ""
        self.warned = True
        return (f"not learning? the loss has not fallen below {self.history[since - 1]:.4f} "
                f"(epoch {since}) by {self.min_drop:.0%} in the {self.patience} epochs to epoch "
                f"{epoch} of {self.num_epochs}, and is still {min(self.history) / self.history[0]:.0%} "
                f"of epoch 1's {self.history[0]:.4f}")


class Trainer:
    """The generic loop. Subclasses say what a model, a batch and a loss are:

    ``build_model()``, ``make_loader(train: bool) -> (loader, sampler or None)`` and
    ``batch_loss(batch, model) -> (summed loss, number of items[, {part: summed value}])`` (the
    parts, e.g. a joint model's CTC and decoder losses, are averaged per item and logged beside
    the loss each epoch, and go to tensorboard); ``has_dev`` tells whether a
    dev set exists; ``special_param_groups()`` may give parts of the model their own learning
    rate or frozen steps. A family without text (self-supervised pretraining) passes no
    tokenizer. Everything else (devices, DDP, seeding, schedule, checkpoints, resume,
    averaging, logs, tensorboard, progress) is shared.
    """

    kind = "model"
    # what to try when the loss stalls early (StallMonitor); families add their own advice
    stall_advice = ("check that transcripts match the audio (speechlm decode on a few training "
                    "cuts), try another optim.lr (x3 or /3), a shorter optim.warmup_steps, or a "
                    "smaller model")

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path,
                 tokenizer_model: Optional[str | Path]):
        self.cfg = cfg
        self.exp_dir = Path(exp_dir)
        self.device = resolve_device(cfg.train.device)
        self.dist = DistInfo(self.device)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        setup_logging(self.exp_dir / "log" / "train.log", self.dist.is_main)
        self.tokenizer = self.load_tokenizer(tokenizer_model) if tokenizer_model else None
        self.has_dev = False
        self._speaker_cmvn: Dict[bool, SpeakerCmvn] = {}

    def speaker_cmvn(self, train: bool, cuts, data_cfg) -> Optional[SpeakerCmvn]:
        """With ``data.speaker_cmvn``, the training (or dev) cuts' per-speaker statistics,
        computed once: every epoch's loader shares them."""
        if not data_cfg.speaker_cmvn:
            return None
        if train not in self._speaker_cmvn:
            self._speaker_cmvn[train] = SpeakerCmvn(cuts)
        return self._speaker_cmvn[train]

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size; 0 for a family without text."""
        return self.tokenizer.vocab_size if self.tokenizer is not None else 0

    def setup(self) -> None:
        """Model, optimiser and schedule; call at the end of a subclass's ``__init__``."""
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        self.model = self.build_model().to(self.device)
        groups = self.param_groups()
        self.optimizer = torch.optim.AdamW(
            [{"params": params, "lr": cfg.optim.lr * scale} for params, scale, _ in groups],
            lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        self.steps_per_epoch = self.count_steps_per_epoch()
        total = self.steps_per_epoch * cfg.train.num_epochs
        warning = warmup_warning(cfg.optim.warmup_steps, self.steps_per_epoch, cfg.train.num_epochs,
                                 cfg.optim.lr)
        if warning and self.dist.is_main:
            log.warning(warning)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            [frozen_then(freeze, cfg.optim.warmup_steps, total, cfg.optim.final_lr_ratio)
             for _, _, freeze in groups],
        )
        self.ddp_model = self.model
        if self.dist.world_size > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.epoch = 0  # last completed epoch
        self.step = 0
        self.loss_parts: Dict[str, Dict[str, float]] = {"train": {}, "dev": {}}  # of the last epoch
        self.tb = None
        self.stall = StallMonitor(cfg.train.stall_epochs, cfg.train.stall_min_drop,
                                  cfg.train.num_epochs)

    # ---- what subclasses define ------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def make_loader(self, train: bool):
        raise NotImplementedError

    def batch_loss(self, batch, model) -> tuple:
        raise NotImplementedError

    def describe_data(self) -> str:
        return ""

    def load_tokenizer(self, tokenizer_model: str | Path):
        """The tokenizer that the targets are encoded with (a family may bring its own)."""
        return Tokenizer(tokenizer_model)

    def save_tokenizer(self) -> None:
        """Put the tokenizer into the exp dir, where :func:`load_experiment` finds it."""
        shutil.copyfile(self.tokenizer.model_path, self.exp_dir / "tokenizer.model")

    def model_state(self) -> Dict:
        """The model weights a checkpoint holds (a family may leave out frozen pretrained ones,
        saying so in :meth:`extra_state`; see :func:`speechlm.models.experiment.load_weights`)."""
        return self.model.state_dict()
    def special_param_groups(self) -> List[ParamGroup]:
        """Parts of the model with their own learning-rate scale or frozen steps (e.g. a
        pretrained LM part, a pretrained encoder); the rest forms the first group."""
        return []

    def param_groups(self) -> List[ParamGroup]:
        special = self.special_param_groups()
        taken = {id(p) for params, _, _ in special for p in params}
        rest = [p for p in self.model.parameters() if id(p) not in taken]
        return [(rest, 1.0, 0)] + special

    def extra_state(self) -> Dict:
        """More keys saved in every checkpoint (epoch and final)."""
        return {}

    def count_steps_per_epoch(self) -> int:
        """Batches in one epoch, from a dry pass of a fresh sampler (reads no features)."""
        _, sampler = self.make_loader(train=True)
        sampler.set_epoch(1)
        return max(1, sum(1 for _ in sampler))

    # ---- checkpoints -------------------------------------------------------------------
    def state(self) -> Dict:
        return {
            "model": self.model_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "vocab_size": self.vocab_size,
            "config": self.cfg.to_dict(),
            "run_id": self.run_id,
            "loss_history": list(self.stall.history),
            **self.extra_state(),
        }

    def claim_exp_dir(self, resume: bool) -> None:
        """A new run (not resuming one that left epoch checkpoints) starts from an exp dir of its
        own: rank 0 moves an earlier run's outputs to ``previous-runs/<n>/`` while the other ranks
        wait. The run id that marks its checkpoints is new here; :meth:`resume` takes the resumed
        checkpoint's (only rank 0 writes, prunes and averages checkpoints, so only its id counts)."""
        resuming = resume and bool(ckpt.epoch_checkpoints(self.exp_dir))
        if self.dist.is_main and not resuming:
            moved = ckpt.move_previous_run(self.exp_dir)
            if moved:
                log.info("%s held an earlier run's checkpoints: moved them and their outputs to %s "
                         "(nothing deleted; --resume continues a run instead)", self.exp_dir, moved)
        self.dist.barrier()
        self.run_id = ckpt.new_run_id()

    def resume(self) -> bool:
        found = ckpt.epoch_checkpoints(self.exp_dir)
        if not found:
            return False
        state = ckpt.load_checkpoint(found[-1], map_location=self.device)
        self.run_id = state.get("run_id")  # None: a checkpoint from before run ids
        saved = state.get("config", {}).get("encoder", {})
        diff = [k for k in ENCODER_ARCH_KEYS if saved.get(k) != getattr(self.cfg.encoder, k)]
        if diff:
            raise SpeechlmError(
                f"--resume: {found[-1]} was trained with a different encoder config ({', '.join(diff)}); "
                "use a new --exp-dir or the same config"
            )
        load_weights(self.model, state["model"], str(found[-1]), state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = state["epoch"], state["step"]
        for loss in state.get("loss_history", []):
            self.stall.update(loss)  # replays the counting; a warning given before is not repeated
        log.info("resumed from %s (epoch %d, step %d)", found[-1], self.epoch, self.step)
        return True

    # ---- loop --------------------------------------------------------------------------
    def run(self, resume: bool = False) -> Path:
        cfg = self.cfg
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        self.claim_exp_dir(resume)
        if self.dist.is_main:
            save_config(cfg, self.exp_dir / "config.yaml")
            if self.tokenizer is not None:
                self.save_tokenizer()
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(self.exp_dir / "tensorboard"))
        if resume:
            self.resume()
        log.info("%s: %s parameters; device %s; world size %d; %s", self.kind,
                 f"{num_parameters(self.model):,}", self.device, self.dist.world_size,
                 self.describe_data())
        loader, sampler = self.make_loader(train=True)
        start = time.time()
        while self.epoch < cfg.train.num_epochs:
            epoch = self.epoch + 1
            torch.manual_seed(cfg.train.seed + epoch)
            sampler.set_epoch(epoch)
            self.loss_parts = {"train": {}, "dev": {}}  # per item, from batch_loss's parts
            train_loss = self.train_epoch(loader, epoch)
            dev_loss = self.validate() if self.has_dev else float("nan")
            self.epoch = epoch
            log.info("epoch %d/%d: train loss %.4f%s, dev loss %s, lr %.2e, %.0f s elapsed",
                     epoch, cfg.train.num_epochs, train_loss, _parts_text(self.loss_parts["train"]),
                     f"{dev_loss:.4f}{_parts_text(self.loss_parts['dev'])}" if self.has_dev
                     else "- (no dev set)", self.scheduler.get_last_lr()[0], time.time() - start)
            stalled = self.stall.update(dev_loss if self.has_dev else train_loss)
            if stalled and self.dist.is_main:
                log.warning("%s: the model may be stuck (e.g. a CTC model that ignores the audio). "
                            "Try: %s. Training goes on.", stalled, self.stall_advice)
            if self.dist.is_main:
                if self.has_dev:
                    self.tb.add_scalar("dev/loss", dev_loss, self.step)
                for name, value in self.loss_parts["dev"].items():
                    self.tb.add_scalar(f"dev/{name}", value, self.step)
                ckpt.save_atomic(self.state(), self.exp_dir / f"epoch-{epoch}.pt")
                ckpt.prune_checkpoints(self.exp_dir, max(cfg.train.keep_last, cfg.train.average_last),
                                      self.run_id)
            self.dist.barrier()
        final = self.exp_dir / "final.pt"
        if self.dist.is_main:
            self.write_final(final)
            self.tb.close()
        self.dist.barrier()
        return final

    def write_final(self, final: Path) -> None:
        paths = ckpt.epoch_checkpoints(self.exp_dir, self.run_id)
        paths = paths[-max(1, self.cfg.train.average_last):]
        avg = ckpt.average_state_dicts(paths)
        ckpt.save_atomic({"model": avg, "vocab_size": self.vocab_size,
                          "config": self.cfg.to_dict(), "averaged": [p.name for p in paths],
                          "run_id": self.run_id,
                          **self.extra_state()}, final)
        log.info("final model: average of %s -> %s", [p.name for p in paths], final)

    def train_epoch(self, loader, epoch: int) -> float:
        self.ddp_model.train()
        total, count, sums = 0.0, 0, {}
        show_bar = self.dist.is_main and sys.stderr.isatty()
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=not show_bar, leave=False)
        for batch in bar:
            loss, n, *parts = self.batch_loss(batch, self.ddp_model)
            parts = _add_parts(sums, parts)
            self.optimizer.zero_grad(set_to_none=True)
            (loss / n).backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            total, count = total + loss.item(), count + n
            if self.dist.is_main:
                self.tb.add_scalar("train/loss", loss.item() / n, self.step)
                self.tb.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                for name, value in parts.items():
                    self.tb.add_scalar(f"train/{name}", value / n, self.step)
                bar.set_postfix(loss=f"{loss.item() / n:.3f}")
                if not show_bar and self.step % self.cfg.train.log_interval == 0:
                    log.info("epoch %d step %d: loss %.4f grad-norm %.2f", epoch, self.step,
                             loss.item() / n, float(grad_norm))
        return self._epoch_mean(total, count, sums, "train")

    def _epoch_mean(self, total: float, count: int, sums: Dict[str, float], split: str) -> float:
        """The loss per item over all ranks; the parts' means go to ``self.loss_parts[split]``."""
        names = sorted(sums)
        total, count, *values = self.dist.all_reduce_sum([total, float(count), *(sums[k] for k in names)])
        self.loss_parts[split] = {k: v / max(count, 1) for k, v in zip(names, values)}
        return total / max(count, 1)

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        loader, _ = self.make_loader(train=False)
        total, count, sums = 0.0, 0, {}
        for batch in loader:
            loss, n, *parts = self.batch_loss(batch, self.model)
            _add_parts(sums, parts)
            total, count = total + loss.item(), count + n
        return self._epoch_mean(total, count, sums, "dev")
