"""Using a trained model on your own audio: file formats, rates and channels, long recordings
split on pauses, word times, the Python API and `speechlm transcribe`."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import FSDD, REPO, fsdd_long_recording
from speechlm.base.errors import SpeechlmError
from speechlm.data.audio_io import expand_inputs, load_audio, to_model_audio
from speechlm.data.vad import VadConfig, split_on_pauses

TEST_FILES = [FSDD / f"{d}_theo_0.wav" for d in range(10)]
TRAIN_FILES = [FSDD / f"{d}_{spk}_{i}.wav" for spk in ("theo", "jackson") for d in range(10) for i in (5, 6)]


@pytest.fixture(scope="module")
def recognizer(tiny_ctc):
    from speechlm import Recognizer

    return Recognizer.from_dir(tiny_ctc)


def test_import_speechlm_is_cheap():
    code = "import sys, speechlm; assert 'torch' not in sys.modules and 'lhotse' not in sys.modules; " \
           "print(speechlm.Recognizer.__name__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Recognizer", "True"]  # loaded on first use


def test_formats_rates_and_channels_read_the_same(tmp_path):
    ref = load_audio(TEST_FILES[8])  # 8 kHz mono WAV, resampled to 16 kHz
    assert ref.original_rate == 8000 and ref.channels == 1 and ref.samples.dtype == np.float32
    assert abs(ref.duration - sf.info(str(TEST_FILES[8])).duration) < 0.01
    x = ref.samples
    stereo = np.stack([x, 0.5 * x], axis=1)  # (N, 2): soundfile's layout
    made = {"flac-16k-stereo.flac": (stereo, 16000), "wav-16k-int16.wav": (x, 16000),
            "ogg-22k.ogg": (x, 22050), "mp3-44k-stereo.mp3": (stereo, 44100)}
    for name, (data, sr) in made.items():
        if sr != 16000:  # the file is at sr: resample the reference to it first
            from lhotse.augmentation import Resample

            data = Resample(16000, sr)(np.atleast_2d(data.T)).T
        sf.write(str(tmp_path / name), data, sr, **({"subtype": "PCM_16"} if "int16" in name else {}))
    for name, (data, sr) in made.items():
        got = load_audio(tmp_path / name)
        assert got.original_rate == sr and got.channels == data.ndim
        want = 0.75 * x if data.ndim == 2 else x  # mean of the two channels
        n = min(len(want), len(got.samples))
        assert abs(len(got.samples) - len(want)) <= 0.01 * 16000 + 1152 * 16000 / 44100, name  # mp3 adds a frame
        if name.endswith((".flac", ".wav")):  # lossless: the same samples
            assert np.abs(got.samples[:n] - want[:n]).max() < 1e-3, name
        else:  # lossy codecs: the same sound
            lag = int(np.argmax(np.correlate(got.samples[:n], want[:n], "full"))) - (n - 1)
            a, b = (got.samples[lag:n], want[: n - lag]) if lag >= 0 else (got.samples[: n + lag], want[-lag:n])
            assert np.corrcoef(a, b)[0, 1] > 0.95, name
    # arrays: (N,), (C, N), (N, C), int16, torch tensors
    import torch

    pcm = (x * 32767).astype(np.int16)
    for arr in (x, x[None], np.stack([x, x]), np.stack([x, x], 1), pcm, torch.from_numpy(x)):
        assert np.abs(to_model_audio(arr, 16000).samples - x).max() < 1e-3
    with pytest.raises(SpeechlmError, match="sample rate"):
        to_model_audio(x, 0)
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(SpeechlmError, match="not readable audio"):
        load_audio(tmp_path / "bad.wav")


def test_same_words_whatever_the_file_format(recognizer, tmp_path):
    """Lossless copies at other rates and channel counts give the words of the original."""
    ref = load_audio(TEST_FILES[8])
    want = recognizer.transcribe(TEST_FILES[8]).words
    assert want, "the tiny model should say something"
    x = ref.samples
    sf.write(str(tmp_path / "a.flac"), np.stack([x, x], 1), 16000)
    sf.write(str(tmp_path / "b.wav"), sf.read(str(TEST_FILES[8]))[0], 8000, subtype="FLOAT")
    for f in ("a.flac", "b.wav"):
        assert recognizer.transcribe(tmp_path / f).words == want, f
    assert recognizer.transcribe((sf.read(str(TEST_FILES[8]), dtype="float32")[0], 8000)).words == want
    assert recognizer.transcribe(x, sample_rate=16000).words == want


def test_inputs_folders_and_lists(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.wav", "d/sub/a.flac", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    lst = tmp_path / "list.txt"
    lst.write_text("# my files\nd/b.wav\n\n" + str(tmp_path / "d/sub/a.flac") + "\n")
    assert expand_inputs([tmp_path / "d"]) == [tmp_path / "d/b.wav", tmp_path / "d/sub/a.flac"]
    assert expand_inputs([lst]) == [tmp_path / "d/b.wav", tmp_path / "d/sub/a.flac"]
    lst.write_text("d/missing.wav\n")
    with pytest.raises(SpeechlmError, match="list.txt:1: d/missing.wav not found"):
        expand_inputs([lst])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpeechlmError, match="no audio files"):
        expand_inputs([tmp_path / "empty"])
    (tmp_path / "x.m4a").write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(SpeechlmError, match="x.m4a: neither an audio file .* nor a UTF-8 list"):
        expand_inputs([tmp_path / "x.m4a"])


def test_vad_finds_every_recording_in_a_long_one():
    """Pieces of a long recording = the recordings it was made of (one each, nothing lost)."""
    files = TEST_FILES + TRAIN_FILES
    x, spans = fsdd_long_recording(files)
    audio = to_model_audio(x, 8000)
    spans16 = np.array(spans) * 2
    pieces = split_on_pauses(audio.samples, 16000)
    assert len(pieces) == len(files)
    for (s, e), (fs, fe) in zip(pieces, spans16):
        assert s <= fs + 0.15 * 16000 and e >= fe - 0.15 * 16000  # at most a quiet edge cut
        assert e - s <= (fe - fs) + 2 * (VadConfig.pad + 0.05) * 16000  # pad + a window either side
    # no pause: cut at the quietest point, no piece longer than max_segment
    t = np.arange(50 * 16000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 200 * t)
    for dip in (12, 27, 41):  # 100 ms quieter: too short to be a pause, but the place to cut
        tone[int((dip - 0.05) * 16000): int((dip + 0.05) * 16000)] *= 0.1
    pieces = split_on_pauses(tone.astype("float32"), 16000, VadConfig(max_segment=20))
    assert pieces[0][0] == 0 and pieces[-1][1] == len(tone)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # cut, nothing lost or repeated
    assert [round(e / 16000) for s, e in pieces[:-1]] == [12, 27, 41]
    # one level throughout (no pause to tell apart): pieces of at most max_segment; short: one piece
    rng = np.random.default_rng(0)
    pieces = split_on_pauses((1e-3 * rng.standard_normal(30 * 16000)).astype("float32"), 16000)
    assert len(pieces) == 2 and pieces[0][0] == 0 and pieces[0][1] == pieces[1][0] and pieces[1][1] == 30 * 16000
    assert split_on_pauses(tone[:16000], 16000) == [(0, 16000)]


def test_long_recording_same_words_as_its_pieces(recognizer, tmp_path):
    """A 55 s recording made of 50 FSDD files with pauses (the long-audio path: split on pauses,
    batched, stitched) says exactly what its pieces say one by one, at the same times.

    With the VAD test above (one piece per file, none of a file lost), this is the long-audio
    path's promise. How close the words are to those of the files themselves depends on the
    model (this tiny one hears the pauses' noise as "s"): a recipe model's figure, on a
    10-minute recording, comes from benchmarks/bench_transcribe.py.
    """
    files = TEST_FILES + TRAIN_FILES
    x, spans = fsdd_long_recording(files, seed=1)
    sf.write(str(tmp_path / "long.wav"), x, 8000)
    assert len(x) / 8000 > 2.5 * VadConfig.max_segment
    whole = recognizer.transcribe(tmp_path / "long.wav")
    assert len(whole.segments) == len(files) and len(whole.words) >= 30
    x16 = to_model_audio(x, 8000).samples
    alone = []
    for s, e in whole.segments:
        piece = recognizer.transcribe(x16[round(s * 16000): round(e * 16000)], 16000)
        alone += [(w.word, round(w.start + s, 4), round(w.end + s, 4)) for w in piece.timed]
    assert alone == [(w.word, round(w.start, 4), round(w.end, 4)) for w in whole.timed]
    # word times fall inside the file each word came from
    assert len(whole.timed) == len(whole.words)
    starts = np.array([s for s, _ in spans]) / 8000
    ends = np.array([e for _, e in spans]) / 8000
    for w in whole.timed:
        assert 0 <= w.start < w.end <= whole.duration and 0 < w.confidence <= 1
        assert np.any((w.start >= starts - 0.25) & (w.end <= ends + 0.25)), w


def test_cli_transcribe_formats(tiny_ctc, tmp_path, capsys):
    from speechlm.cli import main

    files = [str(f) for f in TEST_FILES[:3]]
    text = subprocess.run(
        [sys.executable, "-m", "speechlm.cli", "transcribe", "--model-dir", str(tiny_ctc), *files],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    assert "8000 Hz audio is resampled to 16000 Hz" in text.stderr
    assert text.stderr.count("resampled") == 1  # said once

    def run(*args):
        rc = main(["transcribe", "--model-dir", str(tiny_ctc), *args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    rc, out, _ = run("--format", "json", *files)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == [line.split("\t")[1] for line in lines]
    assert all(len(r["words"]) == len(r["text"].split()) for r in rows)
    rc, out, _ = run("--format", "ctm", "-o", str(tmp_path / "out.ctm"), *files)
    assert rc == 0 and out == ""
    ctm_lines = (tmp_path / "out.ctm").read_text().splitlines()
    assert len(ctm_lines) == sum(len(r["words"]) for r in rows)
    for line in ctm_lines:
        utt, ch, start, dur, word, conf = line.split()
        assert utt.endswith("_theo_0") and ch == "1" and float(dur) > 0 and 0 <= float(conf) <= 1
    rc, _, err = run("--method", "attention-beam", files[0])
    assert rc == 2 and "attention-beam needs a model that provides ctc, attention" in err
    rc, _, err = run(str(tmp_path / "nope.wav"))
    assert rc == 2 and "nope.wav: audio file not found" in err


def test_every_kind_of_method_finds_its_resources_from_the_model_dir(tiny_ctc, tiny_asr, tmp_path):
    """hlg-1best and lm-shallow-fusion through transcribe: the lang dir and text LM recorded by
    `speechlm decode`, or put inside the model dir, are found without options."""
    import shutil

    from conftest import DIGITS
    from speechlm.api import Recognizer
    from speechlm.base.config import load_config
    from speechlm.cli import main
    from speechlm.decode.graphs import prepare_lang_and_graphs
    from speechlm.train.lm import LmTrainer
    from test_lm import TINY_LM

    exp = tmp_path / "exp"
    shutil.copytree(tiny_ctc, exp)
    lang = tmp_path / "lang"
    shutil.copy(tiny_asr["tokenizer"], tmp_path / "bpe.model")
    prepare_lang_and_graphs(lang, tmp_path / "bpe.model", DIGITS * 3, ngram_order=1)
    (tmp_path / "lm.txt").write_text("\n".join(DIGITS * 20) + "\n")
    lm = LmTrainer(load_config(None, TINY_LM + ["train.num_epochs=1", "train.average_last=1"]),
                   tmp_path / "lm", tmp_path / "lm.txt", tiny_asr["tokenizer"]).run()
    with pytest.raises(SpeechlmError, match="hlg-1best needs a lang dir with HLG.fst"):
        Recognizer.from_dir(exp, method="hlg-1best")
    assert main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), "--methods",
                 "hlg-1best,lm-shallow-fusion", "--lang-dir", str(lang), "--lm-checkpoint", str(lm)]) == 0
    hlg = Recognizer.from_dir(exp, method="hlg-1best")  # from resources.yaml
    words = [w for f in TEST_FILES for w in hlg.transcribe(f).words]
    assert words and all(w in DIGITS for w in words)  # HLG says only lexicon words
    given = Recognizer.from_dir(exp, method="hlg-1best", lang_dir=lang)
    assert [w for f in TEST_FILES for w in given.transcribe(f).words] == words
    fusion = Recognizer.from_dir(exp, method="lm-shallow-fusion")
    assert fusion.transcriber.method.__name__ == "fusion"  # the LM loaded from the recorded path
    assert fusion.transcribe(TEST_FILES[3]).words == Recognizer.from_dir(
        exp, method="lm-shallow-fusion", lm_checkpoint=lm).transcribe(TEST_FILES[3]).words
    # self-contained: `export --format dir` copies the resources in; the originals can go
    assert main(["export", "--model-dir", str(exp), "--format", "dir", "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "config.yaml", "final.pt", "lang", "lm.pt", "tokenizer.model"]
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "b"), moved)
    shutil.rmtree(lang)
    shutil.rmtree(tmp_path / "lm")
    assert [w for f in TEST_FILES for w in Recognizer.from_dir(moved, method="hlg-1best").transcribe(f).words] == words
    assert Recognizer.from_dir(moved, method="lm-shallow-fusion").transcribe(TEST_FILES[3]).words == \
        fusion.transcribe(TEST_FILES[3]).words
    assert main(["export", "--model-dir", str(exp), "--format", "dir", "--out", str(moved)]) == 2  # not empty


def test_blank_penalty_reaches_the_search_from_the_config(tiny_ctc, recognizer):
    """``decode.blank_penalty`` set on the model (as ``--set`` does) changes what it says: 0 is the
    default's output; a large negative one (a bonus) leaves every frame blank, so no words."""
    from speechlm import Recognizer

    want = recognizer.transcribe(TEST_FILES[3]).words
    assert want, "the tiny model should say something"
    for penalty, words in ((0, want), (-50, [])):
        r = Recognizer.from_dir(tiny_ctc, overrides=[f"decode.blank_penalty={penalty}"])
        assert r.transcribe(TEST_FILES[3]).words == words, penalty
