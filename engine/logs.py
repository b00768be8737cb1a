"""One logging setup for every process of ours — ``dataengine serve``, the Celery workers, the CLI —
and the context a record carries: the request id of the HTTP request (web/observability.py sets it),
the job id and stage of the batch being run (pipelines/execution.py), the Celery task id.

The context lives in contextvars, so a thread or task sees its own values; a filter on the handler
copies them onto each record. Text format: ``ts level logger [request_id job_id stage]: message``;
json format: one object per line with ``ts level logger message`` and the context fields present.
Secrets are kept out: a URL's password in a message is replaced by ``***`` (the settings'
``mask_url`` rule) and callers never log headers or passwords."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any, Literal

#: the context fields, in the order the text format prints them
CONTEXT_FIELDS: tuple[str, ...] = ("request_id", "job_id", "stage", "task_id")
_CONTEXT: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"dataengine_{name}", default=None) for name in CONTEXT_FIELDS}
#: scheme://user:password@ → scheme://user:***@ (any URL in a message: database, broker)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")
#: the LogRecord attributes every record has: what is left over came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_NAME = "dataengine"


def current(name: str) -> Any:
    """The context value ``name`` (one of CONTEXT_FIELDS) of the running thread or task."""
    return _CONTEXT[name].get()


def bind(**values: Any) -> dict[str, contextvars.Token[Any]]:
    """Set context values (None clears one) until :func:`unbind` with the tokens returned."""
    return {name: _CONTEXT[name].set(value) for name, value in values.items()}


def unbind(tokens: dict[str, contextvars.Token[Any]]) -> None:
    for name, token in tokens.items():
        _CONTEXT[name].reset(token)


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Records logged inside carry these context values (``job_id=3, stage="propose"``)."""
    tokens = bind(**values)
    try:
        yield
    finally:
        unbind(tokens)


def redact(text: str) -> str:
    """``text`` with every URL's password replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


class ContextFilter(logging.Filter):
    """Copies the context values onto each record (as attributes) and masks URL passwords in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, _CONTEXT[name].get())
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, the context fields that are
    set, the ``extra=`` fields, and exc_info as text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in CONTEXT_FIELDS and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts level logger [request_id=… job_id=…]: message`` (the brackets only when a context field is set)."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS
                           if getattr(record, name, None) is not None)
        line = (f"{_timestamp(record)} {record.levelname} {record.name}"
                f"{f' [{context}]' if context else ''}: {record.getMessage()}")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def make_handler(log_format: Literal["text", "json"], stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) with the context filter and the format's formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(log_format: Literal["text", "json"] = "text", level: str | int = "INFO",
                      stream: Any = None) -> logging.Handler:
    """Route every record of this process through one handler of ours on the root logger (replacing
    the one an earlier call installed; other handlers are left alone). uvicorn's own loggers are
    sent to it too, so the server's lines share the format. Returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = make_handler(log_format, stream)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.worker"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    return handler
