"""Corpus importers (FSDD, yesno) and their shared helpers, on the real data in ../shared/data."""

import io
import logging
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA, require_shared
from lhotse import CutSet, load_manifest

from speechlm.data.corpus import (
    SkipCounter,
    load_recording,
    manifest_paths,
    normalize_text,
    write_manifests,
)
from speechlm.corpora.fsdd import DIGIT_WORDS, download_fsdd, prepare_fsdd
from speechlm.corpora.yesno import download_yesno, prepare_yesno
from speechlm.base.errors import SpeechlmError

FSDD = DATA / "fsdd"
YESNO = DATA / "yesno"

needs_data = pytest.mark.skipif(
    not (FSDD / "recordings").is_dir() or not (YESNO / "waves_yesno").is_dir(),
    reason=f"real corpora not found under {DATA} (expected fsdd/recordings and yesno/waves_yesno)",
)


def _ids(manifests, split):
    return {r.id for r in manifests[split][0]}


# --- real data ---------------------------------------------------------------------------


@needs_data
def test_fsdd_official_split(tmp_path):
    m = prepare_fsdd(FSDD, tmp_path)
    counts = {k: len(recs) for k, (recs, _) in m.items()}
    assert counts == {"train": 2000, "dev": 250, "test": 250}
    assert sum(counts.values()) == 2500
    assert not (_ids(m, "train") & _ids(m, "dev")) and not (_ids(m, "train") & _ids(m, "test"))
    index = lambda rid: int(rid.rsplit("-", 1)[1])  # noqa: E731
    assert {index(i) for i in _ids(m, "test")} == set(range(5))
    assert {index(i) for i in _ids(m, "dev")} == set(range(5, 10))
    rec, sup = m["test"][0][0], m["test"][1][0]
    assert rec.sampling_rate == 8000 and sup.text in DIGIT_WORDS and sup.duration == rec.duration
    for split in ("train", "dev", "test"):
        for path in manifest_paths(tmp_path, "fsdd", split).values():
            assert path.is_file()
    assert len(CutSet.from_file(tmp_path / "fsdd_cuts_test.jsonl.gz")) == 250
    assert not list(tmp_path.glob(".tmp*")), "temporary manifest files left behind"


@needs_data
def test_fsdd_accepts_recordings_dir_itself():
    m = prepare_fsdd(FSDD / "recordings", None, dev_fraction=0.0)
    assert set(m) == {"train", "test"} and len(m["train"][0]) == 2250


@needs_data
def test_fsdd_speaker_split_holds_speaker_out():
    m = prepare_fsdd(FSDD, None, split="speaker", heldout_speaker="theo")
    test_speakers = {s.speaker for s in m["test"][1]}
    other_speakers = {s.speaker for k in ("train", "dev") for s in m[k][1]}
    assert test_speakers == {"theo"} and "theo" not in other_speakers
    assert len(m["test"][0]) == 500
    assert len(m["train"][0]) + len(m["dev"][0]) == 2000


@needs_data
def test_fsdd_speaker_split_needs_known_speaker():
    with pytest.raises(SpeechlmError, match="heldout_speaker.*george"):
        prepare_fsdd(FSDD, None, split="speaker", heldout_speaker="nobody")


@needs_data
def test_yesno_alternating_sorted_split(tmp_path):
    m = prepare_yesno(YESNO, tmp_path)
    assert set(m) == {"train", "test"}
    names = sorted(p.stem for p in (YESNO / "waves_yesno").glob("*.wav"))
    assert sorted(_ids(m, "train")) == names[0::2]
    assert sorted(_ids(m, "test")) == names[1::2]
    test_words = [w for s in m["test"][1] for w in s.text.split()]
    assert len(m["train"][0]) == 30 and len(m["test"][0]) == 30 and len(test_words) == 240
    assert set(test_words) <= {"yes", "no"}
    sup = m["test"][1][0]
    assert sup.text == " ".join("yes" if b == "1" else "no" for b in sup.id.split("_"))
    # deterministic: the written file equals a fresh run, item for item
    again = prepare_yesno(YESNO / "waves_yesno", None)
    assert list(load_manifest(tmp_path / "yesno_supervisions_test.jsonl.gz")) == list(
        again["test"][1]
    )


