"""bench/scale.py's record and its section: memory per hour of audio, the 24-hour projection, s/step at scale."""

from __future__ import annotations

from typing import Any, TypedDict

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Section


class CorpusRow(TypedDict):
    """One corpus, loaded and trained in fresh processes."""

    utterances: int
    audio_hours: float
    mel_mib: float
    mel_mib_per_hour: float
    rss_added_by_dataset_mib: float
    load_s_cold_cache: float
    load_s_warm_cache: float
    median_sec_per_step: float
    steps_timed: int
    trial_peak_rss_mib: float


class ScaleRecord(Entry):
    """One run of bench/scale.py: the 300-utterance corpus and a large one."""

    corpora: list[CorpusRow]
    corpus_build_s: float
    mel_mib_per_hour: float
    projected_24h_gb: float
    feature_budget_gb: float
    fits_in_memory: bool
    step_ratio_large_vs_small: float
    load_ratio_large_vs_small: float
    wall_s: float


def scale_section(entry: dict[str, Any]) -> list[str]:
    """Return the report lines of bench/scale.py: memory per hour of audio, the 24-hour projection, s/step."""
    rows = [[str(r["utterances"]), num(r["audio_hours"], 2), num(r["load_s_cold_cache"], 2),
             num(r["load_s_warm_cache"], 2), num(r["mel_mib"], 1), num(r["rss_added_by_dataset_mib"], 1),
             num(r["median_sec_per_step"]), num(r["trial_peak_rss_mib"], 0)] for r in entry["corpora"]]
    sizes = " and ".join(str(r["utterances"]) for r in entry["corpora"])
    lines = [f"Measured with bench/scale.py: eSpeak corpora of {sizes} utterances, each loaded and then trained "
             "(tiny preset, CPU) in fresh processes.", ""]
    lines += table(["Utterances", "Audio h", "Load s (empty cache)", "Load s (filled)", "Mels MiB",
                    "RSS added by the data MiB", "s/step (median)", "Trial peak RSS MiB"], rows)
    verdict = "fits" if entry["fits_in_memory"] else "does not fit: a memory-mapped cache is needed"
    lines += ["", f"Mels take {num(entry['mel_mib_per_hour'], 1)} MiB per hour of audio, so a 24-hour corpus "
                  f"(LJSpeech's size) holds {num(entry['projected_24h_gb'], 2)} GB in memory: it {verdict} within "
                  f"the {num(entry['feature_budget_gb'], 0)} GB allowed. The large corpus's step takes "
                  f"{num(entry['step_ratio_large_vs_small'], 2)}× the small one's (the step does not depend on "
                  "the corpus size; batches are drawn from memory).", "", machine_line(entry)]
    return lines



SECTION = Section.of_newest("scale", "Memory at corpus scale", scale_section, optional=True)
