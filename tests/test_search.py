"""Batched searches: beam 1 reduces to greedy, CTC prefix scores are exact, batching changes nothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speechlm.base.config import EncoderConfig, LMConfig, SpeechLMConfig
from speechlm.decode import search
from speechlm.decode.ctc import ctc_greedy
from speechlm.models.lm import TransformerLM
from speechlm.models.speechlm_asr import SpeechLMAsr
from speechlm.text.symbols import NUM_SPECIALS, SOS_EOS_ID

V = 14


def peaky_log_probs(b=3, t=30, seed=0):
    """Frame posteriors whose best token has probability > 0.9, where greedy is optimal."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, V, generator=g)
    best = torch.randint(NUM_SPECIALS, V, (b, t), generator=g)
    best[torch.rand(b, t, generator=g) < 0.5] = 0
    logits.scatter_(2, best[..., None], 9.0)
    return logits.log_softmax(-1), torch.tensor([t, t - 9, t - 4][:b])


def tiny_model(seed=0):
    torch.manual_seed(seed)
    enc = EncoderConfig(d_model=32, num_layers=1, num_heads=2, subsampling_channels=8, dropout=0.0)
    lm = LMConfig(d_model=32, num_layers=2, num_heads=2, dropout=0.0)
    return SpeechLMAsr(enc, lm, SpeechLMConfig(adapter_stride=2), V).eval()


def encoded(model, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, 90, 80, generator=g)
    lens = torch.tensor([90, 61, 75][:b])
    with torch.no_grad():
        return feats, lens, model.encode_all(feats, lens)


def test_ctc_prefix_beam_with_beam_1_equals_greedy():
    for seed in range(3):
        lp, lens = peaky_log_probs(seed=seed)
        beam1 = [nb[0][0] for nb in search.ctc_prefix_beam_search(lp, lens, 1)]
        assert beam1 == ctc_greedy(lp, lens)


def test_ctc_prefix_beam_scores_are_ctc_probabilities():
    lp, lens = peaky_log_probs()
    nbest = search.ctc_prefix_beam_search(lp, lens, 4)
    for i in range(3):
        assert len(nbest[i]) == 4 and nbest[i][0][1] >= nbest[i][-1][1]
        hyp, score = nbest[i][0]
        ref = -F.ctc_loss(lp[i:i + 1].transpose(0, 1), torch.tensor([hyp]), lens[i:i + 1],
                          torch.tensor([len(hyp)]), reduction="sum")
        assert score <= float(ref) + 1e-4 and score > float(ref) - 0.1  # pruned paths only


def test_label_synchronous_ctc_prefix_score_is_exact():
    lp, lens = peaky_log_probs()
    hyp = search.ctc_prefix_beam_search(lp, lens, 4)[0][1][0]
    scorer = search.CTCPrefixScorer(lp[:1], lens[:1], 1)
    state, total = scorer.initial_state(), 0.0
    for i, tok in enumerate(hyp + [SOS_EOS_ID]):
        inc, new = scorer.score(state, empty=i == 0)
        total += float(inc[0, tok])
        state = scorer.select(new, torch.tensor([0]), torch.tensor([tok]))
    ref = -F.ctc_loss(lp[:1].transpose(0, 1), torch.tensor([hyp]), lens[:1],
                      torch.tensor([len(hyp)]), reduction="sum")
    assert abs(total - float(ref)) < 1e-3


def test_attention_beam_with_beam_1_equals_decoder_greedy():
    model = tiny_model()
    _, _, (lp, lens, prefix, plens) = encoded(model)
    max_lens = torch.full_like(lens, 12)
    def start():
        return model.decoder_start(prefix, plens)

    with torch.no_grad():
        greedy = search.attention_greedy(start, model.lm.step, max_lens)
        beam1 = search.beam_search(lp, lens, 1, decoder=(start, model.lm.step), ctc_weight=0.0,
                                   max_lens=max_lens)
    assert beam1 == greedy
    assert any(len(h) > 0 for h in greedy)


def _all_methods(model, lm, lp, lens, prefix, plens):
    dec = (lambda: model.decoder_start(prefix, plens), model.lm.step)
    text_lm = (lambda: lm.start(lp.size(0), lp.device), lm.step)
    nbest = search.ctc_prefix_beam_search(lp, lens, 3)

    def score(u, h):
        return model.score_hyps(prefix[u], plens[u], h)

    return {
        "ctc-prefix-beam": nbest,
        "attention-beam": search.beam_search(lp, lens, 3, decoder=dec, ctc_weight=0.3),
        "attention-rescoring": search.attention_rescoring(nbest, score, 0.3),
        "lm-shallow-fusion": search.beam_search(lp, lens, 3, lm=text_lm, lm_weight=0.5),
        "attention-lm-fusion": search.beam_search(lp, lens, 3, decoder=dec, ctc_weight=0.3,
                                                  lm=text_lm, lm_weight=0.5),
    }


