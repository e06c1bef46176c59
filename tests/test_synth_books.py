"""synth_books: Gutenberg stripping, sentences and normalisation on slices of the shared books,
the engine table, and data prep of a tiny slice (manifests, disjoint test sentences, held-out
voices)."""

import gzip
import json
import re

import pytest

from conftest import BOOKS, needs_books, require_shared
from speechlm.base.errors import SpeechlmError
from speechlm.text.books import (NoStartMarker, assign_books, prepare_book_text, split_sentences,
                                 strip_gutenberg)
from speechlm.text.normalize import expand_abbreviations, normalize_transcript

SLICES = ["austen/Pride_and_Prejudice.txt", "london/The_Scarlet_Plague.txt",
          "wilde/The_Happy_Prince_and_Other_Tales.txt", "london/The_Faith_of_Men.txt",
          "austen/Persuasion.txt"]


def _slice(name: str, body_lines: int) -> str:
    """Header, start marker, the first ``body_lines`` lines of the book, then the licence."""
    lines = (BOOKS / name).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines)
                 if re.match(r"\s*\*{3} ?START OF|\*END\*THE SMALL PRINT", line))
    end = next((i for i, line in enumerate(lines) if re.match(r"\s*(\*{3} ?END OF|End of (the )?Project Gutenberg)",
                                                               line, re.IGNORECASE)), len(lines))
    return "\n".join(lines[:start + 1 + body_lines] + lines[end:end + 30]) + "\n"


@pytest.fixture(scope="module")
def tiny_books(tmp_path_factory):
    require_shared(BOOKS, "the books (text_en)")
    root = tmp_path_factory.mktemp("books")
    for name in SLICES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(_slice(name, 500), encoding="utf-8")
    (root / "notes.txt").write_text("A book without any Project Gutenberg marker. It has sentences.\n")
    return root


def test_abbreviations_and_ordinals_become_words():
    assert expand_abbreviations("Mr. Darcy and Mrs. Bennet met Dr. Jones at St. Paul's.") == \
        "mister Darcy and missus Bennet met doctor Jones at saint Paul's."
    assert normalize_transcript("He lived at No. 5, Baker St. on the 22nd, i.e. long ago &c.", "en").text == \
        "he lived at number five baker street on the twenty second that is long ago et cetera"
    result = normalize_transcript("Mr Brown", "en")
    assert result.text == "mister brown" and "abbreviation" in result.rules
    assert normalize_transcript("Sr. Pérez", "es").text == "sr pérez"  # English rules only


def test_sentences_do_not_end_at_titles():
    assert split_sentences("“My dear Mr. Bennet,” said his lady. “Have you heard?” He had not.") == [
        "“My dear mister Bennet,” said his lady.", "“Have you heard?”", "He had not."]


@needs_books
@pytest.mark.parametrize("name", ["austen/Pride_and_Prejudice.txt", "london/The_Faith_of_Men.txt"])
def test_gutenberg_header_and_licence_are_stripped(name):
    book = strip_gutenberg((BOOKS / name).read_text(encoding="utf-8"))
    assert "Project Gutenberg" not in book and "PROJECT GUTENBERG" not in book
    assert "truth universally acknowledged" in book or "Faith of Men" in book.replace("FAITH OF MEN", "Faith of Men")


def test_book_without_markers():
    with pytest.raises(NoStartMarker):
        strip_gutenberg("Just a story.\n\nIt has no markers.\n")


def test_book_text_prep_on_slices(tiny_books):
    text = prepare_book_text(tiny_books, num_dev_books=1, num_test_books=1, seed=0)
    assert text.skipped == [("notes.txt", "no Project Gutenberg START marker (--unmarked whole reads such files whole)")]
    assert sorted(sum(text.books.values(), [])) == sorted(SLICES)
    assert len(text.books["dev"]) == len(text.books["test"]) == 1
    every = text.lm_text + text.speakable["dev"] + text.speakable["test"]
    assert all(re.fullmatch(r"[a-z0-9' àâäçéèêëïîôöùûüæœ]+", s) and s == s.strip() for s in every)
    assert not any(re.search(r"\d", s) for s in every)
    assert not any("gutenberg" in s for s in every)
    assert any(s.startswith("mister ") or " mister " in s for s in text.lm_text + text.speakable["test"]
               + text.speakable["dev"])
    held = set(text.speakable["dev"]) | set(text.speakable["test"])
    assert held.isdisjoint(text.lm_text) and set(text.speakable["dev"]).isdisjoint(text.speakable["test"])
    assert all(4 <= len(s.split()) <= 20 for split in text.speakable.values() for s in split)
    assert text.lm_words > 5000
    whole = prepare_book_text(tiny_books, num_dev_books=1, num_test_books=1, seed=0, unmarked="whole")
    assert not whole.skipped and "notes.txt" in sum(whole.books.values(), [])
    assert assign_books(SLICES, 1, 1, 0) == text.books  # by a hash of seed and name: same on every machine
    assert assign_books(SLICES, 1, 1, 1) != text.books


