"""CTC forced alignment (Viterbi, in torch) and per-token durations for non-autoregressive TTS.

:func:`ctc_forced_align` finds the best CTC path of a known token sequence through a posterior;
:func:`token_durations` turns that path (at the ASR model's output rate) into whole-frame
durations at the TTS mel rate for ``<tts> y1 .. yn <sos/eos>``: ``<tts>`` takes the leading
silence, ``<sos/eos>`` the trailing silence, and the blank frames between two tokens are split
at their midpoint (CTC spikes are short; the sound of a token spans the blanks around it).
"""

from __future__ import annotations

from typing import List, Sequence

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.data.features import FRAME_SHIFT
from speechlm.models.encoder import SUBSAMPLING_FACTOR
from speechlm.text.symbols import BLANK_ID

FRAME_TIME = FRAME_SHIFT * SUBSAMPLING_FACTOR  # seconds per ASR output frame (40 ms)


def ctc_forced_align(log_probs: torch.Tensor, tokens: Sequence[int], blank: int = BLANK_ID) -> torch.Tensor:
    """Viterbi CTC alignment of ``tokens`` through ``log_probs (T, V)``.

    :return: ``(T,)`` long tensor: for each frame the index (0-based, into ``tokens``) of the
        token it emits, or -1 for blank.
    :raises SpeechlmError: when ``T`` frames cannot hold the tokens (plus blanks between repeats).
    """
    t_len = log_probs.size(0)
    n = len(tokens)
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    if n == 0 or t_len < n + repeats:
        raise SpeechlmError(f"CTC alignment: {t_len} frames cannot hold {n} tokens "
                            f"({repeats} repeats); the audio is too short for its transcript")
    device = log_probs.device
    labels = torch.full((2 * n + 1,), blank, dtype=torch.long, device=device)
    labels[1::2] = torch.as_tensor(list(tokens), dtype=torch.long, device=device)
    s_len = labels.numel()
    # a skip from s-2 to s is allowed into a token that differs from the previous token
    skip_ok = torch.zeros(s_len, dtype=torch.bool, device=device)
    skip_ok[3::2] = labels[3::2] != labels[1:-2:2]
    neg = torch.tensor(float("-inf"), device=device)
    emit = log_probs[:, labels].float()  # (T, S)
    score = torch.full((s_len,), float("-inf"), device=device)
    score[:2] = emit[0, :2]
    back = torch.zeros(t_len, s_len, dtype=torch.long, device=device)
    for t in range(1, t_len):
        stay = score
        step = torch.cat([neg.view(1), score[:-1]])
        skip = torch.where(skip_ok, torch.cat([neg.expand(2), score[:-2]]), neg)
        cands = torch.stack([stay, step, skip])  # (3, S)
        best, arg = cands.max(dim=0)
        back[t] = arg
        score = best + emit[t]
    final = score[-2:]  # end in the last token or the trailing blank
    state = s_len - 2 + int(final.argmax())
    if not torch.isfinite(score[state]):
        raise SpeechlmError("CTC alignment: no valid path (every path has zero probability)")
    path = torch.empty(t_len, dtype=torch.long)
    back = back.cpu()
    for t in range(t_len - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    return torch.where(path % 2 == 1, (path - 1) // 2, torch.full_like(path, -1))


def token_durations(frame_tokens: torch.Tensor, num_tokens: int, frame_time: float,
                    frame_offset: float, mel_shift: float, num_mel_frames: int,
                    speech_start: int, speech_end: int) -> List[int]:
    """Durations in mel frames of ``<tts> y1 .. yn <sos/eos>`` (``num_tokens + 2`` entries,
    summing to ``num_mel_frames``).

    :param frame_tokens: the alignment from :func:`ctc_forced_align` (ASR output rate).
    :param frame_time: seconds per ASR output frame; ``frame_offset``: the time of frame 0's centre.
    :param mel_shift: seconds per mel frame (the TTS hop).
    :param speech_start: first mel frame of speech (energy); ``speech_end`` one past the last.
        The first token starts no later than ``speech_start`` and the last ends no earlier than
        ``speech_end``: CTC spikes say which token, not where its sound begins or ends.
    """
    ft = frame_tokens.tolist()
    firsts, lasts = [None] * num_tokens, [None] * num_tokens
    for t, k in enumerate(ft):
        if k >= 0:
            if firsts[k] is None:
                firsts[k] = t
            lasts[k] = t
    if any(f is None for f in firsts):
        raise SpeechlmError("token_durations: the alignment misses a token")
    to_mel = lambda sec: int(round(sec / mel_shift))  # noqa: E731
    half = frame_time / 2
    bounds = [min(speech_start, to_mel(frame_offset + firsts[0] * frame_time - half))]
    for k in range(1, num_tokens):  # boundary between token k-1 and k: midpoint of the gap
        end_prev = frame_offset + lasts[k - 1] * frame_time + half
        start = frame_offset + firsts[k] * frame_time - half
        bounds.append(to_mel((end_prev + start) / 2))
    bounds.append(max(speech_end, to_mel(frame_offset + lasts[-1] * frame_time + half)))
    # every token at least one frame, all within [0, num_mel_frames]
    e = [min(max(b, 0), num_mel_frames) for b in bounds]
    for i in range(1, len(e)):
        e[i] = max(e[i], e[i - 1] + 1)
    e[-1] = min(e[-1], num_mel_frames)
    for i in range(len(e) - 2, -1, -1):
        e[i] = min(e[i], e[i + 1] - 1)
    if e[0] < 0:
        raise SpeechlmError(f"token_durations: {num_mel_frames} mel frames cannot hold "
                            f"{num_tokens} tokens")
    return [e[0]] + [b - a for a, b in zip(e[:-1], e[1:])] + [num_mel_frames - e[-1]]


def speech_bounds(log_mel: torch.Tensor, threshold_db: float = 40.0) -> tuple:
    """First and one-past-last mel frame whose energy is within ``threshold_db`` of the loudest."""
    energy = log_mel.exp().sum(-1).clamp_min(1e-10).log10() * 10  # dB, (T,)
    loud = (energy > energy.max() - threshold_db).nonzero().flatten()
    if loud.numel() == 0:
        return 0, log_mel.size(0)
    return int(loud[0]), int(loud[-1]) + 1
