"""The number of rows an UPDATE or DELETE matched, from what ``Session.execute`` returns.

SQLAlchemy types ``Session.execute`` as returning a ``Result``; for a DML statement the object is a
``CursorResult``, the class that has ``rowcount``. :func:`rowcount` checks that and reads it."""

from __future__ import annotations

from sqlalchemy import CursorResult


def rowcount(result: object) -> int:
    """Rows matched by the UPDATE or DELETE whose result this is."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the CursorResult of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount
