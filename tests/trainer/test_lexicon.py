"""The open-vocabulary lexicon (trainer.corpora.lexicon): the files' sizes and format, recogniser coverage,
the held-out split, generation (determinism, variety, length, grammar) and the unseen-word shares."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from trainer.corpora.lexicon import (
    Entry,
    Lexicon,
    generate_sentences,
    heldout_sentences,
    load_lexicon,
    split_lexicon,
    template_count,
    template_words,
    tokenize,
    unseen_share,
)
from trainer.corpora.lexicon.russian import RussianWriter, counting_numeral
from trainer.errors import CorpusError, UserError
from trainer.text.numbers import number_to_words

ROOT = Path(__file__).resolve().parents[2]
VOWEL_PHONES = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def _number_words(lang: str) -> frozenset[str]:
    """Every word the templates can say in a number (0..999, each Russian gender)."""
    genders = ("m", "f", "n") if lang == "ru" else ("m",)
    return frozenset(t for n in range(1000) for g in genders for t in tokenize(number_to_words(n, lang, gender=g)))


@pytest.fixture(scope="module")
def en() -> Lexicon:
    return load_lexicon("en")


@pytest.fixture(scope="module")
def ru() -> Lexicon:
    return load_lexicon("ru")


@pytest.fixture(scope="module")
def splits(en: Lexicon, ru: Lexicon) -> dict[str, tuple[Lexicon, Lexicon]]:
    return {"en": split_lexicon(en, 0.3, seed=0), "ru": split_lexicon(ru, 0.3, seed=0)}


@pytest.fixture(scope="module")
def training(splits: dict[str, tuple[Lexicon, Lexicon]]) -> dict[str, list[str]]:
    """2,000 training sentences per language (split seed 0, sentence seed 1)."""
    return {lang: generate_sentences(splits[lang][0], 2000, seed=1) for lang in ("en", "ru")}


@pytest.fixture(scope="module")
def cmudict() -> dict[str, list[list[str]]]:
    """The recogniser's pronouncing dictionary: word -> pronunciations (phone lists)."""
    pocketsphinx = pytest.importorskip("pocketsphinx")
    prons: dict[str, list[list[str]]] = {}
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    for line in path.read_text(encoding="utf-8").splitlines():
        word, *phones = line.split()
        prons.setdefault(re.sub(r"\(\d+\)$", "", word), []).append(phones)
    return prons


# ----------------------------------------------------------------------------- the lexicon files
def test_english_lexicon_sizes(en: Lexicon) -> None:
    assert len(en.lemmas()) >= 3000
    assert len({lemma for _pos, lemma in en.lemmas()}) >= 3000  # distinct spellings too
    assert len(en.nouns) >= 1400
    assert len(en.transitive_verbs) + len(en.intransitive_verbs) >= 500
    assert len(en.adjectives) >= 600
    assert len(en.adverbs) >= 150
    assert len(en.names) >= 150


def test_russian_lexicon_sizes(ru: Lexicon) -> None:
    assert len(ru.lemmas()) >= 1500
    assert len(ru.nouns) >= 700
    assert len(ru.transitive_verbs) >= 150 and len(ru.intransitive_verbs) >= 80
    assert len(ru.adjectives) >= 250
    assert len(ru.adverbs) >= 80 and len(ru.names) >= 80


def test_every_english_form_is_in_the_recogniser_dictionary(en: Lexicon, cmudict: dict[str, list[list[str]]]) -> None:
    missing = sorted(f for f in en.word_forms() if f not in cmudict)
    assert not missing, f"{len(missing)} forms not in cmudict: {missing[:20]}"


def test_every_english_word_is_in_the_recogniser_language_model(en: Lexicon) -> None:
    pocketsphinx = pytest.importorskip("pocketsphinx")
    lm = pocketsphinx.NGramModel.readfile(str(Path(pocketsphinx.get_model_path()) / "en-us" / "en-us.lm.bin"))
    words = en.word_forms() | template_words("en") | _number_words("en")
    missing = sorted(w for w in words if lm.prob([w]) < -500_000_000)  # out-of-vocabulary answer is about -5.4e8
    assert not missing, missing[:20]


