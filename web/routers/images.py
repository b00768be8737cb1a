"""Images by id only: the storage key never appears in a URL and no path is ever taken from one."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from engine.db.models import Image
from engine.domain.signing import signature_valid
from engine.stores import browser_url, make_store
from web.deps import ImageReader, SessionDep, SettingsDep, UnitOfWorkRoute
from web.schemas import Id

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/images", tags=["images"])
MEDIA_TYPES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp",
               "gif": "image/gif"}


@router.get("/{image_id}", responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def image(image_id: Id, request: Request, _: ImageReader, session: SessionDep, settings: SettingsDep) -> Response:
    return _serve(image_id, request, session, settings)


@router.get("/{image_id}/signed", responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def signed_image(image_id: Id, request: Request, session: SessionDep, settings: SettingsDep,
                 expires: int = Query(..., ge=0, le=2**40), signature: str = Query(..., pattern="^[0-9a-f]{64}$"),
                 ) -> Response:
    """No sign-in: a link signed by the server (labelstudio.signing_secret) opens one image until it expires."""
    secret = settings.labelstudio.signing_secret
    if secret is None:
        raise HTTPException(404, "signed image links are off (labelstudio.signing_secret is not set)")
    if not signature_valid(image_id, expires, signature, secret.get_secret_value(), time.time()):
        raise HTTPException(403, "the link is expired or its signature is wrong")
    return _serve(image_id, request, session, settings)


def _serve(image_id: int, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    row = session.execute(select(Image.sha256, Image.storage_key, Image.format).where(Image.id == image_id)).first()
    if row is None:
        raise HTTPException(404, f"no image {image_id}")
    etag = f'"{row.sha256}"'
    headers = {"etag": etag, "cache-control": "private, max-age=86400, immutable"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    store = make_store(settings)
    if (url := browser_url(store, row.storage_key)) is not None:  # storage.presign: the bucket serves it
        return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
    try:
        data = store.open_bytes(row.storage_key)
    except (FileNotFoundError, ValueError):
        raise HTTPException(410, f"image {image_id} is registered but its file is missing from the store") from None
    ext = row.storage_key.rsplit(".", 1)[-1].lower()
    return Response(data, media_type=MEDIA_TYPES.get(ext, "application/octet-stream"), headers=headers)
