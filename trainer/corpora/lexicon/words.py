"""The lexicon files: their TSV layout, ``Entry`` and ``Lexicon``, loading with line-exact errors, and words of text.

A lexicon holds one language's content lemmas (nouns, transitive and intransitive verbs,
adjectives, adverbs, given names), each with the word forms the templates need. Each part
of speech has a fixed list of columns (``SCHEMAS``); a column's kind says what it may hold,
so a typing slip in the hand-edited files is refused at load time, naming ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from trainer.errors import CorpusError

__all__ = ["LANGUAGES", "SCHEMAS", "NOUN_CLASSES", "Entry", "Lexicon", "check_language", "load_lexicon", "tokenize"]

LANGUAGES: tuple[str, ...] = ("en", "ru")

_PACKAGE = "trainer.corpora.lexicon"  # where en.tsv and ru.tsv ship, as package data

# The semantic classes of nouns; a transitive verb lists the classes it takes as object.
NOUN_CLASSES = frozenset(
    {"person", "animal", "food", "plant", "thing", "clothing", "place", "vehicle", "body", "nature", "abstract"})

# Column kinds: "form" a word form; "opt" a word form or '-'; "cmp" (English comparative) a
# word form, 'more' or '-'; "loc" '-' or "preposition locative"; "classes" comma-separated
# noun classes; any other kind names its set of allowed tag values here.
_TAG_VALUES: Mapping[str, frozenset[str]] = MappingProxyType({
    "class": NOUN_CLASSES,
    "gender_en": frozenset({"m", "f", "-"}),
    "gender_ru": frozenset({"m", "f", "n"}),
    "gender_name": frozenset({"m", "f"}),
    "article": frozenset({"a", "an"}),
    "animacy": frozenset({"anim", "inan"}),
    "verb_kind": frozenset({"motion", "state"}),
})

# Per language and part of speech: the (column name, column kind) pairs after the part of speech.
SCHEMAS: Mapping[str, Mapping[str, tuple[tuple[str, str], ...]]] = MappingProxyType({
    "en": MappingProxyType({
        "noun": (("singular", "form"), ("plural", "opt"), ("class", "class"), ("gender", "gender_en"),
                 ("article", "article")),
        "verb_t": (("base", "form"), ("past", "form"), ("participle", "opt"), ("third", "opt"), ("gerund", "opt"),
                   ("objects", "classes")),
        "verb_i": (("base", "form"), ("past", "form"), ("participle", "opt"), ("third", "opt"), ("gerund", "opt")),
        "adj": (("word", "form"), ("comparative", "cmp"), ("article", "article")),
        "adv": (("word", "form"),),
        "name": (("word", "form"), ("gender", "gender_name")),
    }),
    "ru": MappingProxyType({
        "noun": (("nom_sg", "form"), ("acc_sg", "form"), ("gen_sg", "form"), ("nom_pl", "opt"), ("gen_pl", "opt"),
                 ("ins_sg", "form"), ("loc", "loc"), ("gender", "gender_ru"), ("animacy", "animacy"),
                 ("class", "class")),
        "verb_t": (("inf", "form"), ("past_m", "form"), ("past_f", "form"), ("past_n", "form"), ("past_pl", "form"),
                   ("imp", "opt"), ("objects", "classes")),
        "verb_i": (("inf", "form"), ("past_m", "form"), ("past_f", "form"), ("past_n", "form"), ("past_pl", "form"),
                   ("imp", "opt"), ("kind", "verb_kind")),
        "adj": (("m_nom", "form"), ("f_nom", "form"), ("n_nom", "form"), ("pl_nom", "form"), ("mn_gen", "form"),
                ("f_acc", "form"), ("f_obl", "form"), ("mn_ins", "form"), ("mn_prep", "form"), ("pl_gen", "form"),
                ("comparative", "opt")),
        "adv": (("word", "form"),),
        "name": (("nom", "form"), ("gen", "form"), ("acc", "form"), ("gender", "gender_name")),
    }),
})

_WORD_RE: Mapping[str, re.Pattern[str]] = MappingProxyType({
    "en": re.compile(r"[A-Za-z][a-z']*"),
    "ru": re.compile(r"[А-ЯЁа-яё][а-яё-]*"),
})

_RU_LOCATIVE_PREPOSITIONS = ("в", "во", "на")

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text``: runs of letters, with inner apostrophes ("didn't").

    Hyphenated numbers count as separate words ("twenty-one" -> "twenty", "one"), as a
    recogniser's transcript would have them.
    """
    return [t.lower().replace("’", "'") for t in _TOKEN_RE.findall(text)]


def check_language(lang: str) -> None:
    """Refuse a language without a lexicon: ``CorpusError`` naming it and the known ones, in one line."""
    if lang not in LANGUAGES:
        raise CorpusError(f"no lexicon for language {lang!r}: known languages are {', '.join(LANGUAGES)}")


