"""TTS features: log-mel frames plus per-token durations from a CTC forced alignment by the
recipe's ASR model (the aligner), one ``.pt`` file per split (read by
:func:`speechlm.data.tts_data.load_tts_features`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from speechlm.base.checkpoint import save_atomic
from speechlm.base.errors import SpeechlmError
from speechlm.data.features import SAMPLING_RATE, fbank_extractor, load_cuts
from speechlm.decode.align import FRAME_TIME, ctc_forced_align, speech_bounds, token_durations
from speechlm.models.experiment import load_experiment
from speechlm.models.vocoder import MelFrontend, MelSpec

log = logging.getLogger(__name__)

ALIGN_FRAME_TIME = FRAME_TIME  # ASR output frame: 10 ms fbank x 4 (conv subsampling)
ALIGN_FRAME_OFFSET = 0.04  # centre of output frame 0: input frames 0..6 (+ half a window)


def _batched_alignment_inputs(cuts, batch_size: int):
    """Yield lists of (cut, waveform) in batches of similar duration."""
    ordered = sorted(cuts, key=lambda c: c.duration)
    for start in range(0, len(ordered), batch_size):
        group = ordered[start: start + batch_size]
        yield [(c, torch.from_numpy(c.load_audio()[0]).float()) for c in group]


@torch.no_grad()
def compute_tts_features(cuts_path: str | Path, asr_dir: str | Path, out_path: str | Path,
                         hop_length: int = 256, n_fft: int = 1024, device: str = "cpu",
                         batch_size: int = 8) -> int:
    """Log-mel frames and CTC-aligned token durations for every cut; written to ``out_path``.
    Audio at another rate (a real corpus at 8 kHz) is resampled to the TTS rate on load."""
    spec = MelSpec(n_fft=n_fft, hop_length=hop_length)
    cuts = load_cuts(cuts_path).resample(spec.sample_rate)
    if len(cuts) == 0:
        raise SpeechlmError(f"{cuts_path}: no cuts")
    exp = load_experiment(asr_dir, torch.device(device), needs="ctc", option="--asr-dir")
    asr, tokenizer = exp.model, exp.tokenizer
    frontend = MelFrontend(spec).to(device)
    fbank = fbank_extractor()
    utts, skipped, done = [], [], 0
    for group in _batched_alignment_inputs(cuts, batch_size):
        feats = [torch.from_numpy(fbank.extract(w.numpy(), SAMPLING_RATE)) for _, w in group]
        lens = torch.tensor([f.size(0) for f in feats])
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        log_probs, out_lens = asr(padded.to(device), lens.to(device))
        for i, (cut, wave) in enumerate(group):
            text = " ".join(s.text for s in cut.supervisions)
            ids = tokenizer.encode(text, item=f"{cuts_path}, cut {cut.id}")
            mel = frontend(wave.to(device)).cpu()
            try:
                path = ctc_forced_align(log_probs[i, : int(out_lens[i])].cpu(), ids)
            except SpeechlmError:  # too short for its transcript: left out, as Kaldi's aligner does
                skipped.append(cut.id)
                continue
            start, end = speech_bounds(mel)
            durs = token_durations(path, len(ids), ALIGN_FRAME_TIME, ALIGN_FRAME_OFFSET,
                                   spec.frame_shift, mel.size(0), start, end)
            utts.append({"id": cut.id, "text": text, "tokens": ids, "durations": durs,
                         "mel": mel.half()})
        done += len(group)
        if done // 200 != (done - len(group)) // 200:  # long work shows progress
            log.info("TTS features: %d of %d utterances aligned", done, len(cuts))
    if skipped:
        log.warning("TTS features: %d of %d cuts left out: too short to hold their transcript's tokens "
                    "at the ASR model's 40 ms frames (%s%s)", len(skipped), len(cuts),
                    ", ".join(skipped[:5]), ", ..." if len(skipped) > 5 else "")
    if not utts:
        raise SpeechlmError(f"{cuts_path}: none of the {len(cuts)} cuts could be aligned: each is too "
                            "short for its transcript's tokens; check that the audio and the text match")
    utts.sort(key=lambda u: u["id"])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"utts": utts, "hop_length": hop_length, "n_fft": n_fft,
                 "asr_dir": str(asr_dir)}, out_path)
    frames = sum(u["mel"].size(0) for u in utts)
    log.info("TTS features: %d utterances, %d mel frames -> %s", len(utts), frames, out_path)
    return len(utts)
