"""docs/RESULTS.md from bench JSON: the design's claims against measured figures, verdicts, the README block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import make_report  # noqa: E402  (bench/ is a folder of scripts, not a package)
from harness import format as fmt  # noqa: E402
from harness import machine  # noqa: E402
from harness import training as runs  # noqa: E402
from sections import (  # noqa: E402
    ablation,
    baseline,
    intelligibility,
    profile_step,
    speedup,
    summary,
    throughput,
)

MACHINE = {"platform": "Linux-test", "cpu_count": 2, "torch": "2.x", "gpu": None}


def run(name: str, seed: int, tf_step: int | None, fr_step: int | None = None, *, fr_diag: float = 0.9,
        mel: float = 1.0, diag: float = 0.9, first_diag: float = 0.2, gate_first: float = 0.5,
        gate_final: float = 0.8) -> dict[str, Any]:
    """Return a run record shaped like bench/runs.py execute()'s."""
    final = {"step": 150, "tf_diagonality": diag, "fr_diagonality": fr_diag, "tf_gate_balanced_accuracy": gate_final,
             "fr_stop_error": 0.05, "fr_hit_max_rate": 0.0, "val_mel_postnet_l1": mel}
    return {"name": name, "seed": seed, "steps": 150, "steps_to_tf_diag": tf_step,
            "wall_s_to_tf_diag": None if tf_step is None else 2.0 * tf_step, "steps_to_fr_diag": fr_step,
            "wall_s_to_fr_diag": None if fr_step is None else 2.0 * fr_step,
            "first": {"step": 25, "tf_diagonality": first_diag, "tf_gate_balanced_accuracy": gate_first},
            "final": final, "wall_s": 300.0, "median_sec_per_step": 1.5, "controller_actions": [], "history": []}


def baseline_entry(baseline_steps: list[int | None], fixed_steps: list[int | None]) -> dict[str, Any]:
    all_runs = ([run("baseline", s, st, diag=0.2, gate_final=0.5)
                 for s, st in zip((1, 2, 3), baseline_steps, strict=True)]
                + [run("fixed", s, st) for s, st in zip((1, 2, 3), fixed_steps, strict=True)])
    return {"bench": "baseline", "preset": "tiny", "device": "cpu", "steps": 150, "every": 25, "utterances": 300,
            "seeds": [1, 2, 3], "jobs": 2, "target": 0.85, "baseline_overrides": runs.BASELINE,
            "summary": {n: runs.summarise([r for r in all_runs if r["name"] == n]) for n in ("baseline", "fixed")},
            "runs": all_runs, "machine": MACHINE, "command": "python bench/baseline.py"}


def test_a_baseline_that_never_aligns_gives_a_lower_bound_not_a_ratio() -> None:
    lines, headline = baseline.claims(baseline_entry([None, None, None], [100, 125, 150]))
    text = "\n".join(lines + headline)
    assert "at least 1.2×" in text  # 150 steps / median 125
    assert "the baseline never got there within 150 steps" in text
    assert "0.85 at step 125 (100–150)" in text
    assert "3,000 steps" in text and "45% → 90%" in text  # the promises stand beside the measurements


def test_a_baseline_that_aligns_later_gives_the_measured_ratio_and_time_saving() -> None:
    lines, _ = baseline.claims(baseline_entry([150, 150, 125], [50, 75, 50]))
    text = "\n".join(lines)
    assert "| 3.0× |" in text  # median 150 / median 50
    assert "67% less wall time" in text  # wall time is 2 s per step in both


def test_a_fixed_run_missing_the_target_in_one_seed_is_counted_not_hidden() -> None:
    lines, _ = baseline.claims(baseline_entry([None, None, None], [100, None, 150]))
    assert "1 of 3 runs not within 150 steps" in "\n".join(lines)


NOISE = {"steps": 25.0, "tf_diag": 0.05, "fr_diag": 0.02, "mel_rel": 0.02}


