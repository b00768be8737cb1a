"""Retraining SAM 3 with a user-configured command (``dataengine retrain sam3 --command …``).

The engine does not train SAM 3 itself: the operator names a command (the official trainer with a
config that reads the COCO export, or any other). It runs in a shell with the export folder and an
empty output folder, given both as placeholders ``{export_dir}`` / ``{output_dir}`` (shell-quoted)
and as the environment variables ``DATAENGINE_EXPORT_DIR`` / ``DATAENGINE_OUTPUT_DIR``; its output
goes to a log file. When it exits 0 and leaves weight files in the output folder, the checkpoint
is loaded through the proposer adapter (``load_stamp``: proves it loads, and names its version by
the sha256 of its weight files) and registered as a proposer version with its training snapshot.
A failed command (non-zero exit, time-out, no weights, a checkpoint that does not load) registers
nothing and leaves no output folder; the log stays for the post-mortem."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import DatasetSnapshot, ModelVersion
from engine.domain.vocabulary import ModelKind
from engine.ports import ModelStamp
from engine.repositories.model_versions import params_hash
from engine.services.common import register

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
LOG_TAIL_LINES = 20


class TrainingCommandError(RuntimeError):
    """The training command failed or left no usable checkpoint; nothing was registered."""


@dataclass(frozen=True)
class Sam3Retrain:
    command: str
    export_dir: Path
    snapshot_id: int
    output_dir: Path  # must not exist yet
    log_path: Path
    timeout_s: float | None = None


@dataclass(frozen=True)
class Sam3Outcome:
    version_id: int
    name: str
    version: str
    output_dir: Path
    seconds: float
    reused: bool  # the weights are those of an already registered version: it was left as it was


def render_command(template: str, export_dir: Path, output_dir: Path) -> str:
    """The command with ``{export_dir}`` and ``{output_dir}`` replaced by the quoted paths."""
    if not template.strip():
        raise TrainingCommandError("the training command is empty")
    return (template.replace("{export_dir}", shlex.quote(str(export_dir)))
            .replace("{output_dir}", shlex.quote(str(output_dir))))


def run_command(request: Sam3Retrain) -> float:
    """Run the command into a fresh output folder; seconds it took. Raises on failure (and
    removes the output folder)."""
    if request.output_dir.exists():
        raise TrainingCommandError(f"the output folder {request.output_dir} already exists")
    request.output_dir.mkdir(parents=True)
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATAENGINE_EXPORT_DIR": str(request.export_dir),
           "DATAENGINE_OUTPUT_DIR": str(request.output_dir)}
    command = render_command(request.command, request.export_dir, request.output_dir)
    started = time.perf_counter()
    try:
        with request.log_path.open("wb") as log:
            done = subprocess.run(["/bin/sh", "-c", command], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=request.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        _fail(request, f"the training command ran past {request.timeout_s} s and was stopped")
    if done.returncode != 0:
        _fail(request, f"the training command exited with status {done.returncode}")
    if not weight_files(request.output_dir):
        _fail(request, f"the training command left no weight files ({', '.join(WEIGHT_SUFFIXES)}) in "
                       f"{request.output_dir}")
    return time.perf_counter() - started


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def _fail(request: Sam3Retrain, what: str) -> None:
    shutil.rmtree(request.output_dir, ignore_errors=True)
    raise TrainingCommandError(f"{what}; nothing was registered. Log: {request.log_path}\n{_tail(request.log_path)}")


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


def retrain_sam3(session: Session, request: Sam3Retrain, load_stamp: Callable[[str], ModelStamp]) -> Sam3Outcome:
    """Run the command and register its checkpoint (flushed; the caller commits)."""
    if session.get(DatasetSnapshot, request.snapshot_id) is None:
        raise TrainingCommandError(f"no dataset snapshot {request.snapshot_id}")
    seconds = run_command(request)
    try:
        stamp = load_stamp(str(request.output_dir))
        if stamp.kind != ModelKind.PROPOSER.value:
            raise TrainingCommandError(f"the checkpoint loaded as a {stamp.kind}, not a proposer")
        existing = _registered(session, stamp)
        if existing is not None:
            shutil.rmtree(request.output_dir, ignore_errors=True)
            return Sam3Outcome(existing.id, existing.name, existing.version, Path(existing.uri or ""), seconds, True)
        row = register(session, stamp)
        row.training_snapshot_id = request.snapshot_id
        row.metrics = {"training_command": request.command, "training_seconds": seconds,
                       "training_log": str(request.log_path), "export_dir": str(request.export_dir)}
        session.flush()
    except TrainingCommandError:
        shutil.rmtree(request.output_dir, ignore_errors=True)
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the adapter raises, the checkpoint is unusable
        shutil.rmtree(request.output_dir, ignore_errors=True)
        raise TrainingCommandError(f"the checkpoint in {request.output_dir} does not load as a proposer: "
                                   f"{type(exc).__name__}: {exc}; nothing was registered") from exc
    return Sam3Outcome(row.id, row.name, row.version, request.output_dir, seconds, False)


def _registered(session: Session, stamp: ModelStamp) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(
        ModelVersion.kind == ModelKind(stamp.kind), ModelVersion.name == stamp.name,
        ModelVersion.version == stamp.version, ModelVersion.params_hash == params_hash(stamp.params))).one_or_none()
