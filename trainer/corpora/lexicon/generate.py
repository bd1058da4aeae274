"""Sentences from a lexicon: training text, held-out text of unseen words, and what the templates say themselves.

Sentences are the same for the same seed on one Python version (``random.Random``'s
``choice`` and ``random`` are not promised to stay the same across versions).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import MappingProxyType

from trainer.corpora.lexicon.english import EnglishWriter
from trainer.corpora.lexicon.russian import RussianWriter
from trainer.corpora.lexicon.words import Lexicon, check_language, tokenize
from trainer.corpora.lexicon.writer import Unavailable, Writer, capitalize
from trainer.errors import CorpusError

__all__ = ["generate_sentences", "heldout_sentences", "template_count", "template_words"]

_WRITERS: Mapping[str, type[Writer]] = MappingProxyType({"en": EnglishWriter, "ru": RussianWriter})

_MIN_WORDS, _MAX_WORDS = 4, 18  # sentence length in words; shorter or longer ones are drawn again


def template_words(lang: str) -> frozenset[str]:
    """Lower-cased function words the templates of ``lang`` write themselves (numbers aside).

    A lexicon form must not be one of these, or it would occur in training and held-out
    text alike.
    """
    check_language(lang)
    return _WRITERS[lang].TEMPLATE_WORDS


def template_count(lang: str) -> int:
    """How many templates ``lang`` has."""
    check_language(lang)
    empty = Lexicon(lang, (), (), (), (), (), ())
    return len(_WRITERS[lang](empty, random.Random(0), False).templates())


def _sentences(lexicon: Lexicon, count: int, seed: int, numbers: bool, keep: Callable[[str], bool]) -> list[str]:
    """``count`` distinct sentences of 4..18 words that ``keep`` accepts, templates drawn at random.

    Gives up (``CorpusError``) after ``50 * count + 1000`` draws: the lexicon is too small
    for that many distinct sentences.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    templates = _WRITERS[lexicon.lang](lexicon, rng, numbers).templates()
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    limit = 50 * count + 1000
    while len(out) < count:
        attempts += 1
        if attempts > limit:
            raise CorpusError(f"only {len(out)} distinct sentences of {count} could be made from this lexicon")
        template = rng.choice(templates)
        try:
            sentence = capitalize(template())
        except Unavailable:
            continue
        if sentence in seen or not _MIN_WORDS <= len(tokenize(sentence)) <= _MAX_WORDS or not keep(sentence):
            continue
        seen.add(sentence)
        out.append(sentence)
    return out


def generate_sentences(lexicon: Lexicon, count: int, seed: int, numbers: bool = True) -> list[str]:
    """``count`` distinct sentences (same seed, same list) built from ``lexicon``'s words.

    Each sentence comes from a template drawn at random (``english`` and ``russian`` list
    them); templates that say a number (in words) are used only with ``numbers``.
    Sentences run 4 to 18 words.
    """
    return _sentences(lexicon, count, seed, numbers, lambda _s: True)


def heldout_sentences(train: Lexicon, heldout: Lexicon, count: int, seed: int, numbers: bool = True,
                      min_unseen_share: float = 0.5) -> list[str]:
    """``count`` distinct sentences whose content words come from ``heldout``.

    A sentence is kept only if at least ``min_unseen_share`` of its word tokens are
    held-out forms that ``train`` lacks, so that text made from ``train`` can never
    contain them; with the default 0.5 at least half of all tokens are unseen.
    """
    if train.lang != heldout.lang:
        raise ValueError(f"train is {train.lang!r} but heldout is {heldout.lang!r}")
    unseen = heldout.word_forms() - train.word_forms() - template_words(heldout.lang)

    def keep(sentence: str) -> bool:
        toks = tokenize(sentence)
        return bool(toks) and sum(t in unseen for t in toks) >= min_unseen_share * len(toks)

    return _sentences(heldout, count, seed, numbers, keep)
