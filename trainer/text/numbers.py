"""Numbers as words: English and Russian cardinals, ordinals and plural forms (other languages through ``num2words``).
"""

from __future__ import annotations

from typing import TypeVar

from trainer.text.symbols import _check_lang

__all__ = ["ru_plural", "number_to_words", "ordinal_to_words"]


_Form = TypeVar("_Form")  # a noun form, or anything chosen by the same rule


_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()


_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


_EN_SCALES = ("", "thousand", "million", "billion", "trillion")


_EN_DIGITS = _EN_ONES[:10]


def _en_below_1000(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_EN_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return words


def _en_cardinal(n: int) -> str:
    if n < 0:
        return "minus " + _en_cardinal(-n)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_EN_SCALES):
        # Nobody says these aloud as one number; reading the digits keeps it speakable.
        return " ".join(_EN_DIGITS[int(d)] for d in str(n))
    words: list[str] = []
    for power in range(len(_EN_SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if group:
            words += _en_below_1000(group)
            if _EN_SCALES[power]:
                words.append(_EN_SCALES[power])
    return " ".join(words)


_EN_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}


def _en_ordinal_word(word: str) -> str:
    if word in _EN_ORDINAL_IRREGULAR:
        return _EN_ORDINAL_IRREGULAR[word]
    if word.endswith("y"):
        return word[:-1] + "ieth"
    return word + "th"


_RU_ONES_M = (
    "ноль один два три четыре пять шесть семь восемь девять десять одиннадцать "
    "двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать "
    "восемнадцать девятнадцать"
).split()


_RU_TENS = "_ _ двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто".split()


_RU_HUNDREDS = "_ сто двести триста четыреста пятьсот шестьсот семьсот восемьсот девятьсот".split()


_RU_GENDERED = {"f": {1: "одна", 2: "две"}, "n": {1: "одно", 2: "два"}, "m": {}}


# (forms for 1, 2-4, 5+; grammatical gender of the scale word)
_RU_SCALES: tuple[tuple[tuple[str, str, str], str], ...] = (
    (("", "", ""), "m"),
    (("тысяча", "тысячи", "тысяч"), "f"),
    (("миллион", "миллиона", "миллионов"), "m"),
    (("миллиард", "миллиарда", "миллиардов"), "m"),
    (("триллион", "триллиона", "триллионов"), "m"),
)


def ru_plural(n: int, one: _Form, few: _Form, many: _Form) -> _Form:
    """Return the Russian noun form agreeing with ``n``: ``one`` (1, 21, ...),
    ``few`` (2-4, 22-24, ...) or ``many`` (0, 5-20, 25-30, ...)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _ru_below_1000(n: int, gender: str) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words.append(_RU_HUNDREDS[hundreds])
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_RU_TENS[tens])
        if ones:
            words.append(_RU_GENDERED[gender].get(ones, _RU_ONES_M[ones]))
    elif rest:
        words.append(_RU_GENDERED[gender].get(rest, _RU_ONES_M[rest]))
    return words


def _ru_cardinal(n: int, gender: str = "m") -> str:
    if n < 0:
        return "минус " + _ru_cardinal(-n, gender)
    if n == 0:
        return "ноль"
    if n >= 1000 ** len(_RU_SCALES):
        return " ".join(_RU_ONES_M[int(d)] for d in str(n))
    words: list[str] = []
    for power in range(len(_RU_SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if not group:
            continue
        forms, scale_gender = _RU_SCALES[power]
        if power == 0:
            words += _ru_below_1000(group, gender)
        elif group == 1:
            words.append(forms[0])  # "тысяча", not "одна тысяча", as spoken
        else:
            words += _ru_below_1000(group, scale_gender)
            words.append(ru_plural(group, *forms))
    return " ".join(words)


_RU_FRACTION_DENOMINATORS = {
    1: ("десятая", "десятых"),
    2: ("сотая", "сотых"),
    3: ("тысячная", "тысячных"),
}


def _ru_decimal(integer: str, fraction: str) -> str:
    whole = int(integer)
    head = f"{_ru_cardinal(whole, 'f')} {'целая' if ru_plural(whole, 1, 0, 0) else 'целых'}"
    if len(fraction) in _RU_FRACTION_DENOMINATORS:
        num = int(fraction)
        one, other = _RU_FRACTION_DENOMINATORS[len(fraction)]
        return f"{head} {_ru_cardinal(num, 'f')} {one if ru_plural(num, 1, 0, 0) else other}"
    # Long fractions have no everyday spoken form; read them digit by digit.
    return f"{_ru_cardinal(whole)} запятая " + " ".join(_RU_ONES_M[int(d)] for d in fraction)


def _num2words(n: int, lang: str) -> str:
    from num2words import num2words  # type: ignore[import-untyped]  # lazy: only de, es and fr texts need it

    return str(num2words(n, lang=lang))


def number_to_words(n: int, lang: str = "en", *, gender: str = "m") -> str:
    """Return the cardinal number ``n`` spelled out in words.

    English uses American style without "and" ("one hundred twenty-three");
    Russian is nominative, ``gender`` ("m", "f" or "n") choosing "один/одна/одно"
    and "два/две". Numbers of 10^15 and beyond are read digit by digit. German, Spanish
    and French come from the num2words library ("dreiundzwanzig", "veintitrés",
    "vingt-trois").

    >>> number_to_words(1984)
    'one thousand nine hundred eighty-four'
    >>> number_to_words(21, "ru")
    'двадцать один'
    """
    _check_lang(lang)
    if lang == "en":
        return _en_cardinal(n)
    if lang != "ru":
        return _num2words(n, lang)
    if gender not in _RU_GENDERED:
        raise ValueError(f"unknown gender {gender!r}: expected m, f or n")
    return _ru_cardinal(n, gender)


def ordinal_to_words(n: int) -> str:
    """Return the English ordinal of ``n >= 0`` in words ("twenty-first")."""
    if n < 0:
        raise ValueError(f"ordinal of a negative number: {n}")
    words = _en_cardinal(n).split(" ")
    *head, last = words
    if "-" in last:
        tens, ones = last.split("-")
        last = f"{tens}-{_en_ordinal_word(ones)}"
    else:
        last = _en_ordinal_word(last)
    return " ".join([*head, last])

