"""Text LM: loss falls, perplexity is exactly right on hand-worked cases, cached decoding matches."""

from __future__ import annotations

import math
import random

import pytest
import torch
from conftest import DIGITS

from speechlm.base.config import LMConfig, load_config
from speechlm.base.errors import SpeechlmError
from speechlm.models.lm import (
    TransformerLM,
    asr_task_row,
    conditional_nll,
    lm_loss,
    sentence_nll,
    simulate_ctc_frames,
)
from speechlm.text.symbols import ASR_ID, BLANK_ID, SOS_EOS_ID
from speechlm.train.lm import perplexity

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
    from speechlm.base.checkpoint import load_checkpoint
    from speechlm.train.lm import LmTrainer

    text = _write_text(tmp_path / "lm.txt", 300)
    cfg = load_config(None, TINY_LM + ["train.num_epochs=3"])
    trainer = LmTrainer(cfg, tmp_path / "lm", text, tiny_asr["tokenizer"])
    before = trainer.validate()
    final = trainer.run()
    after = trainer.validate()
    assert after < before - 0.3, (before, after)
    assert load_checkpoint(final)["asr_task_trained"] is False  # a plain LM: <asr> never seen
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
    from speechlm.train.lm import LmTrainer

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


def _ctc_collapse(frames):
    out, prev = [], None
    for f in frames:
        if f != prev and f != BLANK_ID:
            out.append(f)
        prev = f
    return out


def test_simulated_ctc_frames_collapse_to_the_sentence_or_to_the_asked_error_rate():
    from speechlm.scoring.wer import align_words

    rng = random.Random(0)
    for sent in ([5, 6, 6, 7], [9], [8, 8, 8]):  # repeats survive: a blank keeps them apart
        for max_repeat in (1, 3):
            frames = simulate_ctc_frames(sent, 20, 0.0, max_repeat, rng)
            assert _ctc_collapse(frames) == sent
            assert set(frames) <= {BLANK_ID, *sent}
    assert simulate_ctc_frames([], 20, 0.0, 2, rng) != []
    sent = [5 + i % 15 for i in range(400)]
    frames = simulate_ctc_frames(sent, 20, 0.6, 2, rng)
    assert all(f == BLANK_ID or 5 <= f < 20 for f in frames)  # pieces only, no other specials
    pairs = align_words([str(t) for t in sent], [str(t) for t in _ctc_collapse(frames)])
    errors = sum(a != b for a, b in pairs)
    assert 0.4 * len(sent) < errors < 0.7 * len(sent)  # 0.2 each of del / sub / ins, re-aligned
    mean_frames = sum(len(simulate_ctc_frames(sent, 20, 0.0, 2, rng)) for _ in range(5)) / 5
    assert 2.2 < mean_frames / len(sent) < 2.8  # 1.5 piece + 1 blank frames per piece
    with pytest.raises(ValueError):
        simulate_ctc_frames(sent, 20, 1.5, 2, rng)
    with pytest.raises(ValueError):
        simulate_ctc_frames(sent, 20, 0.1, 0, rng)


def test_conditional_nll_of_text_and_transcription_rows():
    torch.manual_seed(0)
    lm = TransformerLM(LMConfig(d_model=32, num_layers=2, num_heads=2, dropout=0.0), 20).eval()
    sents = [[5, 6, 7], [8]]
    with torch.no_grad():
        text = conditional_nll(lm, [[SOS_EOS_ID, *s, SOS_EOS_ID] for s in sents], [1, 1], "cpu")
        assert torch.allclose(text, sentence_nll(lm, sents, "cpu"), atol=1e-5)
        row, context = asr_task_row([5, 6], [0, 5, 5, 0, 6])
        assert row == [0, 5, 5, 0, 6, ASR_ID, 5, 6, SOS_EOS_ID] and context == 6
        logp = lm(torch.tensor([row[:-1]]), torch.tensor([len(row) - 1])).log_softmax(-1)[0]
        by_hand = -(logp[5, 5] + logp[6, 6] + logp[7, SOS_EOS_ID])  # only y and <sos/eos> count
        both = conditional_nll(lm, [row, [SOS_EOS_ID, 8, SOS_EOS_ID]], [context, 1], "cpu")
    assert torch.allclose(both[0], by_hand, atol=1e-5)  # batched with a shorter row
    assert torch.allclose(both[1], text[1], atol=1e-5)
    with pytest.raises(ValueError, match="nothing to predict"):
        conditional_nll(lm, [[2, 5]], [2], "cpu")


