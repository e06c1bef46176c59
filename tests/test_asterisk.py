"""speechlm.corpora.asterisk: the upstream layout (prompt tree + core-sounds-<lang>.txt), upstream
quirks as counted skips, the sentence-disjoint split, unlabeled audio; a tiny copy of the layout
built from real prompts, and the real folders (counts)."""

import io
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
from conftest import DATA, REPO, require_shared
from lhotse import load_manifest

from speechlm.base.errors import SpeechlmError
from speechlm.corpora.asterisk import (
    NO_AUDIO,
    NO_LINE,
    TWO_TRANSCRIPTS,
    assign_splits,
    download_asterisk,
    prepare_asterisk,
    summary,
)
from speechlm.text.normalize import normalize_transcript

ASTERISK = DATA / "asterisk"

ES_LINES = """; Core Asterisk Sounds in Spanish

agent-loginok: Agente conectado
agent-pass: Por favor ingrese su contrasena seguida por la tecla de numero
auth-incorrect: Contrasena incorrecta. Por favor ingrese su contrasena seguida por la tecla de numero
beep: [tono simple]
digits/1: uno
digits/2: dos
digits/0: cero
digits/0: diez
conf-adminmenu: conf-adminmenu: Marque 1 para salir.
gone: Esta linea no tiene audio
"""
RU_LINES = """; Core Asterisk Sounds in Russian
digits/1: один
digits/2: два
agent-pass: Введите пароль и нажмите решётку.
"""


def _copy(src_lang, dst, keys):
    for key in keys:
        out = dst / f"{key}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ASTERISK / src_lang / f"{key}.wav", out)


@pytest.fixture
def fake(tmp_path):
    """es/ and ru/ with a few real prompts each, the quirks of upstream on purpose."""
    require_shared(ASTERISK / "es", "Asterisk prompts")
    root = tmp_path / "asterisk"
    es, ru = root / "es", root / "ru"
    _copy("es", es, ["agent-loginok", "agent-pass", "auth-incorrect", "beep", "digits/1", "digits/2",
                     "digits/0", "conf-adminmenu", "agent-newlocation"])
    (es / "core-sounds-es.txt").write_text(ES_LINES, encoding="utf-8")
    _copy("ru", ru, ["digits/1", "digits/2", "agent-pass"])
    (ru / "core-sounds-ru.txt").write_text("\ufeff" + RU_LINES, encoding="utf-8")  # BOM, as upstream it
    _copy("it", root / "it_menardi", ["agent-pass", "digits/1"])
    return root


def _texts(m, split):
    return {s.id: s.text for s in m[split][1]}


def test_fake_layout_two_languages(fake, tmp_path):
    m, reports, skips = prepare_asterisk(fake, tmp_path / "out", ["es", "ru"], test_fraction=0.3,
                                         dev_fraction=0.0)
    ids = {k: set(_texts(m, k)) for k in m}
    assert ids["test"] == ids["test_es"] | ids["test_ru"]
    every = set().union(ids["train"], ids["test"])
    assert every == {"es-agent-loginok", "es-agent-pass", "es-auth-incorrect", "es-digits-1",
                     "es-digits-2", "es-conf-adminmenu", "ru-digits-1", "ru-digits-2", "ru-agent-pass"}
    assert not ids["train"] & ids["test"] and "dev" not in m
    texts = {**_texts(m, "train"), **_texts(m, "test")}
    assert texts["es-conf-adminmenu"] == "marque uno para salir"  # key echo removed, digit spoken
    assert texts["ru-agent-pass"] == "введите пароль и нажмите решетку"
    # the two prompts sharing "por favor ingrese su contrasena ..." land in one split
    assert ("es-agent-pass" in ids["test"]) == ("es-auth-incorrect" in ids["test"])
    sups = {s.id: s for k in ("train", "test") for s in m[k][1]}
    assert sups["ru-digits-1"].language == "Russian" and sups["es-digits-2"].language == "Spanish"
    assert sups["es-digits-1"].speaker == "asterisk-es"
    # upstream quirks: counted, named
    assert skips.count(NO_AUDIO) == 1 and "es: gone" in skips.items[NO_AUDIO]
    assert skips.count(NO_LINE) == 2  # agent-newlocation.wav, and digits/0.wav (its key clashed)
    assert skips.count(TWO_TRANSCRIPTS) == 1 and "digits/0" in skips.items[TWO_TRANSCRIPTS][0]
    assert skips.count("transcript excluded by normalisation (description)") == 1
    es = reports[0]
    assert es.counts.count("number") == 1 and es.counts.count("key-echo") == 1
    line = summary(m, reports, skips)
    assert "es (Spanish): 7 transcript lines with audio" in line
    assert "audio file has no transcript line 2" in line and "excluded: description 1" in line
    written = load_manifest(tmp_path / "out" / "asterisk_supervisions_test_ru.jsonl.gz")
    assert [s.id for s in written] == sorted(ids["test_ru"])


def test_one_language_accepts_its_own_folder(fake):
    m, _, _ = prepare_asterisk(fake / "ru", None, ["ru"], test_fraction=0.0, dev_fraction=0.0)
    assert set(m) == {"train"}
    assert len(m["train"][0]) == 3 and "test_ru" not in m


