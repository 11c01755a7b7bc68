"""Request bodies bounded, errors that don't echo them. Uploads (POST /datasets) have their
own streaming limit (api/uploads.py); every other body is small JSON."""

from __future__ import annotations

import json

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_BODY_MAX_BYTES = 1 << 20
ECHO_MAX_CHARS = 200  # of the offending input quoted back in a 422


class BodyLimit:
    """413 for a body over `max_bytes`: at once by Content-Length, or as soon as the streamed
    body passes the limit (the error is raised inside the app, which answers it)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = JSON_BODY_MAX_BYTES,
        exempt: tuple[tuple[str, str], ...] = (("POST", "/datasets"),),
    ):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"].rstrip("/")) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, bounded_receive, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": self._message()}, status_code=413)


async def validation_error_without_echo(
    _request: Request, exc: RequestValidationError
) -> JSONResponse:
    """FastAPI's 422, with each error's `input` cut to ECHO_MAX_CHARS: a 5 MB body that fails
    to parse must not come back whole."""
    errors = jsonable_encoder(exc.errors())
    for error in errors:
        if "input" in error:
            text = error["input"] if isinstance(error["input"], str) else json.dumps(error["input"])
            if len(text) > ECHO_MAX_CHARS:
                error["input"] = f"{text[:ECHO_MAX_CHARS]}... ({len(text)} characters, cut)"
    return JSONResponse({"detail": errors}, status_code=422)
