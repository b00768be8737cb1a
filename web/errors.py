"""The error contract, in one place: every 4xx/5xx answer is JSON ``{"detail": "<a sentence for a
person>", "code": "<stable_snake_case>"}`` (+ ``"errors": [{"loc": [...], "msg": "..."}]`` on 422),
the code also in the X-Error-Code header.

Domain errors become HTTP answers here (:data:`DOMAIN_ERRORS`, app-level exception handlers that
:func:`install` registers): routers raise nothing but what the engine raises, plus the few
HTTPExceptions that are about the request itself (not found, a body that fits the schema but not
the endpoint). An endpoint's own code (lease_lost, client_id_conflict, ...) comes from the table or
in the X-Error-Code header of an HTTPException; otherwise the code follows from the status.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.domain.exports import ExportSpecError
from engine.domain.passwords import WeakPassword
from engine.ports import JobNotEnqueued, JobRefused
from engine.services.annotation import ClientIdConflict, TaskIncomplete, VerdictError
from engine.services.auth import AuthError, RateLimited
from engine.services.export import ExportError
from engine.services.gold import GoldError, GoldNotFound
from engine.services.mine import JobConflict
from engine.services.queue import LeaseLost, TooManyLeases
from engine.services.users import UserError, UserExists
from engine.sources.base import SourceError

ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid", 429: "rate_limited", 500: "internal_error",
               503: "unavailable"}
ERROR_HEADER = "X-Error-Code"
#: machine-readable reasons of 409s (the queue page tells them apart); decision_conflict: the verdict
#: was stored but disagrees with a decision another task made (web/routers/tasks.py answers it)
LEASE_LOST, CLIENT_ID_CONFLICT, DECISION_CONFLICT = "lease_lost", "client_id_conflict", "decision_conflict"
#: /tasks/next: the person holds queue.max_leases_per_person tasks already
TOO_MANY_LEASES = "too_many_leases"

#: domain error → (status, code; None: the status's). A subclass not listed takes its nearest listed base's.
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str | None]] = {
    LeaseLost: (409, LEASE_LOST),
    TooManyLeases: (409, TOO_MANY_LEASES),
    ClientIdConflict: (409, CLIENT_ID_CONFLICT),
    VerdictError: (422, None),
    TaskIncomplete: (409, None),  # the stored task lacks its mask or image: nothing the caller can fix
    JobConflict: (409, None),
    JobRefused: (422, None),
    JobNotEnqueued: (503, None),
    SourceError: (422, None),  # engine.sources.roots.SourceRefused too: outside the allowed roots
    ExportSpecError: (422, None),
    ExportError: (409, None),
    GoldError: (422, None),
    GoldNotFound: (404, None),
    WeakPassword: (422, None),
    UserExists: (409, None),
    UserError: (422, None),
    AuthError: (401, None),
    RateLimited: (429, None),
}


def error_code(status: int) -> str:
    return ERROR_CODES.get(status, "client_error" if status < 500 else "server_error")


def error_response(status: int, detail: str, code: str | None = None, errors: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    code = code or error_code(status)
    body: dict[str, Any] = {"detail": detail, "code": code}
    if status == 422:
        body["errors"] = errors if errors is not None else [{"loc": [], "msg": detail}]
    return JSONResponse(body, status_code=status, headers={**(headers or {}), ERROR_HEADER: code})


class BodyTooLarge(Exception):
    """A request body grew past ``serve.max_body_bytes`` while it was read (web.app.Guard answers 413)."""


def _answer(exc: Exception) -> tuple[int, str | None]:
    """The status and code of a domain error (handlers are registered only for the table's classes)."""
    status, code = next(DOMAIN_ERRORS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_ERRORS)
    return status, code


async def _domain_error(request: Request, exc: Exception) -> Response:
    status, code = _answer(exc)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return error_response(status, str(exc), code, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI turns a failed body read into 400
        raise exc.__cause__
    headers = dict(exc.headers or {})
    code = headers.pop(ERROR_HEADER, None) or headers.pop(ERROR_HEADER.lower(), None)
    if exc.status_code < 400 or exc.status_code == 304:
        return Response(status_code=exc.status_code, headers=headers)
    detail = exc.detail if isinstance(exc.detail, str) else error_code(exc.status_code).replace("_", " ")
    return error_response(exc.status_code, detail, code, headers=headers)


def _loc(loc: Any) -> list[Any]:
    return [part if isinstance(part, int | str) else str(part) for part in loc]


async def _invalid(request: Request, exc: Exception) -> Response:
    """422 for a request that does not fit the schema: where and why, never the value sent (it may be a secret)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "invalid value"))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid value"}
    where = ".".join(str(p) for p in first["loc"][1:] or first["loc"]) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, f"invalid request: {where}: {first['msg']}{more}", errors=errors)


def install(app: FastAPI) -> None:
    """Register the contract's exception handlers on ``app``: HTTP errors, invalid requests and every
    domain error of :data:`DOMAIN_ERRORS`."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    for error in DOMAIN_ERRORS:
        app.add_exception_handler(error, _domain_error)
