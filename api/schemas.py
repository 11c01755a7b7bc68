"""Request and response bodies."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from deepclust_client.status import JobStatus

T = TypeVar("T")


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return (
        value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value
    )


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, in words")


class ValidationErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """Every 422: FastAPI's own shape, also for the checks the routes make themselves."""

    detail: list[ValidationErrorItem]


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    database: str = Field(description="'ok' or why the database cannot be reached")
    broker: str = Field(description="'ok' or why the job queue cannot be reached")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    format: str
    n: int
    shape: list[int]
    dtype: str = Field(
        validation_alias=AliasChoices("source_dtype", "dtype"),
        description="dtype of the upload; the array is stored as float32",
    )
    kind: Literal["vectors", "images"]
    has_labels: bool
    n_classes: int | None
    has_ids: bool
    checksum: str = Field(description="sha256 of the stored float32 array")
    size_bytes: int
    stats: dict[str, float]
    created_at: datetime
    owner_id: str = Field(description="id of the API key that uploaded it")

    _utc = field_validator("created_at")(as_utc)


class SamplesOut(BaseModel):
    index: list[int] = Field(description="the rows returned, in the order asked")
    shape: list[int] = Field(description="the shape of one row: (d,) or (H, W[, C])")
    rows: list[Any] = Field(description="float32 values, each row in `shape`")
    labels: list[Any] | None = Field(description="the rows' labels, when the dataset has them")


class ProjectionOut(BaseModel):
    """The 2-D map of a job's embedding (core.projection): one entry per plotted sample."""

    method: Literal["umap", "pca"]
    total: int = Field(description="samples in the dataset; at most 20,000 are plotted")
    index: list[int]
    x: list[float]
    y: list[float]
    cluster: list[int]
    confidence: list[float]


class ConfusionOut(BaseModel):
    clusters: list[int] = Field(description="the rows: predicted clusters")
    classes: list[Any] = Field(description="the columns: the dataset's labels")
    matrix: list[list[int]] = Field(description="samples of cluster i with label j")
    mapping: dict[str, Any] = Field(
        description="each cluster's label under the Hungarian matching that ACC uses"
    )


def _method_enum(schema: dict) -> None:
    """The registry's names as an enum in the OpenAPI schema. Validation stays in the route,
    whose 422 names the known methods."""
    from core import method_names
    from core.jobs import AUTO

    schema["enum"] = [*method_names(), AUTO]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    method: str = Field(
        max_length=64,
        description="a name from GET /methods, or 'auto': the service picks one from the data's "
        "shape and size, stores the job under its name and says why in params.picked_by",
        json_schema_extra=_method_enum,
    )
    n_clusters: int | None = Field(
        None,
        ge=2,
        le=100_000,
        description="required unless the method finds it (GET /methods: accepts.finds_n_clusters)",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the method's parameters; omitted ones take the paper's defaults",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)


class ArtifactOut(BaseModel):
    """One array a method returned besides its labels (e.g. DSCNSS's head_labels); download it
    from GET /jobs/{id}/artifacts/{name}."""

    name: str
    dtype: str = Field(description="numpy dtype, e.g. int64 or float32")
    shape: list[int]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str
    method: str
    n_clusters: int | None
    params: dict[str, Any]
    seed: int
    status: JobStatus
    attempts: int
    cancel_requested: bool
    progress: dict[str, Any] | None = Field(
        description="latest phase, step/total, losses and live metrics"
    )
    metrics: dict[str, Any] | None
    error: str | None
    worker: str | None
    device: str | None
    versions: dict[str, Any] | None
    wall_s: float | None
    peak_mb: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    owner_id: str = Field(description="id of the API key that submitted it")
    artifacts: list[ArtifactOut] = Field(
        description="the method's other arrays (names, dtypes, "
        "shapes; empty until it has succeeded)"
    )

    _utc = field_validator("created_at", "started_at", "finished_at", "heartbeat_at")(as_utc)

    @field_validator("artifacts", mode="before")
    @classmethod
    def _none_is_empty(cls, value: list | None) -> list:
        return value or []