def test_english_articles_follow_pronunciation(en: Lexicon, cmudict: dict[str, list[list[str]]]) -> None:
    wrong = []
    for e in en.nouns + en.adjectives:
        word = e.lemma.lower()
        vowel = cmudict[word][0][0] in VOWEL_PHONES
        if e["article"] != ("an" if vowel else "a"):
            wrong.append(word)
    assert not wrong


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_lexicon_forms_are_not_template_or_number_words(lang: str) -> None:
    clash = load_lexicon(lang).word_forms() & (template_words(lang) | _number_words(lang))
    assert not clash, clash


def test_russian_forms_hand_checked(ru: Lexicon) -> None:
    nouns = {e.lemma: e for e in ru.nouns}
    kot, koshka, stol, sad, kniga = nouns["кот"], nouns["кошка"], nouns["стол"], nouns["сад"], nouns["книга"]
    assert (kot["acc_sg"], kot["gen_pl"], kot["animacy"], kot["gender"]) == ("кота", "котов", "anim", "m")
    assert (koshka["acc_sg"], koshka["gen_pl"], koshka["gender"]) == ("кошку", "кошек", "f")
    assert (stol["acc_sg"], stol["gen_sg"], stol["gen_pl"], stol["animacy"]) == ("стол", "стола", "столов", "inan")
    assert (kniga["gen_sg"], kniga["gen_pl"], kniga["ins_sg"]) == ("книги", "книг", "книгой")
    assert sad["loc"] == "в саду" and nouns["вокзал"]["loc"] == "на вокзале" and nouns["двор"]["loc"] == "во дворе"
    adjs = {e.lemma: e for e in ru.adjectives}
    red = adjs["красный"]
    assert (red["f_nom"], red["f_acc"], red["mn_gen"], red["mn_prep"], red["pl_gen"]) == (
        "красная", "красную", "красного", "красном", "красных")
    assert adjs["зелёный"]["f_obl"] == "зелёной" and adjs["синий"]["f_acc"] == "синюю"
    verbs = {e.lemma: e for e in ru.transitive_verbs + ru.intransitive_verbs}
    assert [verbs["найти"][k] for k in ("past_m", "past_f", "past_n", "past_pl")] == [
        "нашёл", "нашла", "нашло", "нашли"]
    assert verbs["засмеяться"]["past_f"] == "засмеялась" and verbs["прийти"]["kind"] == "motion"
    names = {e.lemma: e for e in ru.names}
    assert (names["Анна"]["gen"], names["Анна"]["acc"], names["Пётр"]["gen"]) == ("Анны", "Анну", "Петра")


def test_lexicon_is_immutable(en: Lexicon) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        en.nouns = ()  # type: ignore[misc]


def test_the_lexicons_ship_as_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "trainer.corpora.lexicon" in setuptools["packages"]
    assert "*.tsv" in setuptools["package-data"]["trainer.corpora.lexicon"]
    assert {p.name for p in (ROOT / "trainer" / "corpora" / "lexicon").glob("*.tsv")} == {"en.tsv", "ru.tsv"}


# ----------------------------------------------------------------------------- refusals
def test_unknown_language_is_refused_in_one_line() -> None:
    with pytest.raises(CorpusError, match=r"'de'.*en, ru") as info:
        load_lexicon("de")
    assert isinstance(info.value, UserError)  # a CLI prints it as one line and exits 2
    assert "\n" not in str(info.value)
    for call in (template_words, template_count):
        with pytest.raises(CorpusError, match=r"'de'"):
            call("de")


