"""A bench's section of docs/RESULTS.md, as bench/make_report.py assembles them.

Each ``bench/sections/<bench>.py`` declares ``SECTION = Section(...)`` beside the record it reads.
The assembler gives ``render`` every entry that was not dropped (a section may read other benches'
entries too, as the summary and the profile do) and puts the lines under ``## title``; the
README's headline block collects the headline lines of every section, in report order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.results import of_bench

Entries = list[dict[str, Any]]
Rendered = tuple[list[str], list[str]]  # (report lines under the heading, README headline lines)


@dataclass(frozen=True)
class Section:
    """One section: the bench whose entries it shows, its heading, how it renders, what it says when unmeasured.

    ``bench`` None: the section is drawn from other benches' entries and always shown. A section
    whose bench never ran says how to run it (``run``, by default ``python bench/<bench>.py``),
    or is left out with its heading when ``optional``.
    """

    bench: str | None
    title: str
    render: Callable[[Entries], Rendered]
    optional: bool = False
    run: str = ""

    @classmethod
    def of_newest(cls, bench: str, title: str, lines: Callable[[dict[str, Any]], list[str]],
                  headline: Callable[[dict[str, Any]], str] | None = None, optional: bool = False) -> Section:
        """Return the section that shows the newest entry of ``bench``: ``lines`` of it, and its ``headline`` line."""
        def render(entries: Entries) -> Rendered:
            entry = of_bench(entries, bench)[-1]
            return lines(entry), [headline(entry)] if headline else []

        return cls(bench, title, render, optional)

    def not_measured(self) -> str:
        """Return the line shown when the bench has no entry."""
        return f"Not measured yet: run `{self.run or f'python bench/{self.bench}.py'}`."

