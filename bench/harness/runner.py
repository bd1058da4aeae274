"""One way to run a bench: declared arguments in, a record out, appended to the results file.

A bench module declares ``BENCH = Bench(name, __doc__, arguments, measure)`` and ends with
``sys.exit(BENCH.main())``. ``main`` parses the command line (the docstring's first line is the
description), notes the git revision and starts sampling the load, calls ``measure(args, parser)``
for the bench's own fields (``parser`` to report a usage error), then adds where it ran
(``machine``) and how to run it again (``command``), prints the record and appends it to
``--results``. The record's fields are declared beside the bench's report section, in
``bench/sections/<bench>.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.machine import Watch
from harness.results import append

Arguments = Callable[[argparse.ArgumentParser], None]
Measure = Callable[[argparse.Namespace, argparse.ArgumentParser], Any]  # returns the record, less the runner's fields


@dataclass(frozen=True)
class Bench:
    """A bench: its name (the record's ``bench`` and its script, bench/<name>.py), its arguments, its measurement.

    ``arguments`` adds the bench's options to the parser (harness.common.output_arguments adds
    ``--workdir`` and ``--results``). ``measure`` runs the bench and returns its record without
    ``bench``, ``machine`` and ``command``. ``epilogue``, if any, returns a line for stderr after the
    record (a summary for a person at the terminal).
    """

    name: str
    doc: str
    arguments: Arguments
    measure: Measure
    epilogue: Callable[[dict[str, Any]], str] | None = None

    def main(self) -> int:
        """Run the bench from the command line; return the exit code (usage errors exit 2 from the parser)."""
        parser = argparse.ArgumentParser(description=self.doc.splitlines()[0])
        self.arguments(parser)
        args = parser.parse_args()
        watch = Watch()  # the revision as the bench starts: the tree may change during a long run
        measured = self.measure(args, parser)
        record = {"bench": self.name, **measured, "machine": watch.machine(getattr(args, "device", "cpu")),
                  "command": f"python bench/{self.name}.py " + " ".join(sys.argv[1:])}
        append(record, args.results)
        if self.epilogue is not None:
            print(self.epilogue(record), file=sys.stderr)
        return 0
