"""Text for LM pretraining: tokenised sentences, a held-out validation part, and a token-budget
batch sampler that is deterministic per (seed, epoch) and shards batches across DDP ranks."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.base.files import read_text_file
from speechlm.text.symbols import UNK_ID
from speechlm.text.tokenizer import Tokenizer


def read_lm_text(path: str | Path, tokenizer: Tokenizer,
                 valid_sentences: int) -> tuple[list[list[int]], list[list[int]]]:
    """Tokenise ``path`` (one sentence a line); the last ``valid_sentences`` are held out."""
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"LM text {path} not found: run the recipe's data-prep stage first")
    lines = [line.strip() for line in read_text_file(path, "LM text").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise SpeechlmError(f"LM text {path} has {len(lines)} non-empty lines; need at least 2")
    ids = tokenizer.sp.encode(lines)
    for n, (line, seq) in enumerate(zip(lines, ids)):
        if UNK_ID in seq:  # one clear message naming the line
            tokenizer.encode(line, item=f"{path} (non-empty line {n + 1})")
    n_valid = min(max(1, valid_sentences), len(ids) // 10 or 1)
    return ids[:-n_valid], ids[-n_valid:]


class TokenBatchSampler:
    """Batches of sentence indices with at most ``max_tokens`` (padded) tokens each.

    An epoch takes ``sentences_per_epoch`` random sentences (all when 0), groups similar
    lengths to limit padding, and shuffles the batch order; all from ``seed + epoch``.
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, shuffle: bool, seed: int = 0,
                 sentences_per_epoch: int = 0, world_size: int | None = None,
                 rank: int | None = None):
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.sentences_per_epoch = sentences_per_epoch
        self.world_size = world_size or 1
        self.rank = rank or 0
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        if self.sentences_per_epoch > 0:
            order = order[: self.sentences_per_epoch]
        chunk = 64 * max(1, self.max_tokens // 20)
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            group = sorted(order[start: start + chunk], key=lambda i: self.lengths[i])
            cur: list[int] = []
            longest = 0
            for i in group:
                longest_new = max(longest, self.lengths[i] + 2)
                if cur and longest_new * (len(cur) + 1) > self.max_tokens:
                    batches.append(cur)
                    cur, longest_new = [], self.lengths[i] + 2
                cur.append(i)
                longest = longest_new
            if cur:
                batches.append(cur)
        if self.shuffle:
            rng.shuffle(batches)
        if self.world_size > 1:  # equal count on every rank so DDP steps stay in lockstep
            usable = len(batches) // self.world_size * self.world_size
            batches = batches[self.rank: usable: self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class SentenceDataset(torch.utils.data.Dataset):
    def __init__(self, sentences: Sequence[list[int]]):
        self.sentences = sentences

    def __getitem__(self, indexes: list[int]) -> list[list[int]]:
        return [self.sentences[i] for i in indexes]


def make_text_loader(sentences: Sequence[list[int]], max_tokens: int, train: bool, seed: int = 0,
                     sentences_per_epoch: int = 0, world_size: int | None = None,
                     rank: int | None = None):
    sampler = TokenBatchSampler([len(s) for s in sentences], max_tokens, shuffle=train, seed=seed,
                                sentences_per_epoch=sentences_per_epoch if train else 0,
                                world_size=world_size, rank=rank)
    loader = torch.utils.data.DataLoader(SentenceDataset(sentences), sampler=sampler,
                                         batch_size=None, num_workers=0)
    return loader, sampler
