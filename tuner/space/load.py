"""Search-space files: YAML -> validated ``SearchSpace`` -> Optuna distributions and trainer configs.

A space file has four top-level keys (see ``search_spaces/README.md`` for the full format):

``study``
    name, objective, sampler, pruner, n_trials, max_steps (per-trial step budget),
    quality gates, fine_tune / warm_start, trial_timeout, stall_timeout, samples, max_retries,
    max_consecutive_failures.
``preset``
    the trainer preset the trials start from (``tiny`` or ``base``).
``fixed``
    TrainConfig keys every trial gets (validated by the trainer's own ``config_from_dict``).
``params``
    the searched parameters. A parameter sets the TrainConfig key of its own name, or
    the keys listed in ``targets`` (``dropout: {targets: [prenet_dropout]}``).

Everything is checked before anything is written: a problem raises ``SpaceError`` with
``file:line: key.path: problem`` (the line comes from the YAML parser's nodes, ``tuner.space.yamlfile``;
numbers read as in the trainer's config files, so ``1e-4`` is a float). The ``study`` section is
read by ``tuner.space.study_section``, the ``params`` section by ``tuner.space.params``; this
module reads the file, the preset and the fixed keys, and puts the space together.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

from trainer.config import PRESETS, preset
from trainer.errors import ConfigError
from trainer.presets import DEFAULT_PRESET
from tuner.errors import SpaceError
from tuner.space.params import check_against_config, check_values, config_fields, parse_params
from tuner.space.spec import SearchSpace
from tuner.space.study_section import check_builds, parse_study
from tuner.space.yamlfile import Located, load_yaml, mapping

__all__ = ["SPACES_PACKAGE", "spaces_dir", "SPACES_DIR", "shipped_spaces", "resolve_space_path", "with_vocoder",
           "load_space"]


SPACES_PACKAGE = "tuner.search_spaces"  # the shipped spaces: package data mapped onto search_spaces/


# A source checkout run without installing it (PYTHONPATH=.), or an editable install made before
# the spaces became package data, has no tuner.search_spaces; the files sit beside the package.
_CHECKOUT_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def spaces_dir() -> Path:
    """Return the folder of the shipped search spaces (``default.yaml``, ``scratch.yaml``, their README).

    Found through ``importlib.resources`` in the installed package (wheel or editable), so a
    bare space name resolves from any working directory; pip unpacks wheels, so the package
    data is always a real folder.
    """
    try:
        folder = resources.files(SPACES_PACKAGE)
    except ModuleNotFoundError:
        return _CHECKOUT_SPACES
    return Path(str(folder))


SPACES_DIR = spaces_dir()


_PATH_KEYS = ("vocoder", "vocoder_config")  # fixed keys naming files, resolved relative to the space file


_TOP_KEYS = {"study", "preset", "fixed", "params", "description"}


# TrainConfig keys the tuner sets itself: best.pt from the objective, the controller's hands off the params.
_SET_BY_THE_TUNER = {"best_metric": "is set by study.objective (best.pt is the objective's best validation)",
                     "controller_frozen_keys": "is set by the tuner: the keys the space samples are the tuner's"}


def _resolved_file(value: str, space_file: Path, loc: Located, where: tuple[str, ...]) -> str:
    """Return the file ``value`` names (``hifigan:`` kept), made absolute relative to the space file.

    A trial runs in its own folder, maybe on another worker: a path relative to the space
    file is the only spelling that means the same file everywhere the space is read.
    """
    prefix = "hifigan:" if value.startswith("hifigan:") else ""
    if value == "griffin-lim" or (not prefix and where[-1] == "vocoder"):
        return value  # not a file (a bad vocoder name is the trainer's check to report)
    file = (space_file.parent / value[len(prefix):]).resolve()
    if not file.is_file():
        raise loc.error(where, f"file not found: {file}")
    return prefix + str(file)


def shipped_spaces() -> list[str]:
    """Return the names of the shipped search spaces (file stems, sorted)."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def resolve_space_path(name: str | Path) -> Path:
    """Return the space file for ``name``: an existing path, else the shipped ``NAME`` (``.yaml`` optional).

    An existing file always wins over a shipped space of the same name; the shipped ones live in
    ``spaces_dir()``, whatever the working directory.
    """
    path = Path(name)
    if path.is_file():
        return path
    if len(path.parts) == 1:
        for candidate in (SPACES_DIR / path.name, SPACES_DIR / f"{path.name}.yaml"):
            if candidate.is_file():
                return candidate
    return path  # load_space reports it as not found


