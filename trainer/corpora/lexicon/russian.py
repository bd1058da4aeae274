"""Russian templates: 33 sentence shapes, with agreement in gender, number, case and animacy.

Past-tense verbs, "был", "сказал", "который" agree with their subject's gender;
adjectives with their noun's gender, case and (in the accusative) animacy; a counted noun
takes the form its numeral governs (``ru_plural``), and the numeral agrees with the noun
(``counting_numeral``: "одна книга", "одну книгу", "две книги").
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import ClassVar

from trainer.corpora.lexicon.words import Entry, Lexicon
from trainer.corpora.lexicon.writer import Unavailable, Writer, capitalize, word_set
from trainer.text.numbers import number_to_words, ru_plural

__all__ = ["RussianWriter", "counting_numeral"]

_RU_TIMES = ("вчера", "сегодня", "утром", "вечером", "ночью", "днём", "весной", "летом", "осенью", "зимой",
             "в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу", "в воскресенье",
             "на прошлой неделе", "вчера вечером", "сегодня утром", "после обеда", "в полдень", "в полночь",
             "на днях")
_RU_GEN_PREPS = ("у", "возле", "около", "недалеко от", "напротив")
_RU_INS_PREPS = ("за", "под", "перед", "над")
_RU_PAST = {"m": "past_m", "f": "past_f", "n": "past_n", "pl": "past_pl"}
_RU_BE = {"m": "был", "f": "была", "n": "было", "pl": "были"}
_RU_SAID = {"m": "сказал", "f": "сказала", "n": "сказало", "pl": "сказали"}
_RU_WANTED = {"m": "хотел", "f": "хотела", "n": "хотело", "pl": "хотели"}
_RU_WHICH = {"m": "который", "f": "которая", "n": "которое", "pl": "которые"}
_RU_WHAT_A = {"m": "какой", "f": "какая", "n": "какое", "pl": "какие"}
_RU_VOWELS = "аеёиоуыэюя"


def counting_numeral(n: int, gender: str, accusative: bool = False) -> str:
    """The cardinal ``n`` in words, agreeing with the inanimate noun it counts: its ``gender`` (m/f/n) and case.

    The nominative is ``number_to_words``'s ("одна книга", "две книги", "одно окно"); in the
    accusative a feminine noun's "одна" becomes "одну" ("двадцать одну книгу"), and every
    other numeral of an inanimate noun stays as it is.
    """
    words = number_to_words(n, "ru", gender=gender)
    head, _, last = words.rpartition(" ")
    if accusative and last == "одна":
        return f"{head} одну" if head else "одну"
    return words


class RussianWriter(Writer):
    """Russian word pickers and templates: agreement in gender, number, case and animacy."""

    TEMPLATE_WORDS: ClassVar[frozenset[str]] = word_set("""
