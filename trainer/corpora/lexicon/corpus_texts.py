"""The texts of an open-vocabulary corpus pair: training sentences and held-out sentences of unseen words.

``trainer make-corpus --open-vocabulary`` speaks these. The lexicon is split once, by a fixed
seed and fraction (so every corpus made this way holds out the same words); the corpus seed
picks the training sentences and, plus one, the held-out ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.corpora.lexicon.generate import generate_sentences, heldout_sentences
from trainer.corpora.lexicon.split import split_lexicon, unseen_share
from trainer.corpora.lexicon.words import load_lexicon

__all__ = ["HELDOUT_FRACTION", "SPLIT_SEED", "OpenTexts", "open_vocabulary_texts"]

HELDOUT_FRACTION = 0.3  # of each part of speech's lemmas, kept out of every training sentence
SPLIT_SEED = 0  # one split for all corpora: held-out words stay unseen across training corpora of any seed


@dataclass(frozen=True)
class OpenTexts:
    """Training sentences, held-out sentences, and how much of the held-out text training never says."""

    train: list[str]
    heldout: list[str]
    unseen: dict[str, float | int]  # split.unseen_share: shares and counts of unseen word types and tokens

    def disjointness_line(self) -> str:
        """Return the one line ``make-corpus`` prints: the held-out words training never says."""
        u = self.unseen
        return (f"held-out sentences: {u['unseen_tokens']} of {u['total_tokens']} words ({u['tokens']:.0%}) and "
                f"{u['unseen_types']} of {u['total_types']} distinct words ({u['types']:.0%}) never occur in the "
                "training sentences")


def open_vocabulary_texts(lang: str, utterances: int, heldout: int, seed: int) -> OpenTexts:
    """Return ``utterances`` training sentences (seed ``seed``) and ``heldout`` held-out ones (seed ``seed + 1``).

    At least half of each held-out sentence's words are unseen in any training text
    (``heldout_sentences``). CorpusError (one line) for a language without a lexicon.

    >>> texts = open_vocabulary_texts("en", 40, 5, seed=1)
    >>> len(texts.train), len(texts.heldout), texts.unseen["tokens"] >= 0.5
    (40, 5, True)
    """
    train_lexicon, heldout_lexicon = split_lexicon(load_lexicon(lang), HELDOUT_FRACTION, SPLIT_SEED)
    train = generate_sentences(train_lexicon, utterances, seed)
    held = heldout_sentences(train_lexicon, heldout_lexicon, heldout, seed + 1) if heldout else []
    return OpenTexts(train, held, unseen_share(train, held))
