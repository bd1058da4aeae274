"""With --gpus, trials run one per GPU at a time, each child seeing only its GPU.

The scheduling tests need no GPU: the children fail at once (injected fault), which is enough
to see which GPU each was given and that two ran at the same time. The test marked ``gpu``
trains two trials on GPU 0 for real (skipped without CUDA).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def test_one_trial_per_gpu_at_a_time(tmp_path: Path, tuner_home: Path, short_corpus: Path, runner_builder,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.fleet.worker import Worker
    from tuner.study.timeouts import timeouts

    monkeypatch.setenv("SMART_TUNER_FAULT", "raise")
    study, runner = runner_builder(tmp_path, short_corpus, "gpus", gpus=["3", "5"])
    # Every trial fails at once (not retried): the worker stops after 4 in a row, its two slots busy meanwhile.
    Worker(study, runner, target=4, timeouts=timeouts(), jobs=2, max_consecutive_failures=4,
           say=lambda line: None).run()

    trials = study.trials
    assert len(trials) >= 4
    seen, spans = [], []
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        visible = re.search(r"CUDA_VISIBLE_DEVICES=([^,\s]+)", (run_dir / "worker.log").read_text()).group(1)
        assert visible == trial.user_attrs["gpu"]
        seen.append(visible)
        # The child's life: its job is written just before the spawn, its outcome at its end.
        spans.append(((run_dir / "job.json").stat().st_mtime, (run_dir / "outcome.json").stat().st_mtime, visible))
    assert set(seen) == {"3", "5"}
    # Two at a time: some pair of trials overlapped, and never two on one GPU at once.
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping
    assert all(a[2] != b[2] for a, b in overlapping)


@pytest.mark.parametrize(("text", "per_gpu", "slots"), [
    ("0", 1, ["0"]), ("0,1", 1, ["0", "1"]), ("0:4", 1, ["0#0", "0#1", "0#2", "0#3"]),
    ("0:2,1", 1, ["0#0", "0#1", "1"]), ("1,2", 2, ["1#0", "1#1", "2#0", "2#1"]), (" 3 : 1 ", 1, None),
])
def test_gpu_slots_are_parsed(text: str, per_gpu: int, slots: list[str] | None) -> None:
    from tuner.errors import TunerError
    from tuner.fleet.slots import gpu_of, parse_slots

    if slots is None:
        with pytest.raises(TunerError, match="expected GPU numbers"):
            parse_slots(text, per_gpu)
        return
    assert parse_slots(text, per_gpu) == slots
    assert {gpu_of(s) for s in slots} == {p.split(":")[0].strip() for p in text.split(",")}


@pytest.mark.parametrize(("args", "needle"), [
    (["--gpus", "0:0"], "trials per GPU must be 1..64, got 0"),
    (["--gpus", "0:x"], "expected GPU numbers separated by commas"),
    (["--gpus", "0,0:2"], "GPU 0 is listed twice"),
    (["--gpus", "0:65"], "trials per GPU must be 1..64"),
    (["--gpus", "0", "--trials-per-gpu", "0"], "--trials-per-gpu must be 1..64, got 0"),
])
def test_bad_gpu_slots_are_refused_in_one_line(tmp_path: Path, short_corpus: Path, capsys, args: list[str],
                                               needle: str) -> None:
    from tuner.cli import main

    code = main(["run-study", "--space", "scratch", "--data", str(short_corpus), "--home", str(tmp_path / "h"),
                 *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "h").exists()


def test_a_slot_is_held_by_one_trial_at_a_time() -> None:
    import threading
    import time

    from tuner.fleet.slots import SlotPool, parse_slots, threads_per_trial

    pool = SlotPool(parse_slots("0:3,1") or [])
    assert (pool.size, pool.per_gpu) == (4, 3) and threads_per_trial(pool.size, cores=16) == 4
    holders: dict[str, int] = {}
    overlaps: list[str] = []
    lock = threading.Lock()

    def trial() -> None:
        for _ in range(20):
            slot = pool.take()
            with lock:
                if holders.get(slot):
                    overlaps.append(slot)
                holders[slot] = holders.get(slot, 0) + 1
            time.sleep(0.001)
            with lock:
                holders[slot] -= 1
            pool.give_back(slot)

    threads = [threading.Thread(target=trial) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and set(holders) == {"0#0", "0#1", "0#2", "1"}
    with pytest.raises(ValueError, match="listed twice"):
        SlotPool(["0", "0"])


def test_packed_trials_share_a_gpu_and_one_crashing_leaves_its_neighbours_running(
        tmp_path: Path, tuner_home: Path, short_corpus: Path, runner_builder, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.trial import TrialState

    from tuner.fleet.slots import parse_slots
    from tuner.fleet.worker import Worker
    from tuner.study.timeouts import timeouts

    monkeypatch.setenv("SMART_TUNER_FAULT", "crash@1")
    study, runner = runner_builder(tmp_path, short_corpus, "packed", gpus=parse_slots("4:2"))
    Worker(study, runner, target=3, timeouts=timeouts(), jobs=2, max_retries=0, say=lambda line: None).run()
    by_number = {t.number: t for t in study.trials}
    assert by_number[1].state == TrialState.FAIL and by_number[1].user_attrs["stop_reason"]["kind"] == "crashed"
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 2  # the neighbours of the crashed trial trained on
    for trial in study.trials:
        log = (Path(trial.user_attrs["run_dir"]) / "worker.log").read_text()
        assert "CUDA_VISIBLE_DEVICES=4," in log and trial.user_attrs["gpu"] == "4"
        assert trial.user_attrs["gpu_slot"] in ("4#0", "4#1")
        # The machine's cores are shared out between the two trials of the GPU.
        assert re.search(r"OMP_NUM_THREADS=(\d+)", log).group(1) == str(max(1, len(os.sched_getaffinity(0)) // 2))


def test_threads_never_pop_one_enqueued_trial_twice_on_sqlite(tmp_path: Path) -> None:
    """SQLite ignores SELECT ... FOR UPDATE; without the storage's lock, two GPU threads could run one trial."""
    import collections
    import threading
    import time

    import optuna

    from tuner.study.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for round_ in range(2):
        study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/race{round_}.db"))
        for i in range(16):
            study.enqueue_trial({"x": float(i)})
        seen: collections.Counter = collections.Counter()
        lock = threading.Lock()

        def objective(trial, seen: collections.Counter = seen, lock: threading.Lock = lock) -> float:
            with lock:
                seen[trial.number] += 1
            time.sleep(0.03)
            return trial.suggest_float("x", 0.0, 100.0)

        study.optimize(objective, n_trials=16, n_jobs=4)
        assert sorted(seen) == list(range(16)) and set(seen.values()) == {1}
        assert sorted(t.params["x"] for t in study.trials) == [float(i) for i in range(16)]


