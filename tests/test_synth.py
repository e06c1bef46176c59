"""The embedded corpus synth_en: text domain, espeak synthesis, corpus preparation."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechlm.base.errors import SpeechlmError
from speechlm.corpora.synth_en_grammar import generate_distinct_sentences, generate_sentences, is_valid_sentence


def test_domain_deterministic_varied_and_clean():
    a = generate_sentences(5000, seed=7)
    assert a == generate_sentences(5000, seed=7)
    assert a != generate_sentences(5000, seed=8)
    assert len({w for s in a for w in s.split()}) >= 200
    assert all(is_valid_sentence(s) for s in a)
    assert not any(ch.isdigit() for s in a for ch in s)


def test_distinct_sentences_are_prefix_stable():
    small, large = generate_distinct_sentences(300, seed=1), generate_distinct_sentences(12_000, seed=1)
    assert small == large[:300] and len(set(large)) == 12_000


def test_espeak_synthesizes_16k_speech():
    from speechlm.synth.espeak import get_synth

    audio, sr = get_synth().synthesize("set an alarm for seven forty five tomorrow", "en-us+m3", 175, 50)
    assert sr == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < len(audio) / sr < 6.0
    assert np.sqrt(np.mean(audio**2)) > 0.01
    with pytest.raises(SpeechlmError, match="no voice"):
        get_synth().synthesize("hello", "xx-no-such-voice")


def test_espeak_output_does_not_depend_on_what_came_before():
    """espeak-ng carries state across utterances; each one must still come out the same."""
    from speechlm.synth.espeak import get_synth

    synth = get_synth()
    call = ("what is the dentist's number", "en-029+m3", 151, 52)
    first, _ = synth.synthesize_native(*call)
    synth.synthesize_native("set an alarm for six", "en-gb-scotland+f2", 173, 35)
    again, _ = synth.synthesize_native(*call)
    assert np.array_equal(first, again)
    # The check has teeth: in one process espeak's own state changes between calls. (In a
    # subprocess: speaking here would leave this process's engine no longer pristine.)
    probe = ("import numpy as np; from speechlm.synth.espeak import get_synth; s = get_synth(); "
             f"a, b = (s._synthesize_here(*{call!r})[0] for _ in range(2)); "
             "print(len(a) == len(b) and bool(np.array_equal(a, b)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_prepare_synth_en_tiny(tmp_path):
    from lhotse import load_manifest

    from speechlm.corpora.synth_en import prepare_synth_en

    out = tmp_path / "synth_en"
    res = prepare_synth_en(out, num_text=2000, num_train=12, num_dev=4, num_test=4, num_jobs=2)
    assert (res["num_train"], res["num_dev"], res["num_test"]) == (12, 4, 4)
    assert res["num_train_voices"] + res["num_dev_voices"] + res["num_test_voices"] >= 20

    cuts = {s: load_manifest(out / "manifests" / f"synth_en_cuts_{s}.jsonl.gz") for s in ("train", "dev", "test")}
    speakers = {s: {c.supervisions[0].speaker for c in cs} for s, cs in cuts.items()}
    texts = {s: {c.supervisions[0].text for c in cs} for s, cs in cuts.items()}
    assert not speakers["test"] & speakers["train"] and not speakers["dev"] & speakers["train"]
    assert not speakers["test"] & speakers["dev"]
    lm_text = set((out / "text" / "lm_text.txt").read_text().splitlines())
    assert len(lm_text) == 2000
    for held_out in ("dev", "test"):
        assert not texts[held_out] & texts["train"] and not texts[held_out] & lm_text
    assert texts["train"] <= lm_text

    voices = json.loads((out / "manifests" / "voices.json").read_text())
    assert not {v["id"] for v in voices["test"]} & {v["id"] for v in voices["train"]}
    for split, cs in cuts.items():
        for c in cs:
            info = sf.info(c.recording.sources[0].source)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.frames == c.recording.num_samples and c.duration > 0.5
            assert str(out / "wav" / split) in c.recording.sources[0].source

    again = prepare_synth_en(out, num_text=2000, num_train=12, num_dev=4, num_test=4, num_jobs=1)
    assert again["num_train_synthesised"] == again["num_test_synthesised"] == 0
    # The same corpus, byte for byte, from another run with another number of jobs.
    other = tmp_path / "other"
    prepare_synth_en(other, num_text=2000, num_train=12, num_dev=4, num_test=4, num_jobs=1)
    wavs = sorted((out / "wav").rglob("*.wav"))
    assert len(wavs) == 20
    for wav in wavs:
        assert wav.read_bytes() == (other / wav.relative_to(out)).read_bytes(), wav.name
    with pytest.raises(SpeechlmError, match="other settings"):
        prepare_synth_en(out, num_text=2000, num_train=12, num_dev=4, num_test=5, seed=1)


def test_prepare_synth_en_unlabeled_split_is_the_next_training_utterances_without_text(tmp_path):
    from lhotse import load_manifest

    from speechlm.corpora.synth_en import prepare_synth_en

    sizes = dict(num_text=2000, num_dev=4, num_test=4, num_jobs=2)
    out = tmp_path / "synth_en"
    res = prepare_synth_en(out, num_train=6, num_unlabeled=3, **sizes)
    assert (res["num_train"], res["num_unlabeled"]) == (6, 3)
    assert res["num_unlabeled_voices"] == res["num_train_voices"]
    man = out / "manifests"
    unlabeled = load_manifest(man / "synth_en_cuts_unlabeled.jsonl.gz")
    assert [c.recording.id for c in unlabeled] == [f"synth_en-unlabeled-{i:06d}" for i in (6, 7, 8)]
    assert all(not c.supervisions for c in unlabeled)
    assert len(load_manifest(man / "synth_en_recordings_unlabeled.jsonl.gz")) == 3
    assert gzip.open(man / "synth_en_supervisions_unlabeled.jsonl.gz").read() == b""  # no transcript
    # the LM text and the paired splits do not depend on num_unlabeled
    plain = tmp_path / "plain"
    prepare_synth_en(plain, num_train=9, **sizes)
    assert (out / "text" / "lm_text.txt").read_bytes() == (plain / "text" / "lm_text.txt").read_bytes()
    # unlabeled utterance N is paired utterance N of a larger training set: same sentence, same voice
    for i in (6, 7, 8):
        got = (out / "wav" / "unlabeled" / f"synth_en-unlabeled-{i:06d}.wav").read_bytes()
        assert got == (plain / "wav" / "train" / f"synth_en-train-{i:06d}.wav").read_bytes()
    with pytest.raises(SpeechlmError, match="num_unlabeled"):
        prepare_synth_en(tmp_path / "bad", num_train=6, num_unlabeled=-1, **sizes)