и а но или что потому когда если бы не ни кто где почему зачем разве неужели это есть у в во на около
возле недалеко от напротив за под перед над чем сначала потом пожалуйста вчера сегодня
утром вечером ночью днём весной летом осенью зимой понедельник вторник среду четверг пятницу субботу
воскресенье прошлой неделе после обеда полдень полночь днях однажды был была было были сказал сказала
сказало сказали хотел хотела хотело хотели который которая которое которые какой какая какое какие
ответил ответила так знаю одна одну одно две смотри ой ах
""")

    def __init__(self, lexicon: Lexicon, rng: random.Random, numbers: bool) -> None:
        super().__init__(lexicon, rng, numbers)
        self.agents = self.by_class.get("person", [])
        self.beings = self.agents + self.by_class.get("animal", [])
        self.concrete = [n for n in lexicon.nouns if n["class"] not in ("person", "animal", "abstract")]
        self.countable = self.having([n for n in lexicon.nouns if n["class"] != "abstract"], "nom_pl")
        self.countable_inan = [n for n in self.countable if n["animacy"] == "inan"]

    # ---- agreement
    @staticmethod
    def adj_form(adj: Entry, gender: str, case: str, animate: bool = False) -> str:
        """The adjective form for a noun of ``gender`` (m/f/n/pl) in ``case`` (nom/acc/gen/ins/prep)."""
        if gender == "pl":
            return {"nom": adj["pl_nom"], "acc": adj["pl_gen"] if animate else adj["pl_nom"],
                    "gen": adj["pl_gen"]}[case]
        if gender == "f":
            return {"nom": adj["f_nom"], "acc": adj["f_acc"]}.get(case, adj["f_obl"])
        if case == "nom":
            return adj["m_nom"] if gender == "m" else adj["n_nom"]
        if case == "acc":
            if gender == "n":
                return adj["n_nom"]
            return adj["mn_gen"] if animate else adj["m_nom"]
        return {"gen": adj["mn_gen"], "ins": adj["mn_ins"], "prep": adj["mn_prep"]}[case]

    def np(self, noun: Entry, case: str, adj_p: float = 0.55, plural: bool = False) -> str:
        """Noun phrase in ``case`` (nom/acc/gen/ins), with an agreeing adjective at ``adj_p``."""
        animate = noun["animacy"] == "anim"
        if plural:
            head = {"nom": noun["nom_pl"], "acc": noun["gen_pl"] if animate else noun["nom_pl"],
                    "gen": noun["gen_pl"]}[case]
            gender = "pl"
        else:
            head = {"nom": noun["nom_sg"], "acc": noun["acc_sg"], "gen": noun["gen_sg"], "ins": noun["ins_sg"]}[case]
            gender = noun["gender"]
        if self.rng.random() < adj_p:
            return f"{self.adj_form(self.pick(self.lex.adjectives), gender, case, animate)} {head}"
        return head

    def subject(self, animals: bool = False) -> tuple[str, str]:
        """(nominative phrase, gender m/f/n) for a singular subject."""
        if self.rng.random() < 0.35 and self.lex.names:
            name = self.pick(self.lex.names)
            return name["nom"], name["gender"]
        noun = self.pick(self.beings if animals else self.agents)
        return self.np(noun, "nom"), noun["gender"]

    def subject_plural(self) -> str:
        return self.np(self.pick(self.having(self.agents, "nom_pl")), "nom", plural=True)

    def two_subjects(self, animals: bool = False) -> tuple[tuple[str, str], tuple[str, str]]:
        a = self.subject(animals)
        for _ in range(10):
            b = self.subject(animals)
            if b[0] != a[0]:
                return a, b
        raise Unavailable

    def verb_t(self, column: str | None = None) -> Entry:
        return self.pick(self.having(self.lex.transitive_verbs, column) if column else self.lex.transitive_verbs)

    def verb_i(self, place: bool = False) -> Entry:
        """An intransitive verb; with ``place``, one that can take a static place phrase."""
        verbs = self.lex.intransitive_verbs
        return self.pick([v for v in verbs if v["kind"] != "motion"] if place else verbs)

    def obj(self, verb: Entry, adj_p: float = 0.55, plural: bool = False) -> str:
        classes = [c for c in verb["objects"].split(",") if self.nouns([c], "nom_pl" if plural else None)]
        if not classes:
            raise Unavailable
        cls = self.rng.choice(classes)
        if cls == "person" and not plural and self.lex.names and self.rng.random() < 0.3:
            return self.pick(self.lex.names)["acc"]
        noun = self.pick(self.nouns([cls], "nom_pl" if plural else None))
        return self.np(noun, "acc", adj_p, plural)

    def place(self) -> str:
        """A place adverbial: "в старом саду", "у реки", "за высоким забором"."""
        kind = self.rng.random()
        if kind < 0.45:
            noun = self.pick([n for n in self.by_class.get("place", []) if n["loc"] != "-"])
            prep, form = noun["loc"].split(" ")
            if self.rng.random() < 0.35:
                adj = self.adj_form(self.pick(self.lex.adjectives), noun["gender"], "prep")
                if prep in ("в", "во"):
                    prep = "во" if re.match(f"[вф][^{_RU_VOWELS}]", adj) else "в"
                return f"{prep} {adj} {form}"
            return f"{prep} {form}"
        noun = self.pick(self.concrete)
        if kind < 0.8:
            return f"{self.rng.choice(_RU_GEN_PREPS)} {self.np(noun, 'gen', 0.3)}"
        return f"{self.rng.choice(_RU_INS_PREPS)} {self.np(noun, 'ins', 0.3)}"

    def adv(self) -> str:
        return self.pick(self.lex.adverbs)["word"]

    def time(self, initial: bool = False) -> str:
        """A time adverbial; "однажды" ("once") only opens a sentence."""
        return self.rng.choice(_RU_TIMES + ("однажды",) if initial else _RU_TIMES)

    def counted(self, nouns: Sequence[Entry], accusative: bool) -> str:
        """A numeral with its noun in the agreeing form: "две книги", "пять книг", "двадцать одну книгу"."""
        noun = self.pick(nouns)
        n = self.number(1, 99)
        head = ru_plural(n, noun["acc_sg"] if accusative else noun["nom_sg"], noun["gen_sg"], noun["gen_pl"])
        return f"{counting_numeral(n, noun['gender'], accusative)} {head}"

    # ---- templates
    def t_svo(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{s} {v[_RU_PAST[g]]} {self.obj(v)}."

    def t_svo_place(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{s} {v[_RU_PAST[g]]} {self.obj(v)} {self.place()}."

    def t_time_svo(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{self.time(initial=True)} {s} {v[_RU_PAST[g]]} {self.obj(v)}."

    def t_why(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{self.rng.choice(('почему', 'зачем', 'где', 'когда'))} {s} {v[_RU_PAST[g]]} {self.obj(v)}?"

    def t_negation(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{s} так и не {v[_RU_PAST[g]]} {self.obj(v)}."

    def t_sv_adv(self) -> str:
        s, g = self.subject(animals=True)
        return f"{s} {self.adv()} {self.verb_i()[_RU_PAST[g]]}."

    def t_sv_place_time(self) -> str:
        s, g = self.subject(animals=True)
        return f"{s} {self.verb_i(place=True)[_RU_PAST[g]]} {self.place()} {self.time()}."

    def t_said_that(self) -> str:
        (s1, g1), (s2, g2) = self.two_subjects()
        v = self.verb_t()
        return f"{s1} {_RU_SAID[g1]}, что {s2} {v[_RU_PAST[g2]]} {self.obj(v)}."

    def t_quote_imperative(self) -> str:
        v = self.verb_t("imp")
        s, g = self.subject()
        return f"«{capitalize(v['imp'])} {self.obj(v)}!» — {_RU_SAID[g]} {s}."

    def t_relative(self) -> str:
        s, g = self.subject()
        v = self.verb_t()
        return f"{s}, {_RU_WHICH[g]} {v[_RU_PAST[g]]} {self.obj(v, 0.2)}, {self.verb_i(place=True)[_RU_PAST[g]]} " \
               f"{self.place()}."

    def t_when(self) -> str:
        (s1, g1), (s2, g2) = self.two_subjects()
        v = self.verb_t()
        return f"когда {s1} {self.verb_i()[_RU_PAST[g1]]}, {s2} {v[_RU_PAST[g2]]} {self.obj(v)}."

    def t_because(self) -> str:
        (s1, g1), (s2, g2) = self.two_subjects()
        v = self.verb_t()
        return f"{s1} {v[_RU_PAST[g1]]} {self.obj(v)}, потому что {s2} {self.verb_i()[_RU_PAST[g2]]}."

    def t_list(self) -> str:
        s, g = self.subject()
        v = self.verb_t()
        a, b, c = (self.obj(v, 0.3) for _ in range(3))
        if len({a, b, c}) < 3:
            raise Unavailable
        return f"{s} {v[_RU_PAST[g]]} {a}, {b} и {c}."

    def t_compare(self) -> str:
        a, b = self.pick(self.concrete), self.pick(self.concrete)
        adj = self.pick(self.having(self.lex.adjectives, "comparative"))
        if a is b:
            raise Unavailable
        return f"{self.np(a, 'nom', 0.3)} {_RU_BE[a['gender']]} {adj['comparative']}, чем {self.np(b, 'nom', 0.3)}."

    def t_compare_people(self) -> str:
        (s1, g1), (s2, _) = self.two_subjects()
        adj = self.pick(self.having(self.lex.adjectives, "comparative"))
        return f"{s1} {_RU_BE[g1]} {adj['comparative']}, чем {s2}."

    def t_what_a(self) -> str:
        noun = self.pick(self.concrete + self.beings)
        plural = noun["nom_pl"] != "-" and self.rng.random() < 0.3
        gender = "pl" if plural else noun["gender"]
        adj = self.adj_form(self.pick(self.lex.adjectives), gender, "nom")
        lead = self.rng.choice(("смотри", "ой", "ах"))
        return f"{lead}, {_RU_WHAT_A[gender]} {adj} {noun['nom_pl'] if plural else noun['nom_sg']}!"

    def t_has_count(self) -> str:
        who = self.pick(self.lex.names)["gen"] if self.rng.random() < 0.5 else self.np(self.pick(self.agents), "gen")
        return f"у {who} есть {self.counted(self.countable, accusative=False)}."

    def t_there_were(self) -> str:
        noun = self.pick(self.countable)
        n = self.number(1, 99)
        be = ru_plural(n, _RU_BE[noun["gender"]], "было", "было")
        head = ru_plural(n, noun["nom_sg"], noun["gen_sg"], noun["gen_pl"])
        return f"{self.place()} {be} {counting_numeral(n, noun['gender'])} {head}."

    def t_svo_counted(self) -> str:
        (s, g) = self.subject()
        verbs = [v for v in self.lex.transitive_verbs
                 if {"thing", "food", "clothing", "plant", "vehicle"} & set(v["objects"].split(","))]
        v = self.pick(verbs)
        classes = set(v["objects"].split(","))
        nouns = [n for n in self.countable_inan if n["class"] in classes]
        return f"{s} {v[_RU_PAST[g]]} {self.counted(nouns, accusative=True)}."

    def t_please(self) -> str:
        v = self.verb_t("imp")
        if self.rng.random() < 0.5:
            return f"{v['imp']} {self.obj(v)}, пожалуйста!"
        return f"пожалуйста, {v['imp']} {self.obj(v)} {self.place()}."

    def t_both(self) -> str:
        (s1, _), (s2, _) = self.two_subjects(animals=True)
        return f"{s1} и {s2} {self.verb_i(place=True)['past_pl']} {self.place()}."

    def t_who(self) -> str:
        v = self.verb_t()
        return f"кто {v['past_m']} {self.obj(v, 0.7)}?"

    def t_really(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{self.rng.choice(('разве', 'неужели'))} {s} {v[_RU_PAST[g]]} {self.obj(v)}?"

    def t_wanted_but(self) -> str:
        (s1, g1), (s2, g2) = self.two_subjects()
        v = self.verb_t()
        return f"{s1} {_RU_WANTED[g1]} {v['inf']} {self.obj(v)}, но {s2} {self.verb_i()[_RU_PAST[g2]]}."

    def t_plural_subject(self) -> str:
        v = self.verb_t()
        return f"{self.subject_plural()} {v['past_pl']} {self.obj(v)} {self.place()}."

    def t_and_then(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{s} {v[_RU_PAST[g]]} {self.obj(v)} и {self.adv()} {self.verb_i()[_RU_PAST[g]]}."

    def t_conditional(self) -> str:
        (s1, g1), (s2, g2) = self.two_subjects()
        v = self.verb_t()
        return f"если бы {s1} {v[_RU_PAST[g1]]} {self.obj(v)}, {s2} бы {self.verb_i()[_RU_PAST[g2]]}."

    def t_it_was(self) -> str:
        noun = self.pick(self.concrete + self.beings)
        return f"это {_RU_BE[noun['gender']]} {self.np(noun, 'nom', 1.0)}."

    def t_neither(self) -> str:
        (s1, _), (s2, _) = self.two_subjects(animals=True)
        return f"ни {s1}, ни {s2} не {self.verb_i()['past_pl']}."

    def t_first_then(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return (f"сначала {s} {v[_RU_PAST[g]]} {self.obj(v)}, а потом {self.verb_i(place=True)[_RU_PAST[g]]} "
                f"{self.place()}.")

    def t_vocative(self) -> str:
        v = self.verb_t("imp")
        return f"{self.pick(self.lex.names)['nom']}, {v['imp']} {self.obj(v)}!"

    def t_time_sv_adv(self) -> str:
        s, g = self.subject(animals=True)
        return f"{self.time(initial=True)} {s} {self.adv()} {self.verb_i()[_RU_PAST[g]]}."

    def t_plural_object(self) -> str:
        (s, g), v = self.subject(), self.verb_t()
        return f"{s} {v[_RU_PAST[g]]} {self.obj(v, 0.5, plural=True)} {self.time()}."

    def t_answered(self) -> str:
        s2, g2 = self.subject()
        v = self.verb_t()
        reply = "ответил" if g2 == "m" else "ответила" if g2 == "f" else None
        if reply is None:
            raise Unavailable
        return f"«Кто {v['past_m']} {self.obj(v)}?» — «Не знаю», — {reply} {s2}."

    def templates(self) -> tuple[Callable[[], str], ...]:
        return (self.t_svo, self.t_svo_place, self.t_time_svo, self.t_why, self.t_negation, self.t_sv_adv,
                self.t_sv_place_time, self.t_said_that, self.t_quote_imperative, self.t_relative, self.t_when,
                self.t_because, self.t_list, self.t_compare, self.t_compare_people, self.t_what_a, self.t_has_count,
                self.t_there_were, self.t_svo_counted, self.t_please, self.t_both, self.t_who, self.t_really,
                self.t_wanted_but, self.t_plural_subject, self.t_and_then, self.t_conditional, self.t_it_was,
                self.t_neither, self.t_first_then, self.t_vocative, self.t_time_sv_adv, self.t_plural_object)