def test_claim_takes_a_free_gpu_and_a_dead_worker_frees_it(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tuner.errors import TunerError
    from tuner.fleet.gpuclaim import claim_gpu

    locks = tmp_path / "locks"
    first = claim_gpu(locks, ["0", "1"], "w1")
    second = claim_gpu(locks, ["0", "1"], "w2")
    assert (first.gpu, second.gpu) == ("0", "1")
    with pytest.raises(TunerError, match="all 2 GPU\\(s\\) of this machine are claimed"):
        claim_gpu(locks, ["0", "1"], "w3")
    first.release()
    assert claim_gpu(locks, ["0", "1"], "w4").gpu == "0"

    # Another process holding GPU 2 is SIGKILLed: the kernel drops its lock, the GPU is free again.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from tuner.fleet.gpuclaim import claim_gpu; "
                               "c = claim_gpu(Path(sys.argv[1]), ['2'], 'x'); "
                               "print('held', flush=True); time.sleep(60)", str(locks)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(TunerError):
        claim_gpu(locks, ["2"], "w5")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert claim_gpu(locks, ["2"], "w6").gpu == "2"


def test_claim_without_cuda_is_an_input_error(tmp_path: Path, short_corpus: Path, capsys) -> None:
    from tuner.cli import main

    code = main(["run-study", "--space", "scratch", "--data", str(short_corpus), "--gpus", "claim",
                 "--home", str(tmp_path / "h")])
    assert code == 2
    assert "--gpus claim given but no CUDA device is visible" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


@pytest.mark.gpu
def test_a_two_trial_study_trains_on_gpus_0(tmp_path: Path, short_corpus: Path) -> None:
    import optuna

    space = tmp_path / "gpu.yaml"
    space.write_text(
        "preset: tiny\nstudy:\n  name: gpu\n  objective: val_mel_postnet_l1\n  n_trials: 2\n  max_steps: 4\n"
        "  sampler: {name: random, seed: 1}\n  pruner: {name: none}\n  gates: []\n  samples: 0\n"
        "fixed:\n  val_interval: 2\n  val_size: 4\n  batch_size: 6\n  warmup_steps: 0\n  fr_asr: \"off\"\n"
        "params:\n  learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}\n", encoding="utf-8")
    home = tmp_path / "home"
    env = {**os.environ, "SMART_TUNER_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data",
                           str(short_corpus), "--gpus", "0", "--no-mlflow", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="gpu", storage=f"sqlite:///{home}/optuna.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in study.trials:
        run = Path(trial.user_attrs["run_dir"])
        assert re.search(r"CUDA_VISIBLE_DEVICES=0\b", (run / "worker.log").read_text())
        start = next(r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                     if r["kind"] == "start")
        assert start["device"].startswith("cuda")
