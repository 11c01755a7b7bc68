"""Every setting, from environment variables (DEEPCLUST_*). With none set, the service
runs embedded: SQLite and blobs under ./var, and a filesystem message queue."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEEPCLUST_", env_ignore_empty=True, extra="ignore"
    )

    data_dir: Path = Field(
        Path("var"), description="SQLite file, local blobs and the embedded queue live here"
    )
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DEEPCLUST_DATABASE_URL", "DATABASE_URL")
    )
    broker_url: str | None = Field(
        None, validation_alias=AliasChoices("DEEPCLUST_BROKER_URL", "BROKER_URL")
    )
    blob_store: Literal["database", "local"] | None = (
        None  # default: local on SQLite, database otherwise
    )
    queue: str = "deepclust"
    max_upload_bytes: int = 2 << 30
    job_soft_time_limit_s: int = 6 * 3600
    job_time_limit_s: int = 6 * 3600 + 300
    heartbeat_s: float = 2.0
    # Progress records stored per heartbeat at most (a method reporting faster is thinned evenly).
    events_per_beat: int = Field(50, ge=2)
    stale_after_s: float = 120.0  # a running job whose heartbeat is older is taken as lost
    max_attempts: int = 3  # deliveries of one job before it is failed (bounded retries)
    reap_every_s: float = 15.0
    # A queued job whose message is not in the broker (lost with a Redis that restarted without
    # persistence, or deleted) is sent again once it has waited this long since its last send.
    requeue_queued_after_s: float = Field(120.0, gt=0)
    # Memory the API assumes a worker has for one job (every method's memory_bytes). Unset:
    # this machine's free memory (GPU when the API sees one), right for the embedded default;
    # set it when workers run elsewhere.
    memory_budget_mb: int | None = Field(None, ge=1)
    # torch's CPU threads for one job (unset: torch's default, one per core); results depend on it
    torch_threads: int | None = Field(None, ge=1)
    # Accounts (issue #16). `keys`: every data route needs `Authorization: Bearer <token>`.
    # Unset: `keys`, except that `python -m api.serve` (make run) on a loopback bind sets `none`.
    auth: Literal["keys", "none"] | None = None
    bootstrap_admin_token: str | None = None  # an admin key with this token exists at API start
    # Per-key limits; a key's own value (deepclust keys create --max-...) wins over these.
    default_max_active_jobs: int = Field(10, ge=1)  # queued + running
    default_max_storage_mb: int = Field(10240, ge=1)  # datasets + job results
    default_max_upload_mb: int | None = Field(None, ge=1)  # unset: max_upload_bytes
    default_requests_per_minute: int = Field(600, ge=1)
    # The 2-D map of each finished job (core/projection.py): `umap` (PCA for a 2-D embedding or
    # tiny data), `pca` (no numba compile: the tests), `none` (no map; GET .../projection: 409).
    projection: Literal["auto", "umap", "pca", "none"] = "auto"  # auto: UMAP from 5,000 samples
    retention_days: float = Field(30, gt=0)  # finished jobs and unused datasets older than this go
    sweep_every_s: float = 3600.0
    orphan_grace_s: float = 3600.0  # younger local blob files may be an upload being committed

    @property
    def db_url(self) -> str:
        url = self.database_url or f"sqlite:///{(self.data_dir / 'deepclust.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def auth_mode(self) -> Literal["keys", "none"]:
        return self.auth or "keys"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def broker(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "queue").resolve()

    @property
    def blobs(self) -> Literal["database", "local"]:
        return self.blob_store or ("local" if self.db_url.startswith("sqlite") else "database")


@lru_cache
def get_settings() -> Settings:
    return Settings()
