"""English templates: 54 sentence shapes (statements, questions, exclamations, quoted speech,
subordinate clauses, lists, comparisons, negation, imperatives, tenses, time and place phrases).

Articles follow the lexicon's ``article`` column, taken from pronunciation ("an hour", "a
unicorn"); mass nouns (no plural) take "some" rather than "a". Numbers are said in words
(``trainer.text.numbers.number_to_words``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import ClassVar

from trainer.corpora.lexicon.words import Entry, Lexicon
from trainer.corpora.lexicon.writer import Unavailable, Writer, capitalize, word_set
from trainer.text.numbers import number_to_words

__all__ = ["EnglishWriter"]

_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_PAST_TIMES = ("yesterday", "last night", "this morning", "this afternoon", "this evening", "last week",
                  "last month", "last year", "at noon", "at midnight", "in the morning", "in the evening",
                  "on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "on Saturday", "on Sunday",
                  "two days ago", "a week ago")
_EN_FUTURE_TIMES = ("tomorrow", "tonight", "next week", "next month", "next year", "on Monday", "on Friday",
                    "on Sunday", "at noon", "in the morning", "in the evening", "one day")
_EN_PLACE_PREPS = ("near", "behind", "beside", "outside", "next to", "in front of", "across from", "not far from",
                   "inside", "around")
_EN_SING_DETS = ("the", "the", "the", "a", "a", "my", "his", "her", "our", "their", "your", "this", "that")
_EN_PLURAL_DETS = ("the", "the", "some", "these", "those", "my", "our", "their", "your", "many", "several")


class EnglishWriter(Writer):
    """English word pickers and templates."""

    TEMPLATE_WORDS: ClassVar[frozenset[str]] = word_set("""
