"""The held-out split of a lexicon, and how much of a held-out text the training text never says.

A held-out test measures whether a voice can say words it never heard only if no word form
of the held-out sentences' content words occurs in training; ``split_lexicon`` guarantees
that for the lexicon's words, and ``unseen_share`` measures it on the texts themselves.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from trainer.corpora.lexicon.words import Entry, Lexicon, tokenize

__all__ = ["split_lexicon", "unseen_share"]


def _groups_sharing_forms(entries: Sequence[Entry]) -> list[list[int]]:
    """Indexes of ``entries`` grouped so that entries sharing a word form (transitively) are in one group.

    Groups are sorted (each by index, then by their first index).
    """
    parent = list(range(len(entries)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, e in enumerate(entries):
        for f in e.forms():
            if f in owner:
                parent[find(i)] = find(owner[f])
            else:
                owner[f] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(entries)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def _pos_counts(entries: Sequence[Entry], indexes: Sequence[int]) -> dict[str, int]:
    """How many of ``entries[i]`` for ``i`` in ``indexes`` each part of speech has (first-seen order)."""
    counts: dict[str, int] = {}
    for i in indexes:
        counts[entries[i].pos] = counts.get(entries[i].pos, 0) + 1
    return counts


def _deal(entries: Sequence[Entry], order: Sequence[list[int]], heldout_fraction: float) -> set[int]:
    """Deal the groups in ``order``, each to the side that keeps every part of speech nearest its target.

    Returns the held-out indexes. The cost of a side is the squared distance of its per-part
    counts from their targets (``heldout_fraction`` of each part held out, the rest trained on).
    """
    totals = _pos_counts(entries, range(len(entries)))
    target = {pos: heldout_fraction * n for pos, n in totals.items()}
    held_n = dict.fromkeys(totals, 0)
    train_n = dict.fromkeys(totals, 0)
    held: set[int] = set()
    for group in order:
        counts = _pos_counts(entries, group)
        cost_held = sum((held_n[p] + c - target[p]) ** 2 - (held_n[p] - target[p]) ** 2 for p, c in counts.items())
        cost_train = sum((train_n[p] + c - (totals[p] - target[p])) ** 2 - (train_n[p] - (totals[p] - target[p])) ** 2
                         for p, c in counts.items())
        if cost_held < cost_train:
            held.update(group)
            for p, c in counts.items():
                held_n[p] += c
        else:
            for p, c in counts.items():
                train_n[p] += c
    return held


def split_lexicon(lexicon: Lexicon, heldout_fraction: float, seed: int) -> tuple[Lexicon, Lexicon]:
    """Partition the lemmas into (training, held-out) lexicons sharing no word form.

    Lemmas that share a form ("saw" the tool and "saw" the past of "see") are kept
    together, so each group goes whole to one side; groups are dealt in a seeded order,
    each to the side that keeps every part of speech closest to ``heldout_fraction``
    (0 < fraction < 1) of its lemmas held out. The same seed gives the same split.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be between 0 and 1, got {heldout_fraction}")
    entries = lexicon.entries()
    order = _groups_sharing_forms(entries)
    random.Random(seed).shuffle(order)
    held = _deal(entries, order, heldout_fraction)
    train = Lexicon.from_entries(lexicon.lang, (e for i, e in enumerate(entries) if i not in held))
    heldout = Lexicon.from_entries(lexicon.lang, (e for i, e in enumerate(entries) if i in held))
    return train, heldout


def unseen_share(training_sentences: Sequence[str], heldout: Sequence[str]) -> dict[str, float | int]:
    """How much of the held-out text never occurs in the training text.

    Words are lower-cased letter/apostrophe runs (``tokenize``). Returns ``types`` and
    ``tokens`` (shares in 0..1 of held-out word types / tokens absent from the training
    text) with the counts ``unseen_types``, ``total_types``, ``unseen_tokens``,
    ``total_tokens``.
    """
    seen = {t for s in training_sentences for t in tokenize(s)}
    tokens = [t for s in heldout for t in tokenize(s)]
    types = set(tokens)
    unseen_types = sum(t not in seen for t in types)
    unseen_tokens = sum(t not in seen for t in tokens)
    return {
        "types": unseen_types / len(types) if types else 0.0,
        "tokens": unseen_tokens / len(tokens) if tokens else 0.0,
        "unseen_types": unseen_types,
        "total_types": len(types),
        "unseen_tokens": unseen_tokens,
        "total_tokens": len(tokens),
    }
