"""TTS fine-tuning on the shared :class:`Trainer` loop (resume, averaging, logs, tensorboard).

Input: the ``.pt`` features of :func:`speechlm.data.tts_data.compute_tts_features` (mel frames +
CTC-aligned durations). The text encoder starts from the stage-3 LM when ``tts.lm_init`` is set.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from speechlm.base.config import ExperimentConfig
from speechlm.data.tts_data import load_tts_features, make_tts_loader
from speechlm.base.errors import SpeechlmError
from speechlm.data.features import frame_statistics
from speechlm.models.tts import TtsModel, build_tts, load_lm_into_tts
from speechlm.models.tts_llm import LLMWordFeatures
from speechlm.models.lm import adopt_lm_architecture
from speechlm.train.trainer import Trainer

log = logging.getLogger("speechlm.train")


def mel_statistics(utts) -> tuple:
    return frame_statistics((u["mel"] for u in utts), "the TTS training utterances")


class TtsTrainer(Trainer):
    kind = "tts"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, features: str | Path,
                 tokenizer_model: str | Path):
        cfg.model.kind = "tts"
        if cfg.tts.lm_init:
            adopt_lm_architecture(cfg, cfg.tts.lm_init, key="tts.lm_init")
        super().__init__(cfg, exp_dir, tokenizer_model)
        utts = load_tts_features(features, cfg.tts.hop_length, cfg.tts.n_fft)
        self.features = Path(features)
        for u in utts:  # the aligner's tokens must be this model's tokens
            if self.tokenizer.encode(u["text"], item=f"{features}, {u['id']}") != u["tokens"]:
                raise SpeechlmError(
                    f"{features} was aligned with another tokenizer than --tokenizer "
                    f"{tokenizer_model} (utterance {u['id']}): use the ASR model's tokenizer "
                    "(the recipe's data/lang_bpe/bpe.model) for the LM, the ASR and the TTS")
        n_valid = min(cfg.tts.valid_utterances, len(utts) // 10)
        self.train_utts = utts[: len(utts) - n_valid] if n_valid else utts
        self.valid_utts = utts[len(utts) - n_valid:] if n_valid else []
        if not self.train_utts:
            raise SpeechlmError(f"{features}: no training utterances")
        self.has_dev = bool(self.valid_utts)
        self.word_features = self.llm_word_features(utts) if cfg.tts.llm_layers else None
        self.setup()

    def llm_word_features(self, utts) -> LLMWordFeatures:
        """Load the frozen LLM and give every utterance its per-token word features (``u["llm"]``):
        computed once, since the LLM never changes."""
        tts = self.cfg.tts
        wf = LLMWordFeatures(self.cfg.llm.source, self.cfg.llm.cache_dir, tts.llm_layers).to(self.device)
        t0, step = time.perf_counter(), 256
        for start in range(0, len(utts), step):
            part = utts[start: start + step]
            feats = wf.token_features([u["text"] for u in part],
                                      [[self.tokenizer.id_to_piece(i) for i in u["tokens"]] for u in part])
            for u, f in zip(part, feats):
                u["llm"] = f
            log.info("LLM word features (%s, first %d blocks): %d/%d utterances, %.0f s",
                     self.cfg.llm.source, tts.llm_layers, start + len(part), len(utts), time.perf_counter() - t0)
        return wf

    def extra_state(self) -> dict:
        if self.word_features is None:
            return {}
        # the LLM stays out of the checkpoint: a model is only loaded onto the LLM it was trained on
        return {"source_digest": self.word_features.digest(),
                "source_description": f"llm.source = {self.cfg.llm.source}, tts.llm_layers = "
                                      f"{self.cfg.tts.llm_layers}"}

    def build_model(self) -> TtsModel:
        model = build_tts(self.cfg, self.tokenizer.vocab_size, self.word_features)
        model.set_mel_stats(*mel_statistics(self.train_utts))
        if self.cfg.tts.lm_init:
            load_lm_into_tts(model, self.cfg.tts.lm_init)
        return model

    def describe_data(self) -> str:
        frames = sum(u["mel"].size(0) for u in self.train_utts)
        hours = frames * self.cfg.tts.hop_length / 16000 / 3600
        init = self.cfg.tts.lm_init or "random init"
        if self.word_features is not None:
            init += f", + word features from the first {self.cfg.tts.llm_layers} blocks of {self.cfg.llm.source}"
        return (f"{len(self.train_utts)} training utterances ({hours:.2f} h, {self.features}), "
                f"{len(self.valid_utts)} for the dev loss; text encoder: {init}")

    def make_loader(self, train: bool):
        utts = self.train_utts if train else self.valid_utts
        dist_args = {"world_size": self.dist.world_size, "rank": self.dist.rank} if train else {}
        return make_tts_loader(utts, self.cfg.tts.max_frames, train, seed=self.cfg.train.seed,
                               **dist_args)

    def batch_loss(self, batch: dict, model) -> tuple:
        b = {k: v.to(self.device) for k, v in batch.items() if torch.is_tensor(v)}
        loss, _ = model(b["tokens"], b["token_lens"], b["durations"], b["mels"], b["mel_lens"],
                        b.get("llm_feats"))
        return loss, int(b["tokens"].size(0))
