"""bench/ablation.py's record and its section: each fix switched off alone, with a verdict per seed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Rendered, Section
from harness.training import ABLATIONS

from sections.baseline import DECIDING_STEPS, RUN_HEADER, decisive_baselines, frontend_of, run_rows

if TYPE_CHECKING:
    from harness.training import RunRecord
    from typing_extensions import NotRequired


class AblationRecord(Entry):
    """One run of bench/ablation.py: one seed, the all-fixes reference and each fix switched off."""

    preset: str
    device: str
    steps: int
    every: int
    utterances: int
    lang: NotRequired[str]  # absent: en
    text_frontend: NotRequired[str]  # absent: characters
    seed: int
    jobs: int
    target: float
    ablations: dict[str, dict[str, Any]]  # {"no_FIX": the overrides that switch FIX off}
    skipped: dict[str, str]  # {"no_FIX": why it was not trained (it could not change the run)}
    runs: list[RunRecord]  # "all_fixes" first, then each "no_FIX"
    wall_s: float


def verdict(run: dict[str, Any], reference: dict[str, Any], limit: int, every: int,
            noise: dict[str, float]) -> str:
    """Return what switching a fix off did to alignment: "helps" (worse without it), "hurts here" or neither.

    Alignment is what the fixes are meant to improve, so it decides: the steps to teacher-forced
    diagonality 0.85 when both runs got there, else the diagonality at the end. A difference
    counts only beyond ``noise`` (the seed-to-seed range of the all-fixes runs when
    bench/baseline.py measured it, else one validation interval and 0.05). A mel L1 change
    beyond its own margin is added to the verdict; it does not decide it, because an
    unaligned decoder can lower the teacher-forced mel loss by copying its previous frame.
    So is a difference in the steps to free-running diagonality 0.85 beyond the steps margin
    (what the listener hears, but one noisy validation sample per step).
    """
    if run["steps_to_tf_diag"] and reference["steps_to_tf_diag"]:
        difference, margin = run["steps_to_tf_diag"] - reference["steps_to_tf_diag"], noise["steps"]
    else:
        difference = reference["final"]["tf_diagonality"] - run["final"]["tf_diagonality"]
        margin = noise["tf_diag"]
    text = "helps" if difference > margin else "hurts here" if difference < -margin else "no clear effect here"
    mel = (run["final"]["val_mel_postnet_l1"] - reference["final"]["val_mel_postnet_l1"]) \
        / reference["final"]["val_mel_postnet_l1"]
    if abs(mel) > noise["mel_rel"]:
        text += f"; mel L1 {100 * mel:+.0f}% without it"
    return text + free_running_note(run.get("steps_to_fr_diag"), reference.get("steps_to_fr_diag"), limit,
                                    noise["steps"])


def free_running_note(free: int | None, free_reference: int | None, limit: int, margin: float) -> str:
    """Return the verdict's note on the steps to free-running diagonality 0.85 ("" when it says nothing)."""
    if free and free_reference and abs(free - free_reference) > margin:
        return f"; free-running diagonality 0.85 at step {free} without it ({free_reference} with it)"
    if bool(free) != bool(free_reference):
        def when(step: int | None) -> str:
            return f"step {step}" if step else f"not within {limit} steps"

        return f"; free-running diagonality 0.85 {when(free)} without it ({when(free_reference)} with it)"
    return ""


def seed_noise(baseline: dict[str, Any] | None, every: int) -> tuple[dict[str, float], str]:
    """Return the margins a difference must exceed, and where they come from."""
    margins = {"steps": float(every), "tf_diag": 0.05, "fr_diag": 0.02, "mel_rel": 0.02}
    if baseline is None:
        return margins, "one validation interval, 0.05 teacher-forced and 0.02 free-running diagonality, 2% mel L1"
    fixed = [r for r in baseline["runs"] if r["name"] == "fixed"]

    def span(values: list[float]) -> float:
        return max(values) - min(values)

    steps = [r["steps_to_tf_diag"] or baseline["steps"] + baseline["every"] for r in fixed]
    margins = {"steps": max(float(every), span(steps)),
               "tf_diag": max(0.05, span([r["final"]["tf_diagonality"] for r in fixed])),
               "fr_diag": max(0.02, span([r["final"]["fr_diagonality"] for r in fixed])),
               "mel_rel": max(0.02, span([r["final"]["val_mel_postnet_l1"] for r in fixed])
                              / min(r["final"]["val_mel_postnet_l1"] for r in fixed))}
    return margins, (f"the spread of the all-fixes runs over {len(fixed)} seeds in bench/baseline.py: "
                     f"{num(margins['steps'], 0)} steps to 0.85, {num(margins['tf_diag'])} final teacher-forced "
                     f"and {num(margins['fr_diag'])} free-running diagonality, {100 * margins['mel_rel']:.1f}% mel L1")


