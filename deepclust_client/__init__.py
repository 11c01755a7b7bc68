"""A Python client for a deepclust server; it needs only httpx and numpy (tqdm for the bar)."""

from deepclust_client.client import Client
from deepclust_client.errors import (
    Conflict,
    DeepclustError,
    Invalid,
    JobCancelled,
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
)

__all__ = [
    "Client",
    "Conflict",
    "DeepclustError",
    "Invalid",
    "JobCancelled",
    "JobFailed",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TooLarge",
    "Unauthorized",
]
