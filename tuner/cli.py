"""`tuner` commands: run-study, status, best, dashboard, check-space, metrics.

The conventions of ``trainer.console``: bad input (a ``trainer.errors.UserError``, which every
tuner error is) ends with one line ``tuner: error: ...`` on stderr and exit code 2, no
traceback, and nothing written to any storage; any other exception is a bug: exit code 1 and
one line, with the traceback under ``tuner --debug``. No command prints a storage password.

``run-study`` and ``check-space`` import their modules when they run: those import the trainer's
config, and with it torch (over a second), which ``status``, ``best``, ``metrics`` and
``--help`` do without.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.artifacts import FileSystemArtifactStore

from trainer.console import Parser, add_debug_flag, add_version_flag, main_with
from trainer.evaluation import metric_registry
from trainer.evaluation.metric_registry import Metric
from trainer.presets import PRESETS
from tuner import env
from tuner.commands.export import export_best, register_best
from tuner.commands.status import best_lines, counts_line, trial_records, trials_csv, trials_table
from tuner.errors import NothingFound, TunerError
from tuner.paths import Home, home_origin
from tuner.study.storage import (
    check_storage,
    creation_lock,
    list_study_names,
    open_storage,
    resolve_storage,
    storage_setting,
)
from tuner.study.studies import load_existing_study
from tuner.study.urls import mask_url

if TYPE_CHECKING:
    from optuna import Study

    from tuner.tracking.runs import StudyTracker

PROG = "tuner"
STORAGE_ENV = env.STORAGE  # the storage URL from the environment: keeps a password out of `ps`
INTERRUPTED = "interrupted (the running trial is failed; run the same command to continue)"


def _add_common(p: argparse.ArgumentParser,
                storage_help: str = "study storage URL (default: SQLite in the home)") -> None:
    # Resolved when the command runs (tuner.study.storage.storage_setting), not here: the "looked in"
    # messages say which of --storage, $SMART_TUNER_STORAGE and $OPTUNA_STORAGE chose it.
    p.add_argument("--storage", default=None, metavar="URL",
                   help=f"{storage_help}; else ${STORAGE_ENV}, else ${env.OPTUNA_STORAGE}, when set")
    p.add_argument("--home", type=Path, default=None, metavar="DIR",
                   help=f"tuner home: default storage, MLflow store, runs, demo (default ${env.HOME} or "
                        "./studies)")


def _add_study_name(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--study", "--study-name", dest="study", default=None, metavar="NAME",
                   help=f"{what} (--study-name: the same, as Optuna's CLI spells it)")


@dataclass(frozen=True)
class _Lookup:
    """Where a command that reads a study looks: the home and the storage, and what chose each."""

    home: Home
    home_origin: str
    url: str
    storage_origin: str

    @classmethod
    def of(cls, args: argparse.Namespace) -> _Lookup:
        home = Home.resolve(args.home)
        raw, origin = storage_setting(args.storage)
        return cls(home, home_origin(args.home), resolve_storage(raw, home), origin)

    def where(self) -> str:
        """Return "looked in ...; point elsewhere with ..." (one line, password masked)."""
        return (f"looked in home {self.home.root} ({self.home_origin}) and storage {mask_url(self.url)} "
                f"({self.storage_origin}); point elsewhere with --home DIR or ${env.HOME}, or --storage URL, "
                f"${STORAGE_ENV} or ${env.OPTUNA_STORAGE}")

    def check(self) -> None:
        """Raise StorageError unless the storage can be read; NothingFound says where it looked."""
        try:
            check_storage(self.url, create_sqlite=False)
        except NothingFound as err:
            raise NothingFound(f"{err}; {self.where()}") from None


def _add_run_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run-study", help="create or continue a study and run its trials",
                       description="Create (or continue, or join) an Optuna study over a search space and run "
                                   "trials, each training in a child process. With no --data and no base "
                                   "checkpoint, runs the embedded demo (built once under the home).")
    p.add_argument("--space", required=True,
                   help="search-space YAML file, or the name of a shipped space (default, scratch)")
    _add_study_name(p, "study name (default: the space's study.name)")
    _add_common(p, "study storage URL: sqlite:///PATH, postgresql://USER:PASS@HOST/DB or journal:///PATH "
                   "(default: SQLite in the home, one process; PostgreSQL, or a journal file on one machine, "
                   "for several)")
    p.add_argument("--data", type=Path, default=None, help="corpus (LJSpeech folder or path|text filelist)")
    p.add_argument("--warm-start", type=Path, default=None, metavar="CKPT",
                   help="base checkpoint every trial starts from (needed by fine-tuning spaces)")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="target number of trials in the study (default: the space's study.n_trials)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="start no new trial after this many seconds")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="per-trial step budget")
    p.add_argument("--gpus", default=None, metavar="0,1,...|0:4|claim",
                   help="run one trial per listed GPU at a time, or N at a time on a GPU written GPU:N (0:4: four "
                        "trials share GPU 0; a small model leaves a large GPU mostly idle); `claim`: take one free "
                        "GPU of this machine (one worker per GPU, as in docker-compose.yml)")
    p.add_argument("--trials-per-gpu", type=int, default=None, metavar="N",
                   help=f"trials at a time on each --gpus GPU written without :N, and on a claimed one (default "
                        f"${env.TRIALS_PER_GPU}, else 1); the CPU cores are shared out among them")
    p.add_argument("--preset", choices=PRESETS, default=None, help="trainer preset (default: the space's)")
    p.add_argument("--trial-timeout", type=float, default=None, metavar="SECONDS",
                   help="kill and fail a trial running longer than this")
    p.add_argument("--vocoder", default=None, metavar="hifigan:GENERATOR|griffin-lim",
                   help="vocoder of the trials' validation samples, sample files and fr_wer (default: the "
                        "space's fixed vocoder, else Griffin-Lim); a HiFi-GAN generator needs --vocoder-config")
    p.add_argument("--vocoder-config", type=Path, default=None, metavar="CONFIG.json",
                   help="the HiFi-GAN generator's config.json")
    p.add_argument("--wait-for-storage", type=float, default=0.0, metavar="SECONDS",
                   help="when the database server does not answer at start, try again for up to this long "
                        "instead of failing at once (a service restarted during an outage; default 0)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--quiet", action="store_true", help="no live view, no tables")
    p.add_argument("--confirm", type=int, default=None, metavar="SEEDS",
                   help="when the study is done, confirm its 3 best trials against the defaults on SEEDS paired seeds "
                        "(as `tuner confirm --seeds SEEDS`)")
    p.set_defaults(run=_run_run_study)


def _run_run_study(args: argparse.Namespace) -> int:
    from tuner.commands.run_study import StudyRequest, run_study  # lazy: imports torch (see the module docstring)

    storage, _ = storage_setting(args.storage)
    code = run_study(StudyRequest(space=args.space, study=args.study, storage=storage, data=args.data,
                                  warm_start=args.warm_start, trials=args.trials, timeout=args.timeout,
                                  max_steps=args.max_steps, gpus=args.gpus, trials_per_gpu=_trials_per_gpu(args),
                                  preset=args.preset, home=args.home,
                                  trial_timeout=args.trial_timeout, mlflow=not args.no_mlflow, quiet=args.quiet,
                                  vocoder=args.vocoder, vocoder_config=args.vocoder_config,
                                  wait_for_storage=args.wait_for_storage))
    if args.confirm is None or code != 0:
        return code
    from tuner.commands.confirm import ConfirmRequest, confirm  # lazy: as above
    from tuner.fleet.slots import parse_slots  # lazy: as above
    from tuner.space.load import load_space  # lazy: as above

    home = Home.resolve(args.home)
    return confirm(ConfirmRequest(storage_url=resolve_storage(storage, home), home=home.root,
                                  study=args.study or load_space(args.space).study.name, seeds=args.confirm,
                                  gpus=parse_slots(args.gpus, _trials_per_gpu(args)) if args.gpus != "claim" else None,
                                  trial_timeout=args.trial_timeout, mlflow=not args.no_mlflow, quiet=args.quiet))


def _trials_per_gpu(args: argparse.Namespace) -> int:
    """Return --trials-per-gpu, else $SMART_TUNER_TRIALS_PER_GPU, else 1; TunerError for a value that is not a count."""
    text = args.trials_per_gpu if args.trials_per_gpu is not None else os.environ.get(env.TRIALS_PER_GPU, "1")
    try:
        return int(text)
    except ValueError:
        raise TunerError(f"${env.TRIALS_PER_GPU}={text!r}: expected a whole number of trials per GPU") from None


def _existing_study(args: argparse.Namespace) -> Study:
    lookup = _Lookup.of(args)
    lookup.check()
    try:
        return load_existing_study(lookup.url, args.study)
    except NothingFound as err:
        raise NothingFound(f"{err}; {lookup.where()}") from None


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="print a table of a study's trials")
    _add_study_name(p, "study name (optional when the storage has one)")
    _add_common(p)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="table: for people, with the counts and the best trial (default); json: a list with "
                        "one object per trial (number, state, values, params, times, user_attrs); csv: one row "
                        "per trial under a header")
    p.set_defaults(run=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    study = _existing_study(args)
    if args.format == "json":
        print(json.dumps(trial_records(study), indent=1))
        return 0
    if args.format == "csv":
        sys.stdout.write(trials_csv(study))
        return 0
    print(f"study {study.study_name!r}")
    print(trials_table(study))
    print(counts_line(study))
    print("\n".join(best_lines(study)))
    from tuner.tracking.runs import EXPERIMENT_ID_ATTR, runs_table_url, tracking_uri  # lazy: as above

    experiment = study.user_attrs.get(EXPERIMENT_ID_ATTR)
    if experiment is not None:
        print(f"MLflow runs of this study: {runs_table_url(tracking_uri(_Lookup.of(args).home), experiment)}")
    return 0


def _add_best(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("best", help="show the best trial and export its config, checkpoint and samples")
    _add_study_name(p, "study name (optional when the storage has one)")
    _add_common(p)
    p.add_argument("--export", type=Path, default=None, metavar="DIR",
                   help="copy config.yaml, best.pt, samples and plots of the best trial(s) into DIR (from MLflow "
                        "when the run folder is on another machine)")
    p.add_argument("--register", default=None, metavar="NAME",
                   help="register the best trial's checkpoint and config as a new version of MLflow model NAME")
    p.add_argument("--no-mlflow", action="store_true", help="do not read from MLflow (export from run folders only)")
    p.set_defaults(run=_run_best)


def _run_best(args: argparse.Namespace) -> int:
    study = _existing_study(args)
    print("\n".join(best_lines(study)))
    if args.export is None and args.register is None:
        return 0
    opened: list[StudyTracker] = []

    def tracker() -> StudyTracker:
        """Open the study's MLflow tracking once, when first needed (mlflow takes seconds to import)."""
        if not opened:
            from tuner.tracking.runs import StudyTracker  # lazy: see above

            lookup = _Lookup.of(args)
            opened.append(StudyTracker.open(lookup.home, study, None, lookup.url, {}, mark_running=False))
        return opened[0]

    if args.export is not None:
        for line in export_best(study, args.export, None if args.no_mlflow else tracker):
            print(line)
    if args.register is not None:
        if args.no_mlflow:
            raise TunerError("--register needs MLflow (drop --no-mlflow)")
        print(register_best(study, tracker, args.register))
    return 0


