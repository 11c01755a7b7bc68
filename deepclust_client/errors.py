"""Typed errors: each carries the HTTP status and the API's own message."""

from __future__ import annotations

from typing import Any


class DeepclustError(Exception):
    """A request the service refused or could not answer. `status` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.message, self.status, self.detail = message, status, detail


class Invalid(DeepclustError):
    """400/422: bad data, method, parameters or n_clusters."""


class Unauthorized(DeepclustError):
    """401/403: a missing, wrong or insufficient API key."""


class NotFound(DeepclustError):
    """404: no such dataset or job."""


class Conflict(DeepclustError):
    """409: the job is in the wrong state (no results yet, already finished)."""


class TooLarge(DeepclustError):
    """413: the upload is over the server's limit."""


class RateLimited(DeepclustError):
    """429: too many requests or jobs; `retry_after` (seconds) when the server says."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        detail: Any = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status, detail)
        self.retry_after = retry_after


class ServerError(DeepclustError):
    """5xx, or the server could not be reached."""


class JobFailed(DeepclustError):
    """The job ended without results; `job` is its final record and `error` its reason."""

    def __init__(self, job: dict):
        self.job, self.error = job, job.get("error") or job["status"]
        super().__init__(f"job {job['id']} {job['status']}: {self.error}")


class JobCancelled(JobFailed):
    """The job was cancelled before it finished."""


BY_STATUS: dict[int, type[DeepclustError]] = {
    400: Invalid,
    422: Invalid,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: RateLimited,
}


def describe_detail(detail: Any) -> str:
    """FastAPI's `detail`: a string, or a list of {loc, msg} for validation errors."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []) if p != 'body')}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
