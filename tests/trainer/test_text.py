"""Text frontend: symbols, cleaners, numbers, text <-> ids."""

from __future__ import annotations

import pytest

from trainer.errors import UnknownCharacterError
from trainer.text.cleaners import clean_text
from trainer.text.encode import text_to_ids, text_to_ids_counted
from trainer.text.numbers import number_to_words, ordinal_to_words, ru_plural
from trainer.text.symbols import SYMBOLS, ids_to_text, symbol_set_id


def test_symbol_inventory_is_fixed():
    assert SYMBOLS[0] == "_"
    assert len(SYMBOLS) == len(set(SYMBOLS))
    for ch in "!'(),-.:;? \"abcdefghijklmnopqrstuvwxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя":
        assert ch in SYMBOLS, ch
    # Ids are the model's embedding rows: pin a few so a reorder fails loudly.
    assert SYMBOLS.index("a") == 13
    assert SYMBOLS.index("а") == 39
    assert SYMBOLS[-1] == "ё"
    assert symbol_set_id() == "d2bed7412634"


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (42, "forty-two"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (2023, "two thousand twenty-three"),
        (999_999, "nine hundred ninety-nine thousand nine hundred ninety-nine"),
        (1_000_001, "one million one"),
        (-5, "minus five"),
    ],
)
def test_english_cardinals(n, words):
    assert number_to_words(n, "en") == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (9, "ninth"),
        (12, "twelfth"), (20, "twentieth"), (21, "twenty-first"), (100, "one hundredth"),
    ],
)
def test_english_ordinals(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "gender", "words"),
    [
        (0, "m", "ноль"),
        (1, "m", "один"),
        (1, "f", "одна"),
        (2, "f", "две"),
        (11, "m", "одиннадцать"),
        (21, "m", "двадцать один"),
        (40, "m", "сорок"),
        (115, "m", "сто пятнадцать"),
        (1000, "m", "тысяча"),
        (2000, "m", "две тысячи"),
        (5000, "m", "пять тысяч"),
        (21_000, "m", "двадцать одна тысяча"),
        (2_345_678, "m",
         "два миллиона триста сорок пять тысяч шестьсот семьдесят восемь"),
        (999_999, "m",
         "девятьсот девяносто девять тысяч девятьсот девяносто девять"),
    ],
)
def test_russian_cardinals(n, gender, words):
    assert number_to_words(n, "ru", gender=gender) == words


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Hello,\n\tWORLD!  ", "hello, world!"),
        ("Mr. Smith met Dr. Jones on St. Patrick's day.",
         "mister smith met doctor jones on saint patrick's day."),
        ("I have 1,234 apples.", "i have one thousand two hundred thirty-four apples."),
        ("Pi is 3.14, roughly 3.5.", "pi is three point one four, roughly three point five."),
        ("The 1st and 22nd of May", "the first and twenty-second of may"),
        ("It costs $3.50 - or 50% off", "it costs three dollars and fifty cents - or fifty percent off"),
        ("\u201cQuoted\u201d \u2014 it\u2019s fine\u2026", '"quoted" - it\'s fine...'),
        ("Room 101b, -4 degrees", "room one hundred one b, minus four degrees"),
    ],
)
def test_clean_english(raw, clean):
    assert clean_text(raw, "en") == clean
    assert clean_text(clean, "en") == clean  # idempotent


@pytest.mark.parametrize(
    ("n", "form"),
    [(1, "год"), (2, "года"), (4, "года"), (5, "лет"), (11, "лет"), (12, "лет"),
     (14, "лет"), (21, "год"), (22, "года"), (25, "лет"), (111, "лет"), (101, "год"), (0, "лет")],
)
def test_russian_plural_agreement(n, form):
    assert ru_plural(n, "год", "года", "лет") == form


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Привет,   МИР!  ", "привет, мир!"),
        ("У меня 21 яблоко и 3 груши.", "у меня двадцать один яблоко и три груши."),
        ("Ему 1000 лет", "ему тысяча лет"),
        ("Цена 3,5 рубля", "цена три целых пять десятых рубля"),
        ("Рост 45%, 11% и 21%", "рост сорок пять процентов, одиннадцать процентов и двадцать один процент"),
        ("Население 1\u00a0000\u00a0000 человек", "население миллион человек"),
        ("\u00abЁлка\u00bb \u2014 это дерево", '"ёлка" - это дерево'),
    ],
)
def test_clean_russian(raw, clean):
    assert clean_text(raw, "ru") == clean
    assert clean_text(clean, "ru") == clean