def test_lm_asr_task_loss_and_continued_pretraining(tiny_asr, tmp_path):
    from speechlm.base.checkpoint import load_checkpoint
    from speechlm.train.lm import LmTrainer

    text = _write_text(tmp_path / "lm.txt", 300)
    task = ["lm.asr_task_weight=0.5", "lm.asr_task_noise=0.3"]
    trainer = LmTrainer(load_config(None, TINY_LM + task + ["train.num_epochs=3"]),
                        tmp_path / "a", text, tiny_asr["tokenizer"])
    batch = next(iter(trainer.make_loader(train=True)[0]))
    vocab = trainer.tokenizer.vocab_size

    def transcription_nll(noise_seed, noise):  # the streams batch_loss draws, replayed
        torch.manual_seed(noise_seed)
        rng = random.Random(int(torch.randint(0, 2 ** 31 - 1, ())))
        rows = [asr_task_row(s, simulate_ctc_frames(s, vocab, rng.uniform(0.0, noise), 2, rng))
                for s in batch]
        return conditional_nll(trainer.model, [r for r, _ in rows], [c for _, c in rows], "cpu")

    trainer.model.train()  # TINY_LM has no dropout, so train mode is deterministic
    torch.manual_seed(7)
    loss, n = trainer.batch_loss(batch, trainer.model)
    text_only, n_text = lm_loss(trainer.model, batch, "cpu")
    assert n == n_text
    assert torch.allclose(loss, text_only + 0.5 * transcription_nll(7, 0.3).sum(), rtol=1e-5)
    trainer.model.eval()  # validation stays plain perplexity
    assert torch.allclose(trainer.batch_loss(batch, trainer.model)[0], text_only, rtol=1e-5)

    with torch.no_grad():
        before = float(transcription_nll(1, 0.0).sum())
    final = trainer.run()
    with torch.no_grad():
        after = float(transcription_nll(1, 0.0).sum())
    assert after < 0.5 * before, (before, after)  # it learnt to read clean frame streams

    more = LmTrainer(load_config(None, TINY_LM + [f"lm.init={final}", "train.num_epochs=1"]),
                     tmp_path / "b", text, tiny_asr["tokenizer"])
    for key, value in load_checkpoint(final)["model"].items():
        assert torch.equal(more.model.state_dict()[key], value), key
    # <asr> stays learnt through a continuation without the task (load_lm_into keeps it)
    assert load_checkpoint(final)["asr_task_trained"] is True
    assert load_checkpoint(more.run())["asr_task_trained"] is True
    with pytest.raises(SpeechlmError, match="lm.init = .*missing.pt not found"):
        LmTrainer(load_config(None, TINY_LM + [f"lm.init={tmp_path / 'missing.pt'}"]),
                  tmp_path / "c", text, tiny_asr["tokenizer"])
    with pytest.raises(SpeechlmError, match="lm.asr_task_noise"):
        LmTrainer(load_config(None, TINY_LM + ["lm.asr_task_noise=2"]), tmp_path / "d", text,
                  tiny_asr["tokenizer"])


def test_train_lm_under_torchrun_with_the_asr_task(tiny_asr, tmp_path):
    # two processes: the final perplexity is computed on every rank (it all-reduces), and the
    # transcription task's second forward takes part in the gradient reduction
    import os
    import subprocess
    import sys

    from conftest import REPO

    text = _write_text(tmp_path / "lm.txt", 200)
    exp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "speechlm.cli", "train-lm", "--exp-dir", str(exp), "--text", str(text),
           "--tokenizer", str(tiny_asr["tokenizer"]),
           "--set", *TINY_LM, "train.num_epochs=1", "train.device=cpu", "lm.asr_task_weight=1"]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world size 2" in (exp / "log" / "train.log").read_text()
    assert (exp / "perplexity.txt").read_text().startswith("validation perplexity ")
