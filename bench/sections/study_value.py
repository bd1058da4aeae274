"""bench/study_value.py's record and its section: the tuned winner against the defaults on held-out sentences,
the pruners on one study, and how early a trial's rank is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from harness.common import ROOT
from harness.format import machine_line, num, pct, table
from harness.results import Entry
from harness.section import Section
from harness.stats import SeedStats
from harness.studies import RankAgreement, TrialRecord


class ArmRecord(TypedDict):
    """One arm (a pruner) of the same study."""

    pruner: dict[str, Any]  # the pruner's settings, scaled to the budget
    gates: int  # quality gates kept
    best: float | None
    best_trial: int | None
    trial_steps_total: int
    trial_steps_to_unpruned_best: int | None
    complete: int
    pruned: int
    failed: int
    wall_s: float | None
    rc: int | None  # the study process's exit code
    curve: list[list[float | None]]  # [cumulative trial-steps, best value so far] after each trial
    rank_agreement: RankAgreement
    trials: list[TrialRecord]


class Retraining(TypedDict, total=False):
    """One seed of the defaults or the winner retrained and scored held out (``error`` when it failed)."""

    seed: int
    val_best: float | None
    best_step: int | None
    steps: int
    heldout: dict[str, float]  # bench/study_value.py HELDOUT_KEYS
    wall_s: float
    median_sec_per_step: float | None
    error: str


class Retrainings(TypedDict):
    runs: list[Retraining]
    summary: dict[str, SeedStats]  # each held-out key and val_best over seeds


class StudyValueRecord(Entry):
    """One run of bench/study_value.py."""

    preset: str
    device: str
    trials: int
    max_steps: int
    val_interval: int
    sampler_seed: int
    seeds: list[int]
    jobs: int
    objective: str
    base_checkpoint: str
    corpus: dict[str, Any]  # voice, vary_prosody, utterances, seed, val_size, second_voice_of_demo
    heldout: dict[str, int]  # utterances, seed, scored, left_out_as_seen
    space: str
    defaults_params: dict[str, Any]
    default_arm: str  # the space's own pruner
    base_heldout: dict[str, float]
    defaults: Retrainings
    winner: dict[str, Any] | None  # arm, trial, params, study_value, is_defaults, and its Retrainings
    winner_beats_defaults: bool | None
    winner_reason: str
    unpruned_best: float | None
    arms: dict[str, ArmRecord]
    pruners: dict[str, Any]  # bench/study_value.py pruner_verdicts
    plot: str
    wall_s: float


def seed_spread(stats: dict[str, Any] | None, as_pct: bool = False) -> str:
    """Return "mean ± sd (min–max)" of a per-seed summary (harness.stats.seed_stats)."""
    if not stats or not stats.get("n"):
        return "–"
    show = pct if as_pct else num
    text = show(stats["mean"])
    if stats["n"] > 1 and stats["min"] != stats["max"]:
        sd = f"{100 * stats['std']:.1f}%" if as_pct else num(stats["std"])
        text += f" ± {sd} ({show(stats['min'])}–{show(stats['max'])})"
    elif stats["n"] > 1:
        text += f" (all {stats['n']} seeds)"
    return text


def params_text(params: dict[str, Any]) -> str:
    """Return trial parameters as "name value, ..." with three significant digits."""
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def describe_rho(rho: float | None) -> str:
    """Return how far a rank correlation lets early figures stand for final ones, in words."""
    if rho is None:
        return "not measurable"
    if rho >= 0.7:
        return "early evidence ranks trials much as their end does"
    if rho >= 0.4:
        return "early evidence is a rough guide only"
    return "early evidence says little about the end"


def in_this_checkout(path: str) -> str:
    """Return an absolute ``path`` relative to this checkout when it names one of its files, else as given.

    A bench run with ``--plot`` pointing into a checkout records that checkout's absolute path; run in
    another checkout of the repository (a git worktree, say), the path is not inside this one, and the
    longest tail of it that names a file here is taken, so the report does not depend on where it is made.
    """
    given = Path(path)
    if not given.is_absolute():
        return path
    if given.is_relative_to(ROOT):
        return str(given.relative_to(ROOT))
    tails = (Path(*given.parts[k:]) for k in range(1, len(given.parts)))
    return next((str(tail) for tail in tails if (ROOT / tail).is_file()), path)


def study_value_headline(entry: dict[str, Any]) -> str:
    """Return the README headline line of bench/study_value.py's latest entry."""
    d = entry["defaults"]["summary"]["fr_mcd"]
    winner = entry.get("winner")
    w = winner["summary"]["fr_mcd"] if winner else None
    verdict = {True: "beats", False: "does not beat", None: "cannot be compared with"}[entry["winner_beats_defaults"]]
    text = (f"- Tuning the fine-tuning space ({entry['trials']} trials × {entry['max_steps']} steps, tiny preset): "
            f"the winner's held-out fr_mcd {num(w['mean'] if w else None)} dB against the defaults' "
            f"{num(d['mean'])} dB (means of {d['n']} seeds): it {verdict} the defaults beyond the seed spread.")
    p = entry["pruners"]
    if p["best"] is not None:
        share = p["arms"][p["best"]]["share_of_unpruned_total"]
        text += (f" Cheapest pruner: {p['best']}, " + (f"{pct(share)} of the unpruned study's trial-steps to its best "
                 f"(goal ≤ {pct(p['goal_share'])})." if share is not None else "never reached the unpruned best."))
    rank = entry["arms"].get("none", {}).get("rank_agreement")
    if rank and rank["rho_value"] is not None:
        text += f" Spearman ρ, a third of the budget vs the end: {num(rank['rho_value'], 2)} ({rank['n']} trials)."
    return text


