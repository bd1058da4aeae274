"""bench/profile_step.py's record and its section: where a training step's time goes, on the CPU and on CUDA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from harness.format import machine_line, num, pct, table
from harness.results import Entry
from harness.section import Rendered, Section

if TYPE_CHECKING:
    from typing_extensions import NotRequired


class Operator(TypedDict):
    """One operator of the profiler's table, per step."""

    op: str
    self_cpu_ms_per_step: float
    share: float  # of all operators' self time
    calls_per_step: float
    gflop_per_s: NotRequired[float]  # CPU, where the profiler counts its floating-point operations


class ValidationCost(TypedDict):
    seconds: float
    val_utterances: int
    fr_utterances: int
    interval: int  # steps between validations
    share_of_trial: float  # of a trial's wall time at that interval


class ProfileRecord(Entry):
    """One run of bench/profile_step.py."""

    preset: str
    device: str
    threads: int
    omp_wait_policy: NotRequired[str | None]
    batch_size: int
    reduction_factor: int
    at_step: NotRequired[int]  # the schedules ran as from this training step; absent: 1
    steps_timed: int
    median_step_s: float
    mel_frames_per_s: float
    phases_s: dict[str, float]  # forward, loss, backward, optimiser: medians
    phase_shares: dict[str, float]
    top_ops: list[Operator]
    counted_flops: NotRequired[dict[str, float]]  # gflop_per_step, share_of_self_time
    profiled_self_s_per_step: NotRequired[float]
    ab: NotRequired[dict[str, Any]]  # --ab: compared, steps_each, <variant>_step_s, speedup, paired_speedup
    cells_ab: NotRequired[dict[str, Any]]  # the oldest entries' --ab cells, before "ab" named what it compared
    validation: ValidationCost


def summary_line(entry: dict[str, Any]) -> str:
    """Return the step's setting, its median time and the share of each phase."""
    shares = entry["phase_shares"]
    phases = ", ".join(f"{name} {num(entry['phases_s'][name])} s ({pct(shares[name])})" for name in entry["phases_s"])
    policy = entry.get("omp_wait_policy") or "libgomp's default (torch loaded before the trainer set it)"
    return (f"{entry['preset']} preset, batch {entry['batch_size']}, r = {entry['reduction_factor']}, "
            f"{entry['threads']} threads, OMP_WAIT_POLICY {policy}, {entry['device']}: "
            f"median step {num(entry['median_step_s'])} s "
            f"({num(entry['mel_frames_per_s'], 0)} mel frames/s) over {entry['steps_timed']} steps"
            + (f" with the schedules of training step {entry['at_step']} on" if entry.get("at_step", 1) > 1 else "")
            + f": {phases}.")