@pytest.mark.parametrize("bad_line", [
    "noun\tbox\tboxes\tthing\t-",                 # a column short
    "noun\tbox\tboxes\tthingy\t-\ta",             # unknown class
    "verb_t\tfind\tfound\tfound\tfinds\tfinding\tthing,ghost",  # unknown object class
    "adverb\tquickly",                             # unknown part of speech
    "adj\tbig 2\tbigger\ta",                       # not a word
])
def test_malformed_line_is_refused_naming_file_and_line(tmp_path: Path, bad_line: str) -> None:
    good = "# header\nnoun\tbox\tboxes\tthing\t-\ta\n\nadv\tquickly\n"
    path = tmp_path / "en.tsv"
    path.write_text(good + bad_line + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:5:")) as info:
        load_lexicon("en", tmp_path)
    assert "\n" not in str(info.value)


def test_russian_locative_needs_a_preposition(tmp_path: Path) -> None:
    line = "noun\tсад\tсад\tсада\tсады\tсадов\tсадом\tпо саду\tm\tinan\tplace"
    (tmp_path / "ru.tsv").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"ru.tsv:1: bad loc 'по саду' for noun"):
        load_lexicon("ru", tmp_path)


def test_duplicate_lemma_is_refused(tmp_path: Path) -> None:
    (tmp_path / "en.tsv").write_text("adv\tquickly\nadv\tquickly\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"en.tsv:2: .*already listed on line 1"):
        load_lexicon("en", tmp_path)


def test_missing_or_undecodable_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"en.tsv: cannot read the lexicon"):
        load_lexicon("en", tmp_path)
    (tmp_path / "en.tsv").write_bytes(b"adv\tquickly\nadv\t\xff\n")
    with pytest.raises(CorpusError, match=r"en.tsv: not UTF-8"):
        load_lexicon("en", tmp_path)


# ----------------------------------------------------------------------------- the split
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_split_is_a_disjoint_partition(lang: str, en: Lexicon, ru: Lexicon,
                                       splits: dict[str, tuple[Lexicon, Lexicon]]) -> None:
    lex = en if lang == "en" else ru
    train, held = splits[lang]
    assert not train.word_forms() & held.word_forms()
    assert not train.lemmas() & held.lemmas()
    assert train.lemmas() | held.lemmas() == lex.lemmas()
    for pos in ("nouns", "transitive_verbs", "intransitive_verbs", "adjectives", "adverbs", "names"):
        n_held, n_all = len(getattr(held, pos)), len(getattr(lex, pos))
        assert abs(n_held - 0.3 * n_all) <= max(3, 0.02 * n_all), (pos, n_held, n_all)


def test_split_is_seeded(en: Lexicon) -> None:
    a = split_lexicon(en, 0.3, seed=5)[1].lemmas()
    assert a == split_lexicon(en, 0.3, seed=5)[1].lemmas()
    assert a != split_lexicon(en, 0.3, seed=6)[1].lemmas()


def test_split_keeps_lemmas_sharing_a_form_together() -> None:
    entries = [Entry("en", "noun", ("saw", "saws", "thing", "-", "a")),
               Entry("en", "verb_t", ("see", "saw", "seen", "sees", "seeing", "thing"))]
    entries += [Entry("en", "adv", (w,)) for w in ("quickly", "slowly", "gently", "loudly")]
    lex = Lexicon.from_entries("en", entries)
    for seed in range(20):
        train, held = split_lexicon(lex, 0.5, seed)
        assert not train.word_forms() & held.word_forms()
        assert len([e for e in held.entries() if "saw" in e.forms()]) in (0, 2)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_fraction_is_checked(en: Lexicon, fraction: float) -> None:
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_lexicon(en, fraction, 0)


# ----------------------------------------------------------------------------- generation
def test_template_counts() -> None:
    assert template_count("en") >= 40
    assert template_count("ru") >= 25


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_generation_is_deterministic_and_distinct(lang: str, splits: dict[str, tuple[Lexicon, Lexicon]]) -> None:
    train = splits[lang][0]
    a = generate_sentences(train, 300, seed=3)
    assert a == generate_sentences(train, 300, seed=3)
    assert a != generate_sentences(train, 300, seed=4)
    assert len(set(a)) == len(a) == 300