def method_text(entry: dict[str, Any]) -> str:
    """Return the paragraph that says what was measured: the task, the studies, the held-out sentences, the seeds."""
    c, h = entry["corpus"], entry["heldout"]
    seeds = ", ".join(map(str, entry["seeds"]))
    return (f"Measured with bench/study_value.py on the task `{entry['space']}` is written for: the base "
            f"`{entry['base_checkpoint']}` (one en-us voice) fine-tuned on {c['utterances']} utterances of "
            f"`{c['voice']}`{' with varied prosody' if c['vary_prosody'] else ''} (sentence seed {c['seed']}), "
            f"a voice the base never heard. {entry['trials']} trials of {entry['max_steps']} steps per study, "
            f"validation every {entry['val_interval']} steps on {c['val_size']} utterances, TPE sampler seed "
            f"{entry['sampler_seed']}; trials ranked by {entry['objective']} at their best validation (dB, lower is "
            f"better). Held out: {h['scored']} sentences (seed {h['seed']}) that no trial saw"
            + (f" ({h['left_out_as_seen']} more left out: also in the fine-tuning corpus)" if h["left_out_as_seen"]
               else "")
            + f". The defaults and the winner are each retrained with seeds {seeds} (every study trial used the "
            "preset's seed 1234) and their best checkpoint is scored there; mean ± standard deviation (range) "
            "over seeds.")


def configuration_rows(entry: dict[str, Any]) -> list[list[str]]:
    """Return the held-out table's rows: the base checkpoint, the defaults and the winner."""
    winner = entry.get("winner")
    rows = [["base checkpoint (no fine-tuning)", "–", num(entry["base_heldout"].get("fr_mcd")),
             pct(entry["base_heldout"].get("fr_stop_error")), num(entry["base_heldout"].get("fr_diagonality")),
             pct(entry["base_heldout"].get("fr_hit_max_rate")), "–"]]
    for name, record, params in (("defaults (trial 0)", entry["defaults"], entry["defaults_params"]),
                                 (f"winner: {winner['arm']} study, trial {winner['trial']} (its value "
                                  f"{num(winner['study_value'])})" + (", the defaults: the same runs"
                                                                      if winner["is_defaults"] else "")
                                  if winner else "winner", winner,
                                  winner["params"] if winner else {})):
        if record is None:
            rows.append([name, "–", "not measured", "–", "–", "–", "–"])
            continue
        s = record["summary"]
        rows.append([name, params_text(params), seed_spread(s["fr_mcd"]), seed_spread(s["fr_stop_error"], True),
                     seed_spread(s["fr_diagonality"]), seed_spread(s["fr_hit_max_rate"], True),
                     seed_spread(s["val_best"])])
    return rows


def winner_lines(entry: dict[str, Any]) -> list[str]:
    """Return the held-out table, the verdict on the winner, and the retrainings that failed."""
    lines = table(["Configuration", "Parameters", "Held-out fr_mcd (dB)", "Stop error", "fr diagonality", "Hit max",
                   "Best validation fr_mcd (dB)"], configuration_rows(entry))
    lines += ["", f"**Does the winner beat the defaults beyond the seed spread?** {entry['winner_reason']}. (Yes only "
                  "when the winner's worst seed is better than the defaults' best.)"]
    failed = [f"{kind} seed {r['seed']}: {r['error']}" for kind, record in (("defaults", entry["defaults"]),
                                                                             ("winner", entry.get("winner"))) if record
              for r in record["runs"] if r.get("error")]
    if failed:
        lines += ["", "Retrainings that failed: " + "; ".join(failed) + "."]
    return lines


