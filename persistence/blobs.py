"""Array storage: parts in the database (any worker on any host can read them) or files
under the data dir (the embedded default). Arrays are .npy bytes, read without pickle."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from persistence.models import BlobPart
from persistence.settings import get_settings

PART_BYTES = 32 << 20


def save_array(session: Session, key: str, array: np.ndarray) -> int:
    """Store the array as .npy; returns the bytes stored (what counts against a storage quota)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    _put(session, key, buffer.getbuffer())
    return buffer.getbuffer().nbytes


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


def _put(session: Session, key: str, data: memoryview) -> None:
    if get_settings().blobs == "local":
        path = _path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: a reader never sees half a file
        return
    session.execute(delete(BlobPart).where(BlobPart.key == key))
    for part, start in enumerate(range(0, max(len(data), 1), PART_BYTES)):
        session.add(BlobPart(key=key, part=part, data=bytes(data[start:start + PART_BYTES])))
    session.flush()


def read_bytes(session: Session, key: str) -> bytes:
    """The stored .npy file's bytes."""
    if get_settings().blobs == "local":
        return _path(key).read_bytes()
    parts = session.scalars(select(BlobPart.data).where(BlobPart.key == key).order_by(BlobPart.part)).all()
    if not parts:
        raise FileNotFoundError(key)
    return b"".join(parts)


def blob_root() -> Path:
    """Where local blobs live (DEEPCLUST_BLOB_STORE=local)."""
    return get_settings().data_dir.resolve() / "blobs"


def _path(key: str) -> Path:
    return blob_root() / key