def test_five_thousand_distinct_english_sentences(splits: dict[str, tuple[Lexicon, Lexicon]]) -> None:
    sentences = generate_sentences(splits["en"][0], 5000, seed=0)
    assert len(set(sentences)) == 5000


def test_too_many_sentences_for_a_lexicon_is_refused(ru: Lexicon) -> None:
    tiny = Lexicon.from_entries("ru", [e for e in ru.entries() if e.lemma in ("кот", "Иван", "уснуть")])
    with pytest.raises(CorpusError, match=r"only \d+ distinct sentences of 500"):
        generate_sentences(tiny, 500, seed=0)
    with pytest.raises(ValueError, match="count"):
        generate_sentences(tiny, -1, seed=0)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_sentences_are_well_formed(lang: str, splits: dict[str, tuple[Lexicon, Lexicon]],
                                   training: dict[str, list[str]]) -> None:
    train, sentences = splits[lang][0], training[lang]
    numbers = _number_words(lang)
    known = train.word_forms() | template_words(lang) | numbers
    for s in sentences:
        assert 4 <= len(tokenize(s)) <= 18, s
        assert s[-1] in ".?!", s
        assert s.lstrip("«\"")[0].isupper(), s
        assert "  " not in s and " ," not in s, s
        assert set(tokenize(s)) <= known, (s, set(tokenize(s)) - known)
    # statements, questions and exclamations all occur; numbers appear when asked for
    ends = Counter(s[-1] for s in sentences)
    assert min(ends.values()) >= 50, ends
    assert any(set(tokenize(s)) & numbers for s in sentences)
    lengths = Counter(len(tokenize(s)) for s in sentences)
    assert max(lengths) >= 11


def test_no_number_templates_without_numbers(splits: dict[str, tuple[Lexicon, Lexicon]]) -> None:
    sentences = generate_sentences(splits["en"][0], 500, seed=1, numbers=False)
    numbers = {t for n in range(3, 1000) for t in tokenize(number_to_words(n, "en"))} - template_words("en")
    assert not any(set(tokenize(s)) & numbers for s in sentences)


def test_english_a_and_an(en: Lexicon, splits: dict[str, tuple[Lexicon, Lexicon]]) -> None:
    article = {e.lemma.lower(): e["article"] for e in en.nouns + en.adjectives}
    for s in generate_sentences(splits["en"][0], 2000, seed=2):
        for det, word in itertools.pairwise(tokenize(s)):
            if det in ("a", "an") and word in article:
                assert article[word] == det, s


# ----------------------------------------------------------------------------- Russian agreement
def _small_ru(ru: Lexicon, nouns: list[str], verbs: list[str], adjs: list[str], names: list[str]) -> Lexicon:
    pick = {(e.pos, e.lemma): e for e in ru.entries()}
    entries = [pick[("noun", n)] for n in nouns] + [pick[("adj", a)] for a in adjs]
    entries += [pick.get(("verb_t", v)) or pick[("verb_i", v)] for v in verbs]
    entries += [pick[("name", n)] for n in names] + [pick[("adv", "тихо")]]
    return Lexicon.from_entries("ru", entries)


def test_russian_feminine_subject_takes_feminine_past(ru: Lexicon) -> None:
    lex = _small_ru(ru, ["книга", "стол", "окно"], ["купить", "уснуть"], ["красный"], ["Анна"])
    text = " ".join(generate_sentences(lex, 150, seed=0))
    assert not re.search(r"Анна,? (?:которая )?(?:тихо |так и не )?(?:купил|уснул|купило|уснуло)\b", text)
    assert re.search(r"Анна (?:тихо |так и не )?(?:купила|уснула)\b", text)
    assert "Анна, который" not in text and "Анна, которое" not in text
    for wrong in ("красный книгу", "красная книгу", "красное книгу", "красную стол", "красную окно",
                  "хотел купить", "сказал,"):
        assert wrong not in text, wrong
    assert "красную книгу" in text and "красное окно" in text


