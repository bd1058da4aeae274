"""Symbol tables of the text front ends (characters, phonemes, NVIDIA's) and the languages.

Frontends (the model key ``text_frontend``): ``characters`` (the cleaned letters and
punctuation, ``SYMBOLS``), ``phonemes`` (the cleaned text turned into IPA with stress marks
by the bundled eSpeak NG, punctuation kept, ``PHONEME_SYMBOLS``) and ``nvidia`` (the cleaned
letters in NVIDIA/tacotron2's 148-symbol table, to fine-tune their public checkpoint). Phonemes spare the
model English spelling, which it otherwise learns from the data; public recipes (Coqui's
LJSpeech ones, ESPnet's) train on them for that reason.

The symbol order defines the model's embedding ids, so neither table may be reordered;
append new symbols at the end and checkpoints keep working (their ``symbol_set_id``
changes, which tells a warm start to skip the embedding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["LANGUAGES", "CHARACTER_LANGUAGES", "LEGACY_TEXT_FRONTEND", "PAD", "SYMBOLS", "PHONEME_SYMBOLS",
           "NVIDIA_SYMBOLS", "FRONTENDS", "PHONEME_VOICES", "symbols", "symbol_set_id", "ids_to_text"]


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


def _check_lang(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown lang {lang!r}: expected one of {', '.join(LANGUAGES)}")


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

