"""Study value: does tuning the fine-tuning space beat its defaults, and which pruner gets there cheapest?

Prints JSON; appends it to bench/results.jsonl; draws best value against trial-steps as a PNG.

    python bench/study_value.py [--trials 12] [--max-steps 150] [--seeds 3]
        [--pruners none,median,successive_halving,hyperband] [--jobs 2] [--sampler-seed 1]
        [--device cpu] [--workdir studies/bench] [--results bench/results.jsonl] [--plot docs/study_value.png]
        [--reuse studies/bench/study_value/STAMP]

The task is the one ``search_spaces/default.yaml`` is written for: a base checkpoint trained on
one eSpeak voice (the shipped ``tests/data/tiny-aligned.pt``: the tiny preset trained 400 steps
on 300 en-us utterances of sentence seed 0) fine-tuned on a voice it never heard (``--voice``,
default ``en-us+m3`` with varied rate, pitch and intonation: ``--utterances`` sentences of seed
1). Every trial and every retraining is scored the way the space ranks trials: ``fr_mcd``
(free-running MCD-DTW against the recordings, dB, minimised) at the trial's best validation.

The space is default.yaml itself, read when the bench starts, with only these changes: the
budget (``--max-steps``; the validation interval stays the space's 25 steps unless the budget
is under four of them), the sampler seeded (``--sampler-seed``), no per-trial samples or
pictures, one torch thread per process, and the pruner of each arm. Settings the space gives
in steps (the median pruner's ``n_warmup_steps``, a gate's ``after_step``, a pruner's
``min_resource``/``max_resource``) are scaled by ``max_steps / 300`` (300 is the space's own
budget), so a trial is judged at the same fraction of its budget as in the shipped space.

a. **The defaults** (the space's parameter defaults: trial 0 of every study) trained with
   ``--seeds`` seeds (1, 2, ...; every study trial trains with the preset's seed 1234, so these
   are fresh), their best checkpoint scored on held-out sentences no trial saw
   (``--heldout`` utterances of sentence seed 2, same voice; a sentence that also occurs in
   the fine-tuning corpus is left out): mean, standard deviation and range over seeds of
   held-out ``fr_mcd``, ``fr_stop_error`` and ``fr_diagonality``.
b. **Pruners.** The same study (same sampler seed, ``--trials`` trials) once per arm:
   ``none`` (no pruner and no quality gates: every trial trains its whole budget),
   ``median`` (default.yaml's: median, 3 start-up trials, warm-up a third of the budget,
   patience 2), ``successive_halving`` and ``hyperband`` (as the tuner builds them: minimum
   resource one validation interval, Optuna's reduction factors 4 and 3; Hyperband's maximum
   resource the budget). The pruned arms keep the space's quality gates. Per arm: best value
   against cumulative trial-steps (trial order), trial-steps in total, trial-steps up to the
   first complete trial at or below the unpruned study's best (and that as a share of the
   unpruned study's total; goal <= 35 %), complete / pruned / failed counts.
c. **The winner** (the best complete trial of the study run with default.yaml's own pruner,
   i.e. what ``tuner run-study --space default`` hands a user) retrained with the same fresh
   seeds as (a) and scored on the same held-out sentences. It beats the defaults "beyond the
   seed spread" when its worst seed is better than the defaults' best seed; the difference of
   means and the larger of the two seed ranges are reported beside that verdict.

Also: the Spearman rank correlation (average ranks for ties) between each complete trial's
objective at the first validation at or after a third of its budget and its value at the end
(the trial's value: its best validation; and its last validation), per arm with the number of
trials it rests on, and for the unpruned arm at every validation step; and the base checkpoint
(no fine-tuning) scored on the held-out sentences, for scale.

Work runs ``--jobs`` at a time, one torch thread each (on 2 cores two one-thread processes beat
one two-thread process): each study is one ``tuner run-study`` process, each retraining one
spawned process; the winner's retrainings start when the study they come from ends. Studies,
run folders and logs stay under ``WORKDIR/study_value/<time>/``, corpora under ``WORKDIR``, the
feature cache under ``WORKDIR/feature-cache``.

Cost on a 2-core CPU (tiny preset, measured in smoke runs with two processes at a time): a
trial of 50 steps with 5 validations (8 utterances teacher-forced and free-running) trains in
about 60 s, plus 3-4 s to start and end its process, so a complete 150-step trial takes about
3 minutes and the unpruned study of 12 such trials about 40 minutes. The full run (4 arms x
12 trials x 150 steps, 2 x 3 retrainings) is about 130 core-minutes, 65-80 minutes of wall time
on 2 otherwise idle cores (the unpruned study is the longest single job); other load on the
machine stretches it (smoke trials ran up to 2.5x slower beside another busy process). Smoke
runs: ``--trials 3 --max-steps 50 --seeds 2 --pruners none,median,successive_halving
--utterances 40 --heldout 8`` about 10 minutes, ``--trials 3 --max-steps 20 --seeds 1
--pruners hyperband,none --utterances 40 --heldout 8`` about 2. ``--reuse`` continues an
interrupted run in its work folder: studies already holding their trials are read, not rerun.
Run a long bench from a checkout nobody edits meanwhile (a ``git worktree``): its processes
import the package lazily, and a module changed half-way mixes two versions in one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harness.common import BASE_CHECKPOINT, ROOT, bounded_int, made_once, output_arguments
from harness.common import say as say_as
from harness.runner import Bench
from harness.stats import seed_stats
from harness.studies import setup_study_bench
from parts.study_value_arms import (
    ARM_PRUNERS,
    DEFAULT_SPACE,
    arm_record,
    arm_space,
    finished_study,
    load_arm_trials,
    pruner_verdicts,
    run_study,
)
from parts.study_value_heldout import (
    HELDOUT_KEYS,
    OBJECTIVE,
    beats_defaults,
    heldout_indices,
    retrain,
    score_checkpoint,
)
from sections.study_value import StudyValueRecord

CORPUS_SEED = 1  # the base's corpus used the sentence generator's seed 0
HELDOUT_SEED = 2  # sentences of another seed: none of them is in the fine-tuning corpus (checked)


def say(text: str) -> None:
    """Print a progress line on stderr (stdout carries the JSON)."""
    say_as("study_value", text)


def ensure_corpus(workdir: Path, voice: str, utterances: int, seed: int) -> Path:
    """Return an eSpeak corpus of ``voice`` with varied prosody (``utterances`` sentences of ``seed``), made once."""
    return made_once(workdir / f"voice-{voice}-prosody-{utterances}-seed{seed}", lang="en", utterances=utterances,
                     seed=seed, voice=voice, vary_prosody=True)


# ------------------------------------------------------------------ the plot


def plot_curves(arms: dict[str, dict[str, Any]], target: float | None, path: Path, title: str) -> None:
    """Write best value so far (dB) against cumulative trial-steps, one step line per arm, as a PNG."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from trainer.fileio import atomic_write_bytes

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    styles = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D")]  # arms that find the same best overlap: tell them apart
    for (name, arm), (dash, marker) in zip(arms.items(), styles * len(arms), strict=False):
        points = [(x, y) for x, y in arm["curve"] if y is not None]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        line = axes.step(xs, ys, where="post", linestyle=dash, label=f"{name} ({arm['trial_steps_total']} trial-steps)")
        axes.plot(xs, ys, marker, color=line[0].get_color(), markersize=4, fillstyle="none")
    if target is not None:
        axes.axhline(target, color="grey", linestyle="--", linewidth=1, label="unpruned best")
    axes.set_xlabel("cumulative trial-steps")
    axes.set_ylabel(f"best {OBJECTIVE} so far (dB)")
    axes.set_title(title)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