def _add_confirm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("confirm", help="retrain the best trials and the defaults on paired seeds and test them",
                       description="Retrain the study's --top best complete trials and the space's defaults on "
                                   "--seeds fresh seeds (every candidate on the same seeds), with the study's own "
                                   "corpus, base and step budget, and test each candidate against the defaults seed "
                                   "by seed (one-sided exact Wilcoxon signed-rank test, Hodges-Lehmann shift with "
                                   "its 95 %% interval). The runs are the study NAME:confirm; more workers running "
                                   "the same command share them, and the same command continues an interrupted "
                                   "confirmation. tuner best, train-best and --export then use the confirmed winner.")
    _add_study_name(p, "study name (optional when the storage has one)")
    _add_common(p)
    p.add_argument("--top", type=int, default=3, metavar="K", help="candidates: the K best trials (default 3)")
    p.add_argument("--seeds", type=int, default=8, metavar="N", help="paired seeds per candidate (default 8)")
    p.add_argument("--gpus", default=None, metavar="0,1,...", help="run one confirmation run per listed GPU at a time")
    p.add_argument("--trial-timeout", type=float, default=None, metavar="SECONDS",
                   help="kill and fail a run lasting longer than this")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the runs to MLflow")
    p.add_argument("--quiet", action="store_true", help="no live view")
    p.set_defaults(run=_run_confirm)