@pytest.mark.parametrize(("reference_step", "changed", "expected"), [
    (100, dict(tf_step=150), "helps"),  # both aligned: 50 steps later without the fix
    (100, dict(tf_step=50), "hurts here"),  # both aligned: sooner without it
    (100, dict(tf_step=125), "no clear effect here"),  # within one validation interval
    (None, dict(tf_step=None, diag=0.3), "helps"),  # neither aligned: the final diagonality decides
    (None, dict(tf_step=150, diag=0.99), "hurts here"),  # only the ablated run aligned
    (None, dict(tf_step=None, diag=0.87), "no clear effect here"),  # 0.03 < 0.05
])
def test_ablation_verdict_is_decided_by_alignment_beyond_the_noise(reference_step, changed: dict,
                                                                  expected: str) -> None:
    reference = run("all_fixes", 1, reference_step, diag=0.9)
    ablated = run("no_x", 1, changed.pop("tf_step"), **changed)
    assert ablation.verdict(ablated, reference, 150, 25, NOISE) == expected


def test_a_mel_loss_change_is_noted_but_does_not_decide() -> None:
    reference = run("all_fixes", 1, None, diag=0.7, mel=2.0)
    text = ablation.verdict(run("no_x", 1, None, diag=0.2, mel=1.0), reference, 150, 25, NOISE)
    assert text == "helps; mel L1 -50% without it"
    assert ablation.verdict(run("no_x", 1, None, diag=0.7, mel=2.02), reference, 150, 25, NOISE) == \
        "no clear effect here"


def test_a_later_free_running_alignment_is_noted_but_does_not_decide() -> None:
    reference = run("all_fixes", 1, 150, 150)
    later = ablation.verdict(run("no_x", 1, 150, 450), reference, 600, 50, NOISE)
    assert later == "no clear effect here; free-running diagonality 0.85 at step 450 without it (150 with it)"
    assert ablation.verdict(run("no_x", 1, 150, 150 + int(NOISE["steps"])), reference, 600, 50, NOISE) == \
        "no clear effect here"  # within the margin
    assert ablation.verdict(run("no_x", 1, 150, None), reference, 600, 50, NOISE) == \
        "no clear effect here; free-running diagonality 0.85 not within 600 steps without it (step 150 with it)"


def test_noise_margins_widen_to_the_seed_spread_of_the_baseline_bench() -> None:
    entry = baseline_entry([None] * 3, [75, 125, None])  # None counts as 150 + 25
    margins, source = ablation.seed_noise(entry, 25)
    assert margins["steps"] == 100.0 and margins["fr_diag"] == 0.02 and margins["tf_diag"] == 0.05
    assert "3 seeds" in source


