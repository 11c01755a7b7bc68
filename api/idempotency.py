"""`Idempotency-Key` on POST /jobs and POST /datasets: a retry with the same key and the
same request gets the first response again (same id, nothing created twice); the same key
with another request is a 422. A retry that arrives while the first is still being handled
waits for its response."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated

from fastapi import Header, HTTPException
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from persistence import idempotency
from persistence.db import session_scope

WAIT_S = 60.0  # how long a retry waits for the first request's response

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key and request return the first response (kept 24 h)",
    ),
]


def fingerprint(*parts: object) -> str:
    """sha256 of what a request asks for (route, query, body or file digest)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Claim:
    """The right to handle a request: `record` stores its response in the transaction that
    creates what it names. Used as a context manager (`with` / `async with`), a failure
    inside releases the key so that a retry runs the request again. With no Idempotency-Key
    (`key` None) it does nothing."""

    def __init__(self, caller: Caller, key: str | None):
        self.caller, self.key = caller, key

    def record(self, session, status_code: int, response: dict, location: str | None) -> None:
        if self.key is not None:
            idempotency.complete(
                session, self.caller.key_id, self.key, status_code, response, location
            )

    def release(self) -> None:
        if self.key is not None:
            with session_scope() as session:
                idempotency.release(session, self.caller.key_id, self.key)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, kind, _value, _traceback) -> None:
        if kind is not None:
            self.release()

    async def __aenter__(self) -> Claim:
        return self

    async def __aexit__(self, kind, _value, _traceback) -> None:
        if kind is not None:
            await run_in_threadpool(self.release)


def begin(caller: Caller, key: str | None, request_fingerprint: str) -> Claim | JSONResponse:
    """A JSONResponse: the first response to this key, to return as it is (this is a retry).
    A Claim: handle the request inside it. Blocks while another request holds the key (call it
    from a thread in async routes)."""
    if key is None:
        return Claim(caller, None)
    deadline = time.monotonic() + WAIT_S
    while True:
        with session_scope() as session:
            if idempotency.claim(session, caller.key_id, key, request_fingerprint):
                return Claim(caller, key)
        with session_scope() as session:
            record = idempotency.read(session, caller.key_id, key)
            if record is not None:
                if record.fingerprint != request_fingerprint:
                    raise HTTPException(
                        422,
                        [
                            {
                                "loc": ["header", "Idempotency-Key"],
                                "type": "value_error",
                                "msg": "this Idempotency-Key was used with a different request; "
                                "use a new key for a new request",
                            }
                        ],
                    )
                if record.status_code is not None:
                    headers = {"Idempotent-Replayed": "true"}
                    if record.location:
                        headers["Location"] = record.location
                    return JSONResponse(
                        record.response, status_code=record.status_code, headers=headers
                    )
        # Still being handled (or released by a failure just now): look again shortly.
        if time.monotonic() > deadline:
            raise HTTPException(
                409, "a request with this Idempotency-Key is still being handled; retry later"
            )
        time.sleep(0.05)
