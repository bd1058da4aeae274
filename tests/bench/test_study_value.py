"""bench/study_value.py's pure helpers (ranks, curves, verdicts, arm spaces) and its section of docs/RESULTS.md."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import make_report  # noqa: E402  (bench/ is a folder of scripts, not a package)
import study_value  # noqa: E402
from harness import stats, studies  # noqa: E402
from parts import study_value_arms as arm_studies  # noqa: E402
from parts import study_value_heldout as heldout  # noqa: E402
from sections import study_value as section  # noqa: E402

MACHINE = {"platform": "Linux-test", "cpu_count": 2, "torch": "2.x", "gpu": None}


def trial(number: int, state: str, value: float | None, values: list[tuple[int, float]],
          steps: int | None = None) -> dict[str, Any]:
    """Return a trial record shaped like arm_studies.trial_record's."""
    return {"number": number, "state": state, "value": value, "values": [list(v) for v in values],
            "steps": steps if steps is not None else (values[-1][0] if values else 0), "params": {}, "reason": None}


# ------------------------------------------------------------------ ranks


def test_average_ranks_share_ties() -> None:
    assert stats.average_ranks([10.0, 20.0, 20.0, 30.0]) == [1.0, 2.5, 2.5, 4.0]
    assert stats.average_ranks([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    assert stats.average_ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]


def test_spearman_matches_a_hand_computed_example_with_a_tie() -> None:
    # ranks of y: 1, 2, 3.5, 5, 3.5; deviations from the mean rank 3: x -2 -1 0 1 2, y -2 -1 0.5 2 0.5
    # sum dx*dy = 4 + 1 + 0 + 2 + 1 = 8; sum dx^2 = 10; sum dy^2 = 9.5; rho = 8 / sqrt(95)
    rho = stats.spearman([1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0, 7.0])
    assert rho == pytest.approx(8 / math.sqrt(95))


def test_spearman_edges() -> None:
    assert stats.spearman([1.0, 2.0, 3.0], [30.0, 20.0, 10.0]) == pytest.approx(-1.0)
    assert stats.spearman([1.0, 2.0, 3.0], [1.0, 4.0, 9.0]) == pytest.approx(1.0)  # ranks, not values
    assert stats.spearman([1.0, 2.0], [1.0, 2.0]) is None  # too few pairs
    assert stats.spearman([1.0, 2.0, 3.0], [7.0, 7.0, 7.0]) is None  # nothing to rank
    # a pair with NaN is dropped, not ranked
    assert stats.spearman([1.0, 2.0, 3.0, math.nan], [1.0, 2.0, 3.0, 0.0]) == pytest.approx(1.0)


def test_early_point_is_the_first_validation_at_a_third_of_the_budget() -> None:
    values = {25: 9.0, 50: 8.0, 75: 7.5, 150: 7.0}
    assert studies.early_point(values, 150) == (50, 8.0)  # 50 is exactly a third
    assert studies.early_point(values, 160) == (75, 7.5)  # 53.3 -> the next validation
    assert studies.early_point({10: 1.0}, 150) is None


def test_rank_agreement_uses_complete_trials_only_and_says_how_many() -> None:
    trials = [trial(0, "COMPLETE", 7.0, [(25, 9.0), (50, 8.0), (75, 7.0)]),
              trial(1, "COMPLETE", 7.5, [(25, 8.5), (50, 8.5), (75, 7.6)]),
              trial(2, "COMPLETE", 8.0, [(25, 8.0), (50, 9.0), (75, 8.0)]),
              trial(3, "PRUNED", None, [(25, 12.0), (50, 12.0)])]
    found = studies.rank_agreement(trials, 75)
    assert found["n"] == 3 and found["step"] == 25
    assert found["rho_value"] == pytest.approx(-1.0)  # at step 25 the order is exactly reversed
    assert found["rho_last"] == pytest.approx(-1.0)
    assert found["by_step"] == {"25": -1.0, "50": 1.0, "75": 1.0}
    assert studies.rank_agreement([trials[3]], 75) == {"step": None, "n": 0, "rho_value": None,
                                                           "rho_last": None, "by_step": {}}


# ------------------------------------------------------------------ curves and steps


def study() -> list[dict[str, Any]]:
    return [trial(0, "COMPLETE", 8.0, [(50, 8.5), (100, 8.0)]),
            trial(1, "PRUNED", None, [(50, 9.0)]),
            trial(2, "COMPLETE", 7.0, [(50, 7.5), (100, 7.0)]),
            trial(3, "FAIL", None, [], steps=10)]


def test_best_curve_counts_every_trial_and_keeps_the_best_complete_value() -> None:
    assert studies.best_curve(study()) == [[100, 8.0], [150, 8.0], [250, 7.0], [260, 7.0]]
    assert studies.best_curve([trial(0, "PRUNED", None, [(50, 9.0)])]) == [[50, None]]


def test_steps_to_reach_stops_at_the_first_complete_trial_at_or_below_the_target() -> None:
    assert studies.steps_to_reach(study(), 8.0) == 100
    assert studies.steps_to_reach(study(), 7.0) == 250
    assert studies.steps_to_reach(study(), 6.9) is None
    assert studies.steps_to_reach(study(), None) is None


def test_seed_stats() -> None:
    assert stats.seed_stats([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert stats.seed_stats([2.0, None]) == {"mean": 2.0, "std": 0.0, "min": 2.0, "max": 2.0, "n": 1}
    assert stats.seed_stats([])["n"] == 0


# ------------------------------------------------------------------ verdicts


@pytest.mark.parametrize(("winner", "defaults", "is_defaults", "verdict", "starts"), [
    ([7.0, 7.1, 7.2], [7.5, 7.6, 7.7], False, True, "yes: the winner's worst seed beats the defaults' best"),
    ([7.0, 7.3, 7.6], [7.5, 7.6, 7.7], False, False, "no: better on average but within the seed spread"),
    ([7.8, 7.9, 8.0], [7.5, 7.6, 7.7], False, False, "no: the winner is not better"),
    ([7.0, 7.1, 7.2], [7.0, 7.1, 7.2], True, False, "no: the study's best trial is the defaults' own"),
    ([7.0], [7.5], False, None, "not decidable: one seed"),
])
def test_beats_defaults_needs_the_winners_worst_seed_below_the_defaults_best(
        winner: list[float], defaults: list[float], is_defaults: bool, verdict: bool | None, starts: str) -> None:
    found, reason = heldout.beats_defaults(winner, defaults, is_defaults)
    assert found is verdict
    assert reason.startswith(starts)


def test_beats_defaults_states_the_means_and_the_seed_range() -> None:
    _, reason = heldout.beats_defaults([7.0, 7.3, 7.6], [7.5, 7.6, 7.7], False)
    assert "difference of means +0.300 dB against a seed range of 0.600 dB" in reason


def arm(best: float | None, total: int, reach: int | None) -> dict[str, Any]:
    return {"best": best, "trial_steps_total": total, "trial_steps_to_unpruned_best": reach}


def test_pruner_verdicts_pick_the_arm_that_reached_the_unpruned_best_cheapest() -> None:
    found = arm_studies.pruner_verdicts({"none": arm(7.0, 1000, 600), "median": arm(7.0, 800, 500),
                                         "successive_halving": arm(7.0, 300, 300), "hyperband": arm(7.2, 400, None)})
    assert found["best"] == "successive_halving"
    assert found["arms"]["successive_halving"] == {"share_of_unpruned_total": 0.3, "goal_met": True}
    assert found["arms"]["median"] == {"share_of_unpruned_total": 0.5, "goal_met": False}
    assert found["arms"]["hyperband"] == {"share_of_unpruned_total": None, "goal_met": False}
    assert "30% of the unpruned study's 1000" in found["reason"]


def test_pruner_verdicts_without_a_reaching_arm_or_without_the_unpruned_arm() -> None:
    found = arm_studies.pruner_verdicts({"none": arm(7.0, 1000, 1000), "median": arm(7.3, 800, None),
                                         "hyperband": arm(7.2, 400, None)})
    assert found["best"] == "hyperband" and found["reason"].startswith("no pruned arm reached the unpruned best")
    assert arm_studies.pruner_verdicts({"median": arm(7.3, 800, None)})["best"] is None


# ------------------------------------------------------------------ arm spaces


def test_arm_spaces_scale_the_shipped_space_and_load(tmp_path: Path) -> None:
    import yaml

    from trainer.yamlio import safe_load
    from tuner.space.load import load_space

    raw = safe_load(arm_studies.DEFAULT_SPACE.read_text(encoding="utf-8"))
    assert raw["study"]["max_steps"] == 1000  # the scale below assumes the space's own budget
    spaces = {}
    for name in arm_studies.ARM_PRUNERS:
        content, interval = arm_studies.arm_space(raw, name, trials=12, max_steps=150, sampler_seed=7, device="cpu")
        assert interval == 37  # the space's 50 would leave 3 validations in 150 steps: 4 are kept
        path = tmp_path / name / "space.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
        spaces[name] = load_space(path)  # the tuner's own validation accepts it
    median = spaces["median"].study
    assert median.pruner["name"] == "median" and median.pruner["n_warmup_steps"] == 45  # 300 of 1000 -> 45 of 150
    assert median.pruner["patience"] == 2 and median.pruner["n_startup_trials"] == 4
    assert [g.after_step for g in median.gates if g.after_step is not None] == [15, 15, 15]
    assert median.sampler == {"name": "tpe", "n_startup_trials": 6, "multivariate": True, "constant_liar": True,
                              "seed": 7}
    assert median.max_steps == 150 and median.n_trials == 12 and median.samples == 0
    assert spaces["none"].study.pruner["name"] == "none" and spaces["none"].study.gates == ()
    assert len(spaces["hyperband"].study.gates) == len(median.gates)
    # the tuner's and Optuna's defaults, written out: judged from the first validation on
    assert spaces["successive_halving"].study.pruner == {"name": "successive_halving", "min_resource": 37,
                                                         "reduction_factor": 4}
    assert spaces["hyperband"].study.pruner == {"name": "hyperband", "min_resource": 37, "max_resource": 150,
                                                "reduction_factor": 3}
    assert spaces["none"].params == spaces["median"].params  # the shipped parameters, untouched
    assert spaces["none"].fixed["torch_threads"] == 1 and spaces["none"].fixed["plots"] is False


def test_a_smoke_budget_keeps_four_validations() -> None:
    from trainer.yamlio import safe_load

    raw = safe_load(arm_studies.DEFAULT_SPACE.read_text(encoding="utf-8"))
    content, interval = arm_studies.arm_space(raw, "median", trials=2, max_steps=40, sampler_seed=1, device="cpu")
    assert interval == 10 and content["fixed"]["val_interval"] == 10


def test_pruner_list_parses_known_distinct_names() -> None:
    assert study_value.pruner_list("none, median") == ["none", "median"]
    for bad in ("none,none", "median,asha", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            study_value.pruner_list(bad)


# ------------------------------------------------------------------ the report section


def run(seed: int, mcd: float) -> dict[str, Any]:
    return {"seed": seed, "val_best": mcd - 0.5, "best_step": 150, "steps": 150, "wall_s": 200.0,
            "median_sec_per_step": 1.0,
            "heldout": {"fr_mcd": mcd, "fr_stop_error": 0.1, "fr_diagonality": 0.8, "fr_hit_max_rate": 0.0,
                        "fr_length_ratio": 1.0, "fr_out_of_range": 0.01}}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = heldout.HELDOUT_KEYS
    return {k: stats.seed_stats([r["heldout"][k] for r in runs]) for k in keys} | \
        {"val_best": stats.seed_stats([r["val_best"] for r in runs])}


def entry(winner_mcds: list[float] | None) -> dict[str, Any]:
    unpruned = [trial(i, "COMPLETE", 8.0 - 0.1 * i, [(50, 9.0 - 0.1 * i), (150, 8.0 - 0.1 * i)]) for i in range(4)]
    pruned = unpruned[:2] + [trial(2, "PRUNED", None, [(50, 9.5)]), unpruned[3]]
    arms = {}
    for name, trials, settings in (("none", unpruned, {"name": "none"}),
                                   ("median", pruned, {"name": "median", "n_warmup_steps": 50, "patience": 2})):
        target = 7.7
        arms[name] = {"pruner": settings, "gates": 0 if name == "none" else 4,
                      "best": min(t["value"] for t in trials if t["value"] is not None), "best_trial": 3,
                      "trial_steps_total": sum(t["steps"] for t in trials),
                      "trial_steps_to_unpruned_best": studies.steps_to_reach(trials, target),
                      "complete": sum(t["state"] == "COMPLETE" for t in trials),
                      "pruned": sum(t["state"] == "PRUNED" for t in trials), "failed": 0, "wall_s": 600.0, "rc": 0,
                      "curve": studies.best_curve(trials),
                      "rank_agreement": studies.rank_agreement(trials, 150), "trials": trials}
    defaults = [run(s, 7.5 + 0.1 * s) for s in (1, 2, 3)]
    winner_runs = [run(s, m) for s, m in zip((1, 2, 3), winner_mcds, strict=True)] if winner_mcds else []
    verdict, reason = heldout.beats_defaults([r["heldout"]["fr_mcd"] for r in winner_runs],
                                                 [r["heldout"]["fr_mcd"] for r in defaults], False)
    return {"bench": "study_value", "preset": "tiny", "device": "cpu", "trials": 4, "max_steps": 150,
            "val_interval": 25, "sampler_seed": 1, "seeds": [1, 2, 3], "jobs": 2, "objective": "fr_mcd",
            "base_checkpoint": "tests/data/tiny-aligned.pt",
            "corpus": {"voice": "en-us+m3", "vary_prosody": True, "utterances": 120, "seed": 1, "val_size": 8,
                       "second_voice_of_demo": "en-us+f3"},
            "heldout": {"utterances": 16, "seed": 2, "scored": 15, "left_out_as_seen": 1},
            "space": "search_spaces/default.yaml",
            "defaults_params": {"learning_rate": 1e-5, "batch_size": 12, "dropout": 0.08, "ga_weight": 2.5},
            "default_arm": "median",
            "base_heldout": {"fr_mcd": 9.9, "fr_stop_error": 0.3, "fr_diagonality": 0.6, "fr_hit_max_rate": 0.25},
            "defaults": {"runs": defaults, "summary": summary(defaults)},
            "winner": None if winner_mcds is None else {
                "arm": "median", "trial": 3, "params": {"learning_rate": 3.21e-5, "batch_size": 9, "dropout": 0.1,
                                                        "ga_weight": 1.5},
                "study_value": 7.7, "is_defaults": False, "runs": winner_runs, "summary": summary(winner_runs)},
            "winner_beats_defaults": verdict, "winner_reason": reason, "unpruned_best": 7.7, "arms": arms,
            "pruners": arm_studies.pruner_verdicts(arms), "plot": "docs/study_value.png", "wall_s": 3600.0,
            "machine": MACHINE, "command": "python bench/study_value.py --trials 4"}


def test_study_value_section_states_the_figures_and_the_verdicts() -> None:
    text = "\n".join(section.study_value_section(entry([7.0, 7.1, 7.2])))
    assert "Measured with bench/study_value.py" in text and "`en-us+m3` with varied prosody" in text
    assert "15 sentences (seed 2) that no trial saw (1 more left out" in text
    assert "| defaults (trial 0) | learning_rate 1e-05, batch_size 12, dropout 0.08, ga_weight 2.5 | 7.7 ± 0.1 " \
           "(7.6–7.8) |" in text
    assert "winner: median study, trial 3 (its value 7.7) | learning_rate 3.21e-05" in text
    assert "| base checkpoint (no fine-tuning) | – | 9.9 |" in text
    assert "**Does the winner beat the defaults beyond the seed spread?** yes: the winner's worst seed" in text
    # pruned trial 2 spent 50 steps: 150 + 150 + 50 + 150 = 500 against 600; the best (trial 3) at 500 = 83%
    assert "| median (the space's) | n_warmup_steps 50, patience 2; 4 quality gates | 7.7 | 500 | 500 | 83.3% ✗ |" \
        in text
    assert "| none | no pruning; no gates | 7.7 | 600 | 600 | – | 4 / 0 / 0 |" in text
    assert "**Cheapest pruner on this bench:** median: median reached the unpruned best after 500" in text
    assert "at step 50 (the first validation at a third of the budget) and at its end, over the 4 complete " \
           "trials of the unpruned study: ρ = 1 against its value" in text
    assert "| 10.0% (all 3 seeds) |" in text  # the same stop error on every seed: no range to show
    assert "early evidence ranks trials much as their end does" in text  # rho 1.0
    assert "![Best fr_mcd so far against cumulative trial-steps, one line per pruner](study_value.png)" in text
    assert "the whole bench took 60 minutes" in text
    assert "Machine: CPU only, 2 cores; Linux-test" in text and "`python bench/study_value.py --trials 4`" in text


def test_study_value_section_says_no_with_the_reason_and_copes_without_a_winner() -> None:
    text = "\n".join(section.study_value_section(entry([7.5, 7.7, 7.9])))
    assert "beyond the seed spread?** no: " in text
    same = entry([7.6, 7.7, 7.8])
    same["winner"]["is_defaults"] = True
    assert "(its value 7.7), the defaults: the same runs |" in "\n".join(section.study_value_section(same))
    empty = entry(None)
    empty["winner_beats_defaults"], empty["winner_reason"] = None, "not measured: the median study completed no trial"
    text = "\n".join(section.study_value_section(empty))
    assert "| winner | – | not measured |" in text and "not measured: the median study completed no trial" in text
    assert "cannot be compared with" in section.study_value_headline(empty)


def test_study_value_headline_and_render_place() -> None:
    line = section.study_value_headline(entry([7.0, 7.1, 7.2]))
    assert line.startswith("- Tuning the fine-tuning space (4 trials × 150 steps, tiny preset): the winner's held-out "
                           "fr_mcd 7.1 dB against the defaults' 7.7 dB (means of 3 seeds): it beats the defaults")
    assert "Cheapest pruner: median, 83.3% of the unpruned study's trial-steps to its best (goal ≤ 35.0%)." in line
    assert "Spearman ρ, a third of the budget vs the end: 1 (4 trials)." in line
    report, headline = make_report.render([entry([7.0, 7.1, 7.2])])
    assert "## 6. Study value: the tuned winner against the defaults, and the pruners" in report
    assert line in headline
    report, _ = make_report.render([])
    assert "Not measured yet: run `python bench/study_value.py`." in report
