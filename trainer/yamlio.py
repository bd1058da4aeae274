"""YAML reading with ``yaml.safe_load`` semantics, plus floats written like ``1e-4``, and a size budget.

PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a string; every user writes learning
rates that way, so this loader resolves it as a float. Still safe: plain data only.

Aliases are where "safe" YAML is not: a few hundred bytes of nested aliases (``b: [*a, *a]``,
``c: [*b, *b]`` ...) stand for billions of values once expanded, and anything that walks the
document (our line index of a space file, a config check) would take minutes and gigabytes; an
alias inside the node it names is a cycle no walk ends. The loader counts values as the
document is composed, each alias as the whole node it repeats, and refuses a document beyond
``MAX_NODES`` values, or with a recursive alias, as invalid YAML at the offending line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_NODES = 20_000  # values in a document once its aliases are expanded; config and space files hold hundreds


class SafeLoader(yaml.SafeLoader):
    r"""yaml.SafeLoader that also reads ``1e-4``, ``5E+3`` and ``.5`` as floats, within a size budget.

    >>> safe_load("a: &x [1, 2]\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    >>> safe_load("a: &x [*x]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    yaml.composer.ComposerError: the alias *x refers to the node that contains it (a recursive alias)
    ...
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded = 0  # values composed so far, each alias counted as the node it repeats
        self._sizes: dict[int, int] = {}  # id(node) -> its size once expanded
        self._open: set[str] = set()  # anchors of the nodes being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node as PyYAML does, counting it (an alias: the node it names) against the budget."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _refused(f"the alias *{event.anchor} refers to the node that contains it (a recursive alias)",
                               event.start_mark)
            named = self.anchors.get(event.anchor)
            self._count(self._sizes.get(id(named), 1), event.start_mark)
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        before = self._expanded
        node = super().compose_node(parent, index)
        self._count(1, event.start_mark)
        self._sizes[id(node)] = self._expanded - before
        if anchor is not None:
            self._open.discard(anchor)
        return node

    def _count(self, values: int, mark: Any) -> None:
        self._expanded += values
        if self._expanded > MAX_NODES:
            raise _refused(f"the document holds more than {MAX_NODES} values once its aliases are expanded "
                           "(nested aliases?)", mark)


def _refused(problem: str, mark: Any) -> yaml.composer.ComposerError:
    """Return the invalid-YAML error of ``problem`` at ``mark`` (where the document goes wrong)."""
    return yaml.composer.ComposerError(None, None, problem, mark)


SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def safe_load(text: str) -> Any:
    """Return the Python value of YAML ``text`` (safe: plain data only; ``1e-4`` is a float)."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - SafeLoader subclass, no arbitrary objects
