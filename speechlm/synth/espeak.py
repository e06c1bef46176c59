"""espeak-ng speech synthesis through ctypes, on the library shipped by ``espeakng-loader``.

espeak-ng keeps global state and is not thread-safe: create one :class:`EspeakSynth` per
process (worker pools should build it in their initializer).

espeak-ng also carries state from one utterance to the next (its noise generator and wave
generator counters; re-seeding and re-initialising do not reset them), so the same call gives
different samples depending on what the process synthesised before. With a pool handing out
utterances in whatever order workers free up, a corpus would differ run to run. So where
``os.fork`` exists, every utterance is synthesised in a forked child of a process whose engine
has never spoken: the samples depend on the call alone (text, voice, rate, pitch).
"""

import ctypes
import os
import random
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from speechlm.base.errors import SpeechlmError
from speechlm.synth.fork import call_in_fork

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_espeakINITIALIZE_DONT_EXIT = 0x8000
_espeakCHARS_UTF8 = 1
_POS_CHARACTER = 1
_espeakRATE = 1
_espeakVOLUME = 2
_espeakPITCH = 3
_EE_OK = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

TARGET_SAMPLE_RATE = 16000

_NOISE_SEED = 1  # every utterance starts its noise from this seed (determinism)

# The process-wide instance (espeak has one global engine per process).
_INSTANCE: Optional["EspeakSynth"] = None


def _locate() -> Tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as e:
        raise SpeechlmError(
            "espeak-ng is unavailable: the 'espeakng-loader' package is not installed. "
            "Install it with: pip install espeakng-loader"
        ) from e
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def espeak_data_dir() -> Path:
    """The espeak-ng-data directory shipped by espeakng-loader."""
    return Path(_locate()[1])


def list_voice_variants() -> List[str]:
    """Names of the voice variants (``+m3``, ``+f2`` ...) present in the shipped data."""
    vdir = espeak_data_dir() / "voices" / "!v"
    return sorted(p.name for p in vdir.iterdir()) if vdir.is_dir() else []


def list_english_languages() -> List[str]:
    """Identifiers of the English language voices present in the shipped data (e.g. ``en-US``)."""
    ldir = espeak_data_dir() / "lang" / "gmw"
    # en-Shaw expects Shavian script input; it is not an accent.
    return sorted(
        p.name for p in ldir.glob("en*") if p.is_file() and p.name != "en-Shaw"
    )


# Variant files in espeak-ng-data/voices/!v that sound like plain human voices.
VOICE_VARIANTS = tuple([f"m{i}" for i in range(1, 9)] + [f"f{i}" for i in range(1, 6)])


def make_english_voices(seed: int = 0) -> List[Dict[str, Union[str, int]]]:
    """All (English accent x variant) voices present in the shipped espeak data, shuffled by
    ``seed``, each with a seeded speaking rate (words/min) and pitch (0-100)."""
    present = set(list_voice_variants())
    variants = [v for v in VOICE_VARIANTS if v in present]
    rng = random.Random(seed)
    voices = []
    for lang in list_english_languages():
        for variant in variants:
            rate, pitch = rng.randint(145, 195), rng.randint(30, 70)
            name = f"{lang.lower()}+{variant}"
            voices.append({
                "id": f"{lang.lower()}_{variant}_r{rate}_p{pitch}",
                "espeak_voice": name, "rate": rate, "pitch": pitch,
            })
    rng.shuffle(voices)
    return voices


