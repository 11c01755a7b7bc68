"""Receiving an upload: the body is streamed to a temporary file with a size limit (413
beyond it), never held whole in memory. A multipart form's file part is then extracted
to its own temporary file; a raw body (curl --data-binary) is used as it is."""
from __future__ import annotations

import os

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from python_multipart.multipart import MultipartParser, parse_options_header


ENVELOPE_BYTES = 64 * 1024  # room for a multipart form's headers around the file


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"upload is larger than the limit of {limit} bytes (DEEPCLUST_MAX_UPLOAD_BYTES)")


async def receive_upload(request: Request, limit: int, folder: str) -> tuple[str, str | None, int]:
    """Stream the body into `folder`; return (file path, filename from the form or None, size)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        raise UploadTooLarge(limit)
    body = os.path.join(folder, "body")
    size = 0
    with open(body, "wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit + ENVELOPE_BYTES:
                raise UploadTooLarge(limit)
            out.write(chunk)
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        path, filename = body, None
    else:
        path, filename = await run_in_threadpool(_extract_file_part, body, options.get(b"boundary"), folder)
        os.remove(body)
        size = os.path.getsize(path)
    if size > limit:
        raise UploadTooLarge(limit)
    return path, filename, size


def _extract_file_part(body_path: str, boundary: bytes | None, folder: str) -> tuple[str, str | None]:
    """Stream the first file part of a multipart body into its own file."""
    if not boundary:
        raise HTTPException(400, "multipart body without a boundary")
    out_path = os.path.join(folder, "file")
    state: dict = {"headers": {}, "name": None, "field": None, "file": None, "filename": None, "done": False,
                   "header_field": b"", "header_value": b""}
    out = open(out_path, "wb")

    def on_part_begin():
        state["headers"] = {}

    def on_header_field(data, start, end):
        state["header_field"] += data[start:end]

    def on_header_value(data, start, end):
        state["header_value"] += data[start:end]

    def on_header_end():
        state["headers"][state["header_field"].lower()] = state["header_value"]
        state["header_field"] = state["header_value"] = b""

    def on_headers_finished():
        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        is_file = b"filename" in options and not state["done"]
        state["field"] = "file" if is_file else None
        if is_file:
            state["filename"] = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(data, start, end):
        if state["field"] == "file":
            out.write(data[start:end])

    def on_part_end():
        if state["field"] == "file":
            state["done"] = True
        state["field"] = None

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        with open(body_path, "rb") as body:
            while chunk := body.read(1 << 20):
                parser.write(chunk)
        parser.finalize()
    except Exception as exc:
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    finally:
        out.close()
    if not state["done"]:
        raise HTTPException(422, "the multipart form has no file part; send the file as -F file=@data.npz")
    return out_path, state["filename"]
