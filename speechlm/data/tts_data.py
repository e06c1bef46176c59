"""Single-voice TTS data: an espeak-ng voice reading LM-text sentences (train) and the recipe's
test sentences (references), then TTS features: log-mel frames plus per-token durations from a
CTC forced alignment by the recipe's ASR model.

Layout under ``out_dir``::

    wav/{train,test}/<utt_id>.wav                 16 kHz mono, one voice
    manifests/tts_{recordings,supervisions,cuts}_{train,test}.jsonl.gz

:func:`speechlm.decode.tts_features.compute_tts_features` writes one ``.pt`` file per split: for each utterance its text,
token ids (the ASR tokenizer's, which must be the TTS model's), durations of
``<tts> y1 .. yn <sos/eos>`` in mel frames and the log-mel frames (float16).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

from speechlm.base.errors import SpeechlmError
from speechlm.base.files import read_text_file
from speechlm.text.symbols import BLANK_ID, SOS_EOS_ID, TTS_ID

log = logging.getLogger(__name__)

PREFIX = "tts"


def tts_input(ids: Sequence[int]) -> List[int]:
    """The TTS model's input for one sentence: ``<tts> y1 .. yn <sos/eos>``."""
    return [TTS_ID, *ids, SOS_EOS_ID]


def pad_inputs(inputs: Sequence[Sequence[int]], device) -> Tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(s) for s in inputs], dtype=torch.long)
    tokens = torch.full((len(inputs), int(lens.max())), BLANK_ID, dtype=torch.long)
    for i, s in enumerate(inputs):
        tokens[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return tokens.to(device), lens.to(device)


def pad_features(feats: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """Per-token feature tensors ``(N_i, D)`` (e.g. LLM word features) -> ``(B, length, D)``,
    zero-padded."""
    out = feats[0].new_zeros(len(feats), length, feats[0].size(1))
    for i, f in enumerate(feats):
        out[i, : f.size(0)] = f
    return out


def parse_voice(spec: str) -> Dict[str, object]:
    """``"en-us+m8:175:43"`` (espeak voice[:rate wpm[:pitch 0-100]]) -> a synth_en voice dict."""
    parts = spec.split(":")
    try:
        rate = int(parts[1]) if len(parts) > 1 else 175
        pitch = int(parts[2]) if len(parts) > 2 else 50
    except ValueError:
        raise SpeechlmError(f"--voice {spec!r}: expected VOICE[:RATE[:PITCH]], e.g. en-us+m8:175:43") from None
    if len(parts) > 3 or not parts[0]:
        raise SpeechlmError(f"--voice {spec!r}: expected VOICE[:RATE[:PITCH]], e.g. en-us+m8:175:43")
    return {"id": spec.replace(":", "_").replace("+", "_"), "espeak_voice": parts[0],
            "rate": rate, "pitch": pitch}


def _sentences(path: str | Path, what: str) -> List[str]:
    from speechlm.data.corpus import normalize_text

    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"{what} {path} not found: run the recipe's data-prep stage first")
    if path.name.endswith(".jsonl.gz"):
        from speechlm.data.features import load_cuts

        return [normalize_text(" ".join(s.text for s in c.supervisions)) for c in load_cuts(path)]
    lines = [normalize_text(x) for x in read_text_file(path, what).splitlines()]
    return [x for x in lines if x]


def prepare_tts_voice(out_dir: str | Path, train_text: str | Path, test_text: str | Path,
                      voice: str = "en-us+m8:175:43", num_train: int = 1200, num_test: int = 100,
                      seed: int = 0, num_jobs: int = 2) -> Dict[str, int]:
    """Synthesise a one-voice TTS corpus and write its Lhotse manifests.

    :param train_text: sentences for training (text file, one a line, e.g. the LM text, or a
        cut manifest); ``num_train`` of them are drawn with ``seed``.
    :param test_text: the evaluation sentences (e.g. the recipe's test cuts); the first
        ``num_test`` are read by the same voice as references.
    :param voice: ``VOICE[:RATE[:PITCH]]`` for espeak-ng.
    """
    from lhotse import Recording

    from speechlm.data.corpus import whole_recording_supervision, write_manifests
    from speechlm.synth.jobs import run_synthesis_jobs

    if num_train < 1 or num_test < 1:
        raise SpeechlmError(f"prepare-tts-data: --num-train ({num_train}) and --num-test "
                            f"({num_test}) must be positive")
    v = parse_voice(voice)
    test = _sentences(test_text, "test sentences")[:num_test]
    held_out = set(test)
    pool = [s for s in dict.fromkeys(_sentences(train_text, "training text")) if s not in held_out]
    if len(pool) < num_train:
        raise SpeechlmError(f"{train_text}: {len(pool)} distinct sentences (not in the test set), "
                            f"fewer than --num-train {num_train}")
    train = random.Random(seed).sample(pool, num_train)
    out = Path(out_dir).resolve()
    jobs, utts = [], {}
    for split, texts in (("train", train), ("test", test)):
        (out / "wav" / split).mkdir(parents=True, exist_ok=True)
        utts[split] = []
        for i, text in enumerate(texts):
            utt_id = f"{PREFIX}-{split}-{i:06d}"
            path = out / "wav" / split / f"{utt_id}.wav"
            utts[split].append((utt_id, path, text))
            jobs.append((str(path), text, v))
    run_synthesis_jobs(jobs, num_jobs)  # reuses valid WAVs from an earlier run
    counts = {}
    for split, items in utts.items():
        recs = [Recording.from_file(p, recording_id=u) for u, p, _ in items]
        sups = [whole_recording_supervision(r, t, speaker=str(v["id"]), language="English")
                for r, (_, _, t) in zip(recs, items)]
        write_manifests(recs, sups, out / "manifests", PREFIX, split)
        counts[f"num_{split}"] = len(recs)
    return counts


def load_tts_features(path: str | Path, hop_length: int, n_fft: int) -> List[dict]:
    from speechlm.base.checkpoint import load_checkpoint

    if not Path(path).is_file():
        raise SpeechlmError(f"TTS features {path} not found: run `speechlm tts-features` "
                            "(recipe TTS data stage) first")
    data = load_checkpoint(path)
    if (data.get("hop_length"), data.get("n_fft")) != (hop_length, n_fft):
        raise SpeechlmError(
            f"{path} has mel frames with hop {data.get('hop_length')} / n_fft {data.get('n_fft')} "
            f"but the config asks for tts.hop_length={hop_length} tts.n_fft={n_fft}: recompute "
            "the features with the same settings")
    return data["utts"]


class TtsBatches(torch.utils.data.Dataset):
    """Padded batches of TTS utterances: tokens ``<tts> y <sos/eos>``, durations, mel."""

    def __init__(self, utts: Sequence[dict]):
        self.utts = utts

    def __getitem__(self, indexes: List[int]) -> Dict[str, torch.Tensor]:

        items = [self.utts[i] for i in indexes]
        tokens, token_lens = pad_inputs([tts_input(u["tokens"]) for u in items], "cpu")
        durations = torch.zeros_like(tokens)
        for row, u in enumerate(items):
            durations[row, : len(u["durations"])] = torch.tensor(u["durations"])
        mels = torch.nn.utils.rnn.pad_sequence([u["mel"].float() for u in items], batch_first=True)
        mel_lens = torch.tensor([u["mel"].size(0) for u in items])
        extra = {}
        if "llm" in items[0]:  # LLM word features per token (tts.llm_layers)
            extra["llm_feats"] = pad_features([u["llm"] for u in items], tokens.size(1))
        return {"tokens": tokens, "token_lens": token_lens, "durations": durations,
                "mels": mels, "mel_lens": mel_lens, "ids": [u["id"] for u in items], **extra}


def make_tts_loader(utts: Sequence[dict], max_frames: int, train: bool, seed: int = 0,
                    world_size: int | None = None, rank: int | None = None):
    from speechlm.data.text_data import TokenBatchSampler

    sampler = TokenBatchSampler([u["mel"].size(0) for u in utts], max_frames, shuffle=train,
                                seed=seed, world_size=world_size, rank=rank)
    loader = torch.utils.data.DataLoader(TtsBatches(utts), sampler=sampler, batch_size=None,
                                         num_workers=0)
    return loader, sampler
