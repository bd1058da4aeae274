"""`tuner confirm` on a two-trial tiny study: runs queued once, paired seeds really paired, the outcome stored."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tuner.cli import main


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory, short_corpus: Path, fast_space_writer) -> dict:
    folder = tmp_path_factory.mktemp("confirm")
    home = folder / "home"
    space = fast_space_writer(folder, study="pair", max_steps=2, samples=0, gates="[]")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT", "SMART_TUNER_HOME", "SMART_TUNER_STORAGE"):
            patch.delenv(name, raising=False)
        common = ["--home", str(home), "--no-mlflow"]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "2",
                         *common]) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["confirm", "--top", "1", "--seeds", "2", *common])
        again = io.StringIO()  # the same command again: nothing left to run, nothing queued twice
        with contextlib.redirect_stdout(again):
            second = main(["confirm", "--top", "1", "--seeds", "2", *common])
        best = io.StringIO()
        with contextlib.redirect_stdout(best):
            assert main(["best", *common]) == 0
    storage = f"sqlite:///{home}/optuna.db"
    return {"home": home, "code": code, "second": second, "out": out.getvalue(), "best": best.getvalue(),
            "study": optuna.load_study(study_name="pair", storage=storage),
            "runs": optuna.load_study(study_name="pair:confirm", storage=storage)}


def test_the_runs_are_the_defaults_and_the_best_other_trial_on_the_same_two_seeds(confirmed: dict) -> None:
    assert confirmed["code"] == 0 and confirmed["second"] == 0, confirmed["out"]
    study, runs = confirmed["study"], confirmed["runs"]
    trials = runs.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)  # queued once, run once
    defaults = study.trials[0].params  # the space's defaults were the study's first trial
    other = study.trials[1]
    by_candidate: dict[str, dict[int, optuna.trial.FrozenTrial]] = {}
    for run in trials:
        by_candidate.setdefault(run.user_attrs["candidate"], {})[run.user_attrs["seed"]] = run
    assert set(by_candidate) == {"defaults", f"trial {other.number}"}
    assert {k: v.params["learning_rate"] for k, v in by_candidate["defaults"].items()} == {
        10000: defaults["learning_rate"], 10001: defaults["learning_rate"]}
    assert all(v.params["learning_rate"] == other.params["learning_rate"]
               for v in by_candidate[f"trial {other.number}"].values())


def _first_step(run: optuna.trial.FrozenTrial) -> tuple[int, dict]:
    run_dir = Path(run.user_attrs["run_dir"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    first = next(json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line).get("kind") == "train")
    return config["seed"], first


def test_paired_runs_start_from_the_same_weights_on_the_same_batches(confirmed: dict) -> None:
    # The first step's gradient depends on the initial weights and the batch only (the learning rate
    # acts on the update after it): equal within a seed, different across seeds.
    pairs: dict[int, list[dict]] = {}
    for run in confirmed["runs"].get_trials():
        seed, first = _first_step(run)
        assert seed == run.user_attrs["seed"]
        pairs.setdefault(seed, []).append(first)
    assert sorted(pairs) == [10000, 10001]
    for records in pairs.values():
        assert len(records) == 2
        assert records[0]["frames"] == records[1]["frames"]
        assert records[0]["grad_norm"] == pytest.approx(records[1]["grad_norm"], rel=1e-6)
    assert pairs[10000][0]["grad_norm"] != pytest.approx(pairs[10001][0]["grad_norm"], rel=1e-6)


def test_the_outcome_is_stored_and_shown(confirmed: dict) -> None:
    outcome = confirmed["study"].user_attrs["confirmation"]
    assert outcome["seeds"] == [10000, 10001] and outcome["direction"] == "minimize"
    (entry,) = outcome["candidates"]
    assert entry["missing"] == 0 and len(entry["scores"]) == 2
    comparison = entry["comparison"]
    runs = {(r.user_attrs["candidate"], r.user_attrs["seed"]): r.value for r in confirmed["runs"].get_trials()}
    assert comparison["differences"] == pytest.approx([runs[(entry["label"], s)] - runs[("defaults", s)]
                                                       for s in (10000, 10001)])
    # Two seeds can never show a difference at 5 % (the smallest one-sided p is 1/4): no confirmed winner.
    assert comparison["p_value"] >= 0.25 and outcome["winner"] is None
    assert "no confirmed winner: no candidate beat the defaults" in confirmed["out"]
    assert "confirmation on 2 paired seeds" in confirmed["best"] and "best trial #" in confirmed["best"]


def test_a_confirmation_is_not_confirmed_again_and_bad_counts_are_refused(confirmed: dict, capsys) -> None:
    home = confirmed["home"]
    assert main(["confirm", "--study", "pair:confirm", "--home", str(home), "--no-mlflow"]) == 2
    assert "'pair:confirm' is a confirmation; name the study it confirms" in capsys.readouterr().err
    assert main(["confirm", "--seeds", "1", "--home", str(home), "--no-mlflow"]) == 2
    assert "--seeds must be >= 2" in capsys.readouterr().err


def test_the_report_of_a_confirmed_study_draws_every_figure(confirmed: dict, tmp_path: Path) -> None:
    from tuner.evidence.report import FIGURES

    out = tmp_path / "report"
    assert main(["report", "--home", str(confirmed["home"]), "--out", str(out)]) == 0
    page = (out / "index.md").read_text()
    for name, (title, _, _) in FIGURES.items():
        if name == "importances":
            continue  # one parameter: nothing to rank, the page says why instead
        assert (out / f"{name}.png").stat().st_size > 1000, name
        assert f"![{title}]({name}.png)" in page
    assert "## Parameter importances" in page
    assert "Best trial (not confirmed): trial" in page and "no confirmed winner" in page
    assert "| trial | val_mel_postnet_l1 | learning_rate | stopped |" in page