@dataclass(frozen=True)
class Entry:
    """One lemma of a lexicon: its part of speech and its TSV columns, by name.

    ``entry["past"]`` gives a column; ``forms()`` the lower-cased word forms (tag columns,
    '-', 'more' and prepositions left out). The lemma is the first column.
    """

    lang: str
    pos: str
    values: tuple[str, ...]

    def __getitem__(self, column: str) -> str:
        for (name, _kind), value in zip(SCHEMAS[self.lang][self.pos], self.values, strict=True):
            if name == column:
                return value
        raise KeyError(f"{self.lang} {self.pos} has no column {column!r}")

    @property
    def lemma(self) -> str:
        """The first column: the dictionary form."""
        return self.values[0]

    def forms(self) -> tuple[str, ...]:
        """The entry's distinct lower-cased word forms, in column order."""
        out: list[str] = []
        for (_name, kind), value in zip(SCHEMAS[self.lang][self.pos], self.values, strict=True):
            if kind in ("form", "opt", "cmp") and value not in ("-", "more"):
                out.append(value.lower())
            elif kind == "loc" and value != "-":
                out.append(value.split(" ", 1)[1].lower())
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Lexicon:
    """A language's content words by part of speech (tuples of ``Entry``, file order)."""

    lang: str
    nouns: tuple[Entry, ...]
    transitive_verbs: tuple[Entry, ...]
    intransitive_verbs: tuple[Entry, ...]
    adjectives: tuple[Entry, ...]
    adverbs: tuple[Entry, ...]
    names: tuple[Entry, ...]

    def entries(self) -> tuple[Entry, ...]:
        """All entries, part of speech by part of speech."""
        return (self.nouns + self.transitive_verbs + self.intransitive_verbs + self.adjectives + self.adverbs
                + self.names)

    def lemmas(self) -> frozenset[tuple[str, str]]:
        """The (part of speech, lemma) pairs; "saw" the noun and "saw" the verb are two lemmas."""
        return frozenset((e.pos, e.lemma) for e in self.entries())

    def word_forms(self) -> frozenset[str]:
        """Every lower-cased word form of every entry."""
        return frozenset(f for e in self.entries() for f in e.forms())

    @staticmethod
    def from_entries(lang: str, entries: Iterable[Entry]) -> Lexicon:
        """Group ``entries`` by part of speech, keeping their order."""
        groups: dict[str, list[Entry]] = {pos: [] for pos in SCHEMAS[lang]}
        for e in entries:
            groups[e.pos].append(e)
        return Lexicon(lang, tuple(groups["noun"]), tuple(groups["verb_t"]), tuple(groups["verb_i"]),
                       tuple(groups["adj"]), tuple(groups["adv"]), tuple(groups["name"]))


def _value_ok(lang: str, kind: str, value: str) -> bool:
    """Whether ``value`` is allowed in a column of ``kind``."""
    word = _WORD_RE[lang]
    if kind == "form":
        return bool(word.fullmatch(value))
    if kind == "opt":
        return value == "-" or bool(word.fullmatch(value))
    if kind == "cmp":
        return value in ("-", "more") or bool(word.fullmatch(value))
    if kind == "loc":
        parts = value.split(" ")
        return value == "-" or (len(parts) == 2 and parts[0] in _RU_LOCATIVE_PREPOSITIONS
                                and bool(word.fullmatch(parts[1])))
    if kind == "classes":
        return bool(value) and set(value.split(",")) <= NOUN_CLASSES
    return value in _TAG_VALUES[kind]


def _parse_line(lang: str, where: str, line: str) -> Entry:
    """One TSV line as an ``Entry``; ``CorpusError`` at ``where`` (file:line) if it is malformed."""
    cols = line.split("\t")
    pos, values = cols[0], tuple(cols[1:])
    schema = SCHEMAS[lang].get(pos)
    if schema is None:
        raise CorpusError(f"{where}: unknown part of speech {pos!r}: expected one of {', '.join(SCHEMAS[lang])}")
    if len(values) != len(schema):
        raise CorpusError(f"{where}: {pos} needs {len(schema)} columns after the part of speech "
                          f"({', '.join(n for n, _k in schema)}), got {len(values)}")
    for (name, kind), value in zip(schema, values, strict=True):
        if not _value_ok(lang, kind, value):
            raise CorpusError(f"{where}: bad {name} {value!r} for {pos}")
    return Entry(lang, pos, values)


def _shipped_folder() -> Path:
    """The folder of the shipped ``en.tsv`` and ``ru.tsv`` (package data; pip unpacks wheels to real files)."""
    return Path(str(resources.files(_PACKAGE)))


def load_lexicon(lang: str, folder: Path | None = None) -> Lexicon:
    """Read ``<folder>/<lang>.tsv`` (default: the shipped lexicons) into a ``Lexicon``.

    Raises ``trainer.errors.CorpusError`` (one line) for an unknown language, naming the
    known ones, and for a malformed line (unknown part of speech, wrong column count, a form
    that is not a word, an unknown tag, a lemma listed twice for one part of speech), naming
    ``file:line``. Blank lines and lines starting with '#' are skipped.
    """
    check_language(lang)
    path = (folder if folder is not None else _shipped_folder()) / f"{lang}.tsv"
    entries: list[Entry] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in _numbered_lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{lineno}"
        entry = _parse_line(lang, where, line)
        key = (entry.pos, entry.lemma)
        if key in seen:
            raise CorpusError(f"{where}: {entry.pos} {entry.lemma!r} already listed on line {seen[key]}")
        seen[key] = lineno
        entries.append(entry)
    return Lexicon.from_entries(lang, entries)


def _numbered_lines(path: Path) -> list[tuple[int, str]]:
    """The lines of ``path`` (numbered from 1, line ends removed); ``CorpusError`` if it cannot be read as UTF-8."""
    try:
        with path.open(encoding="utf-8") as fh:
            return [(lineno, raw.rstrip("\n").rstrip("\r")) for lineno, raw in enumerate(fh, start=1)]
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the lexicon ({exc.strerror})") from None
