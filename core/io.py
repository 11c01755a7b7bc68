"""Reading and validating datasets: .npy, .npz, .csv, .parquet.

One loader for the API upload, the CLI and the benchmarks. Every problem raises
DataError with a message that names it; callers turn that into a 4xx or a CLI error.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = ("npy", "npz", "csv", "parquet")
NPZ_MAX_MEMBERS = 8


class DataError(ValueError):
    """The data cannot be used; the message says why."""


@dataclass
class Dataset:
    X: np.ndarray  # float32, (n, d) vectors or (n, H, W[, C]) images
    y: np.ndarray | None = None  # int64 ground truth 0..C-1, for evaluation only
    ids: np.ndarray | None = None  # str sample ids
    source_dtype: str = "float32"

    @property
    def kind(self) -> str:
        return "images" if self.X.ndim in (3, 4) else "vectors"


def format_of(filename: str) -> str:
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DataError(f"unsupported file type {suffix or '(none)'!r}; use one of {', '.join(FORMATS)}")
    return suffix


def read_dataset(path: str | Path, fmt: str | None = None, *, label_column: str | None = None,
                 id_column: str | None = None, max_unpacked_bytes: int = 4 << 30) -> Dataset:
    """Read and validate a dataset file. `fmt` defaults to the file's suffix."""
    path = Path(path)
    fmt = fmt or format_of(path.name)
    if fmt == "npy":
        X, y, ids = _load_npy(path), None, None
    elif fmt == "npz":
        X, y, ids = _load_npz(path, max_unpacked_bytes)
    elif fmt in ("csv", "parquet"):
        X, y, ids = _load_table(path, fmt, label_column, id_column)
    else:
        raise DataError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    return validate(X, y, ids)


def validate(X: np.ndarray, y: np.ndarray | None = None, ids: np.ndarray | None = None) -> Dataset:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"X must be numeric, got dtype {X.dtype}")
    if X.ndim not in (2, 3, 4):
        raise DataError(f"X must be (n, d) vectors or (n, H, W[, C]) images, got shape {list(X.shape)}")
    n = X.shape[0]
    if n < 2:
        raise DataError(f"need at least 2 samples, got {n}")
    if X[0].size == 0:
        raise DataError(f"each sample must have at least one feature, got shape {list(X.shape)}")
    source_dtype = str(X.dtype)
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(X.reshape(n, -1)).all(axis=1)
    if bad.any():
        raise DataError(f"X has NaN or infinite values in {int(bad.sum())} rows (first: row {int(np.argmax(bad))});"
                        " clean or drop them before uploading")
    if y is not None:
        y = _labels(np.asarray(y), n)
    if ids is not None:
        ids = np.asarray(ids).astype(str)
        if ids.shape != (n,):
            raise DataError(f"ids must have one entry per sample ({n}), got shape {list(ids.shape)}")
        if len(np.unique(ids)) != n:
            raise DataError("ids must be unique")
    return Dataset(X=X, y=y, ids=ids, source_dtype=source_dtype)


def _labels(y: np.ndarray, n: int) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.shape != (n,):
        raise DataError(f"y must have one label per sample ({n}), got shape {list(y.shape)}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError("y has NaN or infinite values")
    return np.unique(y, return_inverse=True)[1].astype(np.int64)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError("pickled .npy files are refused; save a numeric array") from None
        raise DataError(f"not a readable .npy file (truncated or corrupt?): {exc}") from None
    except (EOFError, OSError) as exc:
        raise DataError(f"not a readable .npy file (truncated?): {exc}") from None


def _load_npz(path: Path, max_unpacked_bytes: int) -> tuple:
    # .npz is a zip: check members and the unpacked size before reading (zip bombs).
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"not a readable .npz file (truncated?): {exc}") from None
    if len(infos) > NPZ_MAX_MEMBERS:
        raise DataError(f".npz has {len(infos)} arrays; expected X and optionally y and ids")
    if sum(info.file_size for info in infos) > max_unpacked_bytes:
        raise DataError(f".npz unpacks to more than {max_unpacked_bytes} bytes")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "X" not in names:
                raise DataError(f".npz must hold an array named X (and optionally y, ids); found {sorted(names)}")
            return npz["X"], npz["y"] if "y" in names else None, npz["ids"] if "ids" in names else None
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError("pickled arrays in .npz are refused; save numeric arrays") from None
        raise DataError(f"not a readable .npz file (truncated or corrupt?): {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"not a readable .npz file (truncated?): {exc}") from None


def _load_table(path: Path, fmt: str, label_column: str | None, id_column: str | None) -> tuple:
    import pandas as pd

    try:
        if fmt == "csv":
            frame = pd.read_csv(path, on_bad_lines="error", encoding="utf-8-sig", low_memory=False)
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"not a readable .{fmt} file: {first_line}") from None
    if len(frame) < 2:
        raise DataError(f"need at least 2 samples, got {len(frame)} rows")
    for role, column in (("label_column", label_column), ("id_column", id_column)):
        if column is not None and column not in frame.columns:
            raise DataError(f"{role} {column!r} is not a column; columns are {list(map(str, frame.columns))[:20]}")
    y = frame.pop(label_column).to_numpy() if label_column else None
    ids = frame.pop(id_column).to_numpy() if id_column else None
    if frame.shape[1] == 0:
        raise DataError("no feature columns left after removing the label and id columns")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            sample = frame[column].dropna().astype(str).head(1).tolist()
            raise DataError(f"column {column!r} is not numeric (e.g. {sample[0]!r}); name it as label_column "
                            "or id_column, or drop it" if sample else f"column {column!r} is empty")
    missing = frame.isna().any(axis=1).to_numpy()
    if missing.any():
        raise DataError(f"{int(missing.sum())} rows have missing values (first: data row {int(np.argmax(missing)) + 1});"
                        " is the file ragged?")
    return frame.to_numpy(dtype=np.float64), y, ids


def assignment_csv_chunks(labels: np.ndarray, confidence: np.ndarray, ids: np.ndarray | None,
                          rows_per_chunk: int = 10_000):
    """The assignments CSV, `index,sample_id,cluster,confidence`, in chunks of text."""
    import csv
    import io

    yield "index,sample_id,cluster,confidence\r\n"
    for start in range(0, len(labels), rows_per_chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for i in range(start, min(start + rows_per_chunk, len(labels))):
            writer.writerow((i, _safe_cell(str(ids[i])) if ids is not None else i, int(labels[i]),
                             f"{float(confidence[i]):.6f}"))
        yield buffer.getvalue()


def _safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas in user-supplied ids (CSV injection)."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