def pruner_rows(entry: dict[str, Any]) -> list[list[str]]:
    """Return one row per arm: its settings, best, trial-steps, share of the unpruned total, counts, ρ, wall time."""
    arms, verdicts = entry["arms"], entry["pruners"]
    rows = []
    for name, arm in arms.items():
        settings = ", ".join(f"{k} {v}" for k, v in arm["pruner"].items() if k not in ("name", "min_delta"))
        share = verdicts["arms"].get(name, {})
        reach = arm["trial_steps_to_unpruned_best"]
        rank = arm["rank_agreement"]
        rows.append([name + (" (the space's)" if name == entry["default_arm"] else ""),
                     (settings or "no pruning") + (f"; {arm['gates']} quality gates" if arm["gates"] else "; no gates"),
                     num(arm["best"], 4), str(arm["trial_steps_total"]), "never" if reach is None else str(reach),
                     "–" if name == "none" else (pct(share.get("share_of_unpruned_total"))
                                                 + (" ✓" if share.get("goal_met") else " ✗")),
                     f"{arm['complete']} / {arm['pruned']} / {arm['failed']}",
                     f"{num(rank['rho_value'], 2)} ({rank['n']})", num(arm["wall_s"], 0)])
    return rows


def pruner_lines(entry: dict[str, Any]) -> list[str]:
    """Return the pruners' paragraph, their table and the cheapest of them."""
    verdicts = entry["pruners"]
    lines = ["", f"Pruners, each on the same study (same sampler seed); the unpruned study's best is "
                 f"{num(entry['unpruned_best'], 4)} dB. Trial-steps are counted in trial order; a pruned trial "
                 "counts the steps it trained. Goal: reach the unpruned best within "
                 f"{pct(verdicts['goal_share'])} of the unpruned study's trial-steps.", ""]
    lines += table(["Pruner", "Settings (scaled to the budget)", "Best fr_mcd (dB)", "Trial-steps spent",
                    "Trial-steps to the unpruned best", "Share of the unpruned total", "Complete / pruned / failed",
                    "Spearman ρ (complete trials)", "Wall s"], pruner_rows(entry))
    return lines + ["", f"**Cheapest pruner on this bench:** {verdicts['best'] or '–'}: {verdicts['reason']}."]


def early_evidence_lines(entry: dict[str, Any]) -> list[str]:
    """Return the paragraph on how early a trial's rank is known (nothing without an unpruned arm)."""
    rank = entry["arms"].get("none", {}).get("rank_agreement")
    if not rank:
        return []
    steps = ", ".join(f"step {s}: {num(r, 2)}" for s, r in rank["by_step"].items())
    return ["", f"**Early evidence.** Spearman rank correlation between each trial's {entry['objective']} at "
                f"step {rank['step']} (the first validation at a third of the budget) and at its end, over the "
                f"{rank['n']} complete trials of the unpruned study: ρ = {num(rank['rho_value'], 2)} against its "
                f"value (best validation), {num(rank['rho_last'], 2)} against its last validation; "
                f"{describe_rho(rank['rho_value'])}. ρ against the value at each validation step: {steps}."]


def study_value_section(entry: dict[str, Any]) -> list[str]:
    """Return the report lines of bench/study_value.py's latest entry: defaults vs winner, pruners, early evidence."""
    plot = in_this_checkout(entry.get("plot", ""))
    # RESULTS.md lives in docs/: a repository path is written relative to it, an outside path as it is
    shown = plot[len("docs/"):] if plot.startswith("docs/") else plot if plot.startswith("/") else "../" + plot
    return [method_text(entry), "", *winner_lines(entry), *pruner_lines(entry), *early_evidence_lines(entry),
            "", f"![Best {entry['objective']} so far against cumulative trial-steps, one line per pruner]({shown})",
            "", f"Runs went {entry['jobs']} at a time, one thread each; the whole bench took "
                f"{num(entry['wall_s'] / 60, 0)} minutes.", "", machine_line(entry)]



SECTION = Section.of_newest("study_value", "6. Study value: the tuned winner against the defaults, and the pruners",
                            study_value_section, study_value_headline)
