"""Images by id only: the storage key never appears in a URL and no path is ever taken from one."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select

from engine.db.models import Image
from engine.storage import LocalMediaStore
from web.deps import ImageReader, SessionDep, SettingsDep

router = APIRouter(prefix="/images", tags=["images"])
MEDIA_TYPES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp",
               "gif": "image/gif"}


@router.get("/{image_id}", responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def image(image_id: int, request: Request, _: ImageReader, session: SessionDep, settings: SettingsDep) -> Response:
    row = session.execute(select(Image.sha256, Image.storage_key, Image.format).where(Image.id == image_id)).first()
    if row is None:
        raise HTTPException(404, f"no image {image_id}")
    etag = f'"{row.sha256}"'
    headers = {"etag": etag, "cache-control": "private, max-age=86400, immutable"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    try:
        data = LocalMediaStore(settings.media_path).open_bytes(row.storage_key)
    except (FileNotFoundError, ValueError):
        raise HTTPException(410, f"image {image_id} is registered but its file is missing from the store") from None
    ext = row.storage_key.rsplit(".", 1)[-1].lower()
    return Response(data, media_type=MEDIA_TYPES.get(ext, "application/octet-stream"), headers=headers)