a an the my your his her our their its this that these those some many several every no not never
i we you he she it they me him us them who what where when why how which
is was were are be been has had have do did does don't didn't doesn't will would could can won't
and or but because if then so than after before while until although neither nor either both also
to of in on at by with from for about into over under near behind beside outside next front across
far inside around way
said replied asked wanted seemed hoped think
please there here yesterday today tonight tomorrow last night morning afternoon evening week month
year noon midnight ago days day one two
monday tuesday wednesday thursday friday saturday sunday
more most very too really often always sometimes usually just again still already perhaps maybe
oh wow look yes
""")

    def __init__(self, lexicon: Lexicon, rng: random.Random, numbers: bool) -> None:
        super().__init__(lexicon, rng, numbers)
        self.persons = self.by_class.get("person", [])
        self.concrete = [n for n in lexicon.nouns if n["class"] not in ("person", "abstract")]
        self.countable = self.having(self.concrete, "plural")
        self.gradable = [a for a in lexicon.adjectives if a["comparative"] != "-"]

    # ---- words and phrases
    def adj_word(self, p: float) -> Entry | None:
        return self.pick(self.lex.adjectives) if self.rng.random() < p else None

    def np(self, noun: Entry, det: str | None = None, adj_p: float = 0.45, plural: bool = False) -> str:
        """A noun phrase with a determiner and, with probability ``adj_p``, an adjective."""
        adj = self.adj_word(adj_p)
        if plural:
            det = det or self.rng.choice(_EN_PLURAL_DETS)
            head = noun["plural"]
        else:
            det = det or self.rng.choice(_EN_SING_DETS)
            head = noun["singular"]
            if det == "a" and noun["plural"] == "-":
                det = "some"  # mass noun: "some rice", not "a rice"
            if det == "a":
                det = (adj or noun)["article"]
        words = [det] if det else []
        if adj:
            words.append(adj["word"])
        words.append(head)
        return " ".join(words)

    def subject(self, animals: bool = False) -> tuple[str, str]:
        """(phrase, pronoun) for a third-person singular subject."""
        r = self.rng.random()
        if r < 0.35 and self.lex.names:
            name = self.pick(self.lex.names)
            return name["word"], "he" if name["gender"] == "m" else "she"
        if animals and r < 0.5 and self.by_class.get("animal"):
            return self.np(self.pick(self.by_class["animal"]), det=self.rng.choice(("the", "a", "our", "my"))), "it"
        person = self.pick(self.persons)
        det = self.rng.choice(("the", "the", "a", "my", "our", "his", "her", "their", "your", "that"))
        gender = person["gender"] if person["gender"] != "-" else self.rng.choice("mf")
        return self.np(person, det=det), "he" if gender == "m" else "she"

    def verb_t(self, column: str = "past") -> Entry:
        return self.pick(self.having(self.lex.transitive_verbs, column))

    def verb_i(self, column: str = "past") -> Entry:
        return self.pick(self.having(self.lex.intransitive_verbs, column))

    def obj(self, verb: Entry, plural: bool = False, det: str | None = None, adj_p: float = 0.45) -> str:
        classes = [c for c in verb["objects"].split(",") if self.nouns([c], "plural" if plural else None)]
        if not classes:
            raise Unavailable
        cls = self.rng.choice(classes)
        if cls == "person" and not plural and self.lex.names and self.rng.random() < 0.3:
            return self.pick(self.lex.names)["word"]
        return self.np(self.pick(self.nouns([cls], "plural" if plural else None)), det=det, adj_p=adj_p,
                       plural=plural)

    def place(self) -> str:
        noun = self.pick(self.by_class.get("place", []))
        return f"{self.rng.choice(_EN_PLACE_PREPS)} {self.np(noun, det='the', adj_p=0.35)}"

    def adv(self) -> str:
        return self.pick(self.lex.adverbs)["word"]

    def number_words(self, low: int, high: int) -> str:
        """A number in ``low..high`` (``Writer.number``), in words."""
        return number_to_words(self.number(low, high), "en")

    def past_time(self) -> str:
        return self.rng.choice(_EN_PAST_TIMES)

    def comparative(self) -> str:
        adj = self.pick(self.gradable)
        cmp = adj["comparative"]
        return f"more {adj['word']}" if cmp == "more" else cmp

    def two_subjects(self) -> tuple[tuple[str, str], tuple[str, str]]:
        a = self.subject()
        for _ in range(10):
            b = self.subject()
            if b[0] != a[0]:
                return a, b
        raise Unavailable

    # ---- templates (each returns one sentence; Unavailable if the lexicon lacks a word)
    def t_svo(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]} {v['past']} {self.obj(v)}."

    def t_svo_place(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]} {v['past']} {self.obj(v)} {self.place()}."

    def t_time_svo(self) -> str:
        v = self.verb_t()
        return f"{self.past_time()}, {self.subject()[0]} {v['past']} {self.obj(v)}."

    def t_question_did(self) -> str:
        v = self.verb_t()
        return f"did {self.subject()[0]} {v['base']} {self.obj(v)} {self.past_time()}?"

    def t_question_why(self) -> str:
        v = self.verb_t()
        return f"{self.rng.choice(('why', 'where', 'when'))} did {self.subject()[0]} {v['base']} {self.obj(v)}?"

    def t_sv_adv(self) -> str:
        return f"{self.subject(animals=True)[0]} {self.verb_i()['past']} {self.adv()}."

    def t_sv_place_time(self) -> str:
        return f"{self.subject(animals=True)[0]} {self.verb_i()['past']} {self.place()} {self.past_time()}."

    def t_negation(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]} did not {v['base']} {self.obj(v)}."

    def t_never(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]} never {v['past']} {self.obj(v)} {self.place()}."

    def t_imperative(self) -> str:
        v = self.verb_t()
        return f"please {v['base']} {self.obj(v, det=self.rng.choice(('the', 'this', 'that', 'my', 'our')))} " \
               f"{self.adv()}."

    def t_dont(self) -> str:
        v = self.verb_t()
        return f"don't {v['base']} {self.obj(v, det=self.rng.choice(('the', 'this', 'that', 'my', 'your')))}!"

    def t_quote_where(self) -> str:
        noun = self.pick(self.concrete)
        speaker = self.subject()[0]
        return f"\"where is {self.np(noun, det='the', adj_p=0.7)}?\" {self.rng.choice(('asked', 'said'))} {speaker}."

    def t_quote_imperative(self) -> str:
        v = self.verb_t()
        return f"\"{capitalize(v['base'])} {self.obj(v, det='the')}!\" {self.subject()[0]} said."

    def t_reported(self) -> str:
        v = self.verb_t("participle")
        name = self.pick(self.lex.names)["word"]
        return f"{name} said that {self.subject()[0]} had {v['participle']} {self.obj(v)}."

    def t_because(self) -> str:
        v = self.verb_t()
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} {v['past']} {self.obj(v)} because {s2} {self.verb_i()['past']}."

    def t_when(self) -> str:
        v = self.verb_t()
        (s1, _), (s2, _) = self.two_subjects()
        return f"when {s1} {self.verb_i()['past']}, {s2} {v['past']} {self.obj(v)}."

    def t_relative(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]}, who {v['past']} {self.obj(v, adj_p=0.2)}, {self.verb_i()['past']} " \
               f"{self.place()}."

    def t_list(self) -> str:
        v = self.verb_t()
        a, b, c = (self.obj(v, adj_p=0.3) for _ in range(3))
        if len({a, b, c}) < 3:
            raise Unavailable
        return f"{self.subject()[0]} {v['past']} {a}, {b} and {c}."

    def t_list_plural(self) -> str:
        nouns = self.rng.sample(self.countable, 3) if len(self.countable) >= 3 else []
        if not nouns:
            raise Unavailable
        a, b, c = (n["plural"] for n in nouns)
        return f"{self.subject()[0]} wanted {a}, {b} and {c} {self.place()}."

    def t_compare_things(self) -> str:
        a, b = self.pick(self.concrete), self.pick(self.concrete)
        if a is b:
            raise Unavailable
        return f"{self.np(a, det='the', adj_p=0.3)} was {self.comparative()} than {self.np(b, det='the', adj_p=0.3)}."

    def t_compare_people(self) -> str:
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} is {self.comparative()} than {s2}."

    def t_what_a(self) -> str:
        noun = self.pick(self.having(self.concrete, "plural"))
        return f"what {self.np(noun, det='a', adj_p=1.0)}!"

    def t_how(self) -> str:
        noun = self.pick(self.concrete)
        adj = self.pick(self.lex.adjectives)["word"]
        return f"how {adj} {self.np(noun, det=self.rng.choice(('this', 'that', 'the', 'your')), adj_p=0.0)} is!"

    def t_there_were(self) -> str:
        words = self.number_words(2, 99)
        noun = self.pick(self.countable)
        adj = self.adj_word(0.5)
        return f"there were {words} {adj['word'] + ' ' if adj else ''}{noun['plural']} {self.place()}."

    def t_counted(self) -> str:
        words = self.number_words(2, 999)
        noun = self.pick(self.countable)
        return f"{self.subject()[0]} counted {words} {noun['plural']} {self.past_time()}."

    def t_is_it(self) -> str:
        noun = self.pick(self.concrete)
        return f"is {self.np(noun, det='the', adj_p=0.5)} {self.place()} {self.pick(self.lex.adjectives)['word']}?"

    def t_future(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]} will {v['base']} {self.obj(v)} {self.rng.choice(_EN_FUTURE_TIMES)}."

    def t_perfect(self) -> str:
        v = self.verb_t("participle")
        return f"{self.subject()[0]} has already {v['participle']} {self.obj(v)}."

    def t_passive(self) -> str:
        v = self.verb_t("participle")
        obj = self.obj(v, det=self.rng.choice(("the", "my", "our", "their", "this", "that")))
        return f"{obj} was {v['participle']} by {self.subject()[0]} {self.past_time()}."

    def t_progressive(self) -> str:
        v = self.verb_t("gerund")
        return f"{self.subject()[0]} is {v['gerund']} {self.obj(v)} {self.place()}."

    def t_was_ing(self) -> str:
        v = self.verb_t()
        vi = self.verb_i("gerund")
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} was {vi['gerund']} when {s2} {v['past']} {self.obj(v)}."

    def t_conditional(self) -> str:
        v = self.verb_t()
        (s1, _), (s2, _) = self.two_subjects()
        return f"if {s1} {v['past']} {self.obj(v)}, {s2} would {self.verb_i()['base']}."

    def t_wanted_but(self) -> str:
        v = self.verb_t()
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} wanted to {v['base']} {self.obj(v)}, but {s2} {self.verb_i()['past']}."

    def t_neither(self) -> str:
        v = self.verb_t()
        (s1, _), (s2, _) = self.two_subjects()
        return f"neither {s1} nor {s2} {v['past']} {self.obj(v)}."

    def t_both(self) -> str:
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} and {s2} {self.verb_i()['past']} {self.place()}."

    def t_who(self) -> str:
        v = self.verb_t()
        return f"who {v['past']} {self.obj(v, adj_p=0.7)}?"

    def t_two_verbs(self) -> str:
        v1, v2 = self.verb_t(), self.verb_t()
        return f"{self.subject()[0]} {v1['past']} {self.obj(v1)} and {v2['past']} {self.obj(v2)}."

    def t_after(self) -> str:
        v = self.verb_t()
        subj, pron = self.subject()
        return f"after {subj} {v['past']} {self.obj(v)}, {pron} {self.verb_i()['past']} {self.adv()}."

    def t_habit(self) -> str:
        v = self.verb_t("third")
        when = self.rng.choice(("every " + self.rng.choice(_EN_DAYS), "every day", "every morning", "every week"))
        return f"{self.subject()[0]} {self.rng.choice(('often', 'usually', 'sometimes'))} {v['third']} " \
               f"{self.obj(v)} {when}."

    def t_i_think(self) -> str:
        v = self.verb_t()
        return f"I think {self.subject()[0]} {v['past']} {self.obj(v)} {self.past_time()}."

    def t_tag_question(self) -> str:
        v = self.verb_t()
        subj, pron = self.subject()
        return f"{subj} {v['past']} {self.obj(v)} {self.adv()}, didn't {pron}?"

    def t_not_every(self) -> str:
        noun = self.pick(self.having(self.concrete, "plural"))
        return f"not every {noun['singular']} is {self.pick(self.lex.adjectives)['word']}."

    def t_seemed(self) -> str:
        adj = self.pick(self.lex.adjectives)["word"]
        return f"{self.subject()[0]} seemed {adj} {self.rng.choice(('after', 'before'))} the " \
               f"{self.pick(self.by_class.get('abstract', []))['singular']}."

    def t_we_had(self) -> str:
        words = self.number_words(2, 99)
        noun = self.pick(self.countable)
        adj = self.pick(self.lex.adjectives)
        return f"we had {words} {adj['word']} {noun['plural']} {self.place()}."

    def t_it_was(self) -> str:
        noun = self.pick(self.having(self.by_class.get("abstract", []) + self.concrete, "plural"))
        subj = self.subject(animals=True)[0]
        return f"it was {self.np(noun, det='a', adj_p=1.0)}, and {subj} {self.verb_i()['past']} {self.adv()}."

    def t_either_or(self) -> str:
        noun = self.pick(self.concrete)
        a, b = self.pick(self.lex.adjectives), self.pick(self.lex.adjectives)
        if a is b:
            raise Unavailable
        return f"was {self.np(noun, det='the', adj_p=0.0)} {a['word']} or {b['word']}?"

    def t_on_the_way(self) -> str:
        v = self.verb_t()
        place = self.pick(self.by_class.get("place", []))
        return f"on the way to the {place['singular']}, {self.subject()[0]} {v['past']} {self.obj(v)}."

    def t_asked_to(self) -> str:
        v = self.verb_t()
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} asked {s2} to {v['base']} {self.obj(v)}."

    def t_fronted_adverb(self) -> str:
        v = self.verb_t()
        return f"{self.adv()}, {self.subject()[0]} {v['past']} {self.obj(v)}."

    def t_plural_are(self) -> str:
        noun = self.pick(self.countable)
        return f"{self.np(noun, det='the', adj_p=0.4, plural=True)} {self.place()} are " \
               f"{self.pick(self.lex.adjectives)['word']}."

    def t_then(self) -> str:
        v = self.verb_t()
        return f"{self.subject()[0]} {v['past']} {self.obj(v)} {self.place()}, then {self.verb_i()['past']} " \
               f"{self.adv()}."

    def t_time_counted_obj(self) -> str:
        v = self.verb_t()
        words = self.number_words(2, 50)
        obj = self.obj(v, plural=True, det=words, adj_p=0.4)
        return f"{self.past_time()}, {self.subject()[0]} {v['past']} {obj}."

    def t_exclaim_look(self) -> str:
        v = self.verb_t()
        return f"{self.rng.choice(('look', 'wow', 'oh'))}! {capitalize(self.subject()[0])} {v['past']} {self.obj(v)}!"

    def t_hoped(self) -> str:
        (s1, _), (s2, _) = self.two_subjects()
        return f"{s1} hoped that {s2} {self.verb_i()['past']} {self.adv()} {self.place()}."

    def templates(self) -> tuple[Callable[[], str], ...]:
        return (self.t_svo, self.t_svo_place, self.t_time_svo, self.t_question_did, self.t_question_why,
                self.t_sv_adv, self.t_sv_place_time, self.t_negation, self.t_never, self.t_imperative, self.t_dont,
                self.t_quote_where, self.t_quote_imperative, self.t_reported, self.t_because, self.t_when,
                self.t_relative, self.t_list, self.t_list_plural, self.t_compare_things, self.t_compare_people,
                self.t_what_a, self.t_how, self.t_there_were, self.t_counted, self.t_is_it, self.t_future,
                self.t_perfect, self.t_passive, self.t_progressive, self.t_was_ing, self.t_conditional,
                self.t_wanted_but, self.t_neither, self.t_both, self.t_who, self.t_two_verbs, self.t_after,
                self.t_habit, self.t_i_think, self.t_tag_question, self.t_not_every, self.t_seemed, self.t_we_had,
                self.t_it_was, self.t_either_or, self.t_on_the_way, self.t_asked_to, self.t_fronted_adverb,
                self.t_plural_are, self.t_then, self.t_time_counted_obj, self.t_exclaim_look, self.t_hoped)