def ablation_groups(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Return the bench/ablation.py entries grouped by setup (preset, steps, interval, corpus, frontend, fixes),
    longest runs first, then newest; in a group one entry per seed (the newest of each), in seed order: an entry
    runs one seed."""
    groups: dict[tuple[Any, ...], dict[int, dict[str, Any]]] = {}
    newest_at: dict[tuple[Any, ...], int] = {}
    for index, entry in enumerate(entries):
        if entry.get("bench") != "ablation":
            continue
        setup = (entry["preset"], entry["steps"], entry["every"], entry.get("lang", "en"), frontend_of(entry),
                 tuple(sorted(entry.get("ablations", {}))))
        groups.setdefault(setup, {})[entry["seed"]] = entry
        newest_at[setup] = index
    order = sorted(groups, key=lambda k: (-k[1], -newest_at[k]))
    return [[groups[k][seed] for seed in sorted(groups[k])] for k in order]


def ablation_verdicts(group: list[dict[str, Any]], baseline: dict[str, Any] | None) -> dict[str, list[str]]:
    """Return {run name: [verdict of each seed]} for an ablation group (the reference left out)."""
    verdicts: dict[str, list[str]] = {}
    for entry in group:
        runs = entry["runs"]
        reference = next(r for r in runs if r["name"] == "all_fixes")
        noise, _ = seed_noise(baseline, entry["every"])
        for run in runs:
            if run is not reference:
                verdicts.setdefault(run["name"], []).append(
                    verdict(run, reference, entry["steps"], entry["every"], noise))
    return verdicts


def fix_on_by_default(fix: str) -> bool:
    """Return whether the tiny preset's defaults already differ from what switching ``fix`` off sets."""
    from trainer.config import preset

    defaults = preset("tiny").to_dict()
    flat = {**defaults, **defaults.get("model", {})}
    return any(flat.get(key) != value for key, value in ABLATIONS[fix].items())


def defaults_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    """Return, for each fix of every long-enough ablation setup (the newest verdicts of a fix first found),
    its default, its verdicts per seed and whether they agree."""
    rows: dict[str, list[str]] = {}
    for group in ablation_groups(entries):
        if group[0]["steps"] < DECIDING_STEPS:
            continue
        lang = group[0].get("lang", "en")
        baseline = next((e for e in decisive_baselines(entries) if e.get("lang", "en") == lang), None)
        for name, verdicts in ablation_verdicts(group, baseline).items():
            fix = name.removeprefix("no_")
            if fix in rows:
                continue
            on = fix_on_by_default(fix)
            against = "hurts here" if on else "helps"
            disagree = all(v.startswith(against) for v in verdicts)
            per_seed = "<br>".join(f"seed {entry['seed']}: {v}" for entry, v in zip(group, verdicts, strict=True))
            rows[fix] = [fix, "yes" if on else "no", per_seed,
                         "no: " + ("it hurts in every seed" if on else "it helps in every seed") if disagree
                         else "yes"]
    return list(rows.values())


def method_text(group: list[dict[str, Any]], source: str) -> str:
    """Return the paragraph that says what a group measured and how its verdicts are reached."""
    first = group[0]
    seeds = ", ".join(str(e["seed"]) for e in group)
    return (f"Measured with bench/ablation.py: {first['preset']} preset, {first.get('lang', 'en')} eSpeak corpus "
            f"read as {frontend_of(first)}, seed{'s' if len(group) > 1 else ''} {seeds}, {first['steps']} steps per "
            f"run, validation every {first['every']}. `no_X` is all fixes on except X, which is set back to the "
            "published recipe. "
            "Verdict, on alignment, against the all-fixes run of the same seed: \"helps\" when the run without "
            "the fix aligned later (steps to tf diagonality 0.85 when both runs got there, else the tf diagonality "
            f"at the end) by more than the noise margin ({source}); \"hurts here\" when it aligned sooner by as "
            "much; otherwise \"no clear effect here\". A mel L1 change beyond its margin is noted, not voted: "
            "an unaligned decoder lowers the teacher-forced mel loss by copying its previous frame. So is a "
            "change in the steps to free-running diagonality 0.85 beyond the steps margin.")


def ablation_section(group: list[dict[str, Any]], baseline: dict[str, Any] | None) -> list[str]:
    """Return the report lines of the newest bench/ablation.py setup, every seed measured, each fix with its verdict."""
    noise, source = seed_noise(baseline, group[0]["every"])
    lines = [method_text(group, source), ""]
    rows: list[list[str]] = []
    for entry in group:
        runs = entry["runs"]
        reference = next(r for r in runs if r["name"] == "all_fixes")
        for row, run in zip(run_rows(runs, entry["steps"]), runs, strict=True):
            rows.append(row + ["reference" if run is reference else
                               verdict(run, reference, entry["steps"], entry["every"], noise)])
        for name, reason in entry.get("skipped", {}).items():
            rows.append([name, str(entry["seed"]), f"not run: {reason}"] + [""] * (len(RUN_HEADER) - 2))
    lines += table(RUN_HEADER + ["Verdict"], rows)
    changed = [f"{r['name']} (seed {e['seed']}): {', '.join(r['controller_actions'])}"
               for e in group for r in e["runs"] if r["controller_actions"]]
    if changed:
        lines += ["", "Controller interventions: " + "; ".join(changed)]
    for entry in group:
        lines += ["", machine_line(entry)]
    return lines


def render(entries: list[dict[str, Any]]) -> Rendered:
    """Return one sub-section per ablation setup, longest first, against the English baseline's seed spread."""
    decisive = decisive_baselines(entries)
    baseline = next((e for e in decisive if e.get("lang", "en") == "en"), decisive[0] if decisive else None)
    lines: list[str] = []
    for number, group in enumerate(ablation_groups(entries)):
        fixes = ", ".join(name.removeprefix("no_") for name in group[0].get("ablations", {}))
        lines += ([""] if number else []) + [f"### {group[0]['steps']}-step runs: {fixes}", ""]
        lines += ablation_section(group, baseline)
    return lines, []


SECTION = Section("ablation", "2. Ablation: each fix switched off alone", render)