# --- bad input ---------------------------------------------------------------------------


@pytest.fixture
def small_fsdd(tmp_path):
    """A tiny FSDD copy: per speaker/digit, index 0 (test) and index 5 (train)."""
    require_shared(FSDD / "recordings", "real FSDD")
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for name in ("0_george_0", "0_george_5", "1_theo_0", "1_theo_5", "2_theo_6"):
        shutil.copy(FSDD / "recordings" / f"{name}.wav", rec / f"{name}.wav")
    return rec


def test_fsdd_synthetic_voices_join_training_only_at_8k(small_fsdd, tmp_path):
    """--synthetic-voices: the ten digits in N synthetic voices join the training split (8 kHz like
    FSDD, one speaker per voice), dev and test stay real; a re-run reuses the audio."""
    import time

    syn = tmp_path / "syn"
    m = prepare_fsdd(small_fsdd.parent, None, synthetic_voices=2, synthetic_dir=syn, num_jobs=1)
    real = prepare_fsdd(small_fsdd.parent, None)
    extra = [s for s in m["train"][1] if s.speaker.startswith("synth-")]
    assert len(m["train"][0]) == len(real["train"][0]) + 20 and len(extra) == 20
    assert sorted(s.text for s in extra) == sorted(DIGIT_WORDS * 2) and len({s.speaker for s in extra}) == 2
    assert {r.sampling_rate for r in m["train"][0]} == {8000}
    assert all(r.duration > 0.2 for r in m["train"][0] if r.id.startswith("synth-"))
    assert _ids(m, "test") == _ids(real, "test") and "dev" not in m
    stamps = {p: p.stat().st_mtime_ns for p in syn.rglob("*.wav")}
    time.sleep(0.01)
    prepare_fsdd(small_fsdd.parent, None, synthetic_voices=2, synthetic_dir=syn, num_jobs=1)
    assert {p: p.stat().st_mtime_ns for p in syn.rglob("*.wav")} == stamps  # nothing synthesised again
    with pytest.raises(SpeechlmError, match="--synthetic-voices 100000: .* synthetic voices are installed"):
        prepare_fsdd(small_fsdd.parent, None, synthetic_voices=100000, synthetic_dir=syn)


def _empty_wav(path):
    sf.write(path, np.zeros(0, dtype=np.int16), 8000, subtype="PCM_16")


def test_corrupt_wav_raises_naming_file(small_fsdd):
    (small_fsdd / "3_theo_7.wav").write_bytes(b"RIFF\x00\x00garbage" * 40)
    with pytest.raises(SpeechlmError, match=r"3_theo_7\.wav.*corrupt"):
        prepare_fsdd(small_fsdd.parent, None)


def test_empty_wav_raises_naming_file(small_fsdd):
    _empty_wav(small_fsdd / "4_theo_8.wav")
    assert sf.info(str(small_fsdd / "4_theo_8.wav")).frames == 0
    with pytest.raises(SpeechlmError, match=r"4_theo_8\.wav.*empty"):
        prepare_fsdd(small_fsdd.parent, None)


def test_missing_audio_raises_naming_file(small_fsdd, tmp_path):
    (small_fsdd / "5_theo_9.wav").symlink_to(tmp_path / "gone.wav")  # listed, but not there
    with pytest.raises(SpeechlmError, match=r"5_theo_9\.wav.*missing"):
        prepare_fsdd(small_fsdd.parent, None)
    with pytest.raises(SpeechlmError, match=r"nowhere\.wav.*missing"):
        load_recording(tmp_path / "nowhere.wav", "x")


def test_duplicate_id_names_both_files(small_fsdd):
    shutil.copy(small_fsdd / "0_george_5.wav", small_fsdd / "0_george_05.wav")
    with pytest.raises(SpeechlmError, match="duplicate utterance id 'george-0-05'") as err:
        prepare_fsdd(small_fsdd.parent, None)
    assert "0_george_05.wav" in str(err.value) and "0_george_5.wav" in str(err.value)


