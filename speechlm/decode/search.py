"""Batched search over CTC log-probs, an attention decoder and a text LM (CPU or CUDA, same code).

- :func:`ctc_prefix_beam_search`: frame-synchronous CTC prefix beam search (as WeNet's); equal
  prefixes are merged by a rolling hash, every utterance and hypothesis in one tensor op per frame.
- :class:`CTCPrefixScorer`: label-synchronous CTC prefix scores of every next token for a batch
  of hypotheses (the algorithm of Watanabe et al. 2017, as in ESPnet's ``ctc_prefix_score``).
- :func:`beam_search`: label-synchronous beam search with a weighted sum of scorers: the
  speech-LM decoder, CTC prefix scores, a text LM, a length bonus. Attention-beam (decoder + CTC)
  and LM shallow fusion (CTC + text LM) are two weightings of it.
- :func:`attention_rescoring`: re-rank a CTC n-best list with the decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from speechlm.text.symbols import BLANK_ID, NUM_SPECIALS, SOS_EOS_ID

NEG = -1e10  # "impossible" in log space; finite so that differences never give NaN
_HASH_MULT = 1_000_003

Hyp = tuple[list[int], float]


def _lse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(a, b)


# ---- frame-synchronous CTC prefix beam search -------------------------------------------------
def ctc_prefix_beam_search(log_probs: torch.Tensor, lengths: torch.Tensor,
                           beam: int) -> list[list[Hyp]]:
    """``log_probs (B, T, V)`` -> per utterance the n-best ``(token ids, log-prob)``, best first.

    Per frame every hypothesis either stays (blank, or a repeat of its last token) or is extended
    by one of the frame's ``beam`` best non-special tokens; hypotheses with equal prefixes are
    merged (their blank- and non-blank-ending probabilities summed), the best ``beam`` kept.
    """
    lp = log_probs.float()
    b, t_max, v = lp.shape
    dev = lp.device
    w = beam
    k = min(beam, v - NUM_SPECIALS)
    pb = torch.full((b, w), NEG, device=dev)
    pb[:, 0] = 0.0
    pnb = torch.full((b, w), NEG, device=dev)
    hashes = torch.zeros(b, w, dtype=torch.long, device=dev)
    last = torch.full((b, w), -1, dtype=torch.long, device=dev)
    toks = torch.zeros(b, w, max(t_max, 1), dtype=torch.long, device=dev)
    tlen = torch.zeros(b, w, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)[:, None]
    for t in range(t_max):
        x = lp[:, t]
        x_last = torch.where(last >= 0, x.gather(1, last.clamp_min(0)), torch.full_like(pb, NEG))
        total = _lse(pb, pnb)
        stay_pb = total + x[:, BLANK_ID, None]
        stay_pnb = pnb + x_last
        xc, c = x[:, NUM_SPECIALS:].topk(k, dim=-1)
        c = c + NUM_SPECIALS  # (B, K)
        same = c[:, None, :] == last[:, :, None]  # (B, W, K)
        ext_pnb = torch.where(same, pb[:, :, None], total[:, :, None]) + xc[:, None, :]
        ext_hash = hashes[:, :, None] * _HASH_MULT + c[:, None, :] + 1
        cand_pb = torch.cat([stay_pb, torch.full_like(ext_pnb, NEG).flatten(1)], dim=1)
        cand_pnb = torch.cat([stay_pnb, ext_pnb.flatten(1)], dim=1)
        cand_hash = torch.cat([hashes, ext_hash.flatten(1)], dim=1)  # (B, C)
        eq = cand_hash[:, :, None] == cand_hash[:, None, :]  # (B, C, C)
        m_pb = torch.where(eq, cand_pb[:, None, :], NEG).logsumexp(-1)
        m_pnb = torch.where(eq, cand_pnb[:, None, :], NEG).logsumexp(-1)
        n_c = cand_hash.size(1)
        earlier = torch.ones(n_c, n_c, dtype=torch.bool, device=dev).tril(-1)
        dup = (eq & earlier).any(-1)
        score = torch.where(dup, 2 * NEG, _lse(m_pb, m_pnb))
        sel = score.topk(w, dim=-1).indices  # (B, W)
        is_ext = sel >= w
        parent = torch.where(is_ext, (sel - w) // k, sel)
        new_tok = c.gather(1, ((sel - w) % k).clamp_min(0))
        n_toks = toks[rows, parent]
        n_tlen = tlen.gather(1, parent)
        pos = n_tlen.clamp_max(toks.size(2) - 1)
        cur = n_toks.gather(2, pos[..., None])[..., 0]
        n_toks.scatter_(2, pos[..., None], torch.where(is_ext, new_tok, cur)[..., None])
        new = (m_pb.gather(1, sel), m_pnb.gather(1, sel), cand_hash.gather(1, sel),
               torch.where(is_ext, new_tok, last.gather(1, parent)), n_toks,
               n_tlen + is_ext.long())
        active = (t < lengths.to(dev))[:, None]
        pb, pnb, hashes, last, toks, tlen = (
            torch.where(active if n.dim() == 2 else active[..., None], n, o)
            for n, o in zip(new, (pb, pnb, hashes, last, toks, tlen)))
    final = _lse(pb, pnb)
    order = final.argsort(dim=-1, descending=True)
    final, toks, tlen = final.gather(1, order), toks[rows, order], tlen.gather(1, order)
    final, toks, tlen = final.cpu(), toks.cpu(), tlen.cpu()
    out = []
    for i in range(b):
        out.append([(toks[i, j, : tlen[i, j]].tolist(), float(final[i, j]))
                    for j in range(w) if final[i, j] > NEG / 2])
    return out


# ---- label-synchronous CTC prefix scores ----------------------------------------------------
class CTCPrefixScorer:
    """CTC prefix scores of next tokens for ``N`` hypotheses over ``B`` utterances: of every
    token, or (``cand``) of a few candidate tokens per hypothesis, as ESPnet's pre-beam does for
    large vocabularies (an LLM's ~50k tokens: scoring all of them per step would hold a
    ``(T, 2, N, V)`` tensor).

    State of a hypothesis ``g``: ``r (T, 2, N)``, the log-probs of ``g`` over frames ``0..t``
    ending in a non-blank (0) or blank (1); and ``psi (N)``, the prefix log-prob of ``g``.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, repeat: int):
        lp = log_probs.float()
        self.x = lp.transpose(0, 1)  # (T, B, V): not repeated per hypothesis
        self.utt = torch.arange(lp.size(0), device=lp.device).repeat_interleave(repeat)  # (N,)
        self.lengths = lengths.to(lp.device).repeat_interleave(repeat)
        self.t_idx = torch.arange(self.x.size(0), device=lp.device)
        self.frame_ok = self.t_idx[:, None] < self.lengths[None, :]  # (T, N)

    def initial_state(self):
        t, n = self.x.size(0), self.utt.numel()
        r = torch.full((t, 2, n), NEG, device=self.x.device)
        blank = self.x[:, self.utt, BLANK_ID].masked_fill(~self.frame_ok, 0.0)
        r[:, 1] = blank.cumsum(0)
        psi = torch.zeros(n, device=self.x.device)
        last = torch.full((n,), -1, dtype=torch.long, device=self.x.device)
        return r, psi, last

    def score(self, state, empty: bool, cand: torch.Tensor | None = None):
        """Score increments ``(N, K)`` (``psi(g + c) - psi(g)``; for ``<sos/eos>`` the full
        log-prob of ``g`` minus ``psi(g)``) of the tokens ``cand (N, K)`` (default: every token,
        ``K = V``), and the state of every extension."""
        r, psi, last = state
        if cand is None:
            x = self.x[:, self.utt]  # (T, N, V)
            cols = torch.arange(x.size(-1), device=x.device)[None, :]
        else:
            x = self.x[:, self.utt[:, None], cand]  # (T, N, K)
            cols = cand
        t_max, n, v = x.shape
        r_sum = _lse(r[:, 0], r[:, 1])  # (T, N)
        phi = r_sum[:, :, None].expand(t_max, n, v).clone()
        hit = cols == last[:, None]  # (N, K)
        phi = torch.where(hit[None], r[:, 1, :, None], phi)
        r_new = torch.full((t_max, 2, n, v), NEG, device=x.device)
        if empty:
            r_new[0, 0] = x[0]
        blank = self.x[:, self.utt, BLANK_ID]  # (T, N)
        for t in range(1, t_max):
            r_new[t, 0] = _lse(r_new[t - 1, 0], phi[t - 1]) + x[t]
            r_new[t, 1] = _lse(r_new[t - 1, 0], r_new[t - 1, 1]) + blank[t, :, None]
        terms = torch.cat([r_new[:1, 0], phi[:-1] + x[1:]], dim=0)  # prob of emitting c at t
        terms = terms.masked_fill(~self.frame_ok[..., None], NEG)
        psi_new = terms.logsumexp(0)  # (N, K)
        end = (self.lengths - 1).clamp_min(0)
        full = r_sum.gather(0, end[None])[0]  # (N,): log-prob of g as a complete output
        cols = cols.expand(n, v)
        psi_new = torch.where(cols == SOS_EOS_ID, full[:, None], psi_new)
        psi_new = psi_new.masked_fill(cols == BLANK_ID, NEG)
        return psi_new - psi[:, None], (r_new, psi_new, cand)

    @staticmethod
    def select(new_state, parent: torch.Tensor, token: torch.Tensor):
        r_new, psi_new, cand = new_state
        if cand is None:
            col = token
        else:  # the column of each chosen token among its parent's candidates
            col = (cand.index_select(0, parent) == token[:, None]).float().argmax(-1)
        r = r_new[:, :, parent, col]  # (T, 2, N)
        return r, psi_new[parent, col], token


