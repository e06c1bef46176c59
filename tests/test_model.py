"""Conformer-CTC shapes, gradients, masking, CTC loss and greedy decoding."""

import torch

from speechlm.base.config import EncoderConfig
from speechlm.decode.ctc import ctc_greedy
from speechlm.models.asr import CTCModel
from speechlm.models.encoder import subsampled_lengths
from speechlm.text.symbols import BLANK_ID


def small_model(vocab=12):
    torch.manual_seed(0)
    return CTCModel(EncoderConfig(d_model=32, num_layers=2, num_heads=2, subsampling_channels=8,
                                  dropout=0.0), vocab)


def test_output_shapes_and_lengths():
    model = small_model()
    feats = torch.randn(3, 101, 80)
    lens = torch.tensor([101, 80, 57])
    log_probs, out_lens = model(feats, lens)
    assert log_probs.shape == (3, 24, 12)
    assert out_lens.tolist() == subsampled_lengths(lens).tolist() == [24, 19, 13]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 24), atol=1e-5)


def test_batched_equals_unbatched():
    model = small_model().eval()
    feats = torch.randn(2, 120, 80)
    lens = torch.tensor([120, 70])
    batched, out_lens = model(feats, lens)
    alone, _ = model(feats[1:, :70], lens[1:])
    assert torch.allclose(batched[1, : out_lens[1]], alone[0], atol=1e-4)


def test_every_parameter_gets_a_gradient():
    model = small_model()
    log_probs, lens = model(torch.randn(2, 60, 80), torch.tensor([60, 50]))
    model.ctc_loss(log_probs, lens, [[5, 6], [7]]).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_ctc_loss_falls_on_a_tiny_batch():
    model = small_model()
    feats, lens = torch.randn(2, 80, 80), torch.tensor([80, 64])
    targets = [[5, 6, 7], [8, 9]]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        log_probs, out_lens = model(feats, lens)
        loss = model.ctc_loss(log_probs, out_lens, targets) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    assert ctc_greedy(*model(feats, lens)) == targets


def test_ctc_greedy_collapses_repeats_and_blanks():
    # frames: a a _ a b b _  -> a a b ; second utterance is padded after 3 frames
    seq = [[5, 5, BLANK_ID, 5, 6, 6, BLANK_ID], [7, BLANK_ID, 7, 9, 9, 9, 9]]
    log_probs = torch.full((2, 7, 10), -10.0)
    for b, row in enumerate(seq):
        for t, tok in enumerate(row):
            log_probs[b, t, tok] = 0.0
    assert ctc_greedy(log_probs, torch.tensor([7, 3])) == [[5, 5, 6], [7, 7]]
