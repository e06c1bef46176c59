"""TTS evaluation: mel-cepstral distortion with DTW, and round-trip intelligibility (the recipe's
ASR model decodes the synthesised audio and the real references of the same sentences: WER and
CER).

MCD here: 24 mel-cepstral coefficients c1..c24 of the natural-log 80-bin mel magnitude at the
TTS frame rate, scaled as a cepstrum (``log S(w) = c0 + 2 sum_k c_k cos(k w)``, i.e. a DCT-II
divided by the number of bins), c0 (energy) left out; frames paired by DTW on the Euclidean
distance; ``MCD = 10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` averaged over the path. Both
sides are analysed from waveforms (the synthesised side after the vocoder). A log-mel
cepstrum is close to, not the same as, the SPTK mel-generalised cepstrum of published MCDs:
compare figures within this toolkit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from speechlm.base.errors import SpeechlmError

log = logging.getLogger("speechlm.tts")

NUM_CEPS = 24
_MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstrum(log_mel: torch.Tensor, num_ceps: int = NUM_CEPS) -> torch.Tensor:
    """``(T, M)`` log-mel -> ``(T, num_ceps)`` cepstra c1..c_num_ceps (DCT-II / M)."""
    m = log_mel.size(-1)
    n = torch.arange(m, dtype=torch.float64)
    k = torch.arange(1, num_ceps + 1, dtype=torch.float64)[:, None]
    dct = torch.cos(math.pi / m * (n + 0.5) * k) / m
    return (log_mel.double() @ dct.T).float()


def dtw_path(cost: np.ndarray) -> List[tuple]:
    """Minimum-cost monotone path through ``cost (N, M)`` (steps (1,0), (0,1), (1,1)), from
    (0, 0) to (N-1, M-1). Filled one anti-diagonal at a time (vectorised)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for s in range(2, n + m + 1):  # cells (i, j) with i + j == s, 1-based
        i = np.arange(max(1, s - m), min(n, s - 1) + 1)
        j = s - i
        best = np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        moves = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
        k = int(np.argmin(moves))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    return path[::-1]


def mcd_dtw(ref_log_mel: torch.Tensor, syn_log_mel: torch.Tensor) -> float:
    """Mel-cepstral distortion (dB) between two log-mel sequences, frames paired by DTW."""
    if ref_log_mel.size(0) == 0 or syn_log_mel.size(0) == 0:
        raise SpeechlmError("MCD: an utterance has no frames")
    a, b = mel_cepstrum(ref_log_mel), mel_cepstrum(syn_log_mel)
    dist = torch.cdist(a.double(), b.double()).numpy()
    path = dtw_path(dist)
    return float(_MCD_SCALE * np.mean([dist[i, j] for i, j in path]))