def with_vocoder(space: SearchSpace, vocoder: str, vocoder_config: Path | None) -> SearchSpace:
    """Return ``space`` whose trials vocode with ``vocoder`` (``hifigan:GENERATOR``, or ``griffin-lim``).

    The command's choice replaces the space's ``fixed`` vocoder; files are made absolute
    (relative to the current folder, where the user typed them). SpaceError names the flag.
    """
    prefix = "hifigan:" if vocoder.startswith("hifigan:") else ""
    fixed = dict(space.fixed)
    if prefix:
        generator = Path(vocoder[len(prefix):]).expanduser().resolve()
        if not generator.is_file():
            raise SpaceError(f"--vocoder: file not found: {generator}")
        fixed["vocoder"] = prefix + str(generator)
    else:
        fixed["vocoder"] = vocoder
    if vocoder_config is not None:
        config_file = Path(vocoder_config).expanduser().resolve()
        if not config_file.is_file():
            raise SpaceError(f"--vocoder-config: file not found: {config_file}")
        fixed["vocoder_config"] = str(config_file)
    else:
        fixed.pop("vocoder_config", None)
    for spec in space.params:
        if set(spec.targets) & set(_PATH_KEYS):
            raise SpaceError(f"--vocoder: {space.path.name} searches the vocoder (parameter '{spec.name}')")
    try:
        preset(space.preset).replace(**{k: fixed[k] for k in _PATH_KEYS if k in fixed})
    except ConfigError as err:
        raise SpaceError(f"--vocoder: {str(err).split(': ', 1)[-1]}") from None
    return replace(space, fixed=fixed)


def load_space(name: str | Path) -> SearchSpace:
    """Return the validated search space of file ``name`` (a bare name: a shipped space, ``spaces_dir()``).

    Raises SpaceError (``file:line: key: problem``) for any malformed part; nothing is written.
    """
    path = resolve_space_path(name)
    if len(path.parts) == 1 and not path.exists():
        raise SpaceError(f"{path}: search-space file not found (neither a file here nor a shipped space: "
                         f"{', '.join(shipped_spaces())})")
    data, loc, text = load_yaml(path, "search-space file", SpaceError)
    if data is None:
        raise loc.error((), "the file is empty")
    mapping(data, (), loc, _TOP_KEYS)
    preset_name = data.get("preset", DEFAULT_PRESET)
    if preset_name not in PRESETS:
        raise loc.error(("preset",), f"must be one of {', '.join(PRESETS)}, got {preset_name!r}")
    fields = config_fields()
    fixed = dict(mapping(data.get("fixed", {}) or {}, ("fixed",), loc))
    for key in fixed:
        if key not in fields:
            raise loc.error(("fixed", key), "not a TrainConfig key")
        if key in _SET_BY_THE_TUNER:
            raise loc.error(("fixed", key), _SET_BY_THE_TUNER[key])
    for key in _PATH_KEYS:
        if isinstance(fixed.get(key), str):
            fixed[key] = _resolved_file(fixed[key], path, loc, ("fixed", key))
    base = preset(preset_name)
    for key, value in fixed.items():
        # The vocoder and its config are only valid together.
        together = {k: fixed[k] for k in _PATH_KEYS if k in fixed} if key in _PATH_KEYS else {key: value}
        try:
            base.replace(**together)
        except ConfigError as err:
            raise loc.error(("fixed", key), str(err).split(": ", 1)[-1]) from None
    study = parse_study(data, loc, path)
    params = parse_params(data, loc, fields)
    for spec in params:
        for target in spec.targets:
            if target in fixed:
                raise loc.error(("fixed", target), f"is also set by parameter '{spec.name}'")
    check_values(params, base, fixed, loc)
    if study.max_steps is not None:
        check_against_config({**fixed, "max_steps": study.max_steps}, base, ("study", "max_steps"), loc)
    if study.objective.multi and study.sampler["name"] in ("cmaes",):
        raise loc.error(("study", "sampler", "name"), "cmaes does not support several objectives")
    check_builds(study, loc)
    return SearchSpace(path=path.resolve(), study=study, preset=preset_name, fixed=fixed, params=params, text=text)

