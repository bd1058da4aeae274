"""bench/throughput.py's record and its section: each preset's step on the CPU and on CUDA, the feature cache,
the GPU target, and Coqui's Tacotron2 side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from harness.format import machine_line, num, pct, table
from harness.results import Entry
from harness.section import Rendered, Section

from trainer.presets import PRESETS

if TYPE_CHECKING:
    from typing_extensions import NotRequired


class PresetRow(TypedDict):
    """One preset's training figures (bench/throughput.py train_figures)."""

    preset: str
    steps_timed: int
    batch_size: int
    threads: NotRequired[int]  # absent in entries before the column
    grad_accum_steps: int
    reduction_factor: int
    median_sec_per_step: float
    mel_frames_per_s: float
    data_wait_share: float  # of the step time
    median_data_wait_s: float
    amp: bool
    amp_dtype: NotRequired[str]  # CUDA only
    peak_gpu_mib: NotRequired[int]  # CUDA only
    process_peak_rss_mib: NotRequired[int]  # the bench process's running maximum after this preset
    frames_per_s_vs_coqui: NotRequired[float]  # CPU runs that trained Coqui too


class CacheFigures(TypedDict):
    """Loading the corpus with an empty and a filled feature cache, and computing one batch's mels."""

    utterances: int
    load_s_cold_cache: float
    load_s_warm_cache: float
    batch_mel_compute_s: float
    batch_size: int


class ThroughputRecord(Entry):
    """One run of bench/throughput.py."""

    device: str
    utterances: int
    cache: CacheFigures
    presets: list[PresetRow]
    coqui: NotRequired[dict[str, Any]]  # CPU only: Coqui's figures, or {"skipped": why}
    wall_s: float


PRESET_ORDER = {name: k for k, name in enumerate(PRESETS)}
COQUI_TARGET_RATIO = 1.3  # the base preset's mel frames/s against Coqui's Tacotron2, batch 16, r = 1
GPU_TARGET_FRAMES_S = 31_500  # NVIDIA's published Tacotron2 training throughput per A100 (TF32, batch 128)


def newest_per_preset(entries: list[dict[str, Any]],
                      device: str = "cpu") -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (preset row, its entry) of bench/throughput.py on ``device``: each (preset, batch)'s newest
    figures; a run of one preset does not hide the others."""
    newest: dict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = {}
    for entry in entries:
        if entry.get("bench") != "throughput" or entry.get("device", "cpu") != device:
            continue
        for row in entry["presets"]:
            newest[(row["preset"], row["batch_size"] * row["grad_accum_steps"])] = (row, entry)
    return [newest[key] for key in sorted(newest, key=lambda k: (PRESET_ORDER.get(k[0], 9), k[1]))]


def base_128_readings(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return every (preset row, entry) of the base preset at batch 128 on CUDA, oldest first."""
    return [(p, e) for e in entries if e.get("bench") == "throughput" and e.get("device") == "cuda"
            for p in e["presets"] if p["preset"] == "base" and p["batch_size"] * p["grad_accum_steps"] == 128]


