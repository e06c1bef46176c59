"""Text LM: loss falls, perplexity is exactly right on hand-worked cases, cached decoding matches."""

from __future__ import annotations

import math
import random

import pytest
import torch
from conftest import DIGITS

from speechlm.config import LMConfig, load_config
from speechlm.errors import SpeechlmError
from speechlm.models.lm import TransformerLM, lm_loss
from speechlm.train.tasks import perplexity

TINY_LM = ["lm.d_model=32", "lm.num_layers=2", "lm.num_heads=2", "lm.dropout=0.0",
           "lm.max_tokens=200", "lm.valid_sentences=20", "optim.warmup_steps=5",
           "train.average_last=2", "optim.lr=0.005"]


def test_perplexity_worked_by_hand():
    # two predicted tokens with probabilities 1/2 and 1/8: mean NLL = 2 ln 2, perplexity 4
    assert perplexity(math.log(2) + math.log(8), 2) == pytest.approx(4.0)
    with pytest.raises(SpeechlmError):
        perplexity(1.0, 0)


def test_uniform_lm_has_perplexity_vocab_size():
    lm = TransformerLM(LMConfig(d_model=16, num_layers=1, num_heads=2, dropout=0.0), 10).eval()
    with torch.no_grad():
        lm.embed.weight.zero_()  # tied output: all logits 0 -> uniform over the 10 tokens
    loss, n = lm_loss(lm, [[5, 6, 7], [8]], "cpu")
    assert n == 4 + 2  # y1..yn and the final <sos/eos> of each sentence
    assert perplexity(float(loss.detach()), n) == pytest.approx(10.0, rel=1e-5)


def test_cached_decoding_matches_full_forward():
    torch.manual_seed(0)
    lm = TransformerLM(LMConfig(d_model=32, num_layers=2, num_heads=2, dropout=0.0), 20).eval()
    toks = torch.randint(5, 20, (3, 7))
    full = lm(toks, torch.tensor([7, 7, 7])).log_softmax(-1)
    lens = torch.tensor([3, 2, 4])  # ragged prefill: each row decodes as it would alone
    lp, cache = lm.prefill(lm.embed(toks[:, :4]), lens)
    assert torch.allclose(lp, full[torch.arange(3), lens - 1], atol=1e-5)
    for _ in range(2):
        lp, cache = lm.step(toks[torch.arange(3), lens], cache)
        lens = lens + 1
        assert torch.allclose(lp, full[torch.arange(3), lens - 1], atol=1e-5)


def _write_text(path, n, seed=0):
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(DIGITS[:4]) for _ in range(rng.randint(1, 4))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lm_training_loss_falls_and_perplexity_file(tiny_asr, tmp_path):
    from speechlm.train.checkpoint import load_checkpoint
    from speechlm.train.tasks import LmTrainer

    text = _write_text(tmp_path / "lm.txt", 300)
    cfg = load_config(None, TINY_LM + ["train.num_epochs=3"])
    trainer = LmTrainer(cfg, tmp_path / "lm", text, tiny_asr["tokenizer"])
    before = trainer.validate()
    final = trainer.run()
    after = trainer.validate()
    assert after < before - 0.3, (before, after)
    report = (tmp_path / "lm" / "perplexity.txt").read_text()
    ppl = float(report.split()[2])
    # recompute by hand from final.pt: sum of -log p over every predicted token of the held-out part
    lm = TransformerLM(cfg.lm, trainer.tokenizer.vocab_size)
    lm.load_state_dict(load_checkpoint(final)["model"])
    lm.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for sent in trainer.valid_sents:
            seq = torch.tensor([[2, *sent, 2]])
            logp = lm(seq[:, :-1], torch.tensor([len(sent) + 1])).log_softmax(-1)[0]
            nll -= float(logp[torch.arange(len(sent) + 1), seq[0, 1:]].sum())
            count += len(sent) + 1
    assert ppl == pytest.approx(math.exp(nll / count), rel=1e-3)
    assert load_config(tmp_path / "lm" / "config.yaml").model.kind == "lm"


def test_lm_text_with_unknown_characters_is_refused(tiny_asr, tmp_path):
    from speechlm.train.tasks import LmTrainer

    text = tmp_path / "bad.txt"
    text.write_text("one two\nthree qqq\n" * 5)
    with pytest.raises(SpeechlmError, match="cannot encode"):
        LmTrainer(load_config(None, TINY_LM), tmp_path / "lm", text, tiny_asr["tokenizer"])


def test_token_batch_sampler_budget_determinism_and_shards():
    from speechlm.data.text_data import TokenBatchSampler

    lengths = [random.Random(i).randint(1, 30) for i in range(500)]
    s = TokenBatchSampler(lengths, max_tokens=200, shuffle=True, seed=3)
    s.set_epoch(2)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(500))  # each sentence once
    assert all(max(lengths[i] + 2 for i in b) * len(b) <= 200 for b in batches)
    assert list(s) == batches  # same (seed, epoch) -> same batches (exact resume)
    s.set_epoch(3)
    assert list(s) != batches
    shards = [TokenBatchSampler(lengths, 200, True, seed=3, world_size=2, rank=r) for r in (0, 1)]
    for sh in shards:
        sh.set_epoch(2)
    assert len(list(shards[0])) == len(list(shards[1]))
    assert not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))
    part = TokenBatchSampler(lengths, 200, True, seed=3, sentences_per_epoch=100)
    assert sum(len(b) for b in part) == 100
