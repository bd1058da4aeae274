"""Demo sentences: English and Russian word tables and templates, and a seeded generator.

``generate_sentences(lang, count, seed)`` returns the same sentences for the same seed
(on one Python version: ``random``'s ``choice`` and ``randint`` may change between
versions). Numbers are written as words, so the text needs no number normalisation to be
spoken; Russian verbs agree with the subject's gender and nouns with their count.
"""

from __future__ import annotations

import random
from typing import TypedDict

from trainer.errors import CorpusError
from trainer.text.numbers import number_to_words, ru_plural

__all__ = ["generate_sentences"]


class _EnglishWords(TypedDict):
    subj: list[str]
    obj: list[str]
    verb: list[tuple[str, str]]  # (past, base form)
    intr: list[str]
    place: list[str]
    time: list[str]
    plural: list[str]
    adj: list[str]
    interj: list[str]
    said: list[str]


class _RussianWords(TypedDict):
    subj: list[tuple[str, str]]  # (noun phrase, gender "m" or "f")
    obj: list[str]
    verb: list[tuple[str, str]]  # (masculine, feminine) past tense
    intr: list[tuple[str, str]]
    place: list[str]
    time: list[str]
    counted: list[tuple[str, str, str]]  # forms for 1, 2..4 and 5+ (ru_plural)
    interj: list[str]
    obj_nom: list[str]


_EN: _EnglishWords = {
    "subj": ["Anna", "Peter", "the old man", "my sister", "our teacher", "the captain",
             "a young girl", "the doctor", "his brother", "the farmer", "Mary", "John",
             "the driver", "her friend", "the baker", "a tall stranger"],
    "obj": ["a letter", "the red box", "an old map", "the heavy book", "a small key",
            "the blue car", "a warm coat", "the broken clock", "a silver ring",
            "the wooden chair", "a strange photo", "the last ticket", "a green bottle"],
    "verb": [("found", "find"), ("saw", "see"), ("opened", "open"), ("carried", "carry"),
             ("painted", "paint"), ("lost", "lose"), ("bought", "buy"), ("sold", "sell"),
             ("brought", "bring"), ("cleaned", "clean"), ("hid", "hide"), ("took", "take")],
    "intr": ["waited", "slept", "sang", "walked", "stayed", "worked", "danced", "laughed",
             "rested", "listened"],
    "place": ["near the river", "in the kitchen", "at the station", "behind the old house",
              "under the bridge", "in the garden", "on the hill", "at school",
              "by the window", "in a quiet village"],
    "time": ["yesterday", "this morning", "last week", "on Monday", "in the evening",
             "after dinner", "before sunrise", "in the spring"],
    "plural": ["apples", "books", "letters", "coins", "birds", "chairs", "boats", "stones",
               "cups", "candles"],
    "adj": ["cold", "quiet", "bright", "long", "strange", "busy", "lovely", "dark"],
    "interj": ["Look", "Listen", "Wait", "Oh no", "Well", "Hurry"],
    "said": ["said", "whispered", "shouted", "asked", "replied"],
}

_EN_TEMPLATES = [
    "{Subj} {verb} {obj} {place}.",
    "{Subj} {verb} {obj}.",
    "Did {subj} {verb_base} {obj} {time}?",
    "{Time}, {subj} {verb} {num} {plural}.",
    "{Interj}! {Subj} {verb} {obj}!",
    "{Subj} said that {subj2} {verb} {obj} {place}.",
    "Why did {subj} {verb_base} {obj}?",
    "There were {num_small} {plural} {place}, and {subj} {verb} {obj}.",
    "{Subj}, who {verb} {obj}, {intr} {place}.",
    "It was a {adj} day; {subj} {intr} {place}.",
    "\"Where is {obj}?\" {subj} {said}.",
    "{Subj} {intr} {place} until {hour} o'clock.",
    "Is it true that {subj} {verb} {num} {plural}?",
    "{Subj} {intr} {time}.",
]

# Russian past tense agrees with the subject's gender, hence (masculine, feminine) pairs.
_RU: _RussianWords = {
    "subj": [("Анна", "f"), ("Пётр", "m"), ("мой брат", "m"), ("моя сестра", "f"),
             ("старый учитель", "m"), ("молодая девушка", "f"), ("врач", "m"),
             ("бабушка", "f"), ("капитан", "m"), ("соседка", "f"), ("Иван", "m"),
             ("Мария", "f")],
    "obj": ["старую карту", "большую книгу", "письмо", "маленький ключ", "красную коробку",
            "новый телефон", "тёплое одеяло", "синюю чашку", "серебряное кольцо",
            "деревянный стул", "последний билет"],
    "verb": [("нашёл", "нашла"), ("увидел", "увидела"), ("купил", "купила"),
             ("принёс", "принесла"), ("потерял", "потеряла"), ("продал", "продала"),
             ("взял", "взяла"), ("спрятал", "спрятала"), ("открыл", "открыла")],
    "intr": [("ждал", "ждала"), ("спал", "спала"), ("пел", "пела"), ("гулял", "гуляла"),
             ("работал", "работала"), ("отдыхал", "отдыхала"), ("смеялся", "смеялась")],
    "place": ["у реки", "на кухне", "на вокзале", "за старым домом", "под мостом", "в саду",
              "на холме", "в школе", "у окна", "в тихой деревне"],
    "time": ["вчера", "сегодня утром", "на прошлой неделе", "в понедельник", "вечером",
             "после обеда", "весной"],
    # masculine inanimate nouns: accusative = nominative, so "купил два стола" agrees
    "counted": [("стол", "стола", "столов"), ("дом", "дома", "домов"),
                ("камень", "камня", "камней"), ("стул", "стула", "стульев"),
                ("карандаш", "карандаша", "карандашей"), ("мяч", "мяча", "мячей"),
                ("цветок", "цветка", "цветков"), ("гриб", "гриба", "грибов")],
    "interj": ["Смотри", "Слушай", "Подожди", "Ой", "Быстрее"],
    "obj_nom": ["мой ключ", "эта книга", "старая карта", "письмо", "твой телефон",
                "синяя чашка"],
}

