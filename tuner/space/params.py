"""The ``params:`` section of a search-space file: each searched parameter, its range and the config keys it sets.

Every bound, default and choice must make a valid trainer config: the trainer's own checks
(``TrainConfig.replace``) are run on each, so a space never samples a value the trainer refuses.
"""

from __future__ import annotations

import re
from typing import Any

from trainer.config import CONFIG_KEYS, TrainConfig
from trainer.errors import ConfigError
from tuner.space.spec import ParamSpec
from tuner.space.yamlfile import Located, mapping, number

__all__ = ["check_against_config", "check_values", "config_fields", "parse_params"]


_PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "default", "targets"}


def config_fields() -> set[str]:
    return set(CONFIG_KEYS)


def check_against_config(overrides: dict[str, Any], base: TrainConfig, keys: tuple, loc: Located) -> None:
    """Raise SpaceError at ``keys`` when ``overrides`` make an invalid TrainConfig."""
    try:
        base.replace(**overrides)
    except ConfigError as err:
        detail = str(err).split(": ", 1)[-1]
        raise loc.error(keys, detail) from None


def _parse_param(name: str, raw: Any, loc: Located, fields: set[str]) -> ParamSpec:
    keys = ("params", name)
    item = mapping(raw, keys, loc, _PARAM_KEYS)
    kind = item.get("type")
    if kind is None:
        kind = "categorical" if "choices" in item else ("int" if all(
            isinstance(item.get(k), int) and not isinstance(item.get(k), bool) for k in ("low", "high")) else "float")
    if kind not in ("float", "int", "categorical"):
        raise loc.error(keys + ("type",), f"must be float, int or categorical, got {kind!r}")
    targets = item.get("targets", [name])
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise loc.error(keys + ("targets",), "must be a TrainConfig key or a non-empty list of them")
    for i, target in enumerate(targets):
        if target not in fields:
            where = keys + ("targets", i) if "targets" in item else keys
            hint = "" if "targets" in item else " (add 'targets:' to map it onto TrainConfig keys)"
            raise loc.error(where, f"'{target}' is not a TrainConfig key{hint}")
    has_default = "default" in item
    default = item.get("default")
    if kind == "categorical":
        for key in ("low", "high", "log", "step"):
            if key in item:
                raise loc.error(keys + (key,), "not allowed for a categorical parameter")
        choices = item.get("choices")
        if not isinstance(choices, list) or not choices:
            raise loc.error(keys + ("choices",), "must be a non-empty list")
        for i, choice in enumerate(choices):
            if not (choice is None or isinstance(choice, (str, int, float, bool))):
                raise loc.error(keys + ("choices", i), f"must be a plain value, got {type(choice).__name__}")
        if len({repr(c) for c in choices}) != len(choices):
            raise loc.error(keys + ("choices",), "has duplicates")
        if has_default and default not in choices:
            raise loc.error(keys + ("default",), f"{default!r} is not one of the choices")
        return ParamSpec(name, kind, tuple(targets), choices=tuple(choices), default=default,
                         has_default=has_default)
    if "choices" in item:
        raise loc.error(keys + ("choices",), f"not allowed for a {kind} parameter")
    for key in ("low", "high"):
        if key not in item:
            raise loc.error(keys, f"missing '{key}'")
    integer = kind == "int"
    low = number(item["low"], keys + ("low",), loc, integer=integer)
    high = number(item["high"], keys + ("high",), loc, integer=integer)
    if low >= high:
        raise loc.error(keys + ("high",), f"must be above low ({low!r}), got {high!r}")
    log = item.get("log", False)
    if not isinstance(log, bool):
        raise loc.error(keys + ("log",), f"must be true or false, got {log!r}")
    if log and low <= 0:
        raise loc.error(keys + ("low",), f"must be > 0 on a log scale, got {low!r}")
    step = item.get("step")
    if step is not None:
        step = number(step, keys + ("step",), loc, integer=integer, positive=True)
        if log:
            raise loc.error(keys + ("step",), "cannot be combined with log: true")
        if step > high - low:
            raise loc.error(keys + ("step",), f"is larger than the range {low!r}..{high!r}")
    if has_default:
        default = number(default, keys + ("default",), loc, integer=integer)
        if not low <= default <= high:
            raise loc.error(keys + ("default",), f"{default!r} is outside {low!r}..{high!r}")
        if step is not None and abs(round((default - low) / step) * step - (default - low)) > 1e-9 * max(1, abs(high)):
            raise loc.error(keys + ("default",), f"{default!r} is not on the grid low + k*step")
        default = int(default) if integer else float(default)
    return ParamSpec(name, kind, tuple(targets), low=low, high=high, log=log, step=step, default=default,
                     has_default=has_default)


def parse_params(data: dict, loc: Located, fields: set[str]) -> tuple[ParamSpec, ...]:
    raw = data.get("params")
    if raw is None:
        raise loc.error(("params",), "missing: a search space needs at least one parameter")
    mapping(raw, ("params",), loc)
    if not raw:
        raise loc.error(("params",), "a search space needs at least one parameter")
    params = []
    written: dict[str, str] = {}
    for name, item in raw.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", name):
            raise loc.error(("params", name), "parameter names must be plain identifiers")
        spec = _parse_param(name, item, loc, fields)
        for target in spec.targets:
            if target in written:
                raise loc.error(("params", name), f"'{target}' is already set by parameter '{written[target]}'")
            written[target] = name
        params.append(spec)
    return tuple(params)


def check_values(space_params: tuple[ParamSpec, ...], base: TrainConfig, fixed: dict, loc: Located) -> None:
    """Every bound, default and choice must make a valid TrainConfig (the trainer's own checks)."""
    for spec in space_params:
        values = list(spec.choices) if spec.kind == "categorical" else [spec.low, spec.high]
        if spec.has_default:
            values.append(spec.default)
        for value in values:
            check_against_config({**fixed, **{t: value for t in spec.targets}}, base, ("params", spec.name), loc)

