"""Text frontend: symbol inventories, cleaners and text <-> id conversion.

Frontends (the model key ``text_frontend``): ``characters`` (the cleaned letters and
punctuation, ``SYMBOLS``), ``phonemes`` (the cleaned text turned into IPA with stress marks
by the bundled eSpeak NG, punctuation kept, ``PHONEME_SYMBOLS``) and ``nvidia`` (the cleaned
letters in NVIDIA/tacotron2's 148-symbol table, to fine-tune their public checkpoint). Phonemes spare the
model English spelling, which it otherwise learns from the data; public recipes (Coqui's
LJSpeech ones, ESPnet's) train on them for that reason. Numbers and abbreviations are
expanded by the cleaners before either.

The symbol order defines the model's embedding ids, so neither table may be reordered;
append new symbols at the end and checkpoints keep working (their ``symbol_set_id``
changes, which tells a warm start to skip the embedding).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import TypeVar

from trainer.errors import UnknownCharacterError

_Form = TypeVar("_Form")  # a noun form, or anything chosen by the same rule

__all__ = [
    "FRONTENDS",
    "LANGUAGES",
    "PAD",
    "NVIDIA_SYMBOLS",
    "PHONEME_SYMBOLS",
    "SYMBOLS",
    "UnknownCharacterError",
    "CHARACTER_LANGUAGES",
    "LEGACY_TEXT_FRONTEND",
    "clean_text",
    "ids_to_text",
    "known_characters",
    "number_to_words",
    "ordinal_to_words",
    "phonemize",
    "symbol_set_id",
    "symbols",
    "text_to_ids",
    "text_to_ids_counted",
]

LANGUAGES: tuple[str, ...] = ("en", "ru", "de", "es", "fr")
# The languages the character tables spell; the others read through phonemes only.
CHARACTER_LANGUAGES: tuple[str, ...] = ("en", "ru")
# The frontend of a checkpoint or config stored before the ``text_frontend`` key existed.
LEGACY_TEXT_FRONTEND = "characters"

PAD = "_"
_PUNCTUATION = "!'\"(),-.:;? "
_LATIN = "abcdefghijklmnopqrstuvwxyz"
_CYRILLIC = "абвгдежзийклмнопрстуфхцчшщъыьэюяё"

SYMBOLS: tuple[str, ...] = (PAD, *_PUNCTUATION, *_LATIN, *_CYRILLIC)

# eSpeak NG's IPA for English and Russian and the neighbours it draws on (each code point one
# symbol: stress marks, length and the combining syllabic/nasal marks too).
_IPA = ("abcdefghijklmnopqrstuvwxyzæçðøŋœɐɑɒɔɕɖəɚɛɜɝɟɡɣɤɥɨɪɫɬɭɯɲɳɵɸɹɺɾʀʁʂʃʈʊʋʌʎʏʑʒʔʝʲʰβθχᵻˈˌːˑ"
        "\u0329\u0303")
PHONEME_SYMBOLS: tuple[str, ...] = (PAD, *_PUNCTUATION, *_IPA)

# NVIDIA/tacotron2's table (text/symbols.py: pad, special, punctuation, letters, ARPAbet as
# "@" + CMUdict symbol), in its order: a model reading it can warm-start from their public
# LJSpeech checkpoint with the text embedding. We feed it cleaned lowercase letters, as their
# english_cleaners do; the ARPAbet rows stay unused.
_ARPABET = (
    "AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2 AY AY0 AY1 AY2 B CH D DH "
    "EH EH0 EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH IH IH0 IH1 IH2 IY IY0 IY1 IY2 JH K L M N NG "
    "OW OW0 OW1 OW2 OY OY0 OY1 OY2 P R S SH T TH UH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH"
).split()
NVIDIA_SYMBOLS: tuple[str, ...] = (PAD, "-", *"!'(),.:;? ", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *_LATIN,
                                   *("@" + s for s in _ARPABET))

FRONTENDS: tuple[str, ...] = ("characters", "phonemes", "nvidia")
_TABLES: dict[str, tuple[str, ...]] = {"characters": SYMBOLS, "phonemes": PHONEME_SYMBOLS, "nvidia": NVIDIA_SYMBOLS}
# The pad symbol is deliberately absent: an "_" in the text must not become padding.
_SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS) if s != PAD}
_TO_ID: dict[str, dict[str, int]] = {name: {s: i for i, s in enumerate(table) if s != PAD}
                                     for name, table in _TABLES.items()}
# eSpeak NG voice whose phonemes stand for each language's text.
PHONEME_VOICES: dict[str, str] = {"en": "en-us", "ru": "ru", "de": "de", "es": "es", "fr": "fr"}
# Letters a text may hold besides SYMBOLS' (Latin, Cyrillic, punctuation), by language.
_EXTRA_LETTERS: dict[str, str] = {"de": "äöüß", "es": "áéíóúüñ", "fr": "àâæçéèêëîïôœùûüÿ"}
# Punctuation ends a phrase: phonemised phrase by phrase and kept as a symbol. Apostrophes and
# hyphens stay inside their words ("don't", "well-known"), which eSpeak reads whole.
_PHRASE_BREAK_RE = re.compile(r'([!"(),.:;?]+)')


def symbols(frontend: str = "characters") -> tuple[str, ...]:
    """Return the symbol table of ``frontend`` (``characters`` or ``phonemes``)."""
    _check_frontend(frontend)
    return _TABLES[frontend]


def symbol_set_id(frontend: str = "characters") -> str:
    """Return a 12-hex-digit hash of ``frontend``'s symbol table (order included).

    Two checkpoints can share a text embedding exactly when their ids are equal.
    """
    joined = "\x1f".join(symbols(frontend)).encode("utf-8")
    return hashlib.sha256(joined).hexdigest()[:12]


def _check_frontend(frontend: str) -> None:
    if frontend not in _TABLES:
        raise ValueError(f"unknown text_frontend {frontend!r}: expected one of {', '.join(FRONTENDS)}")


@functools.lru_cache(maxsize=8192)
def phonemize(cleaned: str, lang: str = "en") -> str:
    """Return the IPA of ``cleaned`` text (``clean_text``'s output) with its punctuation kept.

    >>> phonemize("hello, world.")
    'həlˈoʊ, wˈɜːld.'
    """
    _check_lang(lang)
    from trainer.espeak import text_to_phonemes  # lazy: loads the eSpeak NG library on first use

    parts = []
    for piece in _PHRASE_BREAK_RE.split(cleaned):
        if _PHRASE_BREAK_RE.fullmatch(piece):
            parts.append(piece)
        elif piece.strip():
            lead = " " if piece[0] == " " and parts else ""
            trail = " " if piece[-1] == " " else ""
            parts.append(lead + text_to_phonemes(piece.strip(), PHONEME_VOICES[lang]) + trail)
        elif parts:
            parts.append(piece)
    return _WHITESPACE_RE.sub(" ", "".join(parts)).strip()


# ---------------------------------------------------------------------------
# Numbers: English

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_SCALES = ("", "thousand", "million", "billion", "trillion")
_EN_DIGITS = _EN_ONES[:10]


def _en_below_1000(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_EN_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return words


def _en_cardinal(n: int) -> str:
    if n < 0:
        return "minus " + _en_cardinal(-n)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_EN_SCALES):
        # Nobody says these aloud as one number; reading the digits keeps it speakable.
        return " ".join(_EN_DIGITS[int(d)] for d in str(n))
    words: list[str] = []
    for power in range(len(_EN_SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if group:
            words += _en_below_1000(group)
            if _EN_SCALES[power]:
                words.append(_EN_SCALES[power])
    return " ".join(words)


_EN_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}


def _en_ordinal_word(word: str) -> str:
    if word in _EN_ORDINAL_IRREGULAR:
        return _EN_ORDINAL_IRREGULAR[word]
    if word.endswith("y"):
        return word[:-1] + "ieth"
    return word + "th"


# ---------------------------------------------------------------------------
# Numbers: Russian (cardinal, nominative)

_RU_ONES_M = (
    "ноль один два три четыре пять шесть семь восемь девять десять одиннадцать "
    "двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать "
    "восемнадцать девятнадцать"
).split()
_RU_TENS = "_ _ двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто".split()
_RU_HUNDREDS = "_ сто двести триста четыреста пятьсот шестьсот семьсот восемьсот девятьсот".split()
_RU_GENDERED = {"f": {1: "одна", 2: "две"}, "n": {1: "одно", 2: "два"}, "m": {}}
# (forms for 1, 2-4, 5+; grammatical gender of the scale word)
_RU_SCALES: tuple[tuple[tuple[str, str, str], str], ...] = (
    (("", "", ""), "m"),
    (("тысяча", "тысячи", "тысяч"), "f"),
    (("миллион", "миллиона", "миллионов"), "m"),
    (("миллиард", "миллиарда", "миллиардов"), "m"),
    (("триллион", "триллиона", "триллионов"), "m"),
)


def ru_plural(n: int, one: _Form, few: _Form, many: _Form) -> _Form:
    """Return the Russian noun form agreeing with ``n``: ``one`` (1, 21, ...),
    ``few`` (2-4, 22-24, ...) or ``many`` (0, 5-20, 25-30, ...)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _ru_below_1000(n: int, gender: str) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words.append(_RU_HUNDREDS[hundreds])
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_RU_TENS[tens])
        if ones:
            words.append(_RU_GENDERED[gender].get(ones, _RU_ONES_M[ones]))
    elif rest:
        words.append(_RU_GENDERED[gender].get(rest, _RU_ONES_M[rest]))
    return words


