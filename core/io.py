"""Reading and validating datasets: .npy, .npz, .csv, .parquet.

One loader for the API upload, the CLI and the benchmarks. Every problem raises
DataError with a message that names it; callers turn that into a 4xx or a CLI error.

X is never held whole: `open_dataset` checks what a file declares (the .npy header, the zip
directory, the parquet metadata) before any data is read or decompressed, and
`DatasetStream.float32_chunks` then reads, converts and checks CHUNK_ITEMS values at a time,
so an upload's memory does not grow with its size. Labels and ids are held whole, at most
SIDE_ARRAY_MAX_BYTES each.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

FORMATS = ("npy", "npz", "csv", "parquet")
NPZ_MAX_MEMBERS = 8
CHUNK_ITEMS = 1 << 21  # values converted at a time: 8 MiB as float32, 16 MiB read from float64
SIDE_ARRAY_MAX_BYTES = 32 << 20  # y (as int64: 4M labels) and ids (as text) are held whole
FORTRAN_MAX_BYTES = 64 << 20  # a Fortran-ordered X can't be read row-major in chunks: read whole
NPY_MAX_HEADER_BYTES = 10_000  # numpy's own default cap on the header text
CSV_MAX_LINE_BYTES = 4 << 20  # pandas tokenises a whole line at once
PARQUET_MAX_ROW_GROUP_BYTES = 64 << 20  # pyarrow decodes a whole row group at once
NUMERIC_KINDS = "biuf"
# what a truncated or corrupt zip (or file) raises while it is read
UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


class DataError(ValueError):
    """The data cannot be used; the message says why."""


class DataTooLarge(DataError):
    """The data, stored as float32, would exceed the size limit (an HTTP 413)."""


@dataclass
class Dataset:
    X: np.ndarray  # float32, (n, d) vectors or (n, H, W[, C]) images
    y: np.ndarray | None = None  # int64 ground truth 0..C-1, for evaluation only
    ids: np.ndarray | None = None  # str sample ids
    source_dtype: str = "float32"

    @property
    def kind(self) -> str:
        return "images" if self.X.ndim in (3, 4) else "vectors"


def format_of(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DataError(
            f"unsupported file type {suffix or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    return suffix


def read_dataset(
    path: str | Path,
    fmt: str | None = None,
    *,
    label_column: str | None = None,
    id_column: str | None = None,
    max_stored_bytes: int | None = None,
) -> Dataset:
    """Read and validate a whole dataset file (CLI, benchmarks). `fmt` defaults to the suffix."""
    with open_dataset(
        path, fmt, label_column=label_column, id_column=id_column, max_stored_bytes=max_stored_bytes
    ) as data:
        X = np.empty(data.shape, dtype=np.float32)
        flat, start = X.reshape(-1), 0
        for chunk in data.float32_chunks():
            flat[start : start + chunk.size] = chunk
            start += chunk.size
        return Dataset(X=X, y=data.y, ids=data.ids, source_dtype=data.source_dtype)


def open_dataset(
    path: str | Path,
    fmt: str | None = None,
    *,
    label_column: str | None = None,
    id_column: str | None = None,
    max_stored_bytes: int | None = None,
    spool_dir: str | Path | None = None,
) -> DatasetStream:
    """Check a dataset file's declared shape, dtype and size, and read its labels and ids;
    X is read later, in chunks, by `float32_chunks`. Use it as a context manager.
    Tables are converted to a float32 spool file in `spool_dir` (default: the system's)."""
    path = Path(path)
    fmt = fmt or format_of(path.name)
    resources = ExitStack()
    try:
        if fmt == "npy":
            values = resources.enter_context(open(path, "rb"))
            header = read_npy_header(values, "the .npy file", os.path.getsize(path))
            return DatasetStream(header, values, None, None, resources, max_stored_bytes)
        if fmt == "npz":
            return _open_npz(path, resources, max_stored_bytes)
        if fmt in ("csv", "parquet"):
            return _open_table(
                path, fmt, label_column, id_column, resources, max_stored_bytes, spool_dir
            )
        raise DataError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    except UNREADABLE as exc:
        resources.close()
        raise DataError(
            f"not a readable .{fmt} file (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    except BaseException:
        resources.close()
        raise


def validate(X: np.ndarray, y: np.ndarray | None = None, ids: np.ndarray | None = None) -> Dataset:
    """Validate arrays already in memory, with the same rules as a file."""
    X = np.asarray(X)
    check_x(X.shape, X.dtype)
    source_dtype = str(X.dtype)
    X = np.ascontiguousarray(X, dtype=np.float32)
    _check_finite(X.reshape(-1), 0, X[0].size)
    n = X.shape[0]
    return Dataset(
        X=X,
        y=None if y is None else labels(np.asarray(y), n),
        ids=None if ids is None else sample_ids(np.asarray(ids), n),
        source_dtype=source_dtype,
    )


# ---- what X may be ------------------------------------------------------------------------------
def check_x(shape: tuple, dtype: np.dtype, max_stored_bytes: int | None = None) -> None:
    """Refuse an X by its declared shape and dtype, before any of it is read."""
    if dtype.hasobject:
        raise DataError("pickled (object) arrays are refused; save a numeric array")
    if dtype.kind not in NUMERIC_KINDS:
        raise DataError(f"X must be numeric (integer or real), got dtype {dtype}")
    if len(shape) not in (2, 3, 4):
        raise DataError(
            f"X must be (n, d) vectors or (n, H, W[, C]) images, got shape {list(shape)}"
        )
    if shape[0] < 2:
        raise DataError(f"need at least 2 samples, got {shape[0]}")
    if math.prod(shape[1:]) == 0:
        raise DataError(f"each sample must have at least one feature, got shape {list(shape)}")
    stored = math.prod(shape) * 4
    if max_stored_bytes is not None and stored > max_stored_bytes:
        raise DataTooLarge(
            f"X of shape {list(shape)} takes {stored} bytes as float32, more than the limit "
            f"of {max_stored_bytes} bytes (DEEPCLUST_MAX_UPLOAD_BYTES)"
        )


def _check_finite(values: np.ndarray, first_index: int, row_size: int) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        row = (first_index + int(np.argmin(finite))) // row_size
        raise DataError(
            f"X has NaN or infinite values (first in row {row}); "
            "clean or drop them before uploading"
        )


def labels(y: np.ndarray, n: int) -> np.ndarray:
    """Ground truth as int64 classes 0..C-1."""
    if y.dtype.hasobject:
        raise DataError("pickled (object) arrays are refused; save y as numbers or text")
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.shape != (n,):
        raise DataError(f"y must have one label per sample ({n}), got shape {list(y.shape)}")
    if y.dtype.kind not in NUMERIC_KINDS + "US":
        raise DataError(f"y must hold numbers or text, got dtype {y.dtype}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError("y has NaN or infinite values")
    return np.unique(y, return_inverse=True)[1].astype(np.int64)


def sample_ids(ids: np.ndarray, n: int) -> np.ndarray:
    if ids.dtype.hasobject:
        raise DataError("pickled (object) arrays are refused; save ids as numbers or text")
    if ids.dtype.kind not in NUMERIC_KINDS + "US":
        raise DataError(f"ids must be numbers or text, got dtype {ids.dtype}")
    if ids.shape != (n,):
        raise DataError(f"ids must have one entry per sample ({n}), got shape {list(ids.shape)}")
    ids = ids.astype(str)
    if len(np.unique(ids)) != n:
        raise DataError("ids must be unique")
    return ids


def _check_side_size(what: str, count: int, dtype: np.dtype) -> None:
    """Labels and ids are held whole: refuse them by declared size before reading them."""
    kept = (
        8 if what == "y" else np.array([], dtype=dtype).astype(str).dtype.itemsize
    )  # int64 or text
    width = max(dtype.itemsize, kept)
    if count * width > SIDE_ARRAY_MAX_BYTES:
        raise DataTooLarge(
            f"{what} would take {count * width} bytes in memory, more than the "
            f"{SIDE_ARRAY_MAX_BYTES} bytes allowed for labels or ids"
        )


# ---- .npy and .npz ------------------------------------------------------------------------
@dataclass
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_bytes: int | None = None  # bytes after the header, where the container says


def read_npy_header(stream: BinaryIO, what: str, total_bytes: int | None = None) -> NpyHeader:
    """Read an .npy header, leaving `stream` at the first data byte. The header's length is
    checked before the header is read, so a hostile length never makes us read (or unzip) more."""
    try:
        major, minor = np.lib.format.read_magic(stream)
    except ValueError:
        raise DataError(f"{what} is not an .npy array (wrong magic bytes, or truncated)") from None
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise DataError(f"{what} has .npy format version {major}.{minor}; expected 1.0, 2.0 or 3.0")
    length_bytes = _read_exactly(stream, 2 if major == 1 else 4, what)
    length = struct.unpack("<H" if major == 1 else "<I", length_bytes)[0]
    if length > NPY_MAX_HEADER_BYTES:
        raise DataError(
            f"{what} has a {length}-byte header; at most {NPY_MAX_HEADER_BYTES} bytes are read"
        )
    text = _read_exactly(stream, length, what)
    read_header = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    try:
        shape, fortran_order, dtype = read_header(io.BytesIO(bytes(length_bytes) + bytes(text)))
    except Exception as exc:  # ValueError, TypeError, tokenize.TokenError from numpy's parser
        raise DataError(f"{what} has an unreadable header: {_first_line(exc)}") from None
    if any(size < 0 for size in shape):
        raise DataError(f"{what} declares a negative size in its shape {list(shape)}")
    data_bytes = None if total_bytes is None else total_bytes - 8 - len(length_bytes) - length
    return NpyHeader(tuple(shape), dtype, fortran_order, data_bytes)


def _check_data_size(what: str, header: NpyHeader, size: int) -> None:
    """The file (or zip member) must hold exactly the data its header declares: more would be
    a zip bomb's padding, less a truncated file."""
    if header.data_bytes is None or header.data_bytes == size:
        return
    problem = "is truncated" if header.data_bytes < size else "is corrupt"
    raise DataError(
        f"{what} {problem}: its header declares {size} bytes of data (shape {list(header.shape)}, "
        f"{header.dtype}) and it holds {header.data_bytes}"
    )


def _read_exactly(stream: BinaryIO, size: int, what: str) -> bytearray:
    buffer = bytearray(size)
    view, filled = memoryview(buffer), 0
    while filled < size:
        try:
            got = stream.readinto(view[filled:])
        except UNREADABLE as exc:
            raise DataError(
                f"{what} is not readable (truncated or corrupt?): {_first_line(exc)}"
            ) from None
        if not got:
            raise DataError(
                f"{what} is truncated: it ends {size - filled} bytes before the data it declares"
            )
        filled += got
    return buffer


def _read_small_array(stream: BinaryIO, header: NpyHeader, what: str) -> np.ndarray:
    if header.dtype.hasobject:
        raise DataError(f"pickled (object) arrays are refused; save {what} as numbers or text")
    count = math.prod(header.shape)
    _check_side_size(what, count, header.dtype)
    size = count * header.dtype.itemsize
    _check_data_size(what, header, size)
    flat = np.frombuffer(_read_exactly(stream, size, what), dtype=header.dtype)
    return flat.reshape(header.shape, order="F" if header.fortran_order else "C")


def _open_npz(path: Path, resources: ExitStack, max_stored_bytes: int | None) -> DatasetStream:
    archive = resources.enter_context(zipfile.ZipFile(path))
    infos = archive.infolist()
    if len(infos) > NPZ_MAX_MEMBERS:
        raise DataError(f".npz has {len(infos)} arrays; expected X and optionally y and ids")
    members = {info.filename.removesuffix(".npy"): info for info in infos}
    if "X" not in members:
        raise DataError(
            f".npz must hold an array named X (and optionally y, ids); found {sorted(members)}"
        )

    def open_member(name: str) -> tuple[BinaryIO, NpyHeader]:
        info = members[name]
        if info.flag_bits & 0x1:
            raise DataError(f".npz member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DataError(
                f".npz member {info.filename!r} uses zip compression method {info.compress_type}; "
                "only stored and deflated members (np.savez, np.savez_compressed) are read"
            )
        stream = resources.enter_context(archive.open(info))
        return stream, read_npy_header(stream, f".npz member {name}", info.file_size)

    values, header = open_member("X")
    check_x(header.shape, header.dtype, max_stored_bytes)  # before reading y and ids
    side = {
        name: _read_small_array(*open_member(name), name)
        for name in ("y", "ids")
        if name in members
    }
    return DatasetStream(
        header, values, side.get("y"), side.get("ids"), resources, max_stored_bytes
    )


class DatasetStream:
    """A dataset checked by what it declares, whose X is read later in chunks (open_dataset)."""

    def __init__(
        self,
        header: NpyHeader,
        values: BinaryIO,
        y: np.ndarray | None,
        ids: np.ndarray | None,
        resources: ExitStack,
        max_stored_bytes: int | None,
        source_dtype: str | None = None,
    ):
        check_x(header.shape, header.dtype, max_stored_bytes)
        self.shape, self.source_dtype = header.shape, source_dtype or str(header.dtype)
        self._header, self._values, self._resources = header, values, resources
        size = math.prod(header.shape) * header.dtype.itemsize
        if header.fortran_order and size > FORTRAN_MAX_BYTES:
            raise DataError(
                f"a Fortran-ordered X is read whole, so at most {FORTRAN_MAX_BYTES} bytes; "
                "save it C-ordered (np.ascontiguousarray)"
            )
        _check_data_size("X", header, size)
        n = header.shape[0]
        self.y = None if y is None else labels(y, n)
        self.ids = None if ids is None else sample_ids(ids, n)

    @property
    def kind(self) -> str:
        return "images" if len(self.shape) in (3, 4) else "vectors"

    @property
    def stored_bytes(self) -> int:
        return math.prod(self.shape) * 4

    def float32_chunks(self) -> Iterator[np.ndarray]:
        """X's values in C order, as flat float32 chunks of at most CHUNK_ITEMS, each checked
        finite. Read once: the values come from a stream."""
        dtype, total = self._header.dtype, math.prod(self.shape)
        row_size = total // self.shape[0]
        whole = None
        if self._header.fortran_order:
            whole = np.frombuffer(
                _read_exactly(self._values, total * dtype.itemsize, "X"), dtype=dtype
            )
            whole = np.ascontiguousarray(whole.reshape(self.shape, order="F")).reshape(-1)
        for start in range(0, total, CHUNK_ITEMS):
            count = min(CHUNK_ITEMS, total - start)
            if whole is not None:
                source = whole[start : start + count]
            else:
                source = np.frombuffer(
                    _read_exactly(self._values, count * dtype.itemsize, "X"), dtype=dtype
                )
            with np.errstate(over="ignore"):  # beyond float32's range: inf, refused just below
                chunk = source.astype(np.float32)
            _check_finite(chunk, start, row_size)
            yield chunk

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> DatasetStream:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


# ---- tables -------------------------------------------------------------------------------------
def _open_table(
    path: Path,
    fmt: str,
    label_column: str | None,
    id_column: str | None,
    resources: ExitStack,
    max_stored_bytes: int | None,
    spool_dir: str | Path | None,
) -> DatasetStream:
    """Convert the feature columns, a bounded number of rows at a time, into a float32 spool
    file; the label and id columns are kept (at most SIDE_ARRAY_MAX_BYTES each)."""
    frames = _csv_frames(path) if fmt == "csv" else _parquet_frames(path)
    resources.callback(frames.close)
    spool = resources.enter_context(tempfile.TemporaryFile(dir=spool_dir))
    n = width = 0
    side: dict[str, list[np.ndarray]] = {"y": [], "ids": []}
    for index, frame in enumerate(frames):
        if index == 0:
            for role, column in (("label_column", label_column), ("id_column", id_column)):
                if column is not None and column not in frame.columns:
                    raise DataError(
                        f"{role} {column!r} is not a column; columns are "
                        f"{list(map(str, frame.columns))[:20]}"
                    )
        if len(frame) == 0:
            continue
        for what, column in (("y", label_column), ("ids", id_column)):
            if column is not None:
                side[what].append(_side_column(frame.pop(column), what, column, n))
                _check_side_size(what, n + len(frame), side[what][-1].dtype)
        width = width or frame.shape[1]
        if width == 0:
            raise DataError("no feature columns left after removing the label and id columns")
        _check_features(frame, n)
        n += len(frame)
        if max_stored_bytes is not None and n * width * 4 > max_stored_bytes:
            raise DataTooLarge(
                f"the table's features take more than {max_stored_bytes} bytes as float32 "
                f"(more than {n} rows of {width} columns; DEEPCLUST_MAX_UPLOAD_BYTES)"
            )
        spool.write(frame.to_numpy(dtype=np.float64).astype(np.float32).tobytes())
    if n < 2:
        raise DataError(f"need at least 2 samples, got {n} rows")
    spool.seek(0)
    y, ids = (np.concatenate(side[what]) if side[what] else None for what in ("y", "ids"))
    return DatasetStream(
        NpyHeader((n, width), np.dtype(np.float32), False),
        spool,
        y,
        ids,
        resources,
        max_stored_bytes,
        source_dtype="float64",
    )


def _check_features(frame, first_row: int) -> None:
    import pandas as pd

    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
            frame[column]
        ):
            sample = frame[column].dropna().astype(str).head(1).tolist()
            raise DataError(
                f"column {column!r} is not numeric (e.g. {sample[0][:100]!r}); name it as "
                "label_column or id_column, or drop it"
                if sample
                else f"column {column!r} is empty"
            )
    missing = frame.isna().any(axis=1).to_numpy()
    if missing.any():
        raise DataError(
            f"rows have missing values (first: data row {first_row + int(np.argmax(missing)) + 1});"
            " is the file ragged?"
        )


def _side_column(values, what: str, column: str, first_row: int) -> np.ndarray:
    """A label or id column as a plain numeric or text array."""
    import pandas as pd

    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{what} column {column!r} has a missing value in data row "
            f"{first_row + int(np.argmax(missing)) + 1}"
        )
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy()
    return values.astype(str).to_numpy(dtype=str)


def _csv_frames(path: Path) -> Iterator:
    import pandas as pd

    with open(path, "rb") as file:
        fields = file.readline(CSV_MAX_LINE_BYTES).count(b",") + 1
    longest = _longest_line(path)
    if longest > CSV_MAX_LINE_BYTES:
        raise DataError(
            f"the CSV has a line of {longest} bytes; at most {CSV_MAX_LINE_BYTES} per line are read"
        )
    rows = max(1, min(100_000, CHUNK_ITEMS // fields))
    yield from _unreadable_as_data_error(
        "csv", lambda: pd.read_csv(path, chunksize=rows, on_bad_lines="error", encoding="utf-8-sig")
    )


def _longest_line(path: Path) -> int:
    longest = current = 0
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
            if ends.size:
                longest = max(longest, current + int(ends[0]), int(np.diff(ends).max(initial=0)))
                current = len(block) - int(ends[-1]) - 1
            else:
                current += len(block)
            longest = max(longest, current)
            if longest > CSV_MAX_LINE_BYTES:
                break
    return longest


def _parquet_frames(path: Path) -> Iterator:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a malformed file
        raise DataError(f"not a readable .parquet file: {_first_line(exc)}") from None
    for field in parquet.schema_arrow:
        if pa.types.is_nested(field.type):
            raise DataError(
                f"column {field.name!r} is nested ({field.type}); features, labels and ids must be "
                "plain numbers or text"
            )
    for group in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(group).total_byte_size
        if size > PARQUET_MAX_ROW_GROUP_BYTES:
            raise DataError(
                f"parquet row group {group} is {size} bytes uncompressed; at most "
                f"{PARQUET_MAX_ROW_GROUP_BYTES} are read at once: "
                "write it with a smaller row_group_size"
            )
    columns = max(1, len(parquet.schema_arrow))
    rows = max(1, min(100_000, CHUNK_ITEMS // columns))
    yield from _unreadable_as_data_error(
        "parquet", lambda: (batch.to_pandas() for batch in parquet.iter_batches(batch_size=rows))
    )


def _unreadable_as_data_error(fmt: str, open_frames) -> Iterator:
    """pandas and pyarrow raise many types for a malformed file: each becomes a DataError."""
    try:
        frames = iter(open_frames())
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            yield frame
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"not a readable .{fmt} file: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# ---- results ------------------------------------------------------------------------------------
def assignment_csv_chunks(
    labels: np.ndarray, confidence: np.ndarray, ids: np.ndarray | None, rows_per_chunk: int = 10_000
):
    """The assignments CSV, `index,sample_id,cluster,confidence`, in chunks of text."""
    import csv
    import io

    yield "index,sample_id,cluster,confidence\r\n"
    for start in range(0, len(labels), rows_per_chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for i in range(start, min(start + rows_per_chunk, len(labels))):
            writer.writerow(
                (
                    i,
                    _safe_cell(str(ids[i])) if ids is not None else i,
                    int(labels[i]),
                    f"{float(confidence[i]):.6f}",
                )
            )
        yield buffer.getvalue()


def artifact_csv_chunks(name: str, values: np.ndarray, per_sample: bool, ids: np.ndarray | None,
                        rows_per_chunk: int = 10_000):
    """A 1-D or 2-D artifact as CSV, in chunks of text: `index,<name>` (or `<name>_0`,
    `<name>_1`, ... for columns), with `sample_id` after the index when it has a row per
    sample (`ids`: the samples' ids; None: the index, as in the assignments CSV)."""
    import csv
    import io

    table = values.reshape(len(values), -1)
    columns = [name] if values.ndim == 1 else [f"{name}_{j}" for j in range(table.shape[1])]
    yield ",".join(["index", *(["sample_id"] if per_sample else []), *columns]) + "\r\n"
    for start in range(0, len(table), rows_per_chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for i in range(start, min(start + rows_per_chunk, len(table))):
            sample_id = [_safe_cell(str(ids[i])) if ids is not None else i] if per_sample else []
            writer.writerow((i, *sample_id, *(str(v) for v in table[i])))  # numpy's shortest repr
        yield buffer.getvalue()


def _safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas in user-supplied ids (CSV injection)."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value
