"""Receiving an upload. The body is handled as it arrives: a raw body is written as it is, a
multipart form is parsed on the fly and only its file part is written, so an upload never
sits whole in memory nor twice on disk. Past the size limit the request gets a 413 at once.

Files go to a folder of their own under <data_dir>/uploads, removed after the request; a
folder left by a killed API (its lock is gone with the process) is swept at the next start."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from api.deps import unprocessable
from persistence.settings import get_settings

log = logging.getLogger(__name__)

# Room for a multipart form's headers around the file, and for the file's own headers (an
# .npy header, a zip directory): the limit is on the stored array, so a 2 GiB array fits.
ENVELOPE_BYTES = 64 * 1024
PART_HEADER_MAX_BYTES = 16 * 1024  # one header line of a form part
FILENAME_MAX_CHARS = 255  # the datasets.name column
# Not a file's bytes. (x-www-form-urlencoded is: curl --data-binary sends files with that type.)
NOT_A_FILE = (b"application/json",)


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(
            413, f"upload is larger than the limit of {limit} bytes (DEEPCLUST_MAX_UPLOAD_BYTES)"
        )


def uploads_root() -> Path:
    return get_settings().data_dir.resolve() / "uploads"


@contextmanager
def upload_folder() -> Iterator[Path]:
    """A fresh folder for one upload, locked while it is in use and removed afterwards."""
    root = uploads_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=root))
    try:
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel if we die
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_uploads(min_age_s: float = 60) -> list[str]:
    """Remove upload folders whose process is gone (their lock is free); return their names.
    A folder with no lock file yet is left alone while it is young (being created)."""
    root, swept = uploads_root(), []
    if not root.is_dir():
        return swept
    for folder in root.iterdir():
        lock_path = folder / ".lock"
        try:
            if not lock_path.exists():
                if time.time() - folder.stat().st_mtime < min_age_s:
                    continue
            else:
                with open(lock_path, "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live upload holds it
        except OSError:
            pass  # a stray file, or a folder we can't lock: remove it all the same
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
        swept.append(folder.name)
    return swept


def clean_filename(filename: str | None) -> str | None:
    """A client's file name made storable: the last path component, without control
    characters (PostgreSQL refuses NUL), at most 255 characters keeping the suffix. Sanitised,
    not refused: the name is a label, and its suffix (the format) survives."""
    if filename is None:
        return None
    name = "".join(ch for ch in filename.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable())
    if len(name) > FILENAME_MAX_CHARS:
        suffix = Path(name).suffix[:16]
        name = name[: FILENAME_MAX_CHARS - len(suffix)] + suffix
    return name or None


async def receive_upload(
    request: Request, limit: int, folder: Path
) -> tuple[Path, str | None, int]:
    """Write the uploaded file into `folder`; return (its path, the form's file name, size)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        raise UploadTooLarge(limit)
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    other_multipart = (
        content_type.startswith(b"multipart/") and content_type != b"multipart/form-data"
    )
    if content_type in NOT_A_FILE or other_multipart:
        raise HTTPException(
            415,
            f"content type {content_type.decode('latin-1')!r} is not an upload; send the "
            "file as multipart/form-data (-F file=@data.npz) or as the raw body",
        )
    path = folder / "file"
    with open(path, "wb") as out:
        sink = (
            _FilePart(options.get(b"boundary"), out, limit)
            if content_type == b"multipart/form-data"
            else None
        )
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + ENVELOPE_BYTES:
                raise UploadTooLarge(limit)
            if sink is None:
                out.write(chunk)
            else:
                sink.write(chunk)
        filename = sink.finish() if sink is not None else None
    return path, filename, os.path.getsize(path)


class _FilePart:
    """Parses a multipart body chunk by chunk, writing the first file part's bytes to `out`."""

    def __init__(self, boundary: bytes | None, out, limit: int):
        if not boundary:
            raise HTTPException(400, "multipart body without a boundary in its Content-Type")
        self.out, self.limit, self.size = out, limit, 0
        self.headers: dict[bytes, bytes] = {}
        self.header_field = self.header_value = b""
        self.in_file = self.done = False
        self.filename: str | None = None
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def write(self, chunk: bytes) -> None:
        self._guarded(self.parser.write, chunk)

    def finish(self) -> str | None:
        self._guarded(self.parser.finalize)
        if not self.done:
            raise unprocessable(
                ["body", "file"],
                "the multipart form has no file part; send the file as -F file=@data.npz",
            )
        return self.filename

    @staticmethod
    def _guarded(call, *args) -> None:
        try:
            call(*args)
        except HTTPException:
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise HTTPException(400, f"malformed multipart body: {exc}") from None

    def _part_begin(self) -> None:
        self.headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]
        self._check_header()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self.header_field) + len(self.header_value) > PART_HEADER_MAX_BYTES:
            raise HTTPException(
                400, f"a multipart part header is longer than {PART_HEADER_MAX_BYTES} bytes"
            )

    def _header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = self.header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.in_file = b"filename" in options and not self.done
        if self.in_file:
            self.filename = options[b"filename"].decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.size += end - start
            if self.size > self.limit + ENVELOPE_BYTES:
                raise UploadTooLarge(self.limit)
            self.out.write(data[start:end])

    def _part_end(self) -> None:
        if self.in_file:
            self.done = True
        self.in_file = False