def _run_confirm(args: argparse.Namespace) -> int:
    from tuner.commands.confirm import ConfirmRequest, confirm  # lazy: imports torch (see the module docstring)
    from tuner.fleet.slots import parse_slots  # lazy: as above

    lookup = _Lookup.of(args)
    lookup.check()
    return confirm(ConfirmRequest(storage_url=lookup.url, home=lookup.home.root, study=args.study, top=args.top,
                                  seeds=args.seeds, gpus=parse_slots(args.gpus), trial_timeout=args.trial_timeout,
                                  mlflow=not args.no_mlflow, quiet=args.quiet))


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a one-page report of the study (Markdown and PNG figures)",
                       description="Write DIR/index.md: the (confirmed) winner against the defaults, the optimisation "
                                   "history, the learning curves, the parameters' importances and slices, the "
                                   "confirmation seed by seed, the best trials with their alignment pictures and "
                                   "samples.")
    _add_study_name(p, "study name (optional when the storage has one)")
    _add_common(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder of the report (made if missing)")
    p.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from tuner.evidence.report import write_report  # lazy: matplotlib

    print(f"wrote {write_report(_existing_study(args), args.out)}")
    return 0


def _add_train_best(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-best", help="train the best trial's configuration to full length from its checkpoint",
                       description="Continue the best trial (or --trial N) from its last checkpoint, in a copy of "
                                   "its run folder, to the epoch planner's length for its corpus (or --steps N); "
                                   "tracked in MLflow as a child of the study's run. Ctrl-C saves at the end of "
                                   "the step; the same command continues.")
    _add_study_name(p, "study name (optional when the storage has one)")
    _add_common(p)
    p.add_argument("--trial", type=int, default=None, metavar="N",
                   help="a complete trial to train instead of the best (needed with several objectives)")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="train to this many optimiser steps in all (default: the epoch planner's length)")
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help="the corpus (default: the one the trial trained on)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="run folder (default HOME/runs/STUDY/best-trial-NNNN; an existing one is continued)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="where to train (default: the trial's config)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train_best)