def throughput_rows(chosen: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[list[str]]:
    """Return one table row per (preset row, entry)."""
    return [[p["preset"], e.get("machine", {}).get("gpu") or "CPU", f"{p['batch_size']} × {p['grad_accum_steps']}",
             str(p["reduction_factor"]), str(p.get("threads", "–")), num(p["median_sec_per_step"]),
             num(p["mel_frames_per_s"], 0),
             pct(p["data_wait_share"]), p.get("amp_dtype", "on") if p["amp"] else "off",
             num(p.get("peak_gpu_mib")), e.get("machine", {}).get("revision") or "–"] for p, e in chosen]


def cache_lines(cpu_entries: list[dict[str, Any]], cpu: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    """Return the feature cache's paragraph, from the newest CPU entry (nothing without one)."""
    if not (cpu_entries and cpu):
        return []
    cache = cpu_entries[-1]["cache"]
    tiny = next((p for p, _ in cpu if p["preset"] == "tiny"), cpu[0][0])
    return ["", f"Feature cache ({cache['utterances']} utterances): loading the corpus took "
                f"{num(cache['load_s_cold_cache'], 2)} s with an empty cache and "
                f"{num(cache['load_s_warm_cache'], 2)} s with a filled one. The trainer holds every mel in "
                "memory, so steps wait the same with or without it; a loader without a cache would compute "
                f"each batch's mels, {num(cache['batch_mel_compute_s'])} s for {cache['batch_size']} "
                f"utterances ({pct(cache['batch_mel_compute_s'] / tiny['median_sec_per_step'])} of a "
                f"{tiny['preset']} step on the CPU)."]


def gpu_target_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Return the GPU target's paragraph with every base-at-128 reading (nothing without one)."""
    base_128 = base_128_readings(entries)
    if not base_128:
        return []
    readings = "; ".join(f"{p['mel_frames_per_s']:,.0f} on {e['machine'].get('gpu') or 'a GPU'} "
                         f"({p['steps_timed']} steps timed, "
                         f"{'meets' if p['mel_frames_per_s'] >= GPU_TARGET_FRAMES_S else 'below'})"
                         for p, e in base_128)
    return ["", f"GPU target: the base preset at batch 128 should train at least {GPU_TARGET_FRAMES_S:,} mel "
                "frames/s on one H100, NVIDIA's published per-A100 figure for their Tacotron2 (TF32, batch "
                f"128). Every reading, oldest first: {readings}. The spread between runs on one machine "
                "is the noise to read them by."]


def throughput_section(entries: list[dict[str, Any]]) -> list[str]:
    """Return the report lines of bench/throughput.py: each preset's newest figures on the CPU and on CUDA."""
    cpu, gpu = newest_per_preset(entries, "cpu"), newest_per_preset(entries, "cuda")
    lines = table(["Preset", "Device", "Batch × accumulation", "r", "Threads", "s/step (median)", "Mel frames/s",
                   "Data wait", "AMP", "Peak GPU MiB", "Revision"], throughput_rows(cpu + gpu))
    cpu_entries = [e for e in entries if e.get("bench") == "throughput" and e.get("device", "cpu") == "cpu"]
    lines += cache_lines(cpu_entries, cpu) + gpu_target_lines(entries)
    # The newest run that trained Coqui: a later run without its environment hides no comparison.
    tried = [e for e in cpu_entries if "coqui" in e]
    side = [e for e in tried if "skipped" not in e["coqui"]] or tried[-1:]
    if side:
        lines += ["", *coqui_lines(side[-1])]
    lines.append("")
    used: list[dict[str, Any]] = []
    for _, entry in [*cpu, *([(None, cpu_entries[-1])] if cpu_entries else []), *([(None, side[-1])] if side else []),
                     *gpu]:
        if entry not in used:
            used.append(entry)
            lines += [machine_line(entry), ""]
    return lines[:-1]


def coqui_lines(entry: dict[str, Any]) -> list[str]:
    """Return the side-by-side lines of a bench/throughput.py entry that ran (or skipped) Coqui's Tacotron2."""
    coqui = entry["coqui"]
    if "skipped" in coqui:
        return [f"Side by side with Coqui TTS's Tacotron2: not run in the newest comparison ({coqui['skipped']})."]
    rows = [[f"ours, {p['preset']}", f"{p['batch_size']} × {p['grad_accum_steps']}", str(p["reduction_factor"]),
             num(p["median_sec_per_step"], 2), num(p["mel_frames_per_s"], 0), f"{num(p['frames_per_s_vs_coqui'], 2)}×",
             num(p.get("process_peak_rss_mib"), 0)] for p in entry["presets"]]
    rows.append([f"Coqui TTS {coqui['coqui_tts']} Tacotron2 ({coqui['parameters'] / 1e6:.1f} M parameters)",
                 f"{coqui['batch_size']} × 1", str(coqui["reduction_factor"]), num(coqui["median_sec_per_step"], 2),
                 num(coqui["mel_frames_per_s"], 0), "1×", num(coqui.get("peak_rss_mib"), 0)])
    lines = [f"Side by side with Coqui TTS's Tacotron2, one run on the same {entry['utterances']}-utterance corpus "
             f"(Coqui trained for a wall-clock budget with its own trainer, {coqui['steps_timed']} steps timed; its "
             "step time excludes data loading, ours includes it). Peak RSS: ours is the bench process's running "
             "maximum after each preset, Coqui's its own process's.", ""]
    lines += table(["Trainer", "Batch × accumulation", "r", "s/step (median)", "Mel frames/s", "Frames/s vs Coqui",
                    "Peak RSS MiB"], rows)
    base = [p for p in entry["presets"] if p["preset"] == "base" and p["batch_size"] * p["grad_accum_steps"] == 16]
    if base:
        ratio = base[-1]["frames_per_s_vs_coqui"]
        lines += ["", f"Target: the base preset at batch 16, r = 1, at least {COQUI_TARGET_RATIO}× Coqui's mel "
                      f"frames/s. Measured {num(ratio, 2)}×: " + ("met." if ratio >= COQUI_TARGET_RATIO else
                                                               "**not met**.")]
    return lines


def headline(entries: list[dict[str, Any]]) -> list[str]:
    """Return the README lines: the tiny step on the CPU, and every base-at-128 reading on a GPU."""
    lines = []
    cpu_rows = newest_per_preset(entries, "cpu")
    if cpu_rows:
        tiny = cpu_rows[0][0]
        lines.append(f"- Throughput ({tiny['preset']} preset, CPU): "
                     f"{num(tiny['median_sec_per_step'])} s/step, {num(tiny['mel_frames_per_s'], 0)} mel "
                     f"frames/s, {pct(tiny['data_wait_share'])} of step time waiting for data.")
    gpu_rows = base_128_readings(entries)
    if gpu_rows:
        row, gpu_entry = gpu_rows[-1]
        readings = ", ".join(f"{p['mel_frames_per_s']:,.0f}" for p, _ in gpu_rows)
        lines.append(f"- GPU ({gpu_entry['machine'].get('gpu')}, {row.get('amp_dtype', 'AMP')}): "
                     f"base preset at batch 128, {readings} mel frames/s in "
                     f"{len(gpu_rows)} run{'s' if len(gpu_rows) > 1 else ''}; NVIDIA's published "
                     f"per-A100 Tacotron2 figure is {GPU_TARGET_FRAMES_S:,}.")
    return lines


def render(entries: list[dict[str, Any]]) -> Rendered:
    return throughput_section(entries), headline(entries)


SECTION = Section("throughput", "3. Throughput", render)
