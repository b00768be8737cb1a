"""docker-compose.yml is accepted by a real Compose implementation and describes the production stack.

Compose is found as ``docker compose`` (v2 plugin) or else ``docker-compose`` on PATH (Debian's
v1.29 package: ``apt-get install -y docker-compose``). No Docker engine is needed: ``config`` only
parses, validates and normalises the file. The assertions read the normalised configuration, so
YAML anchors and merge keys are checked as Compose resolves them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

SERVICES = {"postgres", "redis", "migrate", "api", "worker-io", "worker-cpu", "worker-gpu", "beat", "flower",
            "minio", "minio-bucket"}
ONE_SHOT = {"migrate", "minio-bucket"}
PROFILES = ("--profile", "s3")  # MinIO and its bucket run only in the s3 profile (the S3 media store)
LONG_RUNNING = SERVICES - ONE_SHOT
WORKERS = {"worker-io", "worker-cpu", "worker-gpu"}
APP_SERVICES = {"migrate", "api", "beat", "flower"} | WORKERS  # run the Data Engine image


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


def _find_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        try:
            if _run([docker, "compose", "version"]).returncode == 0:
                return [docker, "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        return [standalone]
    if docker is None:
        pytest.skip("no docker client and no docker-compose on PATH: cannot validate docker-compose.yml")
    pytest.fail(
        "the docker client is installed but no Compose implementation is: `docker compose` fails and "
        "`docker-compose` is not on PATH. Install Debian's docker-compose (apt-get install -y docker-compose) "
        "or the docker compose plugin."
    )


@pytest.fixture(scope="module")
def compose() -> list[str]:
    return _find_compose()


def _compose(compose: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run([*compose, "-f", str(COMPOSE_FILE), *args])


def _yaml_to_data(text: str, compose: list[str]) -> dict[str, Any]:
    """Parse the normalised YAML: with PyYAML when importable, else with the YAML library of the
    Python interpreter that runs docker-compose v1 (PyYAML is one of its own dependencies)."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    script = Path(compose[0])
    with script.open("rb") as fh:
        first = fh.readline().decode("utf-8", "replace")
    if not first.startswith("#!") or "python" not in first:
        pytest.fail(f"cannot parse YAML: PyYAML is not installed and {script} is not a Python script")
    interpreter = first[2:].split()
    proc = _run([*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                input=text)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def config(compose: list[str]) -> dict[str, Any]:
    """The configuration as Compose normalises it (anchors and merges resolved)."""
    # Compose v2 prints JSON; v1 has no --format (it prints its usage, with exit status 0).
    proc = _compose(compose, *PROFILES, "config", "--format", "json")
    if proc.returncode == 0:
        try:
            return json.loads(proc.stdout)
        except ValueError:
            pass
    proc = _compose(compose, *PROFILES, "config")
    assert proc.returncode == 0, proc.stderr
    return _yaml_to_data(proc.stdout, compose)


def test_config_is_valid(compose: list[str]) -> None:
    proc = _compose(compose, "config", "-q")
    assert proc.returncode == 0, f"{' '.join(compose)} config -q failed:\n{proc.stderr}"
    assert "warn" not in proc.stderr.lower(), proc.stderr


def test_services(compose: list[str]) -> None:
    proc = _compose(compose, *PROFILES, "config", "--services")
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == SERVICES


def test_worker_gpu_reserves_an_nvidia_gpu(config: dict[str, Any]) -> None:
    devices = config["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and int(d.get("count", 0)) == 1 and "gpu" in d.get("capabilities", [])
        for d in devices
    ), devices


def test_long_running_services_have_healthchecks_and_restart(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in sorted(LONG_RUNNING):
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"].get("restart", "no") == "no"
    assert "healthcheck" not in services["migrate"] or services["migrate"]["healthcheck"].get("disable")


def test_api_and_workers_wait_for_migrations_and_broker(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in sorted(WORKERS | {"api"}):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["db", "upgrade"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """target path -> volume name, for the short (v1) and long (v2) volume syntax."""
    out: dict[str, str] = {}
    for vol in service.get("volumes", []):
        if isinstance(vol, str):
            source, target = vol.split(":")[:2]
        else:
            source, target = vol.get("source", ""), vol["target"]
        out[target] = source
    return out


def test_app_services_share_settings_and_media(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in sorted(APP_SERVICES):
        env = _env(services[name])
        # an image of ./Dockerfile (which extras each holds: tests/test_light_install.py)
        assert Path(services[name]["build"]["context"]).resolve() == ROOT, name
        assert env["DATAENGINE_DATABASE_URL"].startswith("postgresql+psycopg://dataengine:"), name
        assert env["DATAENGINE_DATABASE_URL"].endswith("@postgres:5432/dataengine"), name
        assert env["DATAENGINE_BROKER_URL"] == "redis://redis:6379/0", name
        assert env["DATAENGINE_MEDIA_ROOT"] == "/data/media", name
    for name in sorted(WORKERS | {"api"}):
        assert _volume_targets(services[name]).get("/data/media") == "media", name
    assert "media" in config["volumes"]


def _published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host_ip, published, target) for the short (v1) and long (v2) port syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, str):  # "127.0.0.1:8000:8000" (v1 may add "/tcp")
            host_ip, published, target = port.split("/", 1)[0].rsplit(":", 2)
        else:
            host_ip, published, target = port.get("host_ip", ""), port.get("published", ""), port["target"]
        out.append((str(host_ip), str(published), str(target)))
    return out


def test_ports_are_published_on_loopback_only(config: dict[str, Any]) -> None:
    services = config["services"]
    assert _published(services["api"]) == [("127.0.0.1", "8000", "8000")]
    assert _published(services["flower"]) == [("127.0.0.1", "5555", "5555")]
    for name in sorted(SERVICES - {"api", "flower"}):
        assert not services[name].get("ports"), f"{name} publishes a port"


def test_commands(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["api"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert services["worker-io"]["command"] == ["worker", "--queues", "io", "--concurrency", "16", "--pool", "threads"]
    assert services["worker-cpu"]["command"] == ["worker", "--queues", "cpu"]
    assert services["worker-gpu"]["command"] == ["worker", "--queues", "gpu", "--concurrency", "1", "--pool", "solo"]
    assert services["beat"]["command"] == ["beat"]
    assert services["flower"]["entrypoint"] == ["celery"]
    assert services["flower"]["command"] == ["-A", "pipelines.celery_app", "flower", "--port=5555"]


def test_dockerfile_entrypoint_and_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert lines[next(i for i, line in enumerate(lines) if line.startswith("FROM "))] == "FROM python:3.11-slim"
    assert 'ENTRYPOINT ["dataengine"]' in lines
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    # the dependencies of the EXTRAS build argument, then the package without its dependencies
    assert 'python scripts/requirements.py "$EXTRAS"' in text and "pip install --no-deps ." in text
    assert "DATAENGINE_DATA_DIR=/data" in text


def test_minio_is_the_s3_profiles_media_store(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["minio"]["profiles"] == ["s3"] and services["minio-bucket"]["profiles"] == ["s3"]
    assert services["minio-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["minio-bucket"].get("restart", "no") == "no"
    for name in sorted(APP_SERVICES):
        env = _env(services[name])
        assert env["DATAENGINE_STORAGE__BACKEND"] == "local", name  # the media volume unless s3 is chosen
        assert env["DATAENGINE_STORAGE__ENDPOINT_URL"] == "http://minio:9000", name
        assert env["DATAENGINE_STORAGE__ACCESS_KEY_ID"] == _env(services["minio"])["MINIO_ROOT_USER"], name
        assert "s3" in str(services[name]["build"]["args"]["EXTRAS"]).split(","), name  # boto3 in every image
