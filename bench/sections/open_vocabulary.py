"""bench/open_vocabulary.py's record and its section: intelligibility on unseen words, and the objective's validity."""

from __future__ import annotations

from typing import Any, TypedDict

from harness.format import machine_line, num, pct, table
from harness.results import Entry
from harness.section import Section

GOAL = 2.0  # the target: held-out WER at most this many times the Griffin-Lim resynthesis ceiling
ALIGNED_DIAGONALITY = 0.85  # a checkpoint counts as aligned from this free-running diagonality...
ALIGNED_STOP_ERROR = 0.10  # ...with at most this stop error
RHO_GOAL = 0.8  # an objective fit to rank trials follows the held-out WER at least this closely (Spearman)


class BrokenScores(TypedDict):
    """Broken outputs' mean fr_mcd_sl on the held-out sentences; do all rank behind every aligned checkpoint?"""

    scores: dict[str, float]  # never_aligned, silence, never_stops, stops_after_a_few_frames, noise
    aligned_checkpoints: int
    worst_aligned: float | None
    all_rank_behind: bool


class OpenVocabularyRecord(Entry):
    """One run of bench/open_vocabulary.py."""

    run: str
    model: dict[str, Any]
    device: str
    train_utterances: int
    train_minutes: float
    train_words: int
    heldout_sentences: int
    unseen: dict[str, float | int]  # shares and counts of held-out word tokens and types training never says
    references: dict[str, float]  # natural_wer, natural_cer, ceiling_wer, ceiling_cer
    goal_wer: float
    curve: list[dict[str, float]]  # per checkpoint: step and the fr_* figures (fr_wer_seen, fr_wer_unseen ...)
    first_step_within_goal: int | None
    spearman_vs_wer: dict[str, float | None]
    broken: BrokenScores
    wall_s: float


def lines(entry: dict[str, Any]) -> list[str]:
    """Return the section: the curve, the references and goal, then the objective's validity."""
    unseen, refs = entry["unseen"], entry["references"]
    out = [f"One run ({entry['train_minutes']} minutes of flite speech, {entry['train_utterances']} open-vocabulary "
           f"sentences, {entry['train_words']} distinct words; model {entry['model']}) scored at each kept checkpoint "
           f"on {entry['heldout_sentences']} held-out sentences, {pct(unseen['tokens'])} of whose words "
           f"({pct(unseen['types'])} of distinct words) never occur in training. Each sentence free-running with its "
           "own seed, Griffin-Lim audio, pocketsphinx. WER seen/unseen: the share of reference words heard in "
           "training / never heard that the recogniser missed.", ""]
    rows = [[str(p["step"]), pct(p.get("fr_wer")), pct(p.get("fr_wer_seen")), pct(p.get("fr_wer_unseen")),
             pct(p.get("fr_cer")), num(p.get("fr_mcd_sl"), 1), num(p.get("fr_mcd"), 1), pct(p.get("fr_stop_error")),
             num(p.get("fr_diagonality"))] for p in entry["curve"]]
    out += table(["Step", "WER", "WER seen", "WER unseen", "CER", "MCD-SL", "MCD", "Stop error", "fr diagonality"],
                 rows)
    reached = entry["first_step_within_goal"]
    out += ["", f"Recordings heard directly: WER {pct(refs['natural_wer'])}; resynthesised by Griffin-Lim (the "
                f"ceiling): {pct(refs['ceiling_wer'])}. Goal: WER ≤ {GOAL:g} × ceiling = {pct(entry['goal_wer'])}: "
                + (f"first reached at step {reached}." if reached is not None else
                   f"not reached by step {entry['curve'][-1]['step']}."), ""]
    out += validity_lines(entry) + ["", machine_line(entry)]
    return out


def validity_lines(entry: dict[str, Any]) -> list[str]:
    """Return the objective-validity part: Spearman ρ against the held-out WER, and the broken outputs."""
    rho, broken = entry["spearman_vs_wer"], entry["broken"]
    out = [f"**Which objective follows what the recogniser hears** (Spearman ρ against the held-out WER across "
           f"the {len(entry['curve'])} checkpoints; fit to rank trials at ρ ≥ {RHO_GOAL}):", ""]
    out += table(["Objective", "ρ vs WER", f"≥ {RHO_GOAL}"],
                 [[name, num(value), "yes" if value is not None and value >= RHO_GOAL else "no"]
                  for name, value in rho.items()])
    worst = broken["worst_aligned"]
    out += ["", f"**Broken outputs** on the same sentences (mean MCD-SL, dB) against the worst of the "
                f"{broken['aligned_checkpoints']} aligned checkpoints (free-running diagonality ≥ "
                f"{ALIGNED_DIAGONALITY}, stop error ≤ {pct(ALIGNED_STOP_ERROR)}): {num(worst, 1)}.", ""]
    out += table(["Broken output", "MCD-SL", "Behind every aligned checkpoint"],
                 [[kind.replace("_", " "), num(value, 1), "yes" if worst is not None and value > worst else "no"]
                  for kind, value in broken["scores"].items()])
    return out


def headline(entry: dict[str, Any]) -> str:
    """Return the README's line: the last checkpoint's held-out WER against the goal, and fr_mcd_sl's ρ."""
    last, rho = entry["curve"][-1], entry["spearman_vs_wer"].get("fr_mcd_sl")
    reached = entry["first_step_within_goal"]
    return (f"- Open vocabulary ({pct(entry['unseen']['tokens'])} of held-out words unseen): WER "
            f"{pct(last.get('fr_wer'))} at step {last['step']} (unseen words {pct(last.get('fr_wer_unseen'))}), "
            f"goal {pct(entry['goal_wer'])} (2 × Griffin-Lim ceiling) "
            + (f"reached at step {reached}" if reached is not None else "not reached")
            + f"; fr_mcd_sl's Spearman ρ with that WER across checkpoints {num(rho)}.")


SECTION = Section.of_newest("open_vocabulary", "Open vocabulary: speech on words the model never heard, and the "
                            "objective that follows it", lines, headline)