_RU_TEMPLATES = [
    "{Subj} {verb} {obj} {place}.",
    "{Subj} {verb} {obj}.",
    "Почему {subj} {verb} {obj}?",
    "{Time} {subj} {verb} {num_counted}.",
    "{Interj}! {Subj} {verb} {obj}!",
    "{Subj} {said}, что {subj2} {verb2} {obj} {place}.",
    "Где {subj} {intr} {time}?",
    "{Subj}, который долго {intr}, {verb} {obj}.",
    "Было холодно; {subj} {intr} {place}.",
    "\"Где {obj_nom}?\" - спросил {subj_m}.",
    "{Subj} {intr} {place} до {hour_gen} часов.",
    "{Subj} {intr} {time}.",
    "{Time} {subj} {verb} {obj}, а потом долго {intr} {place}.",
]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _en_sentence(rng: random.Random) -> str:
    w = _EN
    subj, subj2 = rng.sample(w["subj"], 2)
    verb, verb_base = rng.choice(w["verb"])
    time = rng.choice(w["time"])
    # Mostly small counts, like speech; some large ones exercise the number words.
    n = rng.choice([rng.randint(2, 20), rng.randint(21, 99), rng.randint(100, 999),
                    rng.randint(1000, 99999)])
    fields = {
        "subj": subj, "Subj": _cap(subj), "subj2": subj2, "verb": verb, "verb_base": verb_base,
        "obj": rng.choice(w["obj"]), "intr": rng.choice(w["intr"]),
        "place": rng.choice(w["place"]), "time": time, "Time": _cap(time),
        "num": number_to_words(n, "en"),
        "num_small": number_to_words(rng.randint(2, 99), "en"), "plural": rng.choice(w["plural"]),
        "adj": rng.choice(w["adj"]), "Interj": rng.choice(w["interj"]),
        "said": rng.choice(w["said"]), "hour": number_to_words(rng.randint(1, 12), "en"),
    }
    return rng.choice(_EN_TEMPLATES).format(**fields)


def _ru_sentence(rng: random.Random) -> str:
    w = _RU
    (subj, g), (subj2, g2) = rng.sample(w["subj"], 2)
    fem, fem2 = g == "f", g2 == "f"
    subj_m = rng.choice([s for s, gender in w["subj"] if gender == "m"])
    verb = rng.choice(w["verb"])
    time = rng.choice(w["time"])
    n = rng.choice([rng.randint(1, 20), rng.randint(21, 99), rng.randint(100, 999)])
    counted = rng.choice(w["counted"])
    obj = rng.choice(w["obj"])
    hour = rng.randint(5, 11)  # "до пяти".."до одиннадцати": genitive needs its own forms
    hour_gen = ["пяти", "шести", "семи", "восьми", "девяти", "десяти", "одиннадцати"][hour - 5]
    fields = {
        "subj": subj, "Subj": _cap(subj), "subj2": subj2, "subj_m": subj_m,
        "verb": verb[fem], "verb2": rng.choice(w["verb"])[fem2], "obj": obj,
        "obj_nom": rng.choice(w["obj_nom"]), "said": ("сказал", "сказала")[fem],
        "intr": rng.choice(w["intr"])[fem], "place": rng.choice(w["place"]),
        "time": time, "Time": _cap(time), "Interj": rng.choice(w["interj"]),
        "num_counted": f"{number_to_words(n, 'ru')} {ru_plural(n, *counted)}",
        "hour_gen": hour_gen,
    }
    template = rng.choice(_RU_TEMPLATES)
    if fem and "который" in template:
        template = template.replace("который", "которая")
    return template.format(**fields)


SENTENCE_LANGUAGES: tuple[str, ...] = ("en", "ru")  # the languages this module writes sentences in


def generate_sentences(lang: str, count: int, seed: int = 0) -> list[str]:
    """Return ``count`` demo sentences in ``lang`` ("en" or "ru"), the same for the
    same seed. Numbers are written as words; sentences run from 1 to about 14
    words, with commas, questions and exclamations.
    """
    if lang not in SENTENCE_LANGUAGES:
        raise CorpusError(f"no built-in sentences in {lang!r}: expected one of {', '.join(SENTENCE_LANGUAGES)}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    make = _en_sentence if lang == "en" else _ru_sentence
    return [make(rng) for _ in range(count)]
