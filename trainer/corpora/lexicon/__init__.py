"""Open-vocabulary sentences for measuring intelligibility on words a voice never heard.

A closed template generator (``trainer.corpora.sentences``) reuses its few words
everywhere, so "held-out" sentences share their vocabulary with the training text and say
little about how a voice copes with a new word. This package instead reads a large lexicon
(``en.tsv``: over 3,000 English lemmas; ``ru.tsv``: over 1,500 Russian ones), splits its
content lemmas (nouns, verbs, adjectives, adverbs, given names) into a training part and a
held-out part that share no word form, and fills grammatical templates from either part.
Function words (articles, pronouns, prepositions, auxiliaries, conjunctions, time phrases,
numbers) belong to the templates and are common to both.

Typical use::

    lex = load_lexicon("en")
    train, held = split_lexicon(lex, heldout_fraction=0.3, seed=0)
    train_text = generate_sentences(train, 5000, seed=1)
    test_text = heldout_sentences(train, held, 500, seed=2)
    unseen_share(train_text, test_text)  # {'types': 0.9..., 'tokens': 0.6..., ...}

Modules: ``words`` (the TSV layout, ``Entry``, ``Lexicon``, ``load_lexicon``, ``tokenize``),
``split`` (``split_lexicon``, ``unseen_share``), ``writer`` (what templates share),
``english`` and ``russian`` (the templates), ``generate`` (``generate_sentences``,
``heldout_sentences``, ``template_words``, ``template_count``).

The lexicon files are data, edited by hand; each file's header comment gives its columns.
They were first made by scripts that are not part of the project, from hand-written lemma
lists grouped by part of speech and semantic class:

- English forms were inflected by spelling rules plus a table of irregular forms; where a
  rule allows two spellings the pocketsphinx en-us dictionary chose, and a lemma was
  dropped if any of its forms is missing from that dictionary or from pocketsphinx's en-us
  language model (the recogniser could never write it), or if it is a heteronym ("read",
  "lead"). The article ("a"/"an") follows the dictionary's first phone ("an hour", "a
  unicorn").
- Russian forms were produced with the pymorphy3 morphological analyser, with hand
  corrections where its first form is not the common one; a lemma was dropped if the
  analyser did not know it, or it is indeclinable, plural-only, of common gender or
  declines like an adjective (the numeral rules the templates use do not fit those).
- In both, a lemma with a form that the templates write themselves or that is a number
  word was dropped ("want", since templates say "wanted"; "сорока", whose genitive plural
  is the numeral "сорок").

``tests/trainer/test_lexicon.py`` checks the files as they are edited: their sizes, every
English form in the recogniser's dictionary and language model, articles that follow
pronunciation, no form that is a template or number word, and hand-checked Russian forms.
"""

from __future__ import annotations

from trainer.corpora.lexicon.generate import generate_sentences, heldout_sentences, template_count, template_words
from trainer.corpora.lexicon.split import split_lexicon, unseen_share
from trainer.corpora.lexicon.words import LANGUAGES, Entry, Lexicon, load_lexicon, tokenize

__all__ = [
    "LANGUAGES",
    "Entry",
    "Lexicon",
    "generate_sentences",
    "heldout_sentences",
    "load_lexicon",
    "split_lexicon",
    "template_count",
    "template_words",
    "tokenize",
    "unseen_share",
]