def loop_lines(entry: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """Return the comparison with the same preset's newest bench/throughput.py step on the same kind of machine."""
    loop = next((p for e in reversed(entries) if e.get("bench") == "throughput" and e.get("device") == entry["device"]
                 for p in e["presets"] if p["preset"] == entry["preset"] and p["batch_size"] == entry["batch_size"]
                 and p["grad_accum_steps"] == 1),
                None)
    if loop is None:
        return []
    # Mel frames a second, not seconds a step: the two benches draw batches of different lengths.
    cost = entry["mel_frames_per_s"] / loop["mel_frames_per_s"]
    return [f"Inside the training loop (bench/throughput.py, newest {entry['preset']} entry) a step takes "
            f"{num(loop['median_sec_per_step'])} s ({num(loop['mel_frames_per_s'], 0)} mel frames/s): "
            f"the bare step trains {num(cost, 2)}× the loop's mel frames a second, so what the loop does "
            "around forward, loss, backward and the optimiser (batches, logging, schedules) adds "
            f"{pct(cost - 1)} to them (batches of other lengths, and another run: a few percent either way "
            "is noise)."]


def ab_lines(entry: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """Return the A/B comparisons (``--ab``) of every entry of the same revision on the same device."""
    revision = entry.get("machine", {}).get("revision")
    lines = []
    for other in [e for e in entries if e.get("bench") == "profile_step" and e.get("device") == entry["device"]
                  and (e is entry or (revision and e.get("machine", {}).get("revision") == revision))]:
        ab = other.get("ab") or ({"compared": "cells", **other["cells_ab"]} if "cells_ab" in other else None)
        if ab is None:
            continue
        (before, before_s), (after, after_s) = [(key.removesuffix("_step_s").replace("_", "-"), value)
                                                for key, value in ab.items() if key.endswith("_step_s")]
        at = f", schedules of step {other['at_step']}" if other.get("at_step", 1) > 1 else ""
        lines.append(f"A/B ({ab['compared']}, {ab['steps_each']} batches each{at}, alternated in one process): "
                     f"{before} {num(before_s)} s a step, {after} {num(after_s)} s: {after} at "
                     f"{num(ab['speedup'], 2)}× the speed of {before}"
                     + (f" (the median of each batch's own ratio: {num(ab['paired_speedup'], 2)}×)"
                        if "paired_speedup" in ab else "") + ".")
    return lines


def operator_lines(entry: dict[str, Any]) -> list[str]:
    """Return the operators' table, what the counted operations say, and the profiler's own cost."""
    lines = ["", "Operators by self CPU time (torch.profiler, per step):", ""]
    rates = any("gflop_per_s" in op for op in entry["top_ops"])  # entries before the flop counts had none
    rows = [[f"`{op['op']}`", num(op["self_cpu_ms_per_step"], 1), pct(op["share"]), num(op["calls_per_step"], 0)]
            + ([num(op.get("gflop_per_s"), 1)] if rates else []) for op in entry["top_ops"]]
    lines += table(["Operator", "ms per step", "Share", "Calls per step"] + (["GFLOP/s"] if rates else []), rows)
    if "counted_flops" in entry:
        lines += ["", f"The operators whose floating-point operations the profiler counts (matrix products, "
                      f"convolutions' forward, element-wise products and sums) did "
                      f"{num(entry['counted_flops']['gflop_per_step'], 2)} GFLOP a step in "
                      f"{pct(entry['counted_flops']['share_of_self_time'])} of the step's self time; GFLOP/s near the "
                      "core's peak is arithmetic, far below it per-call overhead."]
    if "profiled_self_s_per_step" in entry:
        lines += ["", f"Under the profiler the operators' self times add up to "
                      f"{num(entry['profiled_self_s_per_step'])} s a step against {num(entry['median_step_s'])} s "
                      "unprofiled: its own bookkeeping per call, which weighs most on the many small operators, so "
                      "their shares above are upper bounds."]
    return lines


def profile_section(entry: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """Return the report lines of bench/profile_step.py's newest entry: phases, top operators, validation.

    Beside it, the same preset's newest bench/throughput.py step (the whole training loop), when
    it ran on the same kind of machine: the difference is what the loop adds around the step;
    and the A/B comparisons (``--ab``) of every entry of the same revision on that device.
    """
    val = entry["validation"]
    return [summary_line(entry), *loop_lines(entry, entries), *ab_lines(entry, entries), *operator_lines(entry),
            "", f"One validation ({val['val_utterances']} held-out utterances teacher-forced, "
                f"{val['fr_utterances']} free-running): {num(val['seconds'])} s, {pct(val['share_of_trial'])} of a "
                f"trial's wall time at one validation every {val['interval']} steps.", "", machine_line(entry)]


def render(entries: list[dict[str, Any]]) -> Rendered:
    """Return the newest profile of each device, CPU first."""
    lines: list[str] = []
    for number, device in enumerate(("cpu", "cuda")):
        newest = next((e for e in reversed(entries) if e.get("bench") == "profile_step"
                       and e.get("device", "cpu") == device), None)
        if newest is not None:
            lines += ([""] if number else []) + [f"### {device.upper()}", ""] + profile_section(newest, entries)
    return lines, []


SECTION = Section("profile_step", "Where a training step's time goes", render, optional=True)