# ------------------------------------------------------------------ driver


def pruner_list(text: str) -> list[str]:
    """Parse ``--pruners``: comma-separated names among ARM_PRUNERS, no repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARM_PRUNERS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct names among {', '.join(ARM_PRUNERS)}, got {text!r}")
    return names


def relative(path: Path) -> str:
    """Return ``path`` relative to the repository when inside it, else as given."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=bounded_int(1), default=12, help="trials per study (default 12)")
    parser.add_argument("--max-steps", type=bounded_int(4), default=150, help="steps per trial (default 150)")
    parser.add_argument("--seeds", type=bounded_int(1), default=3,
                        help="seeds (1..N) for the defaults and for the winner (default 3)")
    parser.add_argument("--pruners", type=pruner_list, default=list(ARM_PRUNERS),
                        help=f"arms, comma-separated (default {','.join(ARM_PRUNERS)})")
    parser.add_argument("--jobs", type=bounded_int(1), default=2, help="processes at a time (default 2)")
    parser.add_argument("--sampler-seed", type=int, default=1, help="TPE seed of every study (default 1)")
    parser.add_argument("--voice", default="en-us+m3", help="eSpeak voice the base never heard (default en-us+m3)")
    parser.add_argument("--utterances", type=bounded_int(12), default=120,
                        help="fine-tuning corpus size (default 120; 8 of them are the trials' validation)")
    parser.add_argument("--heldout", type=bounded_int(1), default=16, help="held-out sentences (default 16)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    output_arguments(parser)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "study_value.png")
    parser.add_argument("--reuse", type=Path, default=None, metavar="FOLDER",
                        help="an earlier run's work folder: studies that already hold --trials finished trials are "
                             "not run again (same arguments), the rest runs as usual")


@dataclass
class Plan:
    """What a run works on, settled before anything trains: the corpora, the held-out sentences, each arm's space."""

    folder: Path  # the run's work folder (``--reuse``: the earlier run's)
    corpus: Path
    heldout: Path
    indices: list[int]  # the held-out sentences scored: those not also in the fine-tuning corpus
    overlap: int  # held-out sentences left out as seen
    interval: int  # the validation interval of every arm
    default_arm: str  # the space's own pruner
    winner_arm: str  # the arm whose best trial is the winner (the space's own, when it runs)
    spaces: dict[str, Path]  # arm -> its space file (its study's home beside it)
    space_of: dict[str, Any]  # arm -> its loaded space
    defaults: dict[str, Any]  # the space's parameter defaults: trial 0 of every study
    seeds: list[int]  # of the retrainings: 1..--seeds


def write_arm_spaces(args: argparse.Namespace, raw: dict[str, Any], folder: Path) -> tuple[dict[str, Path], int]:
    """Write each arm's space file under ``folder`` and validate it as the tuner will; return the files and the
    validation interval."""
    import yaml

    from tuner.space.load import load_space

    spaces: dict[str, Path] = {}
    interval = 0
    for arm in args.pruners:
        content, interval = arm_space(raw, arm, trials=args.trials, max_steps=args.max_steps,
                                      sampler_seed=args.sampler_seed, device=args.device)
        spaces[arm] = folder / arm / "space.yaml"
        spaces[arm].parent.mkdir(parents=True, exist_ok=True)
        spaces[arm].write_text("# " + content["description"] + "\n" + yaml.safe_dump(content, sort_keys=False),
                               encoding="utf-8")
        load_space(spaces[arm])  # the tuner's own validation, before anything runs
    return spaces, interval


def make_plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    """Make the corpora (once), choose the held-out sentences and write the arms' spaces; a usage error when no
    held-out sentence is left."""
    from trainer.yamlio import safe_load
    from tuner.space.load import load_space

    corpus = ensure_corpus(args.workdir, args.voice, args.utterances, CORPUS_SEED)
    heldout = ensure_corpus(args.workdir, args.voice, args.heldout, HELDOUT_SEED)
    indices, overlap = heldout_indices(heldout, corpus)
    if not indices:
        parser.error("every held-out sentence is also in the fine-tuning corpus")
    folder = args.reuse.resolve() if args.reuse else args.workdir / "study_value" / time.strftime("%Y%m%d-%H%M%S")
    raw = safe_load(DEFAULT_SPACE.read_text(encoding="utf-8"))
    default_arm = raw["study"]["pruner"]["name"]
    spaces, interval = write_arm_spaces(args, raw, folder)
    space_of = {arm: load_space(path) for arm, path in spaces.items()}
    return Plan(folder, corpus, heldout, indices, overlap, interval, default_arm,
                default_arm if default_arm in spaces else args.pruners[0], spaces, space_of,
                space_of[args.pruners[0]].defaults(), list(range(1, args.seeds + 1)))


class Work:
    """The studies and the retrainings, ``--jobs`` at a time, one torch thread each.

    Each study is one ``tuner run-study`` process, each retraining one spawned process; the
    threads bound how many things run at once (a retraining's thread waits on its process). The
    winner's retrainings start when the study they come from ends; with ``--reuse``, a study
    that already holds its trials is read, not run again.
    """

    def __init__(self, args: argparse.Namespace, plan: Plan, threads: ThreadPoolExecutor,
                 processes: ProcessPoolExecutor) -> None:
        self.args, self.plan, self.threads, self.processes = args, plan, threads, processes
        self.walls: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, list[dict[str, Any]]] = {"defaults": [], "winner": []}
        self.winner: dict[str, Any] | None = None
        self.pending: dict[Future, tuple[str, str]] = {}

    def spec(self, kind: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Return what a retraining process needs: the space, the parameters, the seed, the paths."""
        args, plan = self.args, self.plan
        return {"space": str(plan.spaces[args.pruners[0]]), "params": params, "seed": seed,
                "max_steps": args.max_steps, "run_dir": str(plan.folder / "retrain" / f"{kind}-seed{seed}"),
                "corpus": str(plan.corpus), "heldout": str(plan.heldout), "indices": plan.indices,
                "warm_start": str(BASE_CHECKPOINT), "device": args.device}

    def retraining(self, kind: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Retrain one seed in a process of its own and wait for it; a failure is that seed's outcome."""
        try:
            result = self.processes.submit(retrain, self.spec(kind, params, seed)).result()
        except Exception as err:  # e.g. a diverging run: recorded as that seed's outcome, the bench goes on
            say(f"{kind} seed {seed} failed: {err!r}")
            return {"seed": seed, "error": repr(err), "heldout": {}, "val_best": None}
        say(f"{kind} seed {seed}: held-out {OBJECTIVE} {result['heldout'].get(OBJECTIVE)}")
        return result

    def retrain_all(self, kind: str, params: dict[str, Any]) -> None:
        for seed in self.plan.seeds:
            self.pending[self.threads.submit(self.retraining, kind, params, seed)] = (kind, str(seed))

    def study_done(self, name: str, result: dict[str, Any]) -> None:
        """Note a study's end; the winner's study names the winner and starts its retrainings."""
        self.walls[name] = result
        if name != self.plan.winner_arm:
            return
        trials = load_arm_trials(self.plan.spaces[name], name, self.args.max_steps)
        complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
        if complete:
            best = min(complete, key=lambda t: t["value"])
            self.winner = {"arm": name, "trial": best["number"], "params": best["params"],
                           "study_value": best["value"],
                           "is_defaults": best["number"] == 0 or best["params"] == self.plan.defaults}
            if not self.winner["is_defaults"]:  # the defaults' runs already are its retrainings
                self.retrain_all("winner", best["params"])

    def run(self) -> None:
        """Start every study and the defaults' retrainings, and wait until everything has ended."""
        args = self.args
        for arm, path in self.plan.spaces.items():
            earlier = finished_study(path, arm, args.trials, args.max_steps) if args.reuse else None
            if earlier is not None:
                say(f"study {arm}: reusing its {args.trials} finished trials")
                self.study_done(arm, earlier)
            else:
                self.pending[self.threads.submit(run_study, arm, path, self.plan.corpus, args.trials)] = ("study", arm)
        self.retrain_all("defaults", self.plan.defaults)
        while self.pending:
            done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, name = self.pending.pop(future)
                if kind == "study":
                    self.study_done(name, future.result())
                else:
                    self.runs[kind].append(future.result())
        if self.winner is not None and self.winner["is_defaults"]:
            self.runs["winner"] = self.runs["defaults"]
        for kind in self.runs:
            self.runs[kind].sort(key=lambda r: r["seed"])

    def summary(self, kind: str) -> dict[str, Any]:
        """Return each held-out figure and the best validation over the seeds of ``kind`` (harness.stats.seed_stats)."""
        return {key: seed_stats([r["heldout"].get(key) for r in self.runs[kind]]) for key in HELDOUT_KEYS} | \
            {"val_best": seed_stats([r["val_best"] for r in self.runs[kind]])}

    def verdict(self) -> tuple[bool | None, str]:
        """Return whether the winner beats the defaults on held-out sentences beyond the seed spread, and why."""
        if self.winner is None:
            return None, f"not measured: the {self.plan.winner_arm} study completed no trial"
        return beats_defaults([r["heldout"][OBJECTIVE] for r in self.runs["winner"] if OBJECTIVE in r["heldout"]],
                              [r["heldout"][OBJECTIVE] for r in self.runs["defaults"] if OBJECTIVE in r["heldout"]],
                              self.winner["is_defaults"])


def run_work(args: argparse.Namespace, plan: Plan) -> Work:
    """Run the studies and the retrainings ``--jobs`` at a time; return them done."""
    with ThreadPoolExecutor(args.jobs) as threads, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as processes:
        work = Work(args, plan, threads, processes)
        work.run()
    return work


def compare_arms(args: argparse.Namespace, plan: Plan, walls: dict[str, dict[str, Any]]
                 ) -> tuple[dict[str, Any], float | None]:
    """Return each arm's record and the unpruned study's best (the target every arm is measured against)."""
    trials_of = {arm: load_arm_trials(path, arm, args.max_steps) for arm, path in plan.spaces.items()}
    target = None
    if "none" in trials_of:
        values = [t["value"] for t in trials_of["none"] if t["value"] is not None]
        target = min(values) if values else None
    arms = {arm: arm_record(arm, plan.space_of[arm].study.pruner, list(plan.space_of[arm].study.gates),
                            trials_of[arm], target, walls.get(arm, {}), args.max_steps) for arm in plan.spaces}
    for arm in arms.values():
        for trial in arm["trials"]:
            if trial["state"] == "FAIL":
                say(f"a trial failed: {trial['reason']}")
    return arms, target


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> StudyValueRecord:
    setup_study_bench(args, parser, needs_base=True)  # the feature cache: this process, the studies, the retrains
    import torch

    torch.set_num_threads(1)  # this process scores between the others' runs
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every child
    started = time.perf_counter()
    plan = make_plan(args, parser)
    # The base, scored first: it checks the scoring path (and fills the feature cache) before the long part.
    base_heldout = score_checkpoint(BASE_CHECKPOINT, plan.heldout, plan.indices, plan.corpus, args.device)
    say(f"base checkpoint on {len(plan.indices)} held-out sentences: {base_heldout}")
    say(f"{len(plan.spaces)} studies of {args.trials} trials x {args.max_steps} steps, {len(plan.seeds)} seed(s) for "
        f"the defaults and the winner, {args.jobs} at a time; work folder {plan.folder}")
    work = run_work(args, plan)
    arms, target = compare_arms(args, plan, work.walls)
    verdict, reason = work.verdict()
    plot_curves(arms, target, args.plot, f"{OBJECTIVE}: best so far, {args.trials} trials x {args.max_steps} steps, "
                f"sampler seed {args.sampler_seed}")
    return record(args, plan, work, arms, target, base_heldout, (verdict, reason), started)


def record(args: argparse.Namespace, plan: Plan, work: Work, arms: dict[str, Any], target: float | None,
           base_heldout: dict[str, float], verdict: tuple[bool | None, str], started: float) -> StudyValueRecord:
    """Return the bench's record from what it measured."""
    from trainer.corpora.make import SECOND_VOICES

    any_space = plan.space_of[args.pruners[0]]
    winner = work.winner
    return {
        "preset": any_space.preset, "device": args.device, "trials": args.trials,
        "max_steps": args.max_steps, "val_interval": plan.interval, "sampler_seed": args.sampler_seed,
        "seeds": plan.seeds, "jobs": args.jobs, "objective": OBJECTIVE, "base_checkpoint": relative(BASE_CHECKPOINT),
        "corpus": {"voice": args.voice, "vary_prosody": True, "utterances": args.utterances, "seed": CORPUS_SEED,
                   "val_size": any_space.build_config(plan.defaults).val_size,
                   "second_voice_of_demo": SECOND_VOICES["en"]},
        "heldout": {"utterances": args.heldout, "seed": HELDOUT_SEED, "scored": len(plan.indices),
                    "left_out_as_seen": plan.overlap},
        "space": relative(DEFAULT_SPACE), "defaults_params": plan.defaults, "default_arm": plan.default_arm,
        "base_heldout": base_heldout,
        "defaults": {"runs": work.runs["defaults"], "summary": work.summary("defaults")},
        "winner": None if winner is None else {**winner, "runs": work.runs["winner"],
                                               "summary": work.summary("winner")},
        "winner_beats_defaults": verdict[0], "winner_reason": verdict[1],
        "unpruned_best": target, "arms": arms, "pruners": pruner_verdicts(arms),
        "plot": relative(args.plot), "wall_s": round(time.perf_counter() - started, 1),
    }


BENCH = Bench("study_value", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
