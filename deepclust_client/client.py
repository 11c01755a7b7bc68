"""The HTTP client: upload, submit, wait with a progress bar, fetch results, cancel.

Jobs and datasets are the API's own JSON objects (dicts); a method that takes a job or a
dataset accepts the dict or its id.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np

from deepclust_client.errors import (
    BY_STATUS,
    DeepclustError,
    JobCancelled,
    JobFailed,
    RateLimited,
    ServerError,
    describe_detail,
)
from deepclust_client.status import FINAL_STATES, JobStatus


def _id(thing: str | dict) -> str:
    return thing["id"] if isinstance(thing, dict) else str(thing)


class Client:
    """A deepclust server at `url`; `api_key` is sent as `Authorization: Bearer <key>`.

    >>> client = Client("http://127.0.0.1:8000")
    >>> dataset = client.upload("digits.npz")
    >>> job = client.wait(client.submit(dataset, "idec", 10, {"pretrain_epochs": 50}))
    >>> client.labels(job)  # numpy array, one cluster per sample
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- requests ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {self.url}: {exc}") from exc
        raise_for_status(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # ---- datasets ------------------------------------------------------------------------------
    def upload(
        self,
        path_or_array: str | os.PathLike | np.ndarray,
        labels: np.ndarray | None = None,
        *,
        name: str | None = None,
        ids: np.ndarray | None = None,
        **options: str,
    ) -> dict:
        """Upload a file (.npy, .npz, .csv, .parquet; `options` such as label_column go to the
        query) or an array (sent as .npz with `labels` as y and `ids`). Returns the dataset."""
        if isinstance(path_or_array, (str, os.PathLike)):
            if labels is not None or ids is not None:
                raise ValueError("labels and ids go with an array; a file carries its own")
            path = Path(path_or_array)
            params = {"name": name or path.name, **options}
            # A raw body streamed from the file, with its length: an oversized one is refused early.
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(path.stat().st_size),
            }
            return self._json(
                "POST", "/datasets", params=params, content=_chunks(path), headers=headers
            )
        buffer = io.BytesIO()
        arrays = {"X": np.asarray(path_or_array)}
        if labels is not None:
            arrays["y"] = np.asarray(labels)
        if ids is not None:
            arrays["ids"] = np.asarray(ids)
        np.savez(buffer, **arrays)
        return self._json(
            "POST",
            "/datasets",
            params={"name": name or "array.npz", **options},
            content=buffer.getvalue(),
            headers={"Content-Type": "application/octet-stream"},
        )

    def dataset(self, dataset: str | dict) -> dict:
        return self._json("GET", f"/datasets/{_id(dataset)}")

    # ---- jobs ----------------------------------------------------------------------------------
    def submit(
        self,
        dataset: str | dict,
        method: str,
        n_clusters: int | None = None,
        params: dict | None = None,
        seed: int = 0,
    ) -> dict:
        """Start a job; returns it queued. `params` omitted take the paper's defaults."""
        body = {
            "dataset_id": _id(dataset),
            "method": method,
            "n_clusters": n_clusters,
            "params": params or {},
            "seed": seed,
        }
        return self._json("POST", "/jobs", json=body)

    def job(self, job: str | dict) -> dict:
        return self._json("GET", f"/jobs/{_id(job)}")

    def jobs(
        self,
        status: str | None = None,
        dataset: str | dict | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict:
        """One page: {items, total, limit, offset}, newest first."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if dataset:
            params["dataset_id"] = _id(dataset)
        return self._json("GET", "/jobs", params=params)

    def cancel(self, job: str | dict) -> dict:
        """Cancel a queued job at once, a running one at its next step (Conflict once finished)."""
        return self._json("POST", f"/jobs/{_id(job)}/cancel")

    def events(self, job: str | dict, after: int = 0) -> Iterator[tuple[str, int | None, dict]]:
        """The job's Server-Sent Events as (event, seq, data): ("progress", seq, record) for
        each record after seq `after`, ("keep-alive", None, {}) for the server's keep-alive
        comments, then ("end", None, {status, error})."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        # The server sends a keep-alive every 15 s: a read that waits longer means a dead link.
        timeout = httpx.Timeout(self.http.timeout.connect, read=60.0)
        try:
            with self.http.stream(
                "GET", f"/jobs/{_id(job)}/events", headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise_for_status(response)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ServerError(f"the event stream of job {_id(job)} broke: {exc}") from exc

    def wait(
        self,
        job: str | dict,
        progress: bool = True,
        timeout: float | None = None,
        poll_s: float = 2.0,
    ) -> dict:
        """Block until the job is final; return it when it succeeded, raise JobFailed (or
        JobCancelled) with its error otherwise. Follows the live events (showing a progress bar
        on stderr when `progress`); falls back to polling when the stream is unavailable."""
        from deepclust_client.progress import ProgressBar

        job_id, deadline = _id(job), None if timeout is None else time.monotonic() + timeout
        bar = ProgressBar() if progress else None
        try:
            final = self._follow_events(job_id, bar, deadline) or self._poll(
                job_id, bar, deadline, poll_s
            )
        finally:
            if bar is not None:
                bar.close()
        if final["status"] == JobStatus.CANCELLED:
            raise JobCancelled(final)
        if final["status"] == JobStatus.FAILED:
            raise JobFailed(final)
        return final

    def _follow_events(self, job_id: str, bar, deadline: float | None) -> dict | None:
        """The final job, or None when the stream could not take us there (then poll)."""
        seq = 0
        for _attempt in range(3):  # reconnect from the last seq after a broken stream
            try:
                for event, event_seq, data in self.events(job_id, after=seq):
                    if event == "end":
                        return self.job(job_id) if data.get("status") in FINAL_STATES else None
                    if event == "progress":
                        seq = event_seq or seq
                        if bar is not None:
                            bar.update(data)
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"job {job_id} is not finished after the timeout")
            except ServerError:
                continue
            except DeepclustError as exc:
                if exc.status in (404, 405) and self._exists(job_id):  # a server without /events
                    return None
                raise
        return None

    def _exists(self, job_id: str) -> bool:
        self.job(job_id)  # raises NotFound for an unknown job
        return True

    def _poll(self, job_id: str, bar, deadline: float | None, poll_s: float) -> dict:
        while True:
            job = self.job(job_id)
            if bar is not None and job.get("progress"):
                bar.update(job["progress"])
            if job["status"] in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is not finished after the timeout")
            time.sleep(poll_s)

    # ---- results -------------------------------------------------------------------------------
    def assignments_csv(self, job: str | dict, path: str | os.PathLike) -> Path:
        """Stream index,sample_id,cluster,confidence to `path`."""
        path = Path(path)
        try:
            with self.http.stream("GET", f"/jobs/{_id(job)}/assignments.csv") as response:
                if response.is_error:
                    response.read()
                    raise_for_status(response)
                with path.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot download the assignments of job {_id(job)}: {exc}") from exc
        return path

    def labels(self, job: str | dict) -> np.ndarray:
        """The cluster of each sample, in upload order (int64)."""
        text = self._request("GET", f"/jobs/{_id(job)}/assignments.csv").text
        rows = csv.DictReader(io.StringIO(text))
        return np.array([int(row["cluster"]) for row in rows], dtype=np.int64)

    def embedding(self, job: str | dict) -> np.ndarray:
        """The latent embedding (n, d'), float32."""
        return np.load(
            io.BytesIO(self._request("GET", f"/jobs/{_id(job)}/embedding.npy").content),
            allow_pickle=False,
        )

    def artifact(self, job: str | dict, name: str) -> np.ndarray:
        """One of the arrays the job's method returned besides its labels (the job's
        `artifacts` lists them), e.g. DSCNSS's `head_labels`."""
        response = self._request("GET", f"/jobs/{_id(job)}/artifacts/{name}",
                                 params={"format": "npy"})
        return np.load(io.BytesIO(response.content), allow_pickle=False)

    def history(self, job: str | dict) -> list[dict]:
        return self._json("GET", f"/jobs/{_id(job)}/history")


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(size):
            yield chunk


def raise_for_status(response: httpx.Response) -> None:
    """Raise the typed error for a 4xx/5xx answer, with the API's message."""
    if not response.is_error:
        return
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    message = f"{response.status_code} {response.reason_phrase}: {describe_detail(detail)}"
    kind = BY_STATUS.get(
        response.status_code, ServerError if response.status_code >= 500 else DeepclustError
    )
    if kind is RateLimited:
        retry_after = response.headers.get("Retry-After")
        raise RateLimited(
            message,
            response.status_code,
            detail,
            float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    raise kind(message, response.status_code, detail)


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, int | None, dict]]:
    """(event, id, data) for each Server-Sent Event, ("keep-alive", None, {}) for a comment."""
    event, seq, data = "progress", None, []
    for line in lines:
        if not line:
            if data:
                yield event, seq, json.loads("\n".join(data))
            event, seq, data = "progress", None, []
        elif line.startswith(":"):
            yield "keep-alive", None, {}
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "id":
                seq = int(value) if value.isdigit() else None
            elif field == "data":
                data.append(value)
