"""The one door to what Optuna does not publish: every use of its private API is here, and only here.

Optuna's public API has no way to name a trial outside the process that asked for it, nor to
reach a study's storage, nor to run code inside the transaction that creates a trial. The tuner
needs all three: the child process of a trial reports to it by id (``tuner.trial.child``), the
lease keeps its heartbeat in the storage (``tuner.fleet.lease``), and a queued retry must be
created once even when its creation is retried after a lost acknowledgement
(``tuner.study.resilience``). Each reach into Optuna's internals is a small function or class
here, and ``tests/tuner/test_optuna_api.py`` pins every one of them, so an Optuna release that
moves one fails that test by name instead of failing a study at run time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState

if TYPE_CHECKING:
    from optuna import Study, Trial
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

__all__ = ["CREATE_KEY_ATTR", "KeyedRDBStorage", "fail_running_trial", "keyed_trial", "rdb_engine", "storage_of",
           "study_id", "trial_id"]

CREATE_KEY_ATTR = "create_key"  # system attribute of a template trial: the study holds one trial per key


def storage_of(study: Study) -> BaseStorage:
    """Return the storage ``study`` reads and writes (``Study._storage``)."""
    return study._storage


def study_id(study: Study) -> int:
    """Return ``study``'s id in its storage (``Study._study_id``)."""
    return study._study_id


def trial_id(trial: Trial | FrozenTrial) -> int:
    """Return the storage id of ``trial`` (``_trial_id``), the one handle another process can use for it."""
    return trial._trial_id


def rdb_engine(storage: BaseStorage) -> Engine | None:
    """Return the SQLAlchemy engine behind ``storage`` (a study's storage wraps its RDBStorage in a cache,
    ``_CachedStorage._backend``), or None for a storage without a database (journal file, in memory)."""
    backend = getattr(storage, "_backend", storage)
    return backend.engine if isinstance(backend, RDBStorage) else None


def fail_running_trial(storage: BaseStorage, trial: int, key: str, value: Any) -> bool:
    """Fail the RUNNING trial ``trial`` (its storage id) and store its user attribute ``key`` in one step.

    Returns False, writing nothing, when the trial was no longer running. On a database both writes
    are one transaction under the trial row's lock (``RDBStorage`` internals: its scoped session,
    ``TrialModel.find_or_raise_by_id`` and ``_set_trial_attr_without_commit``): of two workers
    failing one trial, the loser can never overwrite the winner's attribute, and Optuna refuses any
    attribute once the trial has finished, so it cannot be written after the state either. Storages
    without transactions (a journal file, memory) write the attribute, then compare and set.
    """
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, RDBStorage):
        if storage.get_trial(trial).state != TrialState.RUNNING:
            return False
        storage.set_trial_user_attr(trial, key, value)
        return storage.set_trial_state_values(trial, TrialState.FAIL)
    with _create_scoped_session(backend.scoped_session) as session:
        row = models.TrialModel.find_or_raise_by_id(trial, session, for_update=True)
        if row.state != TrialState.RUNNING:
            return False
        backend._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial, key, value)
        row.state = TrialState.FAIL
        row.datetime_complete = datetime.now()
    return True


def keyed_trial(session: Session, study: int, template_trial: FrozenTrial | None) -> models.TrialModel | None:
    """Return the trial of study ``study`` that holds ``template_trial``'s creation key, if one does.

    Reads Optuna's table models (``optuna.storages._rdb.models``) inside the creating transaction.
    """
    key = template_trial.system_attrs.get(CREATE_KEY_ATTR) if template_trial is not None else None
    if key is None:
        return None
    attr = models.TrialSystemAttributeModel
    return (session.query(models.TrialModel).join(attr, attr.trial_id == models.TrialModel.trial_id)
            .filter(models.TrialModel.study_id == study, attr.key == CREATE_KEY_ATTR,
                    attr.value_json == json.dumps(key))
            .order_by(models.TrialModel.trial_id).first())


class KeyedRDBStorage(RDBStorage):
    """RDBStorage that creates at most one trial per creation key (``CREATE_KEY_ATTR``) in a study.

    Overrides ``RDBStorage._get_prepared_new_trial``, which ``create_new_trial`` runs inside its
    transaction after it locked the study row: the check and the insert are one step for every
    worker, on PostgreSQL and SQLite alike.
    """

    def _get_prepared_new_trial(self, study_id: int, template_trial: FrozenTrial | None,
                                session: Session) -> models.TrialModel:
        existing = keyed_trial(session, study_id, template_trial)
        if existing is not None:
            return existing
        return super()._get_prepared_new_trial(study_id, template_trial, session)