def _ru_cardinal(n: int, gender: str = "m") -> str:
    if n < 0:
        return "минус " + _ru_cardinal(-n, gender)
    if n == 0:
        return "ноль"
    if n >= 1000 ** len(_RU_SCALES):
        return " ".join(_RU_ONES_M[int(d)] for d in str(n))
    words: list[str] = []
    for power in range(len(_RU_SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if not group:
            continue
        forms, scale_gender = _RU_SCALES[power]
        if power == 0:
            words += _ru_below_1000(group, gender)
        elif group == 1:
            words.append(forms[0])  # "тысяча", not "одна тысяча", as spoken
        else:
            words += _ru_below_1000(group, scale_gender)
            words.append(ru_plural(group, *forms))
    return " ".join(words)


_RU_FRACTION_DENOMINATORS = {
    1: ("десятая", "десятых"),
    2: ("сотая", "сотых"),
    3: ("тысячная", "тысячных"),
}


def _ru_decimal(integer: str, fraction: str) -> str:
    whole = int(integer)
    head = f"{_ru_cardinal(whole, 'f')} {'целая' if ru_plural(whole, 1, 0, 0) else 'целых'}"
    if len(fraction) in _RU_FRACTION_DENOMINATORS:
        num = int(fraction)
        one, other = _RU_FRACTION_DENOMINATORS[len(fraction)]
        return f"{head} {_ru_cardinal(num, 'f')} {one if ru_plural(num, 1, 0, 0) else other}"
    # Long fractions have no everyday spoken form; read them digit by digit.
    return f"{_ru_cardinal(whole)} запятая " + " ".join(_RU_ONES_M[int(d)] for d in fraction)


def number_to_words(n: int, lang: str = "en", *, gender: str = "m") -> str:
    """Return the cardinal number ``n`` spelled out in words.

    English uses American style without "and" ("one hundred twenty-three");
    Russian is nominative, ``gender`` ("m", "f" or "n") choosing "один/одна/одно"
    and "два/две". Numbers of 10^15 and beyond are read digit by digit. German, Spanish
    and French come from the num2words library ("dreiundzwanzig", "veintitrés",
    "vingt-trois").
    """
    _check_lang(lang)
    if lang == "en":
        return _en_cardinal(n)
    if lang != "ru":
        return _num2words(n, lang)
    if gender not in _RU_GENDERED:
        raise ValueError(f"unknown gender {gender!r}: expected m, f or n")
    return _ru_cardinal(n, gender)


def ordinal_to_words(n: int) -> str:
    """Return the English ordinal of ``n >= 0`` in words ("twenty-first")."""
    if n < 0:
        raise ValueError(f"ordinal of a negative number: {n}")
    words = _en_cardinal(n).split(" ")
    *head, last = words
    if "-" in last:
        tens, ones = last.split("-")
        last = f"{tens}-{_en_ordinal_word(ones)}"
    else:
        last = _en_ordinal_word(last)
    return " ".join([*head, last])


# ---------------------------------------------------------------------------
# Cleaners

_TYPOGRAPHY = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"',
    "\u00bb": '"', "\u2033": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2039": "'",
    "\u203a": "'", "\u02bc": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
})