def test_clean_leaves_no_digits():
    text = "Call 555-0199 at 10:30, ask for No. 7 (or 1st floor) in 2024."
    assert not any(ch.isdigit() for ch in clean_text(text, "en"))
    assert not any(ch.isdigit() for ch in clean_text("Дом 12, квартира 345", "ru"))


def test_unknown_language_is_rejected():
    with pytest.raises(ValueError, match="unknown lang 'it': expected one of en, ru, de, es, fr"):
        clean_text("Ciao", "it")


@pytest.mark.parametrize(("lang", "text", "expected"), [
    ("de", "Dr. Müller hat 1.250 Bücher, z.B. 3,5% & mehr.",
     "doktor müller hat eintausendzweihundertfünfzig bücher, zum beispiel drei komma fünf prozent und mehr."),
    ("es", "El Sr. García tiene 23 libros, -4 y 3,5%.",
     "el señor garcía tiene veintitrés libros, menos cuatro y tres coma cinco por ciento."),
    ("fr", "M. Dupont a 1.000 livres & 80 chats.", "monsieur dupont a mille livres et quatre-vingts chats."),
])
def test_german_spanish_and_french_numbers_and_abbreviations_are_spelled_out(lang, text, expected):
    assert clean_text(text, lang) == expected
    assert clean_text(expected, lang) == expected  # idempotent


def test_german_spanish_and_french_read_through_phonemes_only():
    ids = text_to_ids("Die schöne Straße hat 23 Häuser.", lang="de", frontend="phonemes")
    ipa = ids_to_text(ids, "phonemes")
    assert "ʃtɾˈɑːsə" in ipa and "dɾˈaɪʊnttsvˌantsɪç" in ipa  # eSpeak's German, numbers read as words
    assert len(ids) > 30
    with pytest.raises(ValueError, match="lang 'de' needs text_frontend 'phonemes'"):
        text_to_ids("Hallo", lang="de")
    with pytest.raises(UnknownCharacterError, match="unknown character 'ñ'"):
        text_to_ids("Señor", lang="de", frontend="phonemes")  # a Spanish letter in German text


def test_unknown_character_names_utterance_and_character():
    with pytest.raises(UnknownCharacterError) as info:
        text_to_ids("Die Straße", utterance_id="LJ001-0001")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.utterance_id == "LJ001-0001"
    assert err.character == "ß"
    assert str(err) == "utterance LJ001-0001: unknown character 'ß' (U+00DF)"


def test_pad_symbol_in_text_is_unknown_not_padding():
    with pytest.raises(UnknownCharacterError):
        text_to_ids("snake_case")
    ids, dropped = text_to_ids_counted("snake_case", on_unknown="drop")
    assert 0 not in ids
    assert dropped == {"_": 1}


def test_drop_mode_counts_dropped_characters():
    ids, dropped = text_to_ids_counted("Straße ß € ok", on_unknown="drop")
    assert dropped == {"ß": 2, "€": 1}
    assert ids_to_text(ids) == "strae ok"  # the emptied word leaves no double space
    assert text_to_ids("Straße ß € ok", on_unknown="drop") == ids


def test_known_text_drops_nothing():
    assert text_to_ids_counted("Hello there.", on_unknown="drop")[1] == {}


def test_bad_on_unknown_mode():
    with pytest.raises(ValueError, match="on_unknown"):
        text_to_ids("hi", on_unknown="ignore")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hello, World! Is it 42? (Yes): \"quoted\"; 'single' - done.", "en"),
        ("Съешь же ещё этих мягких французских булок, да выпей 2 чаю!", "ru"),
    ],
)
def test_ids_roundtrip(text, lang):
    ids = text_to_ids(text, lang=lang)
    assert all(0 < i < len(SYMBOLS) for i in ids)
    assert ids_to_text(ids) == clean_text(text, lang)


def test_ids_to_text_skips_padding_and_rejects_bad_ids():
    ids = text_to_ids("ab")
    assert ids_to_text([*ids, 0, 0]) == "ab"
    with pytest.raises(ValueError, match="out of range"):
        ids_to_text([len(SYMBOLS)])
