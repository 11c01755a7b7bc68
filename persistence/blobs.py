"""Array storage: parts in the database (any worker on any host can read them) or files
under the data dir (the embedded default). Arrays are .npy bytes, read without pickle.
Blobs are written in pieces (`blob_writer`), so writing one never holds it whole in memory."""

from __future__ import annotations

import io
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from persistence.models import BlobPart
from persistence.settings import get_settings

PART_BYTES = 32 << 20


def save_array(session: Session, key: str, array: np.ndarray) -> int:
    """Store the array as .npy; returns the bytes stored (what counts against a storage quota)."""
    with blob_writer(session, key) as out:
        np.save(out, array, allow_pickle=False)  # numpy writes a non-file in 16 MiB pieces
        return out.tell()


@contextmanager
def blob_writer(session: Session, key: str) -> Iterator:
    """A writable file for one blob: a local file, made visible only when the block ends
    without error, or database parts of PART_BYTES inserted as they fill."""
    if get_settings().blobs == "local":
        path = _path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        try:
            with partial.open("wb") as out:
                yield out
            partial.replace(path)  # atomic: a reader never sees half a file
        finally:
            partial.unlink(missing_ok=True)
        return
    session.execute(delete(BlobPart).where(BlobPart.key == key))
    out = _PartWriter(session, key)
    yield out
    out.finish()


class _PartWriter:
    """Fills one PART_BYTES buffer at a time and inserts it (not kept in the session) when full:
    the parts in memory at once are this buffer and the driver's copy of it."""

    def __init__(self, session: Session, key: str):
        self.session, self.key, self.parts, self.buffer = session, key, 0, bytearray()
        self.written = 0

    def tell(self) -> int:
        return self.written

    def write(self, data) -> int:
        data = memoryview(data).cast("B")  # bytes of a numpy chunk too
        start = 0
        while start < data.nbytes:
            take = min(data.nbytes - start, PART_BYTES - len(self.buffer))
            self.buffer += data[start : start + take]
            start += take
            if len(self.buffer) == PART_BYTES:
                self._insert()
        self.written += data.nbytes
        return data.nbytes

    def finish(self) -> None:
        if self.buffer or not self.parts:
            self._insert()

    def _insert(self) -> None:
        part = insert(BlobPart).values(key=self.key, part=self.parts, data=self.buffer)
        self.session.execute(part)
        self.parts, self.buffer = self.parts + 1, bytearray()


def load_array(session: Session, key: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(session, key)), allow_pickle=False)


def has_blob(session: Session, key: str) -> bool:
    if get_settings().blobs == "local":
        return _path(key).exists()
    return session.scalar(select(BlobPart.part).where(BlobPart.key == key).limit(1)) is not None


def delete_folder(session: Session, folder: str) -> None:
    """Delete every blob whose key starts with `folder/`."""
    if get_settings().blobs == "local":
        shutil.rmtree(_path(folder), ignore_errors=True)
        return
    session.execute(delete(BlobPart).where(BlobPart.key.startswith(folder.rstrip("/") + "/")))


def read_bytes(session: Session, key: str) -> bytes:
    """The stored .npy file's bytes."""
    if get_settings().blobs == "local":
        return _path(key).read_bytes()
    parts = session.scalars(
        select(BlobPart.data).where(BlobPart.key == key).order_by(BlobPart.part)
    ).all()
    if not parts:
        raise FileNotFoundError(key)
    return b"".join(parts)


def blob_root() -> Path:
    """Where local blobs live (DEEPCLUST_BLOB_STORE=local)."""
    return get_settings().data_dir.resolve() / "blobs"


def _path(key: str) -> Path:
    return blob_root() / key
