"""docker-compose.yml, Dockerfile and .env.example: the deployment's topology, checked without Docker.

Docker has no engine on these machines, so the compose file is parsed with ``yaml.safe_load``
and interpolated here the way Compose does (``${VAR:-default}``, ``${VAR:?error}``, ``$$``) with
the values of ``.env.example``; the worker's shell command is then run with a stand-in ``tuner``
to see the arguments it really gets, and the PostgreSQL init script runs against the local server.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"postgres", "mlflow", "dashboard", "worker"}
SECRET_VARS = ("POSTGRES_PASSWORD",)

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Return ``value`` (a parsed compose document or part of it) interpolated as Compose does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        present = name in env if op in ("-", "?") else bool(env.get(name))
        if op in ("-", ":-"):
            return env[name] if present else arg
        if op in ("?", ":?"):
            if not present:
                raise KeyError(f"{name}: {arg}")
            return env[name]
        return env.get(name, "")

    return _VARIABLE.sub(one, value)


def env_example() -> dict[str, str]:
    """Return the variables of .env.example."""
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw, env_example())


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_services_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name in ("mlflow", "dashboard", "worker"):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    assert services["worker"]["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    for name in ("postgres", "mlflow", "dashboard"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3, name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_postgres_has_a_volume_and_two_databases(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pgdata" in compose["volumes"]
    env = _environment(postgres)
    assert env["POSTGRES_DB"] == "optuna" and env["MLFLOW_DB"] == "mlflow"
    (init,) = postgres["configs"]
    assert init["target"].startswith("/docker-entrypoint-initdb.d/") and init["target"].endswith(".sh")
    assert 'CREATE DATABASE \\"$MLFLOW_DB\\"' in compose["configs"][init["source"]]["content"]


def test_mlflow_server_uses_postgres_and_an_artifact_volume(compose: dict[str, Any]) -> None:
    from tuner.tracking.runs import check_separate

    mlflow = compose["services"]["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    hosts = command[command.index("--allowed-hosts") + 1].split(",")
    assert {"mlflow", "mlflow:5000", "127.0.0.1:5000", "localhost:5000"} <= set(hosts)
    assert command[command.index("--artifacts-destination") + 1] == "/mlartifacts"
    assert "mlartifacts:/mlartifacts" in mlflow["volumes"]
    backend = _environment(mlflow)["MLFLOW_BACKEND_STORE_URI"]
    assert re.fullmatch(r"postgresql\+psycopg://tuner:[^@]+@postgres:5432/mlflow", backend), backend
    worker_env = _environment(compose["services"]["worker"])
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    optuna_url = worker_env["SMART_TUNER_STORAGE"]
    assert re.fullmatch(r"postgresql://tuner:[^@]+@postgres:5432/optuna", optuna_url), optuna_url
    check_separate(backend, optuna_url)  # two databases of one server: accepted
    assert _environment(compose["services"]["dashboard"])["SMART_TUNER_STORAGE"] == optuna_url


def test_worker_scales_with_one_gpu_each(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # Scaling forbids fixed names and host ports.
    assert "container_name" not in worker and "ports" not in worker
    assert all(compose["services"][name]["init"] is True for name in ("mlflow", "dashboard", "worker"))
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    script = worker["command"][-1]
    assert "tuner run-study" in script and "--gpus claim" in script
    env = _environment(worker)
    assert env["SMART_TUNER_HOME"] == "/studies" and "studies:/studies" in worker["volumes"]
    assert "studies:/studies" in compose["services"]["dashboard"]["volumes"]  # the dashboard's artifacts
    assert f"gpu-locks:{env['SMART_TUNER_GPU_LOCKS']}" in worker["volumes"]


def test_worker_stop_grace_covers_a_checkpoint_save(compose: dict[str, Any]) -> None:
    # Docker kills a container stop_grace_period after SIGTERM; the worker needs the child's save
    # time plus a few storage writes (failing the trials, queueing their resumes) inside it.
    from tuner.trial.supervisor import STOP_GRACE_SECONDS

    text = str(compose["services"]["worker"]["stop_grace_period"])
    seconds = float(text.removesuffix("s")) * (60 if text.endswith("m") else 1)
    assert seconds >= STOP_GRACE_SECONDS + 20


def test_ports_only_on_loopback_and_utc_everywhere(compose: dict[str, Any]) -> None:
    published = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
            published.append(port)
        assert _environment(service).get("TZ") == "UTC", name
        assert "network_mode" not in service, name  # host networking would bypass the loopback binds
    assert len(published) == 3
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "TZ=UTC" in dockerfile and re.search(r"^USER tuner$", dockerfile, re.M)


def test_no_secret_is_written_in_the_compose_file(raw: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    # Any credential in a URL is a variable reference; no literal password anywhere.
    for match in re.finditer(r"://([^:/@\s]+):([^@\s]+)@", text):
        assert match.group(1).startswith("${") and match.group(2).startswith("${"), match.group(0)
    for service in raw["services"].values():
        for key, value in _environment(service).items():
            if "PASSWORD" in key or "SECRET" in key or "TOKEN" in key:
                assert value.startswith("${"), (key, value)
    assert "change-me" not in text.replace("change-me*)", "")  # the placeholder appears only to be refused
    # .env is ignored, only the example is committed, and it names every variable compose reads.
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode
    assert ignored == 0
    tracked_env = subprocess.run(["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked_env.strip() == ""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = {m.group(1) or m.group(4) for m in _VARIABLE.finditer(code) if m.group(0) != "$$"}
    assert used and used <= set(env_example()), sorted(used - set(env_example()))


def test_missing_password_stops_compose(raw: dict[str, Any]) -> None:
    env = env_example()
    del env["POSTGRES_PASSWORD"]
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, env)


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, ["run-study", "--space", "default.yaml", "--gpus", "claim", "--wait-for-storage", "600", "--trials", "20"]),
    ({"TUNER_DATA": "/data/my voice", "TUNER_WARM_START": "/data/base.pt", "TUNER_TRIALS": ""},
     ["run-study", "--space", "default.yaml", "--gpus", "claim", "--wait-for-storage", "600", "--data",
      "/data/my voice", "--warm-start", "/data/base.pt"]),
])
def test_worker_command_builds_the_tuner_arguments(compose: dict[str, Any], tmp_path: Path,
                                                   extra: dict[str, str], expected: list[str]) -> None:
    # A stand-in `tuner` prints its arguments one a line; the real shell runs the compose command.
    fake = tmp_path / "tuner"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    worker = compose["services"]["worker"]
    env = {**_environment(worker), **extra, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run(worker["command"], env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == expected


@pytest.mark.postgres
def test_postgres_init_script_creates_the_mlflow_database(compose: dict[str, Any]) -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    psycopg = pytest.importorskip("psycopg")
    script = compose["configs"]["postgres-init"]["content"]
    name = f"tuner_mlflow_{secrets.token_hex(5)}"
    env = {**os.environ, "POSTGRES_USER": "postgres", "POSTGRES_DB": "test", "MLFLOW_DB": name,
           "PGHOST": "127.0.0.1"}
    try:
        subprocess.run(["sh", "-c", script], env=env, check=True, capture_output=True, timeout=60)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert found is not None
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.mark.parametrize(("password", "starts"), [("change-me-to-a-long-random-string", False),
                                                  ("change-me", False), ("x7Qk2-long-random_Zp9", True)])
def test_the_placeholder_password_is_refused(compose: dict[str, Any], tmp_path: Path, password: str,
                                             starts: bool) -> None:
    # Before: .env copied unchanged from .env.example made the placeholder the superuser's password.
    image_entrypoint = tmp_path / "docker-entrypoint.sh"
    image_entrypoint.write_text('#!/bin/sh\necho "started $*"\n')
    image_entrypoint.chmod(image_entrypoint.stat().st_mode | stat.S_IEXEC)
    service = compose["services"]["postgres"]
    env = {**_environment(service), "POSTGRES_PASSWORD": password, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(service["entrypoint"], env=env, capture_output=True, text=True, timeout=30)
    if starts:
        assert (done.returncode, done.stdout.strip()) == (0, "started postgres")
    else:
        assert done.returncode == 1 and "placeholder of .env.example" in done.stderr and not done.stdout
    assert env_example()["POSTGRES_PASSWORD"].startswith("change-me")  # the file's value is the one refused
