"""The Label Studio webhook: annotation created / updated events become verdicts at once (the
alternative to ``dataengine labelstudio pull``). Label Studio cannot sign in, so the request must
carry the shared secret ``labelstudio.webhook_secret`` in ``X-DataEngine-Webhook-Secret``; without
the secret configured the endpoint does not exist (404). Label Studio waits about a second for the
answer, so the work is one annotation, stored like a pulled one."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Header, HTTPException
from pydantic import BaseModel, Field

from engine.services import labelstudio as bridge
from web.deps import SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import Id

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/labelstudio", tags=["labelstudio"])
HANDLED = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class TaskRef(BaseModel):
    id: Id


class WebhookEvent(BaseModel):
    action: str = Field(max_length=64)
    annotation: dict[str, Any] | None = None
    task: TaskRef | None = None


@router.post("/webhook")
def webhook(event: WebhookEvent, session: SessionDep, settings: SettingsDep,
            secret: str | None = Header(None, alias="X-DataEngine-Webhook-Secret")) -> dict[str, Any]:
    cfg = settings.labelstudio
    if cfg.webhook_secret is None or not cfg.url:
        raise HTTPException(404, "the Label Studio webhook is off (set labelstudio.url and labelstudio.webhook_secret)")
    if secret is None or not hmac.compare_digest(secret.encode(), cfg.webhook_secret.get_secret_value().encode()):
        raise HTTPException(403, "wrong or missing webhook secret")
    if event.action not in HANDLED:
        return {"status": "ignored", "action": event.action}
    if event.annotation is None or event.task is None:
        raise HTTPException(422, f"{event.action} without annotation or task")
    outcome = bridge.store_annotation(session, bridge.normalise_server(cfg.url), event.task.id, event.annotation,
                                      settings.queue)
    return {"status": outcome.status, "verdict_id": outcome.verdict_id, "error": outcome.error}