_EN_ABBREVIATIONS = {
    "mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company",
    "jr": "junior", "maj": "major", "gen": "general", "drs": "doctors",
    "rev": "reverend", "lt": "lieutenant", "hon": "honorable", "sgt": "sergeant",
    "capt": "captain", "esq": "esquire", "ltd": "limited", "col": "colonel",
    "ft": "fort", "vs": "versus", "mt": "mount", "prof": "professor",
}
_EN_ABBREVIATION_RE = re.compile(r"\b(" + "|".join(_EN_ABBREVIATIONS) + r")\.")
_EN_ETC_RE = re.compile(r"\betc\.")
_WHITESPACE_RE = re.compile(r"\s+")
_DIGIT_GROUP_SPACE_RE = re.compile(r"(?<=\d)[\u00a0\u2007\u2009\u202f](?=\d{3}(?!\d))")
# A minus sign only where a number starts a token: "1990-1995" is a range.
_NEGATIVE_RE = re.compile(r"(?<![\w.])-(?=\d)")
_LETTER_DIGIT_RE = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def _en_numbers(text: str) -> str:
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?!\d)", lambda m: m.group(0).replace(",", ""), text)
    text = _NEGATIVE_RE.sub("minus ", text)

    def dollars(m: re.Match[str]) -> str:
        whole, cents = int(m.group(1)), int((m.group(2) or "0").ljust(2, "0"))
        parts = []
        if whole or not cents:
            parts.append(f"{_en_cardinal(whole)} dollar{'' if whole == 1 else 's'}")
        if cents:
            parts.append(f"{_en_cardinal(cents)} cent{'' if cents == 1 else 's'}")
        return " and ".join(parts)

    text = re.sub(r"\$(\d+)(?:\.(\d{1,2}))?(?!\d)", dollars, text)
    text = re.sub(
        r"(\d+)\.(\d+)",
        lambda m: f"{_en_cardinal(int(m.group(1)))} point "
        + " ".join(_EN_DIGITS[int(d)] for d in m.group(2)),
        text,
    )
    text = re.sub(r"(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _LETTER_DIGIT_RE.sub(" ", text)  # "mp3" -> "mp three", not "mpthree"
    text = re.sub(r"\d+", lambda m: _en_cardinal(int(m.group(0))), text)
    text = re.sub(r"\s*%", " percent", text)
    return text.replace("&", " and ")


def _ru_numbers(text: str) -> str:
    # Plain spaces also separate numbers in lists ("22 100"), so only round
    # thousands ("5 000", "1 000 000") are joined; typographic spaces went earlier.
    text = re.sub(r"(?<!\d)\d{1,3}(?: 000)+(?!\d)", lambda m: m.group(0).replace(" ", ""), text)
    text = _NEGATIVE_RE.sub("минус ", text)

    def percent(m: re.Match[str]) -> str:
        if m.group(2):
            return f"{_ru_decimal(m.group(1), m.group(2))} процента"
        n = int(m.group(1))
        return f"{_ru_cardinal(n)} {ru_plural(n, 'процент', 'процента', 'процентов')}"

    text = re.sub(r"(\d+)(?:[.,](\d+))?\s*%", percent, text)
    text = re.sub(r"(\d+)[.,](\d+)", lambda m: _ru_decimal(m.group(1), m.group(2)), text)
    text = _LETTER_DIGIT_RE.sub(" ", text)
    text = re.sub(r"\d+", lambda m: _ru_cardinal(int(m.group(0))), text)
    return text.replace("&", " и ")


# German, Spanish and French: numbers from num2words, a maintained library that spells them
# in these languages with their agreement rules. English and Russian keep the cleaners above:
# they also read money, ordinals, decimals and Russian plural agreement ("пять процентов"),
# which num2words leaves to the caller.
_OTHER_WORDS: dict[str, dict[str, str]] = {
    "de": {"minus": "minus", "percent": "prozent", "and": "und", "point": "komma"},
    "es": {"minus": "menos", "percent": "por ciento", "and": "y", "point": "coma"},
    "fr": {"minus": "moins", "percent": "pour cent", "and": "et", "point": "virgule"},
}
_OTHER_ABBREVIATIONS: dict[str, dict[str, str]] = {
    "de": {"z.b.": "zum beispiel", "usw.": "und so weiter", "bzw.": "beziehungsweise", "dr.": "doktor",
           "nr.": "nummer", "ca.": "circa", "d.h.": "das heißt", "hr.": "herr", "fr.": "frau"},
    "es": {"sr.": "señor", "sra.": "señora", "srta.": "señorita", "dr.": "doctor", "dra.": "doctora",
           "etc.": "etcétera", "ud.": "usted", "uds.": "ustedes"},
    "fr": {"m.": "monsieur", "mme": "madame", "mlle": "mademoiselle", "dr": "docteur", "etc.": "et cetera",
           "st": "saint", "ste": "sainte"},
}
_OTHER_ABBREVIATION_RE: dict[str, re.Pattern[str]] = {
    lang: re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(table, key=len, reverse=True))
                     + r")(?![\w])")
    for lang, table in _OTHER_ABBREVIATIONS.items()
}
# "1.000.000": dots group thousands in these languages; a comma is the decimal mark.
_DOT_THOUSANDS_RE = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{3})+(?![\d.])")


