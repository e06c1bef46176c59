"""Generic importers (kaldi-dir, folder, tsv): layouts, splits, and clear errors on bad corpora."""

import gzip
import json
import logging
import numpy as np
import pytest
import soundfile as sf

from speechlm.data.importers import Utterance, auto_split, import_corpus
from speechlm.base.errors import SpeechlmError


def tone(path, seconds=0.3, sr=16000, freq=440.0):
    """A short real audio file (sine + a little noise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype("float32"), sr)
    return path


def folder_corpus(root, speakers=("ann", "bob", "cat", "dan", "eve"), per_speaker=4):
    for spk in speakers:
        for i in range(per_speaker):
            tone(root / spk / f"{spk}_{i}.wav")
            (root / spk / f"{spk}_{i}.txt").write_text(f"Hello  World {i}\n", encoding="utf-8")
    return root


def kaldi_dir(root, n=6, speakers=("ann", "bob", "cat")):
    root.mkdir(parents=True, exist_ok=True)
    wav, text, utt2spk = [], [], []
    for i in range(n):
        spk = speakers[i % len(speakers)]
        utt = f"{spk}-{i:03d}"
        tone(root / "wav" / f"{utt}.wav")
        # relative to the data dir's parent, as Kaldi recipes list them
        wav.append(f"{utt} {root.name}/wav/{utt}.wav")
        text.append(f"{utt} YES NO {i}")
        utt2spk.append(f"{utt} {spk}")
    for name, lines in (("wav.scp", wav), ("text", text), ("utt2spk", utt2spk)):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def read_jsonl(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


# --- kaldi-dir -----------------------------------------------------------------------------


def test_kaldi_dir_imports_and_writes_manifests(tmp_path):
    d = kaldi_dir(tmp_path / "train_all", n=15, speakers=("ann", "bob", "cat", "dan", "eve"))
    res = import_corpus("kaldi-dir", d, tmp_path / "out", prefix="k")
    assert res.num_utterances == 15 and res.speakers == ["ann", "bob", "cat", "dan", "eve"]
    assert res.split_how == "by speaker" and res.splits == ["train", "dev", "test"]
    spk = {s: {x.speaker for x in res.manifests[s][1]} for s in res.splits}
    assert not (spk["train"] & spk["test"]) and not (spk["dev"] & spk["test"])
    sup = read_jsonl(tmp_path / "out" / "k_supervisions_test.jsonl.gz")[0]
    assert sup["text"].startswith("yes no ")  # lowercased
    for kind in ("recordings", "supervisions", "cuts"):
        for s in res.splits:
            assert (tmp_path / "out" / f"k_{kind}_{s}.jsonl.gz").is_file()


def test_kaldi_segments_give_one_cut_per_segment(tmp_path):
    d = tmp_path / "seg"
    tone(d / "long.wav", seconds=2.0)
    (d / "wav.scp").write_text(f"rec1 {d / 'long.wav'}\n")
    (d / "segments").write_text("u1 rec1 0.00 0.80\nu2 rec1 0.90 1.70\nu3 rec1 1.75 -1\n")
    (d / "text").write_text("u1 one\nu2 two\nu3 three\n")
    res = import_corpus("kaldi-dir", d, tmp_path / "out", prefix="s", test_fraction=0.3, dev_fraction=0.0)
    cuts = [c for s in res.splits for c in read_jsonl(tmp_path / "out" / f"s_cuts_{s}.jsonl.gz")]
    assert sorted(round(c["duration"], 2) for c in cuts) == [0.25, 0.8, 0.8]


def test_kaldi_piped_wav_scp_is_refused(tmp_path):
    d = kaldi_dir(tmp_path / "d", n=3)
    (d / "wav.scp").write_text("ann-000 sox in.sph -t wav - |\n")
    with pytest.raises(SpeechlmError, match=r"wav.scp:1: .*piped command.*Convert the audio to files"):
        import_corpus("kaldi-dir", d)


def test_kaldi_missing_text_file(tmp_path):
    d = kaldi_dir(tmp_path / "d", n=3)
    (d / "text").unlink()
    with pytest.raises(SpeechlmError, match=r"not a Kaldi data dir: text is missing"):
        import_corpus("kaldi-dir", d)


def test_kaldi_problems_listed_together_or_skipped(tmp_path, caplog):
    d = kaldi_dir(tmp_path / "d", n=9)
    with open(d / "text", "a") as f:
        f.write("ghost-001 no audio here\nann-000 duplicate line\n")
    (d / "text").write_text((d / "text").read_text().replace("bob-001 YES NO 1", "bob-001"))
    (d / "wav").joinpath("cat-002.wav").unlink()
    with pytest.raises(SpeechlmError) as e:
        import_corpus("kaldi-dir", d)
    msg = str(e.value)
    for reason in ("no audio: recording id not in wav.scp", "duplicate id", "empty transcript",
                   "audio file is missing", "cat-002.wav", "--on-error skip"):
        assert reason in msg, msg
    with caplog.at_level(logging.WARNING):
        res = import_corpus("kaldi-dir", d, on_error="skip")
    assert res.num_utterances == 7 and res.num_skipped == 4
    assert "empty transcript" in caplog.text and "duplicate id" in caplog.text


def test_kaldi_given_splits_from_subfolders(tmp_path):
    kaldi_dir(tmp_path / "c" / "train", n=4)
    kaldi_dir(tmp_path / "c" / "test", n=2, speakers=("zed",))
    res = import_corpus("kaldi-dir", tmp_path / "c")
    assert res.split_how == "given by the corpus" and res.splits == ["train", "test"]
    assert {s.speaker for s in res.manifests["test"][1]} == {"zed"}


# --- folder --------------------------------------------------------------------------------


def test_folder_speakers_from_subfolders_and_deterministic_split(tmp_path):
    root = folder_corpus(tmp_path / "f")
    a = import_corpus("folder", root)
    b = import_corpus("folder", root)
    assert a.speakers == ["ann", "bob", "cat", "dan", "eve"] and a.split_how == "by speaker"
    assert {s: [x.id for x in a.manifests[s][1]] for s in a.splits} == \
        {s: [x.id for x in b.manifests[s][1]] for s in b.splits}
    assert a.manifests["train"][1][0].text == "hello world zero"  # digits spelled out


def test_folder_speaker_regex(tmp_path):
    for name in ("0_amy_1", "1_amy_2", "2_ben_1", "3_cid_1", "4_cid_2"):
        tone(tmp_path / "flat" / f"{name}.wav")
        (tmp_path / "flat" / f"{name}.txt").write_text("digit")
    res = import_corpus("folder", tmp_path / "flat", speaker_regex=r"^\d_(?P<speaker>[a-z]+)_")
    assert res.speakers == ["amy", "ben", "cid"]


def test_folder_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpeechlmError, match=r"no utterances found.*same-named .txt/.lab"):
        import_corpus("folder", tmp_path / "empty")


def test_folder_transcripts_without_audio_named(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("hello")
    (tmp_path / "t" / "README.txt").write_text("about this corpus")  # documentation, not a transcript
    with pytest.raises(SpeechlmError, match=r"transcript without an audio file: .*a\.txt") as e:
        import_corpus("folder", tmp_path / "t")
    assert "README" not in str(e.value)


def test_folder_audio_without_transcript_and_non_utf8(tmp_path):
    root = folder_corpus(tmp_path / "f", per_speaker=2)
    (root / "ann" / "ann_0.txt").unlink()
    (root / "bob" / "bob_1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SpeechlmError) as e:
        import_corpus("folder", root)
    msg = str(e.value)
    assert "audio without a transcript" in msg and "ann_0.wav" in msg
    assert "transcript is not UTF-8 text" in msg and "bob_1.txt" in msg


def test_folder_corrupt_audio(tmp_path):
    root = folder_corpus(tmp_path / "f", per_speaker=2)
    (root / "cat" / "cat_1.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(SpeechlmError, match=r"corrupt or not a supported format: .*cat_1.wav"):
        import_corpus("folder", root)


def test_folder_given_split(tmp_path):
    folder_corpus(tmp_path / "f" / "train", speakers=("ann", "bob"), per_speaker=2)
    folder_corpus(tmp_path / "f" / "test", speakers=("cat",), per_speaker=2)
    res = import_corpus("folder", tmp_path / "f")
    assert res.splits == ["train", "test"] and len(res.manifests["test"][1]) == 2


# --- tsv -----------------------------------------------------------------------------------


def test_tsv_with_speakers(tmp_path):
    rows = ["path\ttext\tspeaker"]
    for i in range(8):
        tone(tmp_path / "clips" / f"c{i}.wav")
        rows.append(f"clips/c{i}.wav\tClip number {i}\tspk{i % 4}")
    (tmp_path / "list.tsv").write_text("\n".join(rows) + "\n")
    res = import_corpus("tsv", tmp_path / "list.tsv")
    assert res.num_utterances == 8 and len(res.speakers) == 4 and res.split_how == "by speaker"


def test_csv_split_column(tmp_path):
    rows = ["audio,sentence,split"]
    for i in range(4):
        tone(tmp_path / f"c{i}.flac")
        rows.append(f"c{i}.flac,\"a, b {i}\",{'test' if i == 3 else 'train'}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    res = import_corpus("tsv", tmp_path / "list.csv")
    assert res.splits == ["train", "test"] and res.manifests["test"][1][0].text == "a b three"  # one field


def test_tsv_without_header(tmp_path):
    (tmp_path / "l.tsv").write_text("a.wav\thello\n")
    with pytest.raises(SpeechlmError, match=r"l.tsv:1: the first row must be a header.*'path' and 'text'"):
        import_corpus("tsv", tmp_path / "l.tsv")


def test_tsv_not_utf8_names_line(tmp_path):
    (tmp_path / "l.tsv").write_bytes(b"path\ttext\na.wav\tok\nb.wav\tcaf\xe9\n")
    with pytest.raises(SpeechlmError, match=r"l.tsv:3: not UTF-8"):
        import_corpus("tsv", tmp_path / "l.tsv")


# --- split and CLI -------------------------------------------------------------------------


def test_auto_split_falls_back_to_recordings_with_few_speakers():
    utts = [Utterance(f"u{i}", None, "x", "", speaker="only") for i in range(20)]
    splits, how = auto_split(utts)
    assert how == "by recording" and [len(splits[s]) for s in ("train", "dev", "test")] == [16, 2, 2]


def test_auto_split_too_small_is_a_test_set(caplog):
    with caplog.at_level(logging.WARNING):
        splits, how = auto_split([Utterance("u1", None, "x", "")])
    assert splits.keys() == {"test"} and how == "all test (too small to split)"
    assert "too small to split into train and test (1 utterances): all of it is a test set" in caplog.text
    with pytest.raises(SpeechlmError, match="split fractions"):
        auto_split([Utterance("u1", None, "x", "")], test_fraction=1.5)


# --- a test set only, in every layout (to score a trained model on new data) ----------------


def test_test_only_corpora_in_every_layout(tmp_path):
    """All rows split=test, a folder or Kaldi dir with only test/, a single file, a folder of one
    file, --test-fraction 1.0: each imports as a test set (no train, no dev)."""
    rows = ["path\ttext\tsplit"] + [f"c{i}.wav\tclip {i}\ttest" for i in range(3)]
    for i in range(3):
        tone(tmp_path / "t" / f"c{i}.wav")
    (tmp_path / "t" / "list.tsv").write_text("\n".join(rows) + "\n")
    folder_corpus(tmp_path / "f" / "test", speakers=("ann", "bob"), per_speaker=2)
    kaldi_dir(tmp_path / "k" / "test", n=3)
    one = folder_corpus(tmp_path / "one", speakers=("ann",), per_speaker=1)
    cases = {
        ("tsv", tmp_path / "t" / "list.tsv", 0.1): (3, "given by the corpus"),
        ("folder", tmp_path / "f", 0.1): (4, "given by the corpus"),
        ("kaldi-dir", tmp_path / "k", 0.1): (3, "given by the corpus"),
        ("folder", one / "ann" / "ann_0.wav", 0.1): (1, "all test (too small to split)"),
        ("folder", one, 0.1): (1, "all test (too small to split)"),
        ("folder", folder_corpus(tmp_path / "five"), 1.0): (20, "all test (--test-fraction 1)"),
    }
    for (kind, path, test_fraction), (n, how) in cases.items():
        res = import_corpus(kind, path, tmp_path / "out" / kind, prefix="p", test_fraction=test_fraction)
        assert res.splits == ["test"] and res.num_utterances == n and res.split_how == how, (kind, path)
        assert len(read_jsonl(tmp_path / "out" / kind / "p_cuts_test.jsonl.gz")) == n
    assert import_corpus("folder", one / "ann" / "ann_0.wav").manifests["test"][1][0].text == "hello world zero"


def test_given_split_without_test_and_recipe_of_a_test_set_are_refused(tmp_path):
    from speechlm.recipe import new_recipe

    folder_corpus(tmp_path / "f" / "train", speakers=("ann",), per_speaker=2)
    with pytest.raises(SpeechlmError, match="no usable 'test' utterances"):
        import_corpus("folder", tmp_path / "f")
    folder_corpus(tmp_path / "g" / "test", speakers=("ann",), per_speaker=2)
    with pytest.raises(SpeechlmError, match="a test set only .*speechlm decode --exp-dir EXP --data"):
        new_recipe("g", "folder", tmp_path / "g", egs_dir=tmp_path / "egs")
    assert not (tmp_path / "egs" / "g").exists()


def test_cli_import_test_fraction_one(tmp_path, capsys):
    from speechlm.cli import main

    root = folder_corpus(tmp_path / "f")
    assert main(["import", "folder", str(root), "--out-dir", str(tmp_path / "m"), "--test-fraction", "1.0"]) == 0
    assert "split all test (--test-fraction 1): test=20" in capsys.readouterr().out


def test_cli_import_bad_corpus_is_one_line(tmp_path, capsys):
    from speechlm.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["import", "folder", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechlm: error:") and "empty" in err and "Traceback" not in err


def test_cli_import_writes_manifests(tmp_path, capsys):
    from speechlm.cli import main

    root = folder_corpus(tmp_path / "f")
    assert main(["import", "folder", str(root), "--out-dir", str(tmp_path / "m"), "--prefix", "f"]) == 0
    assert "20 utterances" in capsys.readouterr().out
    assert (tmp_path / "m" / "f_cuts_train.jsonl.gz").is_file()


def test_transcripts_normalised_per_language_with_counted_exclusions(tmp_path, caplog):
    rows = ["path,text,split",
            'a.wav,"Press 5, then the HASH key.",train',
            'b.wav,"Don\'t hang up (5 seconds of silence)",train',
            'c.wav,"Use the H.323 gateway",train',
            'd.wav,"Twenty-one dogs!",train',
            'e.wav,"marque 2",test',
            'f.wav,"Señor, 3 perros",test']
    for name in "abcdef":
        tone(tmp_path / f"{name}.wav")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        res = import_corpus("tsv", tmp_path / "list.csv")
    texts = {s.id: s.text for _, sups in res.manifests.values() for s in sups}
    assert sorted(texts.values()) == ["marque two", "press five then the hash key", "señor three perros",
                                      "twenty one dogs"]
    assert res.num_utterances == 4 and res.num_skipped == 0  # exclusions are not errors
    assert "number 3" in res.normalization and "hyphen 1" in res.normalization
    assert "excluded: description 1, number-ambiguous 1" in res.normalization
    assert "(5 seconds of silence)" in caplog.text and "H.323" in caplog.text
    assert "'ñ' (1 utterance)" in res.unseen_chars  # the test set spells a letter train never has
    spanish = import_corpus("tsv", tmp_path / "list.csv", language="es")
    assert "marque dos" in {s.text for _, sups in spanish.manifests.values() for s in sups}
    raw = import_corpus("tsv", tmp_path / "list.csv", lowercase=False)
    assert raw.num_utterances == 6 and raw.normalization == ""
    with pytest.raises(SpeechlmError, match="--language.*known: en"):
        import_corpus("tsv", tmp_path / "list.csv", language="de")
