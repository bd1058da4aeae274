"""What every bench shares, so that a bench module holds only what is its own.

- ``runner``: a bench's declaration (name, arguments, measurement) and the one ``main`` that runs it:
  parses the command line, notes the revision and samples the load while it runs, adds the machine
  and the command to the record, prints it and appends it to the results file.
- ``machine``: the git revision (``+dirty`` for changes to tracked code), the load sampler, the machine note.
- ``results``: the record every entry of bench/results.jsonl extends, and reading that file.
- ``section``: a report section's declaration, as bench/make_report.py assembles them.
- ``common``: paths (``ROOT``, the default work folder and results file), the CUDA check, argument
  types, corpora made on first use.
- ``format``: numbers, percentages, spreads, tables and the machine line of the report.
- ``stats``: medians, spreads over seeds, ranks and rank correlation.
- ``training``: the short training runs the alignment benches compare, and the step records the
  speed benches time.
- ``studies``: what the benches that run ``tuner run-study`` share: the child environment, the
  command, PostgreSQL databases made for one run, the feature cache filled once.

Each bench's record and report section live in ``bench/sections/<bench>.py``.
"""