def plot_mels(pairs: Sequence[tuple], out_png: Path, frame_shift: float) -> None:
    """One figure: reference (top) vs synthesised (bottom) log-mel for each (id, ref, syn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(pairs), figsize=(4.5 * len(pairs), 5), squeeze=False)
    for col, (utt_id, ref, syn) in enumerate(pairs):
        for row, (mel, what) in enumerate(((ref, "reference"), (syn, "synthesised"))):
            ax = axes[row][col]
            ax.imshow(mel.T.numpy(), origin="lower", aspect="auto", interpolation="none",
                      extent=(0, mel.size(0) * frame_shift, 0, mel.size(1)), vmin=-11.5)
            ax.set_title(f"{utt_id} {what}", fontsize=8)
            ax.set_xlabel("s")
            ax.set_ylabel("mel bin")
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)


def _write_wav_manifest(waves: Dict[str, torch.Tensor], texts: Dict[str, str], wav_dir: Path,
                        out_dir: Path, prefix: str, sample_rate: int) -> Path:
    from lhotse import Recording

    from speechlm.data.corpus import manifest_paths, whole_recording_supervision, write_manifests
    from speechlm.models.vocoder import write_wav

    recs = [Recording.from_file(write_wav(wav_dir / f"{utt_id}.wav", wave, sample_rate),
                                recording_id=utt_id) for utt_id, wave in waves.items()]
    sups = [whole_recording_supervision(r, texts[r.id]) for r in recs]
    write_manifests(recs, sups, out_dir, prefix, "test")
    return manifest_paths(out_dir, prefix, "test")["cuts"]


def _asr_round_trip(cuts: Path, name: str, out_dir: Path, asr_dir: Path, methods: Sequence[str],
                    lang_dir: Optional[Path]) -> Dict[str, Dict[str, float]]:
    from speechlm.data.features import compute_fbank
    from speechlm.scoring.evaluate import decode_and_score

    with_feats = out_dir / f"fbank_{name}.jsonl.gz"
    compute_fbank(cuts, with_feats, out_dir / f"fbank_{name}", num_jobs=1)
    return decode_and_score(asr_dir, with_feats, name, methods, out_dir=out_dir / f"asr-{name}",
                     lang_dir=lang_dir, device="cpu")


def evaluate_tts(model_dir: str | Path, ref_cuts: str | Path, asr_dir: str | Path,
                 out_dir: str | Path, lang_dir: Optional[str | Path] = None,
                 num_plots: int = 3, results_md: Optional[str | Path] = None,
                 command: str = "", max_utts: int = 0) -> Dict[str, object]:
    """Synthesise the sentences of ``ref_cuts``, compare with the reference audio (MCD-DTW),
    decode both with the ASR model in ``asr_dir`` (ctc-greedy, and hlg-1best when
    ``lang_dir/HLG.fst`` exists), plot a few mels; write ``tts-summary.json`` / ``.txt``.

    A test sentence with characters the TTS tokenizer never saw (a real corpus's test prompt may
    hold a letter its training text lacks) is left out of both sides, counted and named in the
    summary (``skipped``)."""
    from speechlm.data.features import load_cuts
    from speechlm.models.tts import Synthesizer, encode_text
    from speechlm.models.vocoder import MelFrontend

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer(model_dir)
    cuts = load_cuts(ref_cuts).resample(synth.sample_rate)  # a real corpus may be 8 kHz
    skipped = []
    for cut in cuts:
        try:
            encode_text(" ".join(s.text for s in cut.supervisions), synth.tokenizer)
        except SpeechlmError:
            skipped.append(cut.id)
    if skipped:
        cuts = cuts.filter(lambda c: c.id not in set(skipped)).to_eager()
        log.warning("TTS evaluation: %d of %d test sentences skipped: characters the TTS tokenizer "
                    "cannot encode (%s)", len(skipped), len(cuts) + len(skipped), ", ".join(skipped[:5]))
    if len(cuts) == 0:
        raise SpeechlmError(f"{ref_cuts}: no test sentence the TTS tokenizer can encode")
    if max_utts:
        cuts = cuts.subset(first=min(max_utts, len(cuts)))
    texts = {c.id: " ".join(s.text for s in c.supervisions) for c in cuts}
    ids = list(texts)
    t0 = time.perf_counter()
    mels = synth.mels([texts[i] for i in ids], items=[f"{ref_cuts}, cut {i}" for i in ids])
    waves = synth.vocode(mels)
    synth_seconds = time.perf_counter() - t0
    audio_seconds = sum(w.numel() for w in waves) / synth.sample_rate
    syn_cuts = _write_wav_manifest(dict(zip(ids, waves)), texts, out_dir / "wav", out_dir,
                                   "synth", synth.sample_rate)
    frontend = MelFrontend(synth.spec)
    mcds, pairs = [], []
    for cut, wave in zip(cuts, waves):
        ref_mel = frontend(torch.from_numpy(cut.load_audio()[0]).float())
        syn_mel = frontend(wave)
        mcds.append(mcd_dtw(ref_mel, syn_mel))
        if len(pairs) < num_plots:
            pairs.append((cut.id, ref_mel, syn_mel))
    if pairs:
        plot_mels(pairs, out_dir / "mels.png", synth.spec.frame_shift)
    methods = ["ctc-greedy"]
    lang = Path(lang_dir) if lang_dir else None
    if lang is not None and (lang / "HLG.fst").is_file():
        methods.append("hlg-1best")
    ref_wer = _asr_round_trip(Path(ref_cuts) if not (max_utts or skipped) else _subset(cuts, out_dir),
                              "reference", out_dir, Path(asr_dir), methods, lang)
    syn_wer = _asr_round_trip(syn_cuts, "synthesised", out_dir, Path(asr_dir), methods, lang)
    summary = {
        "model_dir": str(model_dir), "asr_dir": str(asr_dir), "num_utts": len(ids), "skipped": skipped,
        "mcd_db": round(float(np.mean(mcds)), 3),
        **{f"{kind}_{side}": {m: round(v[kind], 2) for m, v in scores.items()}
           for kind in ("wer", "cer") for side, scores in (("synthesised", syn_wer), ("reference", ref_wer))},
        "synthesis_rtf": round(synth_seconds / max(audio_seconds, 1e-9), 4),
        "figure": str(out_dir / "mels.png") if pairs else "",
    }
    (out_dir / "tts-summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [f"MCD-DTW {summary['mcd_db']:.2f} dB over {len(ids)} utterances "
             f"(synthesis RTF {summary['synthesis_rtf']:.3f}, model + Griffin-Lim)"]
    if skipped:
        lines.append(f"skipped {len(skipped)} test sentences with characters the TTS tokenizer "
                     f"cannot encode: {', '.join(skipped)}")
    for m in methods:
        for kind in ("wer", "cer"):
            lines.append(f"round-trip {kind.upper()} ({m}): synthesised "
                         f"{summary[kind + '_synthesised'][m]:.2f}% | reference "
                         f"{summary[kind + '_reference'][m]:.2f}%")
    (out_dir / "tts-summary.txt").write_text("\n".join(lines) + "\n")
    if results_md:
        _append_results(Path(results_md), summary, methods, command)
    for line in lines:
        log.info("%s", line)
    return summary


def _subset(cuts, out_dir: Path) -> Path:
    path = out_dir / "reference_cuts.jsonl.gz"
    cuts.to_file(path)
    return path


def _append_results(path: Path, summary: dict, methods: Sequence[str], command: str) -> None:
    from speechlm.scoring.results_md import append_to_section, current_commit, section_key

    day = time.strftime("%Y-%m-%d")

    def rates(kind: str) -> str:  # "ctc-greedy: 5.00% (reference 1.00%); ..."
        return "; ".join(f"{m}: {summary[kind + '_synthesised'][m]:.2f}% (reference "
                         f"{summary[kind + '_reference'][m]:.2f}%)" for m in methods)

    wers, cers = rates("wer"), rates("cer")
    row = (f"- {day} {current_commit()} TTS ({summary['model_dir']}, {summary['num_utts']} test "
           f"sentences): MCD-DTW {summary['mcd_db']:.2f} dB; round-trip WER {wers}; CER {cers}; synthesis RTF "
           f"{summary['synthesis_rtf']:.3f}  \n  command: `{command}`")
    append_to_section(path, section_key(summary["model_dir"], path), [row], title="TTS")