def test_book_folder_errors(tmp_path):
    with pytest.raises(SpeechlmError, match="not found"):
        prepare_book_text(tmp_path / "nope")
    with pytest.raises(SpeechlmError, match="no .txt books"):
        prepare_book_text(tmp_path)
    with pytest.raises(SpeechlmError, match="hold out"):
        assign_books(["a", "b"], 1, 1, 0)


def test_engine_not_installed_names_the_package(monkeypatch):
    from speechlm.synth import engines

    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    status = engines.engine_status()
    assert "apt-get install flite" in status["flite"]
    assert "festival" in status["festival"] and "festvox-kallpc16k" in status["festival"]
    with pytest.raises(SpeechlmError, match="speech engine flite is not installed.*apt-get install flite"):
        engines.synthesize("hello there", {"id": "x", "engine": "flite", "model": "flite:kal",
                                           "flite_voice": "kal", "stretch": 1.0})
    with pytest.raises(SpeechlmError, match="unknown speech engine 'nope'"):
        engines.check_engine("nope")
    from speechlm.corpora.synth_books import _engine_names

    names, left_out = _engine_names("auto")
    assert "flite" not in names and "apt-get install flite" in left_out["flite"]
    with pytest.raises(SpeechlmError, match="flite is not installed"):
        _engine_names("espeak,flite")


def test_engines_installed_here_are_deterministic_16k():
    import numpy as np

    from speechlm.synth.engines import ENGINES, engine_status, synthesize

    installed = [name for name, why in engine_status().items() if why is None]
    assert "espeak" in installed
    for name in installed:
        voice = ENGINES[name].voices(0)[0]
        a, b = synthesize("the garden was very quiet", voice), synthesize("the garden was very quiet", voice)
        assert a.dtype == np.float32 and 0.5 < len(a) / 16000 < 5 and np.array_equal(a, b), name


def test_prepare_synth_books_tiny(tiny_books, tmp_path):
    from lhotse import load_manifest

    from speechlm.corpora.synth_books import prepare_synth_books
    from speechlm.synth.engines import engine_status

    installed = [name for name, why in engine_status().items() if why is None]
    engines = ",".join(n for n in installed if n != "festival")  # festival: ~1.5 s an utterance
    test_models = "piper,flite:rms" if "piper" in installed else "flite:rms" if "flite" in installed else ""
    info = prepare_synth_books(tmp_path, tiny_books, num_train=8, num_dev=3, num_test=6, engines=engines,
                               test_models=test_models, dev_models="", num_dev_voices=2, num_test_voices=2,
                               num_dev_books=1, num_test_books=1, num_jobs=1)
    man = tmp_path / "manifests"
    cuts = {s: load_manifest(man / f"synth_books_cuts_{s}.jsonl.gz") for s in ("train", "dev", "test")}
    assert {s: len(c) for s, c in cuts.items()} == {"train": 8, "dev": 3, "test": 6}
    sups = {s: [c.supervisions[0] for c in cuts[s]] for s in cuts}
    assert all(c.sampling_rate == 16000 and c.duration > 0.5 for s in cuts for c in cuts[s])
    texts = {s: {x.text for x in sups[s]} for s in sups}
    lm_lines = (tmp_path / "text" / "lm_text.txt").read_text().splitlines()
    lm = set(lm_lines)
    assert texts["test"].isdisjoint(lm | texts["train"] | texts["dev"]) and texts["train"] <= lm
    speakers = {s: {x.speaker for x in sups[s]} for s in sups}
    assert speakers["test"].isdisjoint(speakers["train"] | speakers["dev"])
    train_models = {x.custom["model"] for x in sups["train"]}
    if test_models:  # a speaker model never heard in training is in test
        test_only = {x.custom["model"] for x in sups["test"]} - train_models
        assert any(m.startswith(("piper:", "flite:rms")) for m in test_only)
    assert info["lm_words"] == sum(len(s.split()) for s in lm_lines) > 5000
    engines_in_test = sorted({x.custom["engine"] for x in sups["test"]})
    assert info["test_sets"] == [f"test_{e}" for e in engines_in_test]
    per_engine = [load_manifest(man / f"synth_books_cuts_test_{e}.jsonl.gz") for e in engines_in_test]
    assert sorted(c.recording_id for cs in per_engine for c in cs) == sorted(c.recording_id for c in cuts["test"])
    books = json.loads((tmp_path / "text" / "books.json").read_text())
    assert books["skipped"] and books["speakable"]["test"] >= 6
    # a re-run reuses every WAV; with num_unlabeled it adds only the unlabeled audio
    again = prepare_synth_books(tmp_path, tiny_books, num_train=8, num_dev=3, num_test=6, engines=engines,
                                test_models=test_models, dev_models="", num_dev_voices=2, num_test_voices=2,
                                num_dev_books=1, num_test_books=1, num_jobs=1, num_unlabeled=4)
    assert again["num_train_synthesised"] == again["num_test_synthesised"] == 0
    assert again["num_unlabeled"] == again["num_unlabeled_synthesised"] == 4
    assert again["num_unlabeled_voices"] == again["num_train_voices"]
    unlabeled = load_manifest(man / "synth_books_cuts_unlabeled.jsonl.gz")
    assert len(unlabeled) == 4 and all(not c.supervisions and c.duration > 0.5 for c in unlabeled)
    assert len(load_manifest(man / "synth_books_supervisions_unlabeled.jsonl.gz")) == 0
    assert load_manifest(man / "synth_books_cuts_train.jsonl.gz").to_eager() == cuts["train"]  # paired unchanged
    with gzip.open(man / "synth_books_supervisions_test.jsonl.gz", "rt") as f:
        assert all(json.loads(line)["language"] == "English" for line in f)


