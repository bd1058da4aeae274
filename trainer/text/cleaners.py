"""Cleaners: the text normalised for the model (NFKC, typography, lowercase, abbreviations and numbers spelled out).
"""

from __future__ import annotations

import re
import unicodedata

from trainer.text.numbers import (
    _EN_DIGITS,
    _en_cardinal,
    _num2words,
    _ru_cardinal,
    _ru_decimal,
    ordinal_to_words,
    ru_plural,
)
from trainer.text.symbols import _check_lang

__all__ = ["clean_text"]


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


def clean_text(text: str, lang: str = "en") -> str:
    """Return ``text`` normalised for the model: NFKC, typographic quotes and
    dashes as ASCII, lowercase, abbreviations and numbers spelled out in ``lang``,
    whitespace collapsed and stripped.

    Characters outside ``SYMBOLS`` are kept; ``text_to_ids`` decides what to do
    with them. Cleaning is idempotent.

    >>> clean_text("Dr. Smith paid $5 on 3 May.")
    'doctor smith paid five dollars on three may.'
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

