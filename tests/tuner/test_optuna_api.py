"""Each use of Optuna's private API, pinned: an Optuna release that moves one fails here, by name.

``tuner.study.optuna_api`` is the one module allowed to reach into Optuna's internals; the last
test reads the tuner's sources and fails when another module does.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial

import tuner
from tuner.study import optuna_api
from tuner.study.optuna_api import CREATE_KEY_ATTR, KeyedRDBStorage, rdb_engine, storage_of, study_id, trial_id


def _study(tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(storage=KeyedRDBStorage(f"sqlite:///{tmp_path}/pin.db"), study_name="pin")


def test_a_study_shows_its_storage_and_its_id(tmp_path: Path) -> None:
    study = _study(tmp_path)
    storage = storage_of(study)  # Study._storage (Optuna wraps an RDBStorage in a cache that passes calls on)
    assert study_id(study) == storage.get_study_id_from_name("pin")  # Study._study_id
    assert storage.get_all_studies()[0].study_name == "pin"
    # _CachedStorage._backend: the RDBStorage behind the cache, whose engine reads the server's clock.
    assert rdb_engine(storage) is not None and rdb_engine(storage).dialect.name == "sqlite"
    assert rdb_engine(optuna.storages.InMemoryStorage()) is None


def test_a_trial_and_its_frozen_copy_show_their_storage_id(tmp_path: Path) -> None:
    study = _study(tmp_path)
    asked = study.ask()
    expected = storage_of(study).get_trial_id_from_study_id_trial_number(study_id(study), asked.number)
    assert trial_id(asked) == expected  # Trial._trial_id
    assert trial_id(study.trials[0]) == expected  # FrozenTrial._trial_id


def test_the_creating_transaction_can_still_be_entered(tmp_path: Path) -> None:
    # RDBStorage._get_prepared_new_trial(study_id, template_trial, session), run by create_new_trial.
    hook = RDBStorage._get_prepared_new_trial
    assert list(inspect.signature(hook).parameters) == ["self", "study_id", "template_trial", "session"]
    creating = inspect.getsource(RDBStorage.create_new_trial) + inspect.getsource(RDBStorage._create_new_trial)
    assert "_get_prepared_new_trial" in creating
    # ...and the table models it queries keep their columns.
    models = optuna_api.models
    assert {"trial_id", "study_id"} <= set(models.TrialModel.__table__.columns.keys())
    assert {"trial_id", "key", "value_json"} <= set(models.TrialSystemAttributeModel.__table__.columns.keys())
    # Behaviour: one trial per creation key, however often it is added.
    study = _study(tmp_path)
    template = create_trial(state=TrialState.WAITING, system_attrs={CREATE_KEY_ATTR: "retry of trial 7"})
    study.add_trial(template)
    study.add_trial(template)
    assert len(study.trials) == 1


PRIVATE = re.compile(r"\._storage\b|\._trial_id\b|\._study_id\b|_backend\b|optuna\.storages\._|_get_prepared_new_trial|"
                     r"optuna\.trial\.Trial\(|\bTrial\(\w+, ")


def test_no_other_tuner_module_reaches_into_optuna() -> None:
    package = Path(tuner.__file__).resolve().parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "optuna_api.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if PRIVATE.search(code):
                found.append(f"{path.relative_to(package.parent)}:{number}: {line.strip()}")
    assert not found, "Optuna's private API outside tuner/study/optuna_api.py:\n" + "\n".join(found)


def test_a_trial_is_failed_with_its_reason_in_one_transaction(tmp_path: Path) -> None:
    # RDBStorage internals: the scoped session, the row lock and the attribute upsert without a commit.
    from optuna.storages._rdb import storage as rdb

    from tuner.study.optuna_api import fail_running_trial

    assert list(inspect.signature(rdb._create_scoped_session).parameters)[0] == "scoped_session"
    assert "for_update" in inspect.signature(optuna_api.models.TrialModel.find_or_raise_by_id).parameters
    assert list(inspect.signature(RDBStorage._set_trial_attr_without_commit).parameters) == [
        "self", "session", "model_cls", "trial_id", "key", "value"]
    study = _study(tmp_path)
    storage = storage_of(study)
    running = trial_id(study.ask())
    assert fail_running_trial(storage, running, "why", {"kind": "crashed"})
    assert not fail_running_trial(storage, running, "why", {"kind": "timed_out"})  # lost the race: writes nothing
    (failed,) = study.trials
    assert failed.state == TrialState.FAIL and failed.user_attrs["why"] == {"kind": "crashed"}
    assert failed.datetime_complete is not None