def _num2words(n: int, lang: str) -> str:
    from num2words import num2words  # type: ignore[import-untyped]  # lazy: only de, es and fr texts need it

    return str(num2words(n, lang=lang))


def _other_numbers(text: str, lang: str) -> str:
    words = _OTHER_WORDS[lang]
    text = _DOT_THOUSANDS_RE.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _NEGATIVE_RE.sub(words["minus"] + " ", text)
    text = re.sub(r"(\d+),(\d+)", lambda m: f"{_num2words(int(m.group(1)), lang)} {words['point']} "
                  + " ".join(_num2words(int(d), lang) for d in m.group(2)), text)
    text = _LETTER_DIGIT_RE.sub(" ", text)
    text = re.sub(r"\d+", lambda m: _num2words(int(m.group(0)), lang), text)
    text = re.sub(r"\s*%", " " + words["percent"], text)
    return text.replace("&", f" {words['and']} ")


def _check_lang(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown lang {lang!r}: expected one of {', '.join(LANGUAGES)}")


def clean_text(text: str, lang: str = "en") -> str:
    """Return ``text`` normalised for the model: NFKC, typographic quotes and
    dashes as ASCII, lowercase, abbreviations and numbers spelled out in ``lang``,
    whitespace collapsed and stripped.

    Characters outside ``SYMBOLS`` are kept; ``text_to_ids`` decides what to do
    with them. Cleaning is idempotent.
    """
    _check_lang(lang)
    # Thin and no-break spaces between digits group thousands ("1\u202f000"); NFKC
    # would turn them into plain spaces, which are ambiguous, so join them first.
    text = _DIGIT_GROUP_SPACE_RE.sub("", text)
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY).lower()
    text = _WHITESPACE_RE.sub(" ", text)
    if lang == "en":
        text = _EN_ETC_RE.sub("et cetera", text)
        text = _EN_ABBREVIATION_RE.sub(lambda m: _EN_ABBREVIATIONS[m.group(1)], text)
        text = _en_numbers(text)
    elif lang == "ru":
        text = _ru_numbers(text)
    else:
        table = _OTHER_ABBREVIATIONS[lang]
        text = _OTHER_ABBREVIATION_RE[lang].sub(lambda m: table[m.group(1)], text)
        text = _other_numbers(text, lang)
    return _WHITESPACE_RE.sub(" ", text).strip()


