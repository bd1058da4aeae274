"""bench/intelligibility.py's record and its section: what a recogniser hears of free-running speech, per step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from harness.format import machine_line, num, pct, table
from harness.results import Entry
from harness.section import Rendered, Section

if TYPE_CHECKING:
    from typing_extensions import NotRequired


class CurvePoint(TypedDict):
    """One step checkpoint scored on the held-out sentences."""

    step: int
    wer: float
    cer: float
    wer_enhanced: float
    cer_enhanced: float
    length_ratio: float  # synthesised frames over the recording's
    hit_max: int  # sentences that hit the decoder's step limit
    heard: list[str]  # what the recogniser heard
    no_prenet_dropout_at_inference: NotRequired[dict[str, Any]]  # the default variant: the same scores without it


class VariantRun(TypedDict):
    variant: str
    overrides: dict[str, Any]
    train_wall_s: float | None  # None: an earlier run scored (--score)
    run_dir: str
    curve: list[CurvePoint]
    first_step_wer_within_goal: int | None


class IntelligibilityRecord(Entry):
    """One run of bench/intelligibility.py."""

    preset: str
    device: str
    steps: int
    every: int
    scored_earlier_run: NotRequired[bool]
    default_text_frontend: NotRequired[str]  # absent: characters (before phonemes were the default)
    voice: str
    utterances: int
    corpus_minutes: float
    heldout: int
    seed: NotRequired[int]
    references: dict[str, float]  # natural_wer, natural_cer, ceiling_wer, ceiling_cer
    goal_wer: float
    runs: list[VariantRun]
    wall_s: float


def variant_label(entry: dict[str, Any], variant: str) -> str:
    """Return how the report names an intelligibility variant: ``default`` says which frontend it read.

    Entries written before phonemes became the default carry no ``default_text_frontend``: they read characters.
    """
    if variant != "default":
        return variant
    return f"default ({entry.get('default_text_frontend', 'characters')})"


def variant_key(entry: dict[str, Any], variant: str) -> str:
    """Return what makes two intelligibility runs the same configuration and seed: ``default`` is its
    frontend; a run of another seed is a curve of its own, the spread one seed cannot show."""
    config = str(entry.get("default_text_frontend", "characters")) if variant == "default" else variant
    return f"{config} seed {entry.get('seed')}"


def newest_intelligibility(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the bench/intelligibility.py entries cut down to the newest run of each configuration, oldest
    entry first (entries left without a run dropped): a later run of some variants hides no other curve."""
    found = [entry for entry in entries if entry.get("bench") == "intelligibility"]
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, entry in enumerate(found):
        for run in entry["runs"]:
            newest[variant_key(entry, run["variant"])] = (index, run)
    kept = []
    for index, entry in enumerate(found):
        runs = [run for where, run in newest.values() if where == index]
        if runs:
            kept.append({**entry, "runs": [run for run in entry["runs"] if any(run is r for r in runs)]})
    return kept


def intelligibility_section(entry: dict[str, Any]) -> list[str]:
    """Return the report lines of one bench/intelligibility.py entry (see ``newest_intelligibility``)."""
    ref = entry["references"]
    lines = [f"The tiny preset (`small`: the small preset) trained on {entry['utterances']} flite `{entry['voice']}` "
             f"utterances ({num(entry['corpus_minutes'], 1)} minutes), seed {entry.get('seed', '?')}, scored every "
             f"{entry['every']} steps on {entry['heldout']} "
             "sentences no step saw: free-running synthesis, Griffin-Lim, pocketsphinx. The recogniser's word "
             f"error rate on the recordings themselves is {pct(ref['natural_wer'])}, on their Griffin-Lim "
             f"resynthesis (the ceiling of this vocoder) {pct(ref['ceiling_wer'])}; the goal is a WER within "
             f"twice the ceiling, {pct(entry['goal_wer'])}. Each variant changes one setting from the defaults, "
             f"which read {entry.get('default_text_frontend', 'characters')} in this run."
             + (" The checkpoints were scored after the run was stopped early (`--score`): the curve ends at "
                f"step {entry['steps']}." if entry.get("scored_earlier_run") else ""), ""]
    rows = []
    for run in entry["runs"]:
        for point in run["curve"]:
            extra = point.get("no_prenet_dropout_at_inference", {})
            rows.append([variant_label(entry, run["variant"]), str(point["step"]), pct(point["wer"]),
                         pct(point["cer"]),
                         pct(point["wer_enhanced"]), pct(point["cer_enhanced"]), pct(extra.get("wer")),
                         num(point["length_ratio"], 2), str(point["hit_max"])])
    lines += table(["Variant", "Step", "WER", "CER", "WER (enhanced)", "CER (enhanced)",
                    "WER (no prenet dropout)", "Length ratio", "Hit max"], rows)
    lines.append("")
    for run in entry["runs"]:
        reached = run.get("first_step_wer_within_goal")
        verdict = (f"goal reached at step {reached}." if reached is not None else
                   f"goal not reached within {entry['steps']} steps.")
        lines.append(f"- {variant_label(entry, run['variant'])}: {verdict}")
        if run["curve"]:
            last = run["curve"][-1]
            heard = "; ".join(f"“{h}”" for h in last["heard"][:3])
            lines.append(f"  Heard at step {last['step']}: {heard}")
    return lines + ["", machine_line(entry)]


def headline(entry: dict[str, Any]) -> list[str]:
    """Return the README line of one entry (cut down as in ``newest_intelligibility``): each variant's last WER."""
    scored = [run for run in entry["runs"] if run["curve"]]
    if not scored:
        return []
    parts = []
    for run in scored:
        last, reached = run["curve"][-1], run.get("first_step_wer_within_goal")
        parts.append(f"{variant_label(entry, run['variant'])} {pct(last['wer'])} "
                     f"at step {last['step']} ("
                     + (f"goal reached at step {reached})" if reached is not None else "goal not reached)"))
    return [f"- Intelligibility (the tiny preset and variants of it, flite voice, seed "
            f"{entry.get('seed', '?')}): "
            f"free-running WER {'; '.join(parts)}, "
            f"against {pct(entry['references']['ceiling_wer'])} for Griffin-Lim resynthesis of "
            f"the recordings (goal {pct(entry['goal_wer'])})."]


def render(entries: list[dict[str, Any]]) -> Rendered:
    """Return one block per entry that still holds the newest run of some configuration, oldest first."""
    lines: list[str] = []
    headlines: list[str] = []
    for number, chosen in enumerate(newest_intelligibility(entries)):
        lines += ([""] if number else []) + intelligibility_section(chosen)
        headlines += headline(chosen)
    return lines, headlines


SECTION = Section("intelligibility", "7. Intelligibility: what a recogniser hears", render)
