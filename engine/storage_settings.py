"""Settings of the media store (``Settings.storage``; env ``DATAENGINE_STORAGE__…``).

``backend = "local"`` (the embedded default) keeps media under ``media_root``; ``"s3"`` puts them in a
bucket of an S3-compatible service (AWS S3, MinIO), so workers on several hosts share them without a
shared file system. The endpoint is chosen by the operator, like the database URL: it is not subject
to the outbound policy that confines user-supplied source URLs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

MIB = 1024 * 1024


class StorageSettings(BaseModel):
    backend: Literal["local", "s3"] = Field(
        "local", description="local: files under media_root; s3: objects in an S3-compatible bucket")
    bucket: str = Field("", description="the bucket (s3 backend); it must exist")
    prefix: str = Field(
        "dataengine", description="key prefix: media under <prefix>/media/, exports under <prefix>/exports/")
    endpoint_url: str | None = Field(None, description="the S3 API's URL (MinIO, moto); none: AWS's own")
    region: str = Field("us-east-1", description="the bucket's region")
    access_key_id: SecretStr | None = Field(
        None, description="none: boto3's default credential chain (env, profile, instance role)")
    secret_access_key: SecretStr | None = Field(None, description="the secret of access_key_id")
    multipart_threshold: int = Field(
        16 * MIB, ge=5 * MIB, description="files at least this large are uploaded in parts (S3's minimum part: 5 MiB)")
    part_size: int = Field(8 * MIB, ge=5 * MIB, le=5 * 1024 * MIB, description="size of one part of a multipart upload")
    max_attempts: int = Field(
        5, ge=1, le=20, description="attempts of one request (transient errors retried with exponential backoff)")
    connect_timeout: float = Field(5.0, gt=0, description="seconds to open a connection to the S3 service")
    read_timeout: float = Field(60.0, gt=0, description="seconds to wait for data from the S3 service")
    presign: bool = Field(
        False, description="image requests redirect the browser to a presigned bucket URL (else proxied)")
    presign_expiry: int = Field(900, ge=1, le=7 * 24 * 3600, description="seconds a presigned URL stays valid")
