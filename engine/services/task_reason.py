"""A task's "why" line as a person sees it on the task page.

The router stores why it made a task (``HumanTask.reason``, engine/domain/routing.py): the verifier's
score against its thresholds and its most probable label. That is the AI's verdict, and showing it to
the person who is asked for an independent one may anchor their answer; to annotators it is jargon
besides. So the API sends the line only to the roles of ``queue.show_ai_reason_to`` (reviewers and
admins by default) and leaves it out (null) for everyone else, and the wording of reasons stored
before the router said "the AI suggested: reject (23 %)" is brought up to date on the way out."""

from __future__ import annotations

import re
from collections.abc import Collection

from engine.domain.routing import AI_SUGGESTED, percent
from engine.domain.vocabulary import Role

# the router's older wording: "AI top label reject (0.23)"
_OLD_TOP_LABEL = re.compile(r"AI top label (\S+) \((\d+(?:\.\d+)?)\)")


def plain(reason: str) -> str:
    """``reason`` with the AI's top label in today's wording (older stored reasons said it in jargon)."""
    return _OLD_TOP_LABEL.sub(lambda m: f"{AI_SUGGESTED} {m.group(1)} ({percent(float(m.group(2)))})", reason)


def shown_reason(reason: str | None, role: Role, shown_to: Collection[Role]) -> str | None:
    """What the task page of a person with ``role`` may show of a task's reason: None unless the role
    is one of ``shown_to`` (the setting ``queue.show_ai_reason_to``)."""
    if not reason or role not in shown_to:
        return None
    return plain(reason)