# ---------------------------------------------------------------------------
# Text <-> ids

def known_characters(text: str, *, lang: str = "en", utterance_id: str = "?",
                     on_unknown: str = "error") -> tuple[str, dict[str, int]]:
    """Clean ``text`` and return ``(cleaned, dropped)``: the cleaned text of characters the
    language may hold (SYMBOLS', plus its own letters for German, Spanish and French), and
    how many times each other character was dropped (empty unless ``on_unknown="drop"``).
    Spaces left doubled or dangling by dropping are collapsed.

    With ``on_unknown="error"`` the first unknown character raises
    ``UnknownCharacterError`` naming ``utterance_id`` and the character.
    """
    if on_unknown not in ("error", "drop"):
        raise ValueError(f"unknown on_unknown {on_unknown!r}: expected 'error' or 'drop'")
    extra = _EXTRA_LETTERS.get(lang, "")
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    for ch in clean_text(text, lang):
        if ch in _SYMBOL_TO_ID or ch in extra:
            kept.append(ch)
        elif on_unknown == "error":
            raise UnknownCharacterError(utterance_id, ch)
        else:
            dropped[ch] += 1
    cleaned = "".join(kept)
    if dropped:
        # A dropped word leaves two spaces behind; the model never saw those in training.
        cleaned = _WHITESPACE_RE.sub(" ", cleaned).strip()
    return cleaned, dict(dropped)


