"""Bounded types for what requests carry (path parameters, query parameters, bodies), so that a
value the database cannot hold is refused with 422 before it reaches SQL (never a 500).

- ids: 1 .. 2^31−1 — within the column's type: every id column is INTEGER (int4 on PostgreSQL), so a
  larger id could never match and PostgreSQL would refuse the comparison; counts and milliseconds:
  0 .. 2^31−1 (INTEGER); BIGINT values (none taken from requests today): ``BigId``, 1 .. 2^63−1
- strings: no NUL character (PostgreSQL text and jsonb cannot store it) and a maximum length
- numbers: finite only (no NaN, no ±Infinity)
- dates: between 2000-01-01 and 100 years from now (naive values are UTC)
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
MAX_ID = MAX_INT32  # the id columns are INTEGER
MIN_DATE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_YEARS = 100


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _sane_date(value: dt.datetime) -> dt.datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    latest = dt.datetime.now(dt.UTC).replace(year=dt.datetime.now(dt.UTC).year + FUTURE_YEARS, month=1, day=1)
    if not MIN_DATE <= aware <= latest:
        raise ValueError(f"must lie between 2000-01-01 and {latest.year}-01-01")
    return value


#: a row id (the id columns are INTEGER)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
#: a BIGINT value
BigId = Annotated[int, Field(ge=1, le=MAX_INT64)]
#: a count, a size or milliseconds (INTEGER)
Count = Annotated[int, Field(ge=0, le=MAX_INT32)]
Ms = Count
#: a finite number
Finite = Annotated[float, Field(allow_inf_nan=False)]
#: a date and time between 2000-01-01 and 100 years from now
SaneDatetime = Annotated[dt.datetime, AfterValidator(_sane_date)]


#: a string without NUL; give its maximum length where it is used (``NoNulStr = Field(max_length=...)``)
NoNulStr = Annotated[str, AfterValidator(_no_nul)]
#: short names and labels (64), names (255), free text: comments, concept texts (2000)
ShortText = Annotated[str, Field(max_length=64), AfterValidator(_no_nul)]
NameText = Annotated[str, Field(max_length=255), AfterValidator(_no_nul)]
FreeText = Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)]


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body / query / path / header, then the field names and positions")
    msg: str = Field(description="why, without the value sent")


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer (the error contract)."""

    detail: str = Field(description="a sentence for a person")
    code: str = Field(description="stable snake_case, also in the X-Error-Code header: the status's (bad_request, "
                                  "unauthorized, forbidden, not_found, method_not_allowed, conflict, gone, too_large, "
                                  "invalid, rate_limited, unavailable, internal_error) or the endpoint's own "
                                  "(lease_lost, client_id_conflict, decision_conflict, too_many_leases, ...)")
    errors: list[ErrorItem] | None = Field(None, description="422 only: each invalid value")


#: every operation's error answers in the OpenAPI schema (FastAPI(responses=...))
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorOut, "description": "refused: {detail, code}; the code also in X-Error-Code"},
    422: {"model": ErrorOut, "description": "invalid values: {detail, code: invalid, errors: [{loc, msg}]}"},
    "5XX": {"model": ErrorOut, "description": "{detail: internal error, code: internal_error} (logged server-side)"},
}