def test_skip_mode_counts_bad_files(small_fsdd, tmp_path, caplog):
    (small_fsdd / "3_theo_7.wav").write_bytes(b"garbage" * 50)
    _empty_wav(small_fsdd / "4_theo_8.wav")
    (small_fsdd / "5_theo_9.wav").symlink_to(tmp_path / "gone.wav")
    (small_fsdd / "notes.wav").write_bytes(b"not a digit file")
    with caplog.at_level(logging.WARNING):
        m = prepare_fsdd(small_fsdd.parent, tmp_path / "out", on_error="skip")
    assert len(m["train"][0]) == 3 and len(m["test"][0]) == 2
    text = caplog.text
    assert "skipped 1 items: audio file is corrupt" in text and "3_theo_7.wav" in text
    assert "skipped 1 items: audio file is empty" in text
    assert "skipped 1 items: audio file is missing" in text
    assert "skipped 1 items: name does not match" in text and "notes.wav" in text


def test_load_recording_skip_returns_none(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00" * 100)
    skips = SkipCounter("t")
    assert load_recording(bad, "bad", on_error="skip", skips=skips) is None
    assert skips.total == 1 and "bad.wav" in skips.lines()[0]


@needs_data
def test_yesno_skip_does_not_shift_split(tmp_path):
    waves = tmp_path / "waves_yesno"
    shutil.copytree(YESNO / "waves_yesno", waves)
    names = sorted(p.stem for p in waves.glob("*.wav"))
    (waves / f"{names[0]}.wav").write_bytes(b"garbage" * 50)  # first train file
    with pytest.raises(SpeechlmError, match=names[0]):
        prepare_yesno(tmp_path, None)
    m = prepare_yesno(tmp_path, None, on_error="skip")
    assert sorted(_ids(m, "train")) == names[2::2] and sorted(_ids(m, "test")) == names[1::2]


def test_not_a_corpus_dir(tmp_path):
    with pytest.raises(SpeechlmError, match="--corpus-dir"):
        prepare_fsdd(tmp_path, None)
    with pytest.raises(SpeechlmError, match="--corpus-dir"):
        prepare_yesno(tmp_path, None)


# --- helpers and downloads -----------------------------------------------------------------


def test_normalize_text():
    assert normalize_text("  YES  no\tYes \n") == "yes no yes"


def test_write_manifests_refuses_empty_split(tmp_path):
    with pytest.raises(SpeechlmError, match="no usable recordings"):
        write_manifests([], [], tmp_path, "x", "train")
    assert not list(tmp_path.iterdir())


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.as_uri()


def test_download_fsdd_from_local_archive(small_fsdd, tmp_path):
    wav = (small_fsdd / "0_george_0.wav").read_bytes()
    url = _tarball(
        tmp_path / "src.tar.gz",
        {"fsdd-abc/recordings/0_george_0.wav": wav, "fsdd-abc/README.md": b"x",
         "fsdd-abc/other/1_x_1.wav": wav},
    )
    target = tmp_path / "dl"
    assert download_fsdd(target, url=url) == target
    assert [p.name for p in (target / "recordings").iterdir()] == ["0_george_0.wav"]
    (target / "fsdd.tar.gz").unlink()
    download_fsdd(target, url="http://127.0.0.1:9/none.tar.gz")  # present: no download


def test_download_yesno_from_local_archive(small_fsdd, tmp_path):
    wav = (small_fsdd / "0_george_0.wav").read_bytes()
    url = _tarball(tmp_path / "y.tar.gz", {"waves_yesno/0_1_1_0_0_1_1_0.wav": wav})
    target = download_yesno(tmp_path / "dl", url=url)
    assert (target / "waves_yesno" / "0_1_1_0_0_1_1_0.wav").is_file()


def test_download_offline_suggests_corpus_dir(tmp_path):
    with pytest.raises(SpeechlmError, match="--corpus-dir"):
        download_yesno(tmp_path, url="http://127.0.0.1:9/waves_yesno.tar.gz")
    assert not list(tmp_path.glob("*.part"))