def _run_train_best(args: argparse.Namespace) -> int:
    from tuner.commands.train_best import TrainBestRequest, train_best  # lazy: imports torch

    if args.steps is not None and args.steps < 1:
        raise TunerError(f"--steps must be >= 1, got {args.steps}")
    study = _existing_study(args)
    lookup = _Lookup.of(args)
    tracker = None
    if not args.no_mlflow:
        from tuner.tracking.runs import StudyTracker  # lazy: mlflow takes over a second to import

        tracker = StudyTracker.open(lookup.home, study, None, lookup.url, {}, mark_running=False)
    request = TrainBestRequest(trial=args.trial, steps=args.steps, data=args.data, out=args.out,
                               device=args.device, mlflow=not args.no_mlflow, quiet=args.quiet)
    for line in train_best(study, lookup.home, request, tracker):
        print(line)
    return 0


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve optuna-dashboard for the study storage (plots and audio included)")
    _add_common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    p.set_defaults(run=_run_dashboard)


def _run_dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server  # lazy: optuna-dashboard takes over a second to import

    lookup = _Lookup.of(args)
    home, url = lookup.home, lookup.url
    lookup.check()
    with creation_lock(url):  # a fresh PostgreSQL database: workers may be creating Optuna's tables now
        storage = open_storage(url)  # an object, so the dashboard never prints the URL
    if not list_study_names(storage):
        # Not an error: workers may create the study after the dashboard starts (docker-compose.yml).
        print(f"no study yet in {mask_url(url)}: the dashboard shows studies as workers create them; "
              f"{lookup.where()}", flush=True)
    home.optuna_artifacts.mkdir(parents=True, exist_ok=True)
    print(f"optuna-dashboard for {mask_url(url)} on http://{args.host}:{args.port}/ "
          f"(artifacts {home.optuna_artifacts}); Ctrl-C stops it", flush=True)
    run_server(storage, host=args.host, port=args.port,
               artifact_store=FileSystemArtifactStore(str(home.optuna_artifacts)))
    return 0


