"""SQLAlchemy models. Arrays live in blobs (persistence.blobs); rows hold what is queried."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from deepclust_client.status import JobStatus

# Owns the rows made before API keys existed and every row made with DEEPCLUST_AUTH=none.
BUILTIN_OWNER = "0" * 32


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)
    shape: Mapped[list[Any]] = mapped_column(JSON)
    source_dtype: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # vectors | images
    has_labels: Mapped[bool] = mapped_column(Boolean)
    n_classes: Mapped[int | None] = mapped_column(Integer)
    has_ids: Mapped[bool] = mapped_column(Boolean)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the stored float32 X
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # of the upload
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    owner_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id"), index=True, default=BUILTIN_OWNER
    )
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # its arrays, as stored
    last_used_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow
    )  # upload, last job


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(64))
    n_clusters: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )  # None: the method finds it
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # validated, with every default filled in
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True, default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    versions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    wall_s: Mapped[float | None] = mapped_column(Float)
    peak_mb: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When its message was last sent: a queued job is sent again at most once per
    # DEEPCLUST_REQUEUE_QUEUED_AFTER_S when the broker lost it.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id"), index=True, default=BUILTIN_OWNER
    )
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # its result arrays
    # [{name, dtype, shape}] of the method's other arrays (ClusteringResult.artifacts), stored
    # as blobs (persistence.repository.artifact_key); None before it succeeded
    artifacts: Mapped[list[Any] | None] = mapped_column(JSON)


class JobResult(Base):
    """What a finished job produced besides its arrays: the per-step history."""

    __tablename__ = "job_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    history: Mapped[list[Any]] = mapped_column(JSON)
    embedding_shape: Mapped[list[Any]] = mapped_column(JSON)


class JobEvent(Base):
    """One progress record of a job, appended while it runs (GET /jobs/{id}/events streams them)."""

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 2, ... across attempts
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class BlobPart(Base):
    """Array files stored in the database, split in parts (bytea/BLOB rows stay small)."""

    __tablename__ = "blob_parts"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ApiKey(Base):
    """Who may call the API. Only the token's sha256 is kept; the token is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # None: cannot log in
    token_prefix: Mapped[str | None] = mapped_column(String(16))  # to recognise a key in a list
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: the setting's default (DEEPCLUST_DEFAULT_*)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_upload_bytes: Mapped[int | None] = mapped_column(BigInteger)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateWindow(Base):
    """Requests of one key in one minute: a fixed-window counter shared by every API process."""

    __tablename__ = "rate_windows"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # minutes since the epoch
    count: Mapped[int] = mapped_column(Integer)


class IdempotencyRecord(Base):
    """The first response to a request with an Idempotency-Key, replayed to its retries.
    status_code None: the first request is still being handled."""

    __tablename__ = "idempotency_records"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of what the request asked for
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