def text_to_ids_counted(
    text: str, *, lang: str = "en", utterance_id: str = "?", on_unknown: str = "error",
    frontend: str = "characters",
) -> tuple[list[int], dict[str, int]]:
    """Clean ``text`` and return ``(ids, dropped)``: symbol ids, and the characters
    ``known_characters`` dropped.

    The characters are checked before phonemising (``frontend="phonemes"``), so both
    frontends accept the same English and Russian texts; a phoneme outside
    ``PHONEME_SYMBOLS`` is dropped. German, Spanish and French read through phonemes only
    (ValueError for another frontend: the character tables do not spell them).
    """
    _check_frontend(frontend)
    if frontend != "phonemes" and lang not in CHARACTER_LANGUAGES:
        raise ValueError(f"lang {lang!r} needs text_frontend 'phonemes' (the character tables spell "
                         f"{', '.join(CHARACTER_LANGUAGES)})")
    cleaned, dropped = known_characters(text, lang=lang, utterance_id=utterance_id, on_unknown=on_unknown)
    if frontend == "phonemes":
        table = _TO_ID["phonemes"]
        return [table[ch] for ch in phonemize(cleaned, lang) if ch in table], dropped
    if frontend == "nvidia":
        table = _TO_ID["nvidia"]
        return [table[ch] for ch in cleaned if ch in table], dropped
    return [_SYMBOL_TO_ID[ch] for ch in cleaned], dropped


def text_to_ids(
    text: str, *, lang: str = "en", utterance_id: str = "?", on_unknown: str = "error",
    frontend: str = "characters",
) -> list[int]:
    """Clean ``text`` and return its symbol ids (see ``text_to_ids_counted``)."""
    return text_to_ids_counted(
        text, lang=lang, utterance_id=utterance_id, on_unknown=on_unknown, frontend=frontend
    )[0]


def ids_to_text(ids: Iterable[int], frontend: str = "characters") -> str:
    """Return the text (or IPA) spelled by ``ids``, skipping padding (id 0).

    Raises ``ValueError`` for an id outside the frontend's table.
    """
    table = symbols(frontend)
    chars: list[str] = []
    for i in ids:
        i = int(i)
        if not 0 <= i < len(table):
            raise ValueError(f"symbol id {i} out of range 0..{len(table) - 1}")
        if i:
            chars.append(table[i])
    return "".join(chars)
