"""What every language's templates share: picking words from a lexicon with one random generator.

A template is a method that draws its words and returns one sentence, or raises
``Unavailable`` when the lexicon lacks a word it needs (a small or held-out lexicon may
have no gradable adjective, say); the generator then draws another template.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from trainer.corpora.lexicon.words import Entry, Lexicon

__all__ = ["Unavailable", "Writer", "capitalize", "word_set"]


class Unavailable(Exception):
    """A template needs a word the lexicon does not have (e.g. no gradable adjective)."""


def capitalize(text: str) -> str:
    """Upper-case the first letter, skipping opening quotes."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1:]
    return text


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``."""
    return frozenset(text.split())


class Writer:
    """Picks words for templates; a subclass holds one language's templates.

    ``numbers`` says whether templates that say a number may be used; ``TEMPLATE_WORDS``
    are the words the subclass's templates write themselves (numbers aside), which no
    lexicon form may be, or they would occur in training and held-out text alike.
    """

    TEMPLATE_WORDS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, lexicon: Lexicon, rng: random.Random, numbers: bool) -> None:
        self.rng = rng
        self.numbers = numbers
        self.lex = lexicon
        self.by_class: dict[str, list[Entry]] = {}
        for n in lexicon.nouns:
            self.by_class.setdefault(n["class"], []).append(n)

    def pick(self, items: Sequence[Entry]) -> Entry:
        """One of ``items`` at random; ``Unavailable`` if there are none."""
        if not items:
            raise Unavailable
        return self.rng.choice(items)

    def having(self, items: Sequence[Entry], column: str) -> list[Entry]:
        """The ``items`` whose ``column`` is not '-'."""
        return [e for e in items if e[column] != "-"]

    def nouns(self, classes: Iterable[str], column: str | None = None) -> list[Entry]:
        """The nouns of ``classes`` (in that order), only those with a ``column`` form if one is named."""
        out = [n for c in classes for n in self.by_class.get(c, [])]
        return self.having(out, column) if column else out

    def number(self, low: int, high: int) -> int:
        """A number in ``low..high``, half the time one of at most 20; ``Unavailable`` without numbers."""
        if not self.numbers:
            raise Unavailable
        return self.rng.choice([self.rng.randint(low, min(high, 20)), self.rng.randint(low, high)])

    def templates(self) -> tuple[Callable[[], str], ...]:
        """The language's templates, in a fixed order (the generator draws from it)."""
        raise NotImplementedError
