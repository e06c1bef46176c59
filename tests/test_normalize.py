"""Per-language transcript normalisation (speechlm.text.normalize), one test per rule and language,
on lines taken from the upstream Asterisk transcripts."""

import pytest

from speechlm.base.errors import SpeechlmError
from speechlm.text.normalize import (
    RuleCounts,
    check_language,
    normalize_transcript,
    parse_languages,
)


def norm(text, lang):
    return normalize_transcript(text, lang)


def test_spanish_case_punctuation_digits_accents():
    r = norm("Por favor marque 1 para habilitar, 2 para bloquear... Trés para expulsar al último usuario.", "es")
    assert r.text == "por favor marque uno para habilitar dos para bloquear trés para expulsar al último usuario"
    assert set(r.rules) == {"number", "punctuation", "case"} and not r.excluded
    assert norm("En que carpeta desea guardar el mensaje ?", "es").text == \
        "en que carpeta desea guardar el mensaje"
    assert norm("marque 500 para", "es").text == "marque quinientos para"
    assert norm("¿Está seguro?", "es").text == "está seguro"


def test_french_elision_hyphen_quotes():
    r = norm("“Pour vérrouiller la conférence, appuyez sur 2.”", "fr")
    assert r.text == "pour vérrouiller la conférence appuyez sur deux"
    assert norm("Composez votre numéro d'agent suivi du dièse.", "fr").text == \
        "composez votre numéro d'agent suivi du dièse"
    r = norm("Dans quel dossier souhaitez-vous conserver ce message?", "fr")
    assert r.text == "dans quel dossier souhaitez vous conserver ce message" and "hyphen" in r.rules
    # num2words writes hyphenated compounds; they are split like written ones
    assert norm("appuyez sur 17", "fr").text == "appuyez sur dix sept"
    assert norm("À bientôt", "fr").text == "à bientôt"


def test_italian_accent_repair_and_apostrophes():
    r = norm("La chiamata non pu? essere completata cos? come composta.", "it")
    assert r.text == "la chiamata non può essere completata così come composta"
    assert "it-accent-repair" in r.rules
    assert norm("La conferenza ? piena.", "it").text == "la conferenza è piena"
    # a real question mark stays punctuation
    r = norm("Posta vocale. Casella di posta?", "it")
    assert r.text == "posta vocale casella di posta" and "it-accent-repair" not in r.rules
    r = norm("La conferenza avrà inizio all’arrivo del moderatore.", "it")
    assert r.text == "la conferenza avrà inizio all'arrivo del moderatore" and "apostrophe" in r.rules
    assert norm("Premere 1 per 'uscire'", "it").text == "premere uno per uscire"
    # the repair is Italian only: in Spanish the ? is punctuation
    assert norm("Buzon? pu?", "es").text == "buzon pu"


@pytest.mark.parametrize("text,words", [
    ("Нажмите 1, чтобы включить, 2 - чтобы заблокировать / разблокировать",
     "нажмите один чтобы включить два чтобы заблокировать разблокировать"),
    ("всех не-административных участников", "всех не административных участников"),
    ("статус «важно»", "статус важно"),
])
def test_russian_cyrillic_and_digits(text, words):
    assert norm(text, "ru").text == words


def test_russian_yo_is_written_ye():
    r = norm("Наберите новый номер и нажмите решётку.", "ru")
    assert r.text == "наберите новый номер и нажмите решетку" and "yo" in r.rules


@pytest.mark.parametrize("text,lang", [
    ("[tono simple]", "es"), ("[ tono de error ]", "es"), ("(beep)", "fr"), ("<beep ascending>", "ru"),
    ("Sus saludos [temporales] estan actualmente en uso", "es"), ("Pour (emphase)", "fr"),
    ("(1 secondo di silenzio)", "it"), ("IAX (nota: non dice \"2\")", "it"),
])
def test_descriptions_exclude_the_prompt(text, lang):
    r = norm(text, lang)
    assert r.text is None and r.excluded == "description"


@pytest.mark.parametrize("text,lang,words", [
    ("a [@]", "it", "a"), ("trattino [-]", "it", "trattino"), ("Пробел [ ]", "ru", "пробел"),
    ("[!] punto esclamativo", "it", "punto esclamativo"), ("spazio []", "it", "spazio"),
])
def test_symbol_notes_are_dropped_words_kept(text, lang, words):
    r = norm(text, lang)
    assert r.text == words and "symbol-note" in r.rules


@pytest.mark.parametrize("text,lang", [
    ("h-323", "es"), ("Audio 3D activé", "fr"), ("un modem a 28.8", "es"), ("модем 28,8", "ru"),
    ("H.323", "it"), ("28Kilobit", "it"),
])
def test_ambiguous_numbers_exclude_the_prompt(text, lang):
    assert norm(text, lang).excluded == "number-ambiguous"


def test_empty_after_normalisation_is_excluded():
    assert norm("", "fr").excluded == "empty"
    assert norm(" ... ", "ru").excluded == "empty"


def test_unicode_composition():
    decomposed = "cafe\u0301"  # e + combining acute
    r = norm(decomposed, "fr")
    assert r.text == "café" and "unicode" in r.rules


def test_rule_counts_line():
    counts = RuleCounts()
    for text in ("Marque 2.", "[beep]", "hola", "Ya esta."):
        counts.add(norm(text, "es"))
    assert counts.total == 4
    assert counts.count("number") == 1 and counts.count("case") == 2 and counts.count("description") == 1
    assert counts.line() == "changed: number 1, punctuation 2, case 2; excluded: description 1"


def test_unknown_language_lists_known_ones():
    with pytest.raises(SpeechlmError, match=r"unknown language code 'en' \(--langs\); known: es \(Spanish\)"):
        check_language("en")
    with pytest.raises(SpeechlmError, match="'de'.*ru \\(Russian\\)"):
        parse_languages("es,de")
    with pytest.raises(SpeechlmError, match="twice"):
        parse_languages("es,es")
    with pytest.raises(SpeechlmError, match="empty"):
        parse_languages(" , ")
    assert parse_languages("es, fr,ru") == ["es", "fr", "ru"]
    with pytest.raises(SpeechlmError, match="unknown language code 'xx'"):
        normalize_transcript("hola", "xx")