def _add_check_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-space", help="validate a search-space file and describe it")
    p.add_argument("space", help="search-space YAML file, or the name of a shipped space (default, scratch)")
    p.set_defaults(run=_run_check_space)


def _run_check_space(args: argparse.Namespace) -> int:
    from tuner.space.load import load_space  # lazy: imports torch (see the module docstring)

    space = load_space(args.space)
    study = space.study
    print(f"{space.path}: ok")
    print(f"  study {study.name!r}: {study.objective.describe()}; sampler {study.sampler['name']}; "
          f"pruner {study.pruner['name']}; {study.n_trials} trials; preset {space.preset}"
          + (f"; {study.max_steps} steps per trial" if study.max_steps else ""))
    print(f"  {'fine-tuning (needs a base checkpoint)' if study.fine_tune else 'from scratch'}")
    for gate in study.gates:
        print(f"  gate: {gate.describe()}")
    for spec in space.params:
        print(f"  {spec.name}: {spec.describe()}")
    if space.fixed:
        print("  fixed: " + ", ".join(f"{k}={v}" for k, v in space.fixed.items()))
    return 0


def _add_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="list every metric the trainer reports (objective and gate names)",
                       description="List every metric the trainer reports at validation, as declared in "
                                   "trainer.evaluation.metric_registry: the names a search space's objective and gates "
                                   "may "
                                   "use, what better means (direction), the range of values, the label in the "
                                   "live view and `tuner status`, and what it measures.")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: a table (default); json: a list of declarations, for machines")
    p.set_defaults(run=_run_metrics)


def _range(metric: Metric) -> str:
    if metric.low is None and metric.high is None:
        return "-"
    low = "-inf" if metric.low is None else f"{metric.low:g}"
    high = "inf" if metric.high is None else f"{metric.high:g}"
    return f"{low}..{high}"


def _run_metrics(args: argparse.Namespace) -> int:
    if args.format == "json":
        print(json.dumps(metric_registry.definitions(), indent=1))
        return 0
    rows = [(m.name, m.direction or "informational", _range(m), m.label or "-", m.meaning)
            for m in metric_registry.all_metrics()]
    header = ("metric", "direction", "range", "label", "meaning")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `tuner` command."""
    parser = Parser(prog=PROG, description="Optuna studies around the Smart Tuner trainer.")
    add_debug_flag(parser)
    add_version_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for add in (_add_run_study, _add_status, _add_best, _add_confirm, _add_report, _add_train_best, _add_dashboard,
                _add_check_space, _add_metrics):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tuner` console script; returns the exit code (0, 1 failure or bug, 2 bad input)."""
    return main_with(build_parser, argv, PROG, interrupted=INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