def test_unlabeled_folder_gives_cuts_without_text(fake, tmp_path):
    m, reports, _ = prepare_asterisk(fake, tmp_path, [], unlabeled=["it_menardi"])
    assert set(m) == {"unlabeled"} and reports == []
    cuts = load_manifest(tmp_path / "asterisk_cuts_unlabeled.jsonl.gz")
    assert sorted(c.recording.id for c in cuts) == ["it_menardi-agent-pass", "it_menardi-digits-1"]
    assert all(c.supervisions == [] for c in cuts)
    with pytest.raises(SpeechlmError, match="--unlabeled nowhere.*not a folder"):
        prepare_asterisk(fake, None, [], unlabeled=["nowhere"])


@pytest.mark.parametrize("langs,message", [
    (["en"], r"unknown language code 'en' \(--langs\); known: es \(Spanish\), fr \(French\)"),
    (["fr"], r"no core-sounds-fr.txt in .*/fr/\. Pass as --corpus-dir"),
    ([], "nothing to import"),
])
def test_bad_requests_are_clear_errors(fake, langs, message):
    with pytest.raises(SpeechlmError, match=message):
        prepare_asterisk(fake, None, langs)


def test_bad_audio_and_bad_text(fake):
    (fake / "es" / "digits" / "2.wav").write_bytes(b"RIFF garbage" * 20)
    with pytest.raises(SpeechlmError, match=r"digits/2\.wav.*corrupt"):
        prepare_asterisk(fake, None, ["es"])
    m, _, skips = prepare_asterisk(fake, None, ["es"], on_error="skip", test_fraction=0.0)
    assert "es-digits-2" not in _texts(m, "train") and skips.count("audio file is corrupt or not a supported format") == 1
    (fake / "es" / "core-sounds-es.txt").write_bytes("digits/1: ni\xf1o\n".encode("latin-1"))
    with pytest.raises(SpeechlmError, match="core-sounds-es.txt: not UTF-8"):
        prepare_asterisk(fake, None, ["es"])


def test_cli_unknown_language_is_one_line(fake, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "speechlm.cli", "prepare", "asterisk", "--corpus-dir",
                           str(fake), "--out-dir", str(tmp_path), "--langs", "es,xx"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "speechlm: error: unknown language code 'xx' (--langs); known: es (Spanish)" in proc.stderr


def test_assign_splits_groups_shared_sentences():
    prompts = {"a": ["x", "y"], "b": ["y", "z"], "c": ["z"], "d": ["w"]}
    for seed_fraction in (0.2, 0.5, 0.8):
        split = assign_splits(prompts, 0.0, seed_fraction)
        assert split["a"] == split["b"] == split["c"]
    assert assign_splits(prompts, 0.0, 0.5) == assign_splits(dict(reversed(prompts.items())), 0.0, 0.5)
    with pytest.raises(SpeechlmError, match="sum to less than 1"):
        assign_splits(prompts, 0.5, 0.5)


def test_download_from_local_tarball(fake, tmp_path):
    buf = {}
    for path in sorted((fake / "ru").rglob("*")):
        if path.is_file():
            buf[path.relative_to(fake / "ru").as_posix()] = path.read_bytes()
    buf["../evil.wav"] = b"x"
    archive = tmp_path / "ru.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in buf.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = download_asterisk(tmp_path / "dl", ["ru"], url=archive.as_uri().replace("ru.tar", "{lang}.tar"))
    assert (target / "ru" / "digits" / "1.wav").is_file() and (target / "ru" / "core-sounds-ru.txt").is_file()
    assert not (tmp_path / "dl" / "evil.wav").exists()
    m, _, _ = prepare_asterisk(target, None, ["ru"], test_fraction=0.0, dev_fraction=0.0)
    assert len(m["train"][0]) == 3


# --- the real folders ------------------------------------------------------------------------


def _sentences_of(text, lang):
    pieces = re.split(r"[.!?;…]+(?:\s|$)", text)
    return {normalize_transcript(p, lang).text for p in pieces} - {None}


def test_real_corpus_counts_and_sentence_disjoint_split():
    for lang in ("es", "fr", "it", "ru", "it_menardi"):
        require_shared(ASTERISK / lang, f"Asterisk {lang}")
    m, reports, skips = prepare_asterisk(ASTERISK, None, ["es", "fr", "it", "ru"], unlabeled=["it_menardi"])
    counts = {k: len(v[0]) for k, v in m.items()}
    assert counts == {"train": 1700, "dev": 98, "test": 295, "test_es": 72, "test_fr": 76,
                      "test_it": 72, "test_ru": 75, "unlabeled": 555}
    assert {r.lang: r.splits for r in reports}["es"] == {"train": 376, "dev": 25, "test": 72}
    assert skips.count(NO_AUDIO) == 15 and skips.count(NO_LINE) == 94
    # no normalised sentence of a test or dev prompt is a sentence of a training prompt
    key_text = {}
    for lang in ("es", "fr", "it", "ru"):
        for line in (ASTERISK / lang / f"core-sounds-{lang}.txt").read_text(encoding="utf-8-sig").splitlines():
            key, _, text = line.partition(":")
            key_text.setdefault(f"{lang}-{key.strip().replace('/', '-')}", (lang, text))
    sentences = {split: set() for split in ("train", "dev", "test")}
    for split in sentences:
        for sup in m[split][1]:
            lang, raw = key_text[sup.id]
            sentences[split] |= {(lang, s) for s in _sentences_of(raw, lang)} | {(lang, sup.text)}
    assert not sentences["test"] & sentences["train"] and not sentences["dev"] & sentences["train"]
    assert not sentences["test"] & sentences["dev"]
    for sup in m["test"][1]:
        assert sup.text and sup.language in ("Spanish", "French", "Italian", "Russian")
