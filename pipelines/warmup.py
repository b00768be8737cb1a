"""Model warm-up: load the models the pages wait on in a background thread when a process starts, so
the first click is not a model load (issue 20: 13.4 s behind a bare "Segmenting…").

A server loads the click segmenter (its own model) and, embedded, the exemplar proposer and video
tracker of its in-process page runners; a Celery worker consuming the gpu queue loads those two.
``Settings.observability.warm_up`` picks them ("auto": all the process serves, "none", or a list).
Each load goes through the process's ModelCache, so a click that comes while it runs waits for the
same load (the cache's lock) instead of starting another, and engine/model_states.py says "loading"
meanwhile. A load that fails is logged; the model is then tried again on first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from engine import model_states
from engine.extras import missing_extra
from pipelines.models import ModelCache

log = logging.getLogger(__name__)

#: roles a gpu worker serves (the page requests it runs: pipelines/tracking.py, pipelines/exemplars.py)
WORKER_ROLES: tuple[str, ...] = ("exemplar_proposer", "video_tracker")


def warm_up(targets: Sequence[tuple[str, ModelCache]], *, background: bool = True) -> threading.Thread | None:
    """Load each ``(role, cache)``'s model — ``cache.<role>()`` — in order, in a daemon thread (or here
    when ``background`` is false). Returns the thread, or None when there is nothing to load."""
    if not targets:
        return None
    if not background:
        _load_all(targets)
        return None
    thread = threading.Thread(target=_load_all, args=(list(targets),), name="dataengine-warm-up", daemon=True)
    thread.start()
    return thread


def _load_all(targets: Sequence[tuple[str, ModelCache]]) -> None:
    for role, cache in targets:
        log.info("warm-up: loading the %s model", role)
        try:
            getattr(cache, role)()
        except Exception as exc:  # noqa: BLE001 - the model is tried again on first use; the operator sees why
            missing = missing_extra(exc)
            if missing is not None:  # a light install: one line, not a traceback per model
                log.warning("warm-up: the %s model is not loaded: %s", role, missing)
            else:
                log.exception("warm-up: the %s model could not be loaded", role)
            continue
        state = model_states.snapshot().get(role)
        log.info("warm-up: the %s model is ready", role,
                 extra={"model_role": role, "seconds": round(state.seconds, 3) if state and state.seconds else None})
