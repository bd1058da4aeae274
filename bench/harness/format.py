"""How the report writes figures: numbers, percentages, spreads over seeds, tables, the machine line."""

from __future__ import annotations

from typing import Any


def num(value: float | None, digits: int = 3) -> str:
    """Return ``value`` rounded to ``digits`` significant decimals, or an en dash for None."""
    if value is None:
        return "–"
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def pct(value: float | None) -> str:
    """Return a share in [0, 1] as a percentage with one decimal (en dash for None)."""
    return "–" if value is None else f"{100 * value:.1f}%"


def reached(spread: dict[str, Any], limit: int) -> str:
    """Return "median (min–max)" of a steps-or-seconds spread, saying how many runs never got there."""
    total = spread["n"] + (spread.get("missing") or 0)
    if spread["n"] == 0:
        return f"not within {limit} steps" + (f" (0 of {total})" if total > 1 else "")
    text = num(spread["median"], 1)
    if spread["n"] > 1 and spread["min"] != spread["max"]:
        text += f" ({num(spread['min'], 1)}–{num(spread['max'], 1)})"
    if spread.get("missing"):
        text += f"; {spread['missing']} of {total} runs not within {limit} steps"
    return text


def value_spread(spread: dict[str, Any], as_pct: bool = False) -> str:
    """Return "median (min–max)" of a value spread."""
    show = pct if as_pct else num
    if spread["n"] == 0:
        return "–"
    text = show(spread["median"])
    if spread["n"] > 1 and spread["min"] != spread["max"]:
        text += f" ({show(spread['min'])}–{show(spread['max'])})"
    return text


def when(spread: dict[str, Any], limit: int) -> str:
    """Return "at step X (range)" for a steps spread, or "not within LIMIT steps" when no run got there."""
    return f"at step {reached(spread, limit)}" if spread["n"] else f"not within {limit} steps"


def machine_line(entry: dict[str, Any]) -> str:
    """Return where and how an entry was measured, for the line under its table."""
    m = entry.get("machine", {})
    where = m.get("gpu") or ("CPU only" + (f", {m['cpu_count']} cores" if m.get("cpu_count") else ""))
    load = ""
    if m.get("load_at_start"):
        peak = m.get("load_peak")  # entries before the sampler existed have only the two ends
        highest = max(m["load_at_start"][0], m["load_at_end"][0], peak if peak is not None else 0.0)
        load = (f" Load average (1 min) {num(m['load_at_start'][0], 1)} at the start, "
                f"{num(m['load_at_end'][0], 1)} at the end"
                + (f", {num(peak, 1)} at its highest in between" if peak is not None else "")
                + (" (other work shared the cores)." if highest > (m.get("cpu_count") or 1) + 0.5 else "."))
    return (f"Machine: {where}; {m.get('platform', '?')}; torch {m.get('torch', '?')}.{load} "
            f"Command: `{entry.get('command', '?')}`")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