def test_batched_decoding_equals_unbatched():
    model = tiny_model()
    lm = TransformerLM(LMConfig(d_model=16, num_layers=1, num_heads=2, dropout=0.0), V).eval()
    feats, flens, (lp, lens, prefix, plens) = encoded(model)
    with torch.no_grad():
        batched = _all_methods(model, lm, lp, lens, prefix, plens)
        for i in range(3):
            one = model.encode_all(feats[i:i + 1, : flens[i]], flens[i:i + 1])
            single = _all_methods(model, lm, *one)
            for name, res in single.items():
                if name == "ctc-prefix-beam":
                    assert [h for h, _ in res[0]] == [h for h, _ in batched[name][i]], name
                    assert torch.allclose(torch.tensor([s for _, s in res[0]]),
                                          torch.tensor([s for _, s in batched[name][i]]), atol=1e-3)
                else:
                    assert res[0] == batched[name][i], name


def test_ctc_prefix_scores_of_candidates_equal_the_full_scores():
    """Pre-beam scoring (an LLM's vocabulary): the scores and states of a few candidate tokens
    per hypothesis are exactly those of full-vocabulary scoring."""
    lp, lens = peaky_log_probs()
    scorer = search.CTCPrefixScorer(lp, lens, 2)  # 3 utterances x 2 hypotheses
    state = scorer.initial_state()
    cand = torch.tensor([[5, 7, SOS_EOS_ID], [4, 9, SOS_EOS_ID]]).repeat(3, 1)
    for i, toks in enumerate(([5, 9] * 3, [7, 4] * 3)):
        full_inc, full_new = scorer.score(state, empty=i == 0)
        inc, new = scorer.score(state, empty=i == 0, cand=cand)
        assert torch.allclose(inc, full_inc.gather(1, cand))
        parent, token = torch.arange(6), torch.tensor(toks)
        want, got = scorer.select(full_new, parent, token), scorer.select(new, parent, token)
        assert torch.equal(want[0], got[0]) and torch.equal(want[2], got[2])
        assert torch.allclose(want[1], got[1])
        state = got


def test_attention_beam_with_a_pre_beam_of_every_token_equals_full_scoring():
    model = tiny_model()
    lm = TransformerLM(LMConfig(d_model=16, num_layers=1, num_heads=2, dropout=0.0), V).eval()
    _, _, (lp, lens, prefix, plens) = encoded(model)
    dec = (lambda: model.decoder_start(prefix, plens), model.lm.step)
    text_lm = (lambda: lm.start(lp.size(0), lp.device), lm.step)
    every = V - NUM_SPECIALS + 1  # the tokens a hypothesis may take next, <sos/eos> included
    with torch.no_grad():
        for kw in (dict(decoder=dec, ctc_weight=0.3), dict(lm=text_lm, lm_weight=0.5)):
            full = search.beam_search(lp, lens, 3, **kw)
            assert search.beam_search(lp, lens, 3, ctc_pre_beam=every, **kw) == full
            narrow = search.beam_search(lp, lens, 3, ctc_pre_beam=3, **kw)
            assert len(narrow) == 3 and all(len(h) <= int(n) for h, n in zip(narrow, lens))


def test_the_ctc_pre_beam_is_all_tokens_of_small_vocabularies_only():
    assert search.ctc_pre_beam_size(500, 8) == 500
    assert search.ctc_pre_beam_size(49159, 8) == 16 and search.ctc_pre_beam_size(49159, 4) == 16
    assert search.ctc_pre_beam_size(49159, 10) == 20 and search.ctc_pre_beam_size(49159, 4, 40) == 40


def test_blank_penalty_is_a_cost_per_blank_frame():
    """decode.blank_penalty: 0 changes nothing; greedy emits the runner-up token once the penalty
    exceeds blank's margin on its frames, and a large one makes every CTC search emit it."""
    from speechlm.decode.streaming import with_blank_penalty
    from speechlm.models.asr import Encoded

    p = torch.full((1, 4, V), 1e-3)
    p[0, :, 0] = 0.99
    p[0, 1:3, 0], p[0, 1:3, 5] = 0.8, 0.15  # blank leads token 5 by log(0.8 / 0.15) = 1.67 there
    lp = (p / p.sum(-1, keepdim=True)).log()
    lens = torch.tensor([4])
    encode = lambda feats, lengths: Encoded(lp, lengths)  # noqa: E731 (stands in for a model)
    assert with_blank_penalty(encode, 0.0) is encode
    assert ctc_greedy(lp, lens) == [[]] and search.ctc_prefix_beam_search(lp, lens, 4)[0][0][0] == []
    for penalty, want in ((1.6, []), (1.7, [5])):
        assert ctc_greedy(with_blank_penalty(encode, penalty)(None, lens).log_probs, lens) == [want]
    e = with_blank_penalty(encode, 3.0)(None, lens)
    assert torch.equal(e.log_probs[..., 1:], lp[..., 1:])  # only blank moves, by the penalty
    assert torch.allclose(e.log_probs[..., 0], lp[..., 0] - 3.0)
    assert search.ctc_prefix_beam_search(e.log_probs, lens, 4)[0][0][0] == [5]
    assert torch.equal(lp, (p / p.sum(-1, keepdim=True)).log())  # the model's output untouched