def test_prepare_cli_help_and_bad_options(tmp_path, capsys):
    from speechlm.cli import main

    with pytest.raises(SystemExit):
        main(["prepare", "synth_books", "--help"])
    out = capsys.readouterr().out
    assert "--books-dir" in out and "--test-models" in out and "--engines" in out
    from speechlm.corpora.synth_books import split_voices

    with pytest.raises(SpeechlmError, match="names no engine"):
        split_voices(["espeak"], "nosuch:voice", "", 2, 2, 0)
    voices, warnings = split_voices(["espeak"], "piper", "", 2, 2, 0)
    assert warnings == ["held-out model piper has no voice here (its engine is not used or not installed)"]
    assert len(voices["test"]) == 2 and len(voices["dev"]) == 2 and len(voices["train"]) == 100


def test_held_out_speaker_shared_with_training_is_a_warning(monkeypatch):
    from speechlm.corpora import synth_books
    from speechlm.synth import engines

    fake = [{"id": f"f_{m}", "engine": "flite", "model": f"flite:{m}", "speaker": s}
            for m, s in engines.FLITE_VOICES.items()]
    monkeypatch.setitem(engines.ENGINES, "flite", engines.Engine("flite", "", "", lambda: None,
                                                                 lambda seed: fake, engines.ENGINES["flite"].speak))
    voices, warnings = synth_books.split_voices(["flite"], "flite:kal16,flite:rms", "flite:awb", 0, 0, 0)
    assert [v["model"] for v in voices["test"]] == ["flite:kal16", "flite:rms"]
    assert warnings == ["test model flite:kal16 is the same recorded speaker as a training voice "
                        "(flite kal/kal16 = festival kal_diphone, flite slt = festival slt HTS)"]


def test_prepare_cli_summary_names_skipped_books_and_missing_engines(tiny_books, tmp_path, capsys, monkeypatch):
    from speechlm.cli import main
    from speechlm.synth import engines

    monkeypatch.setattr(engines.shutil, "which", lambda name: None)  # flite and festival "not installed"
    main(["prepare", "synth_books", "--out-dir", str(tmp_path), "--books-dir", str(tiny_books),
          "--num-train", "3", "--num-dev", "2", "--num-test", "2", "--engines", "auto", "--test-models", "",
          "--dev-models", "", "--num-dev-voices", "1", "--num-test-voices", "1", "--num-dev-books", "1",
          "--num-test-books", "1", "--num-jobs", "1"])
    line = capsys.readouterr().out
    assert "book skipped: notes.txt (no Project Gutenberg START marker" in line
    assert "engine flite left out: the flite program is not installed (Debian package flite" in line
    assert "engine festival left out" in line and "train=3" in line


def test_unlabeled_sentences_are_other_training_sentences_in_an_order_of_their_own():
    """--num-unlabeled N: training-book sentences that no paired utterance speaks; the same N give
    the same sentences whatever the paired set takes of others; too many is one clear error."""
    from speechlm.corpora.synth_books import _pick_unlabeled

    pool = [f"sentence number {i}" for i in range(50)]
    small = _pick_unlabeled(pool, pool[:5], 10, seed=0)
    assert len(set(small)) == 10 and set(small) <= set(pool[5:])
    other = [x for x in pool[5:] if x not in small][:20]  # a larger paired set, none of those 10
    assert _pick_unlabeled(pool, pool[:5] + other, 10, seed=0) == small
    assert _pick_unlabeled(pool, pool[:5], 10, seed=1) != small
    assert _pick_unlabeled(pool, pool[:5], 0, seed=0) == []
    with pytest.raises(SpeechlmError, match="46 speakable sentences besides the 4 paired.*--num-unlabeled"):
        _pick_unlabeled(pool, pool[:4], 47, seed=0)
    with pytest.raises(SpeechlmError, match="num_unlabeled must be 0 or a positive integer"):
        from speechlm.corpora.synth_books import prepare_synth_books
        prepare_synth_books("unused", num_unlabeled=-1)
