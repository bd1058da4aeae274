"""Text to symbol ids: characters checked, then spelled or phonemised (eSpeak NG) into the front end's table.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from trainer.errors import UnknownCharacterError
from trainer.text.cleaners import _WHITESPACE_RE, clean_text
from trainer.text.symbols import (
    _EXTRA_LETTERS,
    _SYMBOL_TO_ID,
    _TO_ID,
    CHARACTER_LANGUAGES,
    PHONEME_VOICES,
    _check_frontend,
    _check_lang,
)

__all__ = ["phonemize", "known_characters", "text_to_ids_counted", "text_to_ids"]


# Punctuation ends a phrase: phonemised phrase by phrase and kept as a symbol. Apostrophes and
# hyphens stay inside their words ("don't", "well-known"), which eSpeak reads whole.
_PHRASE_BREAK_RE = re.compile(r'([!"(),.:;?]+)')


@functools.lru_cache(maxsize=8192)
def phonemize(cleaned: str, lang: str = "en") -> str:
    """Return the IPA of ``cleaned`` text (``clean_text``'s output) with its punctuation kept.

    >>> phonemize("hello, world.")
    'həlˈoʊ, wˈɜːld.'
    """
    _check_lang(lang)
    from trainer.text.espeak import text_to_phonemes  # lazy: loads the eSpeak NG library on first use

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

