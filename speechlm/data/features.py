"""80-dim log-mel fbank with Lhotse's torch extractor, stored with a Lhotse lilcom writer.

All audio is resampled to 16 kHz first, so recipes for 8 kHz corpora share models and configs.
Speed perturbation (x0.9, x1.1) is done here, as extra copies of the training cuts, so the
trainer only ever reads precomputed features.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

import torch
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter
from lhotse.cut import Cut, MixedCut, MixTrack, MultiCut
from lhotse.utils import fastcopy

from speechlm.base.errors import SpeechlmError
from speechlm.data.audio_io import SAMPLING_RATE

log = logging.getLogger(__name__)

NUM_MEL_BINS = 80
FRAME_SHIFT = 0.01  # seconds per fbank frame
FBANK_LOW_HZ, FBANK_HIGH_HZ = 20.0, -400.0  # the mel filters' range (Kaldi's; high <= 0: Nyquist + this)


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """The HTK mel scale, 2595 log10(1 + f/700) (= 1127 ln(1 + f/700), as Kaldi writes it)."""
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


ALLOW_COMMAND_AUDIO_ENV = "SPEECHLM_ALLOW_COMMAND_AUDIO"


def _audio_commands(tree) -> Iterator[str]:
    """The shell commands of every ``"type": "command"`` audio source anywhere in a cut's dict
    (a MixedCut holds its tracks' cuts, each with its own recording)."""
    if isinstance(tree, dict):
        if tree.get("type") == "command" and "source" in tree:
            yield str(tree["source"])
        for value in tree.values():
            yield from _audio_commands(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _audio_commands(value)


def check_no_command_audio(cuts: CutSet, where: str) -> None:
    """Refuse cuts whose audio comes from running a shell command: a manifest is data, and
    loading its audio must not run what someone wrote into it."""
    bad = [(cut.id, cmd) for cut in cuts for cmd in _audio_commands(cut.to_dict())]
    if bad:
        cut_id, cmd = bad[0]
        more = f" (and {len(bad) - 1} more sources)" if len(bad) > 1 else ""
        raise SpeechlmError(
            f"cut manifest {where}: cut {cut_id} reads its audio by running the shell command "
            f"{cmd[:80]!r}{more}; speechlm does not run commands from manifests. Convert that audio "
            f"to files, or, if you trust the manifest, set {ALLOW_COMMAND_AUDIO_ENV}=1 (or pass "
            "--allow-command-audio to speechlm compute-fbank)")


def load_cuts(path: str | Path, allow_command_audio: Optional[bool] = None) -> CutSet:
    """Load a cut manifest with a clear error when it is missing or unreadable, or when its audio
    would be read by running a shell command (unless ``allow_command_audio``, by default
    ``$SPEECHLM_ALLOW_COMMAND_AUDIO=1``)."""
    path = Path(path)
    if not path.is_file():
        raise SpeechlmError(f"cut manifest {path} not found: run the earlier recipe stage that writes it")
    try:
        cuts = CutSet.from_file(path).to_eager()
    except Exception as e:  # lhotse raises many types for a bad manifest
        raise SpeechlmError(f"cut manifest {path} could not be read ({type(e).__name__}: {e})") from None
    if allow_command_audio is None:
        allow_command_audio = os.environ.get(ALLOW_COMMAND_AUDIO_ENV) == "1"
    if not allow_command_audio:
        check_no_command_audio(cuts, str(path))
    resolve_relative_paths(cuts, path)
    return cuts


def _leaf_cuts(cut: Cut) -> Iterator[Cut]:
    """The cuts that hold features and recordings: a mixed cut's tracks, else the cut itself."""
    if isinstance(cut, MixedCut):
        for track in cut.tracks:
            yield from _leaf_cuts(track.cut)
    else:
        yield cut


def resolve_relative_paths(cuts: CutSet, manifest: Path) -> None:
    """Relative feature and audio paths in a manifest are written relative to the folder the
    command ran in (a recipe's); read from anywhere else they would not resolve. Each relative
    path that does not exist from the working directory is looked up from the manifest's folder
    and the folders above it, and the first that exists is used (absolute, in memory only)."""
    found: Dict[str, str] = {}
    folders = [manifest.parent.absolute(), *manifest.parent.absolute().parents]

    def resolve(rel: str) -> str:
        if rel not in found:
            found[rel] = rel
            if not os.path.isabs(rel) and not os.path.exists(rel):
                found[rel] = next((str(d / rel) for d in folders if (d / rel).exists()), rel)
        return found[rel]

    for cut in cuts:
        for leaf in _leaf_cuts(cut):
            features = getattr(leaf, "features", None)
            if features is not None and features.storage_path:
                features.storage_path = resolve(features.storage_path)
            recording = getattr(leaf, "recording", None)
            for source in recording.sources if recording is not None else ():
                if source.type == "file":
                    source.source = resolve(source.source)


def check_features(cuts: CutSet, num_mel_bins: int, where: str) -> None:
    """Every cut has precomputed features of the model's input dimension, sampling rate and
    frame shift (those of compute-fbank, which every model is trained on), checked from the
    manifest, before a model or batch is built."""
    for cut in cuts:
        if not cut.has_features:
            raise SpeechlmError(f"{where}: cut {cut.id} has no features: give the manifest that "
                                "`speechlm compute-fbank` wrote (recipe stage 1)")
        feats = cut.features if not isinstance(cut, MixedCut) else cut.tracks[0].cut.features
        if feats is not None and (feats.sampling_rate != SAMPLING_RATE
                                  or abs(feats.frame_shift - FRAME_SHIFT) > 1e-6):
            raise SpeechlmError(
                f"{where}: cut {cut.id} has features computed at {feats.sampling_rate} Hz with a "
                f"{feats.frame_shift * 1000:g} ms frame shift, but the models here take "
                f"{SAMPLING_RATE} Hz audio at {FRAME_SHIFT * 1000:g} ms frames: recompute them "
                "with `speechlm compute-fbank` (recipe stage 1)")
        if cut.num_features != num_mel_bins:
            raise SpeechlmError(
                f"{where}: cut {cut.id} has {cut.num_features}-dim features but the model takes "
                f"encoder.num_mel_bins = {num_mel_bins}: set encoder.num_mel_bins={cut.num_features} "
                f"(compute-fbank writes {NUM_MEL_BINS}) or recompute the features")


def downmix(cut: Cut) -> Cut:
    """A multi-channel cut as one channel, the mean of its channels (a mix of its channels at
    1/N volume each, which feature extraction mixes before computing); other cuts as they are."""
    if not isinstance(cut, MultiCut):
        return cut
    parts = cut.to_mono()
    tracks = [MixTrack(cut=fastcopy(part.perturb_volume(1 / len(parts), affix_id=False),
                                    supervisions=part.supervisions if i == 0 else []))
              for i, part in enumerate(parts)]  # the supervisions once, not once per channel
    return MixedCut(id=cut.id, tracks=tracks)


def fbank_extractor() -> Fbank:
    """The one feature extractor every model is trained and decoded with (80-dim, 16 kHz)."""
    return Fbank(FbankConfig(sampling_rate=SAMPLING_RATE, num_mel_bins=NUM_MEL_BINS,
                             frame_shift=FRAME_SHIFT, low_freq=FBANK_LOW_HZ, high_freq=FBANK_HIGH_HZ))


def compute_fbank(
    cuts_path: str | Path,
    out_cuts_path: str | Path,
    storage_dir: str | Path,
    num_jobs: int = 2,
    speed_perturb: Sequence[float] = (),
    allow_command_audio: Optional[bool] = None,
) -> CutSet:
    """Resample to 16 kHz, optionally add speed-perturbed copies, compute and store fbank.

    Writes features under ``storage_dir`` and the feature-bearing cuts to ``out_cuts_path``
    (atomically: a half-written manifest never exists under the final name). Audio read by a
    shell command is refused unless ``allow_command_audio`` (see :func:`load_cuts`).
    """
    cuts = load_cuts(cuts_path, allow_command_audio)
    multi = sum(isinstance(c, MultiCut) for c in cuts)
    if multi:
        log.warning("fbank: %d of %d cuts have more than one channel: features from the mean of "
                    "their channels", multi, len(cuts))
    rates = Counter(c.sampling_rate for c in cuts if c.sampling_rate != SAMPLING_RATE)
    if rates:  # said once, with the rates found (e.g. FSDD's 8 kHz telephone band)
        log.info("fbank: %d of %d cuts resampled to %d Hz (from %s)", sum(rates.values()), len(cuts),
                 SAMPLING_RATE, ", ".join(f"{r} Hz: {n}" for r, n in sorted(rates.items())))
    cuts = cuts.map(downmix).resample(SAMPLING_RATE)
    if speed_perturb:
        copies = [cuts] + [cuts.perturb_speed(f) for f in speed_perturb]
        cuts = CutSet.from_cuts(c for cs in copies for c in cs)
    storage_dir = Path(storage_dir)
    if storage_dir.exists():
        shutil.rmtree(storage_dir)  # a previous interrupted run; features are recomputed whole
    storage_dir.parent.mkdir(parents=True, exist_ok=True)
    extractor = fbank_extractor()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker process computes on its own core
    try:
        with_feats = cuts.compute_and_store_features(
            extractor=extractor,
            storage_path=storage_dir,
            num_jobs=num_jobs,
            storage_type=LilcomChunkyWriter,
            progress_bar=True,
        )
    finally:
        torch.set_num_threads(threads)
    out_cuts_path = Path(out_cuts_path)
    tmp = out_cuts_path.with_name(out_cuts_path.name + ".tmp.jsonl.gz")
    with_feats.to_file(tmp)
    os.replace(tmp, out_cuts_path)
    log.info("fbank: %d cuts -> %s", len(with_feats), out_cuts_path)
    return with_feats


def frame_statistics(frames: Iterable[torch.Tensor], what: str = "the training cuts"
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (population; floored at 1e-5) over feature matrices
    (frames x dims), accumulated in float64: the one normalisation convention of global CMVN,
    per-speaker CMVN in training and decoding, and ``transcribe``'s per-recording statistics."""
    total = total_sq = 0.0
    count = 0
    for feats in frames:
        feats = torch.as_tensor(feats).double()
        total = total + feats.sum(0)
        total_sq = total_sq + (feats**2).sum(0)
        count += feats.shape[0]
    if count == 0:
        raise SpeechlmError(f"cannot compute feature statistics: {what} have no frames")
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(0.0).sqrt().clamp_min(1e-5)
    return mean.float(), std.float()


def compute_cmvn(cuts: CutSet, max_cuts: int = 1000) -> Tuple[torch.Tensor, torch.Tensor]:
    """Global per-dimension mean/std over (a deterministic subset of) the cuts' features."""
    return frame_statistics(torch.from_numpy(cut.load_features())
                            for cut in itertools.islice(cuts, max_cuts))