FULL_CTC_SCORING_MAX_VOCAB = 1024  # above: CTC prefix scores for a pre-beam of candidates only


def ctc_pre_beam_size(vocab_size: int, beam: int, pre_beam: int = 0) -> int:
    """How many next tokens per hypothesis get CTC prefix scores (``decode.ctc_pre_beam``):
    ``pre_beam`` when > 0; else every token of a vocabulary up to
    :data:`FULL_CTC_SCORING_MAX_VOCAB` (speechlm's own tokenizers), and ``max(2 * beam, 16)``
    of an LLM's (ESPnet's pre-beam is 1.5 x beam)."""
    if pre_beam > 0:
        return min(pre_beam, vocab_size)
    if vocab_size <= FULL_CTC_SCORING_MAX_VOCAB:
        return vocab_size
    return min(max(2 * beam, 16), vocab_size)


# ---- label-synchronous beam search --------------------------------------------------------
# A scorer: (parent (N,), token (N,)) -> next-token log-probs (N, V) after appending token,
# with its own state kept inside; ``init()`` returns the first log-probs.
class CacheScorer:
    """Wraps an incremental model (decoder with speech prefix, or a text LM) with a KV cache."""

    def __init__(self, start: Callable, step: Callable, repeat: int):
        lp, cache = start()
        index = torch.arange(lp.size(0), device=lp.device).repeat_interleave(repeat)
        self.lp, self.cache = lp.float().index_select(0, index), cache.select(index)
        self.step_fn = step

    def advance(self, parent: torch.Tensor, token: torch.Tensor) -> None:
        lp, self.cache = self.step_fn(token, self.cache.select(parent))
        self.lp = lp.float()


