"""A job's states, as the API and the database spell them. The one enum of the project: the
server (persistence, api, worker) imports it from here, so that this client, which needs only
httpx and numpy, speaks the same states without importing the server."""
from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """queued -> running -> succeeded | failed | cancelled; each transition is a
    compare-and-set in persistence.repository. A queued job may also be cancelled at once."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE_STATES = (JobStatus.QUEUED, JobStatus.RUNNING)
