"""YAML reading with ``yaml.safe_load`` semantics, plus floats written like ``1e-4``.

PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a string; every user writes learning
rates that way, so this loader resolves it as a float. Nothing else changes: still safe.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class SafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads ``1e-4``, ``5E+3`` and ``.5`` as floats."""


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