def test_russian_animate_accusative(ru: Lexicon) -> None:
    lex = _small_ru(ru, ["кот", "учитель"], ["погладить", "уснуть"], ["серый"], ["Иван"])
    text = " ".join(generate_sentences(lex, 150, seed=1, numbers=False))
    assert "серого кота" in text
    assert not re.search(r"погладил[аио]? (?:серый )?кот\b", text)


@pytest.mark.parametrize(("n", "gender", "accusative", "expected"), [
    (1, "m", False, "один"), (1, "m", True, "один"), (1, "f", False, "одна"), (1, "f", True, "одну"),
    (1, "n", True, "одно"), (2, "f", True, "две"), (2, "n", False, "два"), (11, "f", True, "одиннадцать"),
    (21, "f", True, "двадцать одну"), (31, "f", False, "тридцать одна"), (42, "f", True, "сорок две"),
])
def test_counting_numeral_agrees_with_its_noun(n: int, gender: str, accusative: bool, expected: str) -> None:
    assert counting_numeral(n, gender, accusative) == expected


@pytest.mark.parametrize(("lemma", "n", "accusative", "expected"), [
    ("книга", 1, False, "одна книга"), ("книга", 1, True, "одну книгу"), ("книга", 2, False, "две книги"),
    ("книга", 5, True, "пять книг"), ("книга", 11, False, "одиннадцать книг"),
    ("книга", 21, True, "двадцать одну книгу"), ("книга", 22, False, "двадцать две книги"),
    ("стол", 1, True, "один стол"), ("стол", 3, False, "три стола"), ("стол", 12, False, "двенадцать столов"),
    ("окно", 1, False, "одно окно"), ("окно", 2, True, "два окна"), ("окно", 5, False, "пять окон"),
    ("кошка", 2, False, "две кошки"), ("кот", 5, False, "пять котов"), ("кот", 1, False, "один кот"),
    ("кошка", 31, False, "тридцать одна кошка"),
])
def test_russian_counted_nouns_agree(ru: Lexicon, lemma: str, n: int, accusative: bool, expected: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    noun = next(e for e in ru.nouns if e.lemma == lemma)
    writer = RussianWriter(Lexicon.from_entries("ru", [noun]), random.Random(0), numbers=True)
    monkeypatch.setattr(writer, "number", lambda _low, _high: n)
    assert writer.counted([noun], accusative) == expected


# ----------------------------------------------------------------------------- held-out text
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_heldout_sentences_are_mostly_unseen(lang: str, splits: dict[str, tuple[Lexicon, Lexicon]],
                                             training: dict[str, list[str]]) -> None:
    train, held = splits[lang]
    test = heldout_sentences(train, held, 500, seed=2)
    assert len(set(test)) == 500
    share = unseen_share(training[lang], test)
    assert share["types"] >= 0.6, share
    assert share["tokens"] >= 0.5, share
    # and no training word form of the lexicon leaks into the held-out text
    assert not {t for s in test for t in tokenize(s)} & train.word_forms()


def test_heldout_needs_one_language(splits: dict[str, tuple[Lexicon, Lexicon]]) -> None:
    with pytest.raises(ValueError, match="'en' but heldout is 'ru'"):
        heldout_sentences(splits["en"][0], splits["ru"][1], 10, seed=0)


def test_unseen_share_counts() -> None:
    share = unseen_share(["The cat sat.", "A dog ran!"], ["The cat didn't run.", "Cats sat"])
    # held-out types: the cat didn't run cats sat -> unseen: didn't run cats
    assert share == {"types": 0.5, "tokens": 0.5, "unseen_types": 3, "total_types": 6, "unseen_tokens": 3,
                     "total_tokens": 6}
    assert tokenize("Twenty-one o'clock, «Кот»!") == ["twenty", "one", "o'clock", "кот"]
