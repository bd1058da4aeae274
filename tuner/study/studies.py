"""Creating or joining a study (the space's sampler, pruner, fingerprint and defaults), and loading one to read."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.study import StudyDirection

from tuner.errors import NothingFound, StorageError
from tuner.space.samplers import make_sampler
from tuner.space.spec import CONFIRM_SUFFIX
from tuner.study.storage import creation_lock, list_study_names, open_storage
from tuner.study.urls import mask_url

if TYPE_CHECKING:
    from tuner.space.spec import SearchSpace


@dataclass
class OpenedStudy:
    """A study ready to optimise, with where it lives."""

    study: optuna.Study
    storage_url: str
    created: bool


def open_study(space: SearchSpace, study_name: str, storage_url: str, max_steps: int,
               pruner: optuna.pruners.BasePruner) -> OpenedStudy:
    """Create the study ``study_name`` or join it when it exists; return it, pruning with ``pruner``.

    A new study stores the space's fingerprint and gets the space's defaults enqueued as its
    first trial. Joining a study made from a different space (other parameters or objective)
    raises StorageError instead of mixing incompatible trials.
    """
    with creation_lock(storage_url):
        return _open_study(space, study_name, storage_url, max_steps, pruner)


def _open_study(space: SearchSpace, study_name: str, storage_url: str, max_steps: int,
                pruner: optuna.pruners.BasePruner) -> OpenedStudy:
    storage = open_storage(storage_url)
    sampler = make_sampler(space.study.sampler)
    directions = list(space.study.objective.directions)
    existing = study_name in list_study_names(storage)
    try:
        study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=study_name,
                                    directions=[StudyDirection[d.upper()] for d in directions],
                                    load_if_exists=True)
    except ValueError as err:
        raise StorageError(f"study {study_name!r}: {err}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(f"study {study_name!r} exists with directions "
                           f"{[d.name.lower() for d in study.directions]}, the space asks for {directions}; "
                           "use another --study name")
    fingerprint = space.fingerprint()
    stored = study.user_attrs.get("space_fingerprint")
    if stored is None:
        study.set_user_attr("space_fingerprint", fingerprint)
        study.set_user_attr("space_file", str(space.path))
        study.set_user_attr("objective", list(space.study.objective.metrics))
        study.set_user_attr("max_steps", max_steps)
    if study.metric_names is None:
        # The dashboard titles its plots with these ("fr_mcd", not "Objective 0").
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(space.study.objective.metrics))
    elif stored != fingerprint:
        raise StorageError(f"study {study_name!r} was made from another search space "
                           f"({study.user_attrs.get('space_file', '?')}): its parameters or objective differ "
                           f"from {space.path.name}; use another --study name")
    if space.study.enqueue_defaults and space.defaults() and not study.get_trials(deepcopy=False):
        study.enqueue_trial(space.defaults(), user_attrs={"origin": "space defaults"}, skip_if_exists=True)
    return OpenedStudy(study, storage_url, created=not existing)


def load_existing_study(storage_url: str, study_name: str | None) -> optuna.Study:
    """Return an existing study (read-only use: status, best, export); the name may be omitted when unique.

    A study's confirmation runs (``NAME:confirm``) do not count: the name may be omitted beside them.
    """
    storage = open_storage(storage_url)
    names = list_study_names(storage)
    if study_name is None:
        studies = [name for name in names if not name.endswith(CONFIRM_SUFFIX)]
        if len(studies) == 1:
            study_name = studies[0]
        elif not studies:
            raise NothingFound(f"storage {mask_url(storage_url)} holds no study yet")
        else:
            raise StorageError(f"storage {mask_url(storage_url)} holds several studies "
                               f"({', '.join(sorted(studies))}); pick one with --study")
    if study_name not in names:
        raise NothingFound(f"no study {study_name!r} in {mask_url(storage_url)} "
                           f"(studies: {', '.join(sorted(names)) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=storage)