def test_render_says_what_was_not_measured_and_the_readme_block_is_replaced(tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(baseline_entry([None] * 3, [100, 125, 150])) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{make_report.README_BEGIN}\nold figures\n{make_report.README_END}\noutro\n")
    out = tmp_path / "docs" / "RESULTS.md"
    monkeypatch.setattr(sys, "argv", ["make_report.py", "--results", str(results), "--out", str(out),
                                      "--readme", str(readme)])
    assert make_report.main() == 0
    report = out.read_text()
    assert "Not measured yet: run `python bench/throughput.py`." in report
    assert "Machine: CPU only, 2 cores; Linux-test" in report and "`python bench/baseline.py`" in report
    assert "Alignment over a longer run" not in report  # optional section, absent without its entry
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old figures" not in text
    assert "at least 1.2×" in text and "docs/RESULTS.md" in text


def test_readme_without_markers_is_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert make_report.update_readme(readme, ["- x"]) is False
    assert readme.read_text() == "no markers here\n"


def test_a_broken_results_line_is_one_error_naming_file_and_line(tmp_path: Path, capsys, monkeypatch) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text('{"bench": "throughput"}\n{not json\n')
    out = tmp_path / "RESULTS.md"
    monkeypatch.setattr(sys, "argv", ["make_report.py", "--results", str(results), "--out", str(out),
                                      "--readme", str(tmp_path / "R")])
    assert make_report.main() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("make_report: ") and f"{results}:2:" in err and "\n" not in err
    assert not out.exists()


def long_baseline(baseline_steps: list[int | None], fixed_steps: list[int | None], steps: int = 600,
                  gate_final: float = 0.95, lang: str = "en") -> dict[str, Any]:
    entry = baseline_entry(baseline_steps, fixed_steps)
    for r in entry["runs"]:
        r["wall_s"] = 2.0 * steps  # 2 s a step, as the steps-to-target walls
        if r["name"] == "fixed":
            r["final"]["tf_gate_balanced_accuracy"] = gate_final
    entry["summary"] = {n: runs.summarise([r for r in entry["runs"] if r["name"] == n]) for n in ("baseline", "fixed")}
    return {**entry, "steps": steps, "lang": lang}


def test_summary_decides_each_claim_only_on_runs_long_enough() -> None:
    verdicts = summary.claim_verdicts(long_baseline([None, None, None], [100, 150, 150]))
    assert verdicts["diagonality"][1] == "holds"
    assert verdicts["gate"][1] == "holds"
    assert verdicts["convergence"][1] == "holds: ≥ 4.0×"  # 600 / 150, the baseline never got there
    assert verdicts["time"][1] == "holds: ≥ 75% less wall time"  # 300 s to 0.85 against a whole 1,200 s run
    weak_gate = summary.claim_verdicts(long_baseline([None, None, None], [100, 150, 150], gate_final=0.8))
    assert weak_gate["gate"][1] == "does not hold: 80.0% (median)"
    short = summary.claim_verdicts(long_baseline([None, None, None], [None, None, None], steps=150))
    assert all(v[1].startswith("not decided: 150-step runs") for v in short.values())
    slow = summary.claim_verdicts(long_baseline([300, 300, 300], [150, 150, 150]))
    assert slow["convergence"][1] == "does not hold: 2.0×"
    assert slow["time"][1] == "holds: 50% less wall time"  # 2 s a step in both arms


def test_summary_table_shows_each_corpus_and_one_verdict_where_they_agree() -> None:
    entries = [long_baseline([None] * 3, [150] * 3, steps=150),  # shorter: not chosen
               long_baseline([None] * 3, [150] * 3, lang="en"),
               long_baseline([None] * 3, [150] * 3, lang="ru", gate_final=0.8)]
    text = "\n".join(summary.summary_section(entries))
    assert "en: 3 seeds × 600 steps" in text and "ru: 3 seeds × 600 steps" in text
    assert "| holds |" in text  # diagonality: the same verdict on both corpora
    assert "en: holds<br>ru: does not hold: 80.0% (median)" in text


def ablation_entry(seed: int, steps: int, reference_step: int, phases_step: int) -> dict[str, Any]:
    return {"bench": "ablation", "preset": "tiny", "device": "cpu", "steps": steps, "every": 50, "seed": seed,
            "utterances": 300, "lang": "en", "jobs": 3, "target": 0.85,
            "ablations": {"no_phases": runs.ABLATIONS["phases"], "no_lr_schedule": runs.ABLATIONS["lr_schedule"]},
            "skipped": {}, "machine": MACHINE, "command": "python bench/ablation.py",
            "runs": [run("all_fixes", seed, reference_step), run("no_phases", seed, phases_step),
                     run("no_lr_schedule", seed, reference_step)]}


def test_ablation_seeds_of_one_setup_are_shown_together_and_defaults_checked_against_them() -> None:
    entries = [long_baseline([None] * 3, [150] * 3),
               ablation_entry(1, 150, 100, 100), ablation_entry(1, 600, 300, 150), ablation_entry(2, 600, 300, 150)]
    groups = ablation.ablation_groups(entries)
    assert [[e["seed"] for e in g] for g in groups] == [[1, 2], [1]]  # the longest setup first, its two seeds
    assert groups[0][0]["steps"] == 600
    rows = {row[0]: row for row in ablation.defaults_rows(entries)}
    # Phases are off by default and switching them off aligned sooner in both seeds: the default agrees.
    assert rows["phases"][1] == "no" and rows["phases"][3] == "yes"
    assert rows["phases"][2] == "seed 1: hurts here<br>seed 2: hurts here"
    # The learning-rate schedule is on by default and made no difference here: nothing to change.
    assert rows["lr_schedule"][1] == "yes" and rows["lr_schedule"][3] == "yes"
    text = "\n".join(ablation.ablation_section(groups[0], entries[0]))
    assert "seeds 1, 2" in text and text.count("| reference |") == 2


def test_a_default_on_fix_that_hurts_in_every_seed_is_flagged() -> None:
    def hurting(seed: int) -> dict[str, Any]:
        entry = ablation_entry(seed, 600, 300, 300)
        entry["runs"][2] = run("no_lr_schedule", seed, 150)  # without the schedule it aligned much sooner
        return entry

    entries = [long_baseline([None] * 3, [150] * 3), hurting(1), hurting(2)]
    rows = {row[0]: row for row in ablation.defaults_rows(entries)}
    assert rows["lr_schedule"][1] == "yes" and rows["lr_schedule"][3] == "no: it hurts in every seed"
    assert rows["phases"][3] == "yes"  # no difference: nothing to change


def test_defaults_gather_every_long_ablation_setup() -> None:
    other = ablation_entry(1, 600, 300, 300)
    other["ablations"] = {"no_dropout": runs.ABLATIONS["dropout"]}
    other["runs"] = [run("all_fixes", 1, 150), run("no_dropout", 1, 300)]  # later without it: it helps
    entries = [long_baseline([None] * 3, [150] * 3), ablation_entry(1, 600, 300, 150), ablation_entry(2, 600, 300, 150),
               other]
    rows = {row[0]: row for row in ablation.defaults_rows(entries)}
    assert set(rows) == {"phases", "lr_schedule", "dropout"}
    assert rows["dropout"][2] == "seed 1: helps" and rows["dropout"][3] == "yes"  # on by default, and it helps


def _throughput_entry(coqui: dict[str, Any]) -> dict[str, Any]:
    presets = [{"preset": name, "batch_size": 16, "grad_accum_steps": 1, "reduction_factor": r,
                "median_sec_per_step": sec, "mel_frames_per_s": fps, "data_wait_share": 0.001, "amp": False,
                "process_peak_rss_mib": 900, **({"frames_per_s_vs_coqui": round(fps / 470, 3)} if coqui else {})}
               for name, r, sec, fps in (("tiny", 2, 1.0, 3200.0), ("base", 1, 9.0, 400.0))]
    return {"bench": "throughput", "device": "cpu", "utterances": 240, "presets": presets, "coqui": coqui or
            {"skipped": "no --coqui-venv given"}, "cache": {"utterances": 240, "load_s_cold_cache": 1.0,
                                                          "load_s_warm_cache": 0.1, "batch_mel_compute_s": 0.04,
                                                          "batch_size": 16},
            "machine": {"platform": "x", "cpu_count": 2, "torch": "t", "gpu": None}, "command": "c"}


def test_coqui_side_by_side_gives_ratios_and_the_base_verdict() -> None:
    coqui = {"steps_timed": 20, "batch_size": 16, "reduction_factor": 1, "parameters": 28_200_000,
             "coqui_tts": "0.28", "torch": "t", "median_sec_per_step": 7.3, "mel_frames_per_s": 470.0,
             "peak_rss_mib": 2000}
    text = "\n".join(throughput.throughput_section([_throughput_entry(coqui)]))
    assert "| ours, base | 16 × 1 | 1 | 9 | 400 | 0.85× | 900 |" in text
    assert "Coqui TTS 0.28 Tacotron2 (28.2 M parameters)" in text
    assert "Measured 0.85×: **not met**." in text
    skipped = "\n".join(throughput.throughput_section([_throughput_entry({})]))
    assert "not run in the newest comparison (no --coqui-venv given)" in skipped and "Frames/s vs Coqui" not in skipped
    # A later run without Coqui's environment keeps the earlier side-by-side in the report.
    later = "\n".join(throughput.throughput_section([_throughput_entry(coqui), _throughput_entry({})]))
    assert "Measured 0.85×: **not met**." in later and "not run in the newest comparison" not in later


def test_the_default_intelligibility_variant_names_the_frontend_it_read() -> None:
    curve = [{"step": 500, "wer": 0.3, "cer": 0.2, "wer_enhanced": 0.4, "cer_enhanced": 0.3, "length_ratio": 1.0,
              "hit_max": 0, "heard": ["hello"]}]
    entry = {"bench": "intelligibility", "utterances": 160, "voice": "rms", "corpus_minutes": 8.3, "every": 500,
             "heldout": 10, "steps": 500, "references": {"natural_wer": 0.1, "ceiling_wer": 0.12}, "goal_wer": 0.24,
             "runs": [{"variant": "default", "curve": curve, "first_step_wer_within_goal": None},
                      {"variant": "r1", "curve": curve, "first_step_wer_within_goal": None}],
             "machine": MACHINE, "command": "python bench/intelligibility.py"}
    older = "\n".join(intelligibility.intelligibility_section(entry))  # written before phonemes were the default
    assert "- default (characters): goal not reached" in older and "- r1: goal not reached" in older
    newer = "\n".join(intelligibility.intelligibility_section({**entry, "default_text_frontend": "phonemes"}))
    assert "- default (phonemes): goal not reached" in newer and "(characters)" not in newer


def test_the_baseline_section_says_what_the_runs_read() -> None:
    entry = baseline_entry([None, None, None], [150, 150, 200])
    assert "en eSpeak corpus read as characters," in "\n".join(baseline.baseline_section(entry))  # older entries
    entry["text_frontend"] = "phonemes"
    assert "en eSpeak corpus read as phonemes," in "\n".join(baseline.baseline_section(entry))


def test_a_later_intelligibility_run_of_other_variants_hides_no_curve() -> None:
    def entry(frontend: str | None, *variants: str) -> dict[str, Any]:
        found = {"bench": "intelligibility", "runs": [{"variant": v, "curve": []} for v in variants]}
        return found if frontend is None else {**found, "default_text_frontend": frontend}

    older = entry(None, "default", "phonemes")  # before phonemes became the default: default read characters
    r1 = entry("phonemes", "r1")
    assert [[r["variant"] for r in e["runs"]] for e in intelligibility.newest_intelligibility([older, r1])] == \
        [["default", "phonemes"], ["r1"]]
    # The same configurations under today's names replace the older runs: characters, and default (phonemes).
    again = entry("phonemes", "default", "characters")
    assert [[r["variant"] for r in e["runs"]] for e in intelligibility.newest_intelligibility([older, r1, again])] == \
        [["r1"], ["default", "characters"]]
    # Another seed of a variant is a curve of its own: both stay.
    small = {**entry("phonemes", "small"), "seed": 1234}
    other_seed = {**entry("phonemes", "small"), "seed": 4321}
    assert [[r["variant"] for r in e["runs"]] for e in intelligibility.newest_intelligibility([small, other_seed])] == \
        [["small"], ["small"]]
    assert len(intelligibility.newest_intelligibility([small, {**small}])) == 1  # the same seed again replaces it


def gpu_throughput(frames: float, steps: int) -> dict[str, Any]:
    row = {"preset": "base", "steps_timed": steps, "batch_size": 128, "grad_accum_steps": 1, "reduction_factor": 1,
           "median_sec_per_step": 0.6, "mel_frames_per_s": frames, "data_wait_share": 0.003, "amp": True,
           "amp_dtype": "bfloat16", "peak_gpu_mib": 8500}
    return {"bench": "throughput", "device": "cuda", "utterances": 300, "presets": [row],
            "machine": {**MACHINE, "gpu": "NVIDIA H100"}, "command": "python bench/throughput.py --device cuda"}


def test_every_gpu_reading_against_the_published_figure_is_shown_not_only_the_newest() -> None:
    entries = [gpu_throughput(30_331.6, 10), gpu_throughput(34_144.3, 20)]
    text = "\n".join(throughput.throughput_section(entries))
    assert "30,332 on NVIDIA H100 (10 steps timed, below)" in text
    assert "34,144 on NVIDIA H100 (20 steps timed, meets)" in text
    _, headline = make_report.render(entries)
    assert any("30,332, 34,144 mel frames/s in 2 runs" in line for line in headline)


def test_a_cuda_profile_does_not_hide_the_cpu_one() -> None:
    def profile(device: str, step_s: float) -> dict[str, Any]:
        return {"bench": "profile_step", "preset": "base", "device": device, "threads": 2, "batch_size": 12,
                "reduction_factor": 1, "steps_timed": 2, "median_step_s": step_s, "mel_frames_per_s": 2000.0,
                "phases_s": {"forward": step_s / 2, "backward": step_s / 2},
                "phase_shares": {"forward": 0.5, "backward": 0.5},
                "top_ops": [{"op": "aten::mm", "self_cpu_ms_per_step": 90.0, "share": 0.14, "calls_per_step": 3737}],
                "validation": {"seconds": 1.6, "val_utterances": 8, "fr_utterances": 8, "interval": 25,
                               "share_of_trial": 0.08}, "machine": MACHINE, "command": "python bench/profile_step.py"}

    older, cpu = profile("cpu", 9.0), profile("cpu", 9.5)
    older["ab"] = {"compared": "cells", "steps_each": 10, "modules_step_s": 1.4, "per_pass_step_s": 1.25,
                   "speedup": 1.12}
    cpu["ab"] = {"compared": "dropout", "steps_each": 10, "per_step_step_s": 1.3, "per_pass_step_s": 1.2,
                 "speedup": 1.083}
    stale = {**profile("cpu", 8.0), "ab": {**older["ab"], "compared": "attention"}}
    for entry, revision in ((stale, "abc0001"), (older, "abc1234"), (cpu, "abc1234")):
        entry["machine"] = {**MACHINE, "revision": revision}
    text, _ = make_report.render([stale, older, cpu, profile("cuda", 0.737)])
    section = text.split("## Where a training step's time goes", 1)[1]
    assert "### CPU" in section and "### CUDA" in section
    assert "median step 9.5 s" in section and "median step 0.737 s" in section
    assert "per-step 1.3 s a step, per-pass 1.2 s: per-pass at 1.08× the speed of per-step" in section
    assert "A/B (cells, 10 batches each" in section  # an earlier entry of the same revision: shown too
    assert "A/B (attention" not in section  # another revision's: not the code the section shows


def test_an_entry_of_a_dropped_change_is_listed_apart_not_shown_as_the_code() -> None:
    kept, reverted = gpu_throughput(34_144.3, 20), gpu_throughput(30_666.9, 10)
    reverted["dropped"] = "per-pass cells on CUDA, 0.95x the modules: reverted"
    text, headline = make_report.render([kept, reverted])
    body, tail = text.split("## Measured and dropped", 1)
    assert "30,667" not in body and "34,144" in body
    assert "per-pass cells on CUDA, 0.95x the modules: reverted" in tail
    assert not any("30,667" in line for line in headline)


def test_the_machine_line_flags_load_that_came_and_went_during_a_bench() -> None:
    quiet = {"machine": {**MACHINE, "load_at_start": [0.9, 1, 1], "load_at_end": [1.0, 1, 1], "load_peak": 1.2}}
    busy = {"machine": {**MACHINE, "load_at_start": [0.9, 1, 1], "load_at_end": [1.0, 1, 1], "load_peak": 3.4}}
    older = {"machine": {**MACHINE, "load_at_start": [0.9, 1, 1], "load_at_end": [1.0, 1, 1]}}
    assert "1.2 at its highest in between." in fmt.machine_line(quiet)
    assert "3.4 at its highest in between (other work shared the cores)." in fmt.machine_line(busy)
    assert "highest" not in fmt.machine_line(older) and "at the end." in fmt.machine_line(older)


def test_the_load_watch_keeps_the_highest_load_it_read() -> None:
    watch = machine.LoadWatch()
    watch.peak = -1.0  # below any load the machine can report
    assert watch.sample() >= 0.0  # a reading replaced it
    watch.peak = 1e6
    assert watch.sample() == 1e6  # a lower reading never lowers the peak


def test_speedup_shows_both_revisions_each_round_and_the_ratio_against_the_goal() -> None:
    def side(step_s: float, rounds: list[float]) -> dict[str, Any]:
        return {"median_sec_per_step": step_s, "mel_frames_per_s": sorted(rounds)[len(rounds) // 2],
                "each_run_mel_frames_per_s": rounds}

    entry = {"bench": "speedup", "preset": "tiny", "batch_size": 16, "steps_timed": 12, "rounds": 2,
             "baseline_revision": "a506954", "omp_wait_policy": "PASSIVE", "machine": MACHINE,
             "rows": [{"threads": "preset", "baseline": side(2.1, [1555.0, 1690.0]),
                       "worktree": side(1.2, [2611.0, 2943.0]), "frames_per_s_ratio": 1.741},
                      {"threads": "1", "baseline": side(1.6, [1961.0, 2378.0]),
                       "worktree": side(1.2, [2611.0, 2943.0]), "frames_per_s_ratio": 1.238}],
             "command": "python bench/speedup.py"}
    text, headline = make_report.render([entry])
    assert any("1.74× (each revision's own thread setting), 1.24× (1 thread in both) the mel frames/s (goal 2.3×)"
               in line for line in headline)
    section = text.split("## The training step against the code before the speed work", 1)[1]
    assert "| preset | 2.1 | 1690 | 1.2 | 2943 | 1.74× | 1555, 1690 / 2611, 2943 |" in section
    assert "| 1 | 1.6 | 2378 |" in section and f"at {MACHINE.get('revision', '?')} against baseline a506954" in section
    assert f"{speedup.SPEEDUP_TARGET}×" in section


def test_a_profile_with_flop_counts_shows_each_operators_rate() -> None:
    entry = {"bench": "profile_step", "preset": "tiny", "device": "cpu", "threads": 1, "batch_size": 16,
             "reduction_factor": 2, "steps_timed": 3, "median_step_s": 1.1, "mel_frames_per_s": 2400.0,
             "phases_s": {"forward": 0.5, "backward": 0.6}, "phase_shares": {"forward": 0.45, "backward": 0.55},
             "top_ops": [{"op": "aten::mm", "self_cpu_ms_per_step": 262.2, "share": 0.27, "calls_per_step": 1875,
                          "gflop_per_s": 38.1},
                         {"op": "aten::bernoulli_", "self_cpu_ms_per_step": 24.9, "share": 0.03,
                          "calls_per_step": 360}],
             "counted_flops": {"gflop_per_step": 12.89, "share_of_self_time": 0.46}, "profiled_self_s_per_step": 1.37,
             "validation": {"seconds": 2.0, "val_utterances": 8, "fr_utterances": 8, "interval": 25,
                            "share_of_trial": 0.07}, "machine": MACHINE, "command": "python bench/profile_step.py"}
    loop = _throughput_entry({})  # its tiny step: 1.0 s, 3,200 mel frames/s on batches of other lengths
    section = "\n".join(profile_step.profile_section({**entry, "mel_frames_per_s": 3520.0}, [loop, entry]))
    assert "the bare step trains 1.1× the loop's mel frames a second" in section and "adds 10.0% to them" in section
    assert "| Operator | ms per step | Share | Calls per step | GFLOP/s |" in section
    assert "| `aten::mm` | 262.2 | 27.0% | 1875 | 38.1 |" in section
    assert "| `aten::bernoulli_` | 24.9 | 3.0% | 360 | – |" in section
    assert "did 12.89 GFLOP a step in 46.0% of the step's self time" in section
    assert "add up to 1.37 s a step against 1.1 s unprofiled" in section


def test_a_bench_revision_is_dirty_for_code_changes_not_for_the_results_it_writes(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "bench").mkdir()
    (tmp_path / "docs").mkdir()
    for path in ("trainer.py", *machine.GENERATED):
        (tmp_path / path).write_text("first\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")
    clean = machine.revision(tmp_path / "bench")
    assert clean is not None and not clean.endswith("+dirty")
    for path in machine.GENERATED:
        (tmp_path / path).write_text("appended by a bench\n")
    assert machine.revision(tmp_path / "bench") == clean
    (tmp_path / "trainer.py").write_text("changed\n")
    assert machine.revision(tmp_path / "bench") == clean + "+dirty"


def test_open_vocabulary_section_reads_the_goal_and_the_objective_s_validity_from_the_figures() -> None:
    from sections import open_vocabulary

    curve = [{"step": 500, "fr_wer": 0.95, "fr_wer_seen": 0.9, "fr_wer_unseen": 1.0, "fr_cer": 0.8,
              "fr_mcd_sl": 63.0, "fr_mcd": 57.0, "fr_stop_error": 0.08, "fr_diagonality": 0.99},
             {"step": 1000, "fr_wer": 0.55, "fr_wer_seen": 0.5, "fr_wer_unseen": 0.6, "fr_cer": 0.3,
              "fr_mcd_sl": 30.0, "fr_mcd": 27.0, "fr_stop_error": 0.05, "fr_diagonality": 0.99}]
    entry = {"bench": "open_vocabulary", "run": "r", "model": {"reduction_factor": 2}, "device": "cpu",
             "train_utterances": 1000, "train_minutes": 55.5, "train_words": 2000, "heldout_sentences": 60,
             "unseen": {"types": 0.84, "tokens": 0.58}, "goal_wer": 0.6282,
             "references": {"natural_wer": 0.31, "natural_cer": 0.12, "ceiling_wer": 0.3141, "ceiling_cer": 0.13},
             "curve": curve, "first_step_within_goal": 1000, "spearman_vs_wer": {"fr_mcd_sl": 0.9, "fr_mcd": 0.5},
             "broken": {"scores": {"silence": 93.8, "never_stops": 50.0}, "aligned_checkpoints": 2,
                        "worst_aligned": 63.0, "all_rank_behind": False},
             "machine": MACHINE, "command": "python bench/open_vocabulary.py"}
    text = "\n".join(open_vocabulary.lines(entry))
    assert "first reached at step 1000" in text and "| fr_mcd_sl | 0.9 | yes |" in text
    assert "| fr_mcd | 0.5 | no |" in text
    assert "| silence | 93.8 | yes |" in text and "| never stops | 50 | no |" in text  # behind 63.0 or not
    assert "unseen words 60.0%" in open_vocabulary.headline(entry) and "reached at step 1000" in \
        open_vocabulary.headline(entry)


def test_fleet_section_shows_latency_connections_and_the_audit() -> None:
    from sections import fleet

    quantiles = {"n": 300, "p50": 0.05, "p90": 0.2, "p99": 1.7}
    entry = {"bench": "fleet", "workers": 100, "trials_target": 300, "steps": 3, "step_seconds": 1.0,
             "heartbeat_s": 2.0, "grace_s": 10.0, "wall_s": 400.0, "timed_out": False, "kills": 10,
             "exit_codes": {"0": 100, "-9": 10}, "between_trials_s": quantiles, "report_s": quantiles,
             "takeover_s": {"n": 9, "p50": 11.0, "p90": 14.0, "p99": 15.0},
             "connections": {"peak": 130, "median": 95, "max_connections": 100}, "worker_error_lines": 3,
             "audit": {"trials": 310, "finished": 300, "retries": 9, "lost": 0, "trained_twice": 0,
                       "duplicate_params": 0}, "machine": MACHINE, "command": "python bench/fleet.py"}
    text = "\n".join(fleet.lines(entry))
    assert "peak 130, median 95, server limit 100" in text and "lost 0, trained twice 0" in text
    assert "p99 between trials 1.7 s (goal < 1)" in fleet.headline(entry)