def beam_search(
    log_probs: torch.Tensor | None, lengths: torch.Tensor, beam: int,
    decoder: tuple[Callable, Callable] | None = None, ctc_weight: float = 0.0,
    lm: tuple[Callable, Callable] | None = None, lm_weight: float = 0.0,
    length_bonus: float = 0.0, max_lens: torch.Tensor | None = None, ctc_pre_beam: int = 0,
) -> list[list[int]]:
    """Best hypothesis per utterance under
    ``(1 - ctc_weight) * decoder + ctc_weight * CTC + lm_weight * LM + length_bonus * len``.

    ``decoder`` / ``lm`` are ``(start, step)`` pairs: ``start()`` -> (log-probs (B, V), cache);
    ``step(tokens (N,), cache)`` -> (log-probs (N, V), cache). Without a decoder the CTC weight
    is 1. ``lengths`` are the CTC frame counts, ``max_lens`` the longest output allowed
    (default: ``lengths``, as CTC cannot emit more tokens than frames). With a decoder or LM and
    a large vocabulary, CTC scores only each hypothesis's best next tokens under the others
    (:func:`ctc_pre_beam_size`; ``<sos/eos>`` always among them); the rest are out of the beam.
    """
    dev = lengths.device
    b = lengths.size(0)
    w = beam
    n = b * w
    dec = CacheScorer(*decoder, repeat=w) if decoder is not None else None
    lms = CacheScorer(*lm, repeat=w) if lm is not None and lm_weight != 0 else None
    ctc_w = ctc_weight if dec is not None else 1.0
    ctc = CTCPrefixScorer(log_probs, lengths, w) if ctc_w > 0 else None
    ctc_state = ctc.initial_state() if ctc is not None else None
    v = (dec or lms).lp.size(-1) if (dec or lms) else log_probs.size(-1)
    max_lens = (max_lens if max_lens is not None else lengths).to(dev).repeat_interleave(w)
    pre_k = ctc_pre_beam_size(v, w, ctc_pre_beam)
    allowed = torch.zeros(v, dtype=torch.bool, device=dev)
    allowed[NUM_SPECIALS:] = True
    allowed[SOS_EOS_ID] = True
    scores = torch.full((b, w), NEG, device=dev)
    scores[:, 0] = 0.0
    hyps = torch.zeros(n, int(max_lens.max()) + 1, dtype=torch.long, device=dev)
    best_done = torch.full((b,), 2 * NEG, device=dev)
    best_hyp: list[list[int]] = [[] for _ in range(b)]
    for i in range(int(max_lens.max()) + 1):
        joint = torch.zeros(n, v, device=dev)
        if dec is not None:
            joint += (1 - ctc_w) * dec.lp
        if lms is not None:
            joint += lm_weight * lms.lp
        if ctc is not None and pre_k < v and (dec is not None or lms is not None):
            # pre-beam: the best next tokens under the decoder / LM, <sos/eos> always scored
            pre = joint.masked_fill(~allowed, 2 * NEG)
            pre[:, SOS_EOS_ID] = 2 * NEG
            cand = torch.cat([pre.topk(pre_k - 1, dim=-1).indices,
                              torch.full((n, 1), SOS_EOS_ID, dtype=torch.long, device=dev)], dim=1)
            inc, ctc_new = ctc.score(ctc_state, empty=(i == 0), cand=cand)
            kept = torch.full((n, v), 2 * NEG, device=dev)
            joint = kept.scatter(1, cand, joint.gather(1, cand) + ctc_w * inc)
        elif ctc is not None:
            inc, ctc_new = ctc.score(ctc_state, empty=(i == 0))
            joint += ctc_w * inc
        joint += length_bonus
        joint = joint.masked_fill(~allowed, 2 * NEG)
        force_end = (i >= max_lens)[:, None] & (torch.arange(v, device=dev) != SOS_EOS_ID)[None]
        joint = joint.masked_fill(force_end, 2 * NEG)
        cand = (scores.view(n, 1) + joint).view(b, w * v)
        top, idx = cand.topk(w, dim=-1)  # (B, W)
        parent = (idx // v + torch.arange(b, device=dev)[:, None] * w).view(n)
        token = (idx % v).view(n)
        ended = (token == SOS_EOS_ID) & (top.view(n) > NEG / 2)
        # finished hypotheses leave the beam; keep each utterance's best
        end_scores = torch.where(ended, top.view(n), 2 * NEG).view(b, w)
        e_best, e_arg = end_scores.max(dim=-1)
        improved = (e_best > best_done).cpu()
        if improved.any():
            rows = hyps.index_select(0, parent).view(b, w, -1)
            for u in torch.nonzero(improved).flatten().tolist():
                best_hyp[u] = rows[u, int(e_arg[u]), :i].tolist()
            best_done = torch.maximum(best_done, e_best)
        scores = torch.where(ended.view(b, w), 2 * NEG, top)
        running_best = scores.max(dim=-1).values
        if bool(((running_best <= best_done) | (running_best < NEG / 2)).all()) and length_bonus <= 0:
            break
        hyps = hyps.index_select(0, parent)
        if i < hyps.size(1):
            hyps[:, i] = token
        if i == int(max_lens.max()):
            break
        tok_in = token.masked_fill(token == SOS_EOS_ID, NUM_SPECIALS)  # any id: slot is dead
        if dec is not None:
            dec.advance(parent, tok_in)
        if lms is not None:
            lms.advance(parent, tok_in)
        if ctc is not None:
            ctc_state = ctc.select(ctc_new, parent, token)
    return best_hyp


def attention_greedy(start: Callable, step: Callable, max_lens: torch.Tensor) -> list[list[int]]:
    """Greedy decoding from an incremental decoder (argmax each step until ``<sos/eos>``);
    the reference that beam search with beam 1 and no CTC must reproduce."""
    lp, cache = start()
    dev = lp.device
    b, v = lp.shape
    allowed = torch.zeros(v, dtype=torch.bool, device=dev)
    allowed[NUM_SPECIALS:] = True
    allowed[SOS_EOS_ID] = True
    out: list[list[int]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)
    for i in range(int(max_lens.max()) + 1):
        lp = lp.masked_fill(~allowed, 2 * NEG)
        lp[(i >= max_lens.to(dev)), :] = torch.where(
            torch.arange(v, device=dev) == SOS_EOS_ID, 0.0, 2 * NEG)
        tok = lp.argmax(-1)
        for u, tk in enumerate(tok.tolist()):
            if not done[u]:
                if tk == SOS_EOS_ID:
                    done[u] = True
                else:
                    out[u].append(tk)
        if bool(done.all()):
            break
        lp, cache = step(tok.masked_fill(tok == SOS_EOS_ID, NUM_SPECIALS), cache)
    return out


def attention_rescoring(nbest: Sequence[Sequence[Hyp]], score_fn: Callable,
                        ctc_weight: float) -> list[list[int]]:
    """Pick per utterance the n-best entry maximising
    ``(1 - ctc_weight) * decoder + ctc_weight * CTC``. ``score_fn(utt_index (N,), hyps)`` gives
    the decoder log-probs ``(N,)`` of ``hyp <sos/eos>`` for all entries at once."""
    flat = [(u, h, s) for u, lst in enumerate(nbest) for h, s in lst]
    if not flat:
        return [[] for _ in nbest]
    utt = torch.tensor([u for u, _, _ in flat], dtype=torch.long)
    att = score_fn(utt, [h for _, h, _ in flat]).float().cpu()
    ctc = torch.tensor([s for _, _, s in flat])
    total = (1 - ctc_weight) * att + ctc_weight * ctc
    best: list[tuple[float, list[int]]] = [(-float("inf"), []) for _ in nbest]
    for (u, h, _), s in zip(flat, total.tolist()):
        if s > best[u][0]:
            best[u] = (s, list(h))
    return [h for _, h in best]