class EspeakSynth:
    """Synthesises text with espeak-ng and resamples it to 16 kHz float32.

    Use :func:`get_synth` to obtain the per-process instance.
    """

    def __init__(self) -> None:
        lib_path, data_path = _locate()
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise SpeechlmError(
                f"Could not load libespeak-ng from {lib_path}: {e}. "
                "Reinstall it with: pip install --force-reinstall espeakng-loader"
            ) from e
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synchronize.restype = ctypes.c_int

        # espeak_Initialize takes the directory *containing* espeak-ng-data.
        home = os.path.dirname(data_path).encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, home, _espeakINITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise SpeechlmError(
                f"espeak-ng failed to initialise with data from {data_path}. "
                "Reinstall it with: pip install --force-reinstall espeakng-loader"
            )
        self.native_sample_rate = int(rate)
        self._chunks: List[np.ndarray] = []
        # Keep a reference: ctypes callbacks are freed when garbage-collected.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self._resampler = torch.nn.Identity()
        if self.native_sample_rate != TARGET_SAMPLE_RATE:
            from lhotse.augmentation.resample import Resample

            self._resampler = Resample(self.native_sample_rate, TARGET_SAMPLE_RATE)

    def _collect(self, wav, numsamples, events) -> int:
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize_native(
        self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50
    ) -> Tuple[np.ndarray, int]:
        """Synthesise ``text``; returns (int16 samples, espeak's native sample rate).

        ``voice`` is an espeak voice name with optional variant, e.g. ``"en-us+m3"``;
        ``rate`` is in words per minute (80..450), ``pitch`` in 0..100. Deterministic where
        ``os.fork`` exists (see the module docstring): this process's engine never speaks.
        """
        if not hasattr(os, "fork"):
            return self._synthesize_here(text, voice, rate, pitch)

        def speak() -> bytes:
            self._seed_noise(_NOISE_SEED)
            return self._synthesize_here(text, voice, rate, pitch)[0].tobytes()

        payload = call_in_fork(speak, f"espeak-ng synthesis process for {text!r} (voice {voice!r})")
        return np.frombuffer(payload, dtype=np.int16).copy(), self.native_sample_rate

    def _seed_noise(self, seed: int) -> None:
        """Seed both noise sources espeak-ng draws from (breathy and Klatt voices): its own
        generator and libc's ``rand``; unseeded, they follow the clock."""
        if hasattr(self._lib, "espeak_ng_SetRandSeed"):
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        try:
            ctypes.CDLL(None).srand(ctypes.c_uint(seed))
        except (OSError, AttributeError):
            pass  # no process-wide libc symbol table here (not Linux / macOS)

    def _synthesize_here(self, text: str, voice: str, rate: int, pitch: int) -> Tuple[np.ndarray, int]:
        """Synthesise in this process (its engine state then changes; see the module docstring)."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechlmError(
                f"espeak-ng has no voice {voice!r}. Use a language from "
                f"{list_english_languages()} optionally followed by +variant "
                f"(one of {list_voice_variants()[:12]}...)."
            )
        lib.espeak_SetParameter(_espeakRATE, int(rate), 0)
        lib.espeak_SetParameter(_espeakPITCH, int(pitch), 0)
        lib.espeak_SetParameter(_espeakVOLUME, 80, 0)  # headroom: resampling overshoots
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _espeakCHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != _EE_OK:
            raise SpeechlmError(f"espeak-ng failed (error {err}) to synthesise: {text!r}")
        chunks, self._chunks = self._chunks, []
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return samples.astype(np.int16, copy=False), self.native_sample_rate

    def synthesize(
        self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50
    ) -> Tuple[np.ndarray, int]:
        """Synthesise ``text`` at 16 kHz; returns (float32 samples in [-1, 1], 16000)."""
        samples, _ = self.synthesize_native(text, voice, rate, pitch)
        if samples.size == 0:
            raise SpeechlmError(
                f"espeak-ng produced no audio for {text!r} with voice {voice!r}; "
                "check that the text contains speakable words."
            )
        audio = torch.from_numpy(samples.astype(np.float32) / 32768.0)
        with torch.no_grad():
            audio = self._resampler(audio.unsqueeze(0)).squeeze(0)
        return audio.clamp(-1.0, 1.0).numpy(), TARGET_SAMPLE_RATE


def get_synth() -> EspeakSynth:
    """The process-wide :class:`EspeakSynth` (created on first use)."""
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = EspeakSynth()
    return _INSTANCE
