"""A corpus of hostile uploads and requests. Each gets its own 4xx with a message naming the
problem, stores nothing (no dataset row, no blob part) and leaves no file under the uploads
folder. A real API process is then measured: a zip bomb and a large legit upload keep its
peak memory within UPLOAD_MEMORY_BOUND of idle, whatever the file size."""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, npz_bytes
from tests.service.environment import DATA_DIR

UPLOAD_MEMORY_BOUND = 256 << 20  # the API's peak RSS above idle during any one upload


# ---- building hostile files ---------------------------------------------------------------------
def npy(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def npy_header(header: str, version: tuple[int, int] = (1, 0), length: int | None = None) -> bytes:
    """An .npy header as written by hand: any text, any declared length."""
    text = header.encode("latin-1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    size = struct.pack("<H" if version[0] == 1 else "<I", len(text) if length is None else length)
    return b"\x93NUMPY" + bytes(version) + size + text


def declared(shape, descr="<f8", fortran=False) -> bytes:
    return npy_header(
        f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {tuple(shape)}, }}"
    )


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


GOOD_X = np.arange(12, dtype=np.float32).reshape(4, 3)
LATE_NAN = np.zeros((2_100_000, 1), dtype=np.float32)
LATE_NAN[-1] = np.nan  # in the second converted chunk: the first one is already stored by then

# (case, file name, content, status, words the message must contain)
FILES = [
    (
        "huge-declared-shape",
        "huge.npy",
        declared((10**12, 10)) + bytes(64),
        413,
        "more than the limit",
    ),
    (
        "huge-declared-npz-member",
        "huge.npz",
        zip_of({"X.npy": declared((10**12, 10)) + bytes(64)}),
        413,
        "more than the limit",
    ),
    (
        "zip-bomb-declared-uint8",
        "bomb.npz",
        zip_of({"X.npy": declared((1 << 30, 4), "|u1") + bytes(1 << 20)}),
        413,
        "as float32",
    ),
    (
        "zip-bomb-padding",
        "pad.npz",
        zip_of({"X.npy": npy(GOOD_X) + bytes(4 << 20)}),
        422,
        "corrupt",
    ),
    ("truncated-npy", "cut.npy", npy(np.ones((50, 4)))[:150], 422, "truncated"),
    ("truncated-npz", "cut.npz", npz_bytes(X=np.ones((50, 4)))[:200], 422, "not a readable"),
    (
        "truncated-npz-member",
        "cut-member.npz",
        zip_of({"X.npy": npy(np.ones((50, 4)))[:300]}),
        422,
        "truncated",
    ),
    (
        "pickled-npy",
        "pickled.npy",
        npy(np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True),
        422,
        "pickled",
    ),
    (
        "pickled-npz-x",
        "pickled.npz",
        zip_of({"X.npy": npy(np.array([[1], [{}]], dtype=object), allow_pickle=True)}),
        422,
        "pickled",
    ),
    (
        "pickled-npz-y",
        "pickled-y.npz",
        zip_of(
            {
                "X.npy": npy(GOOD_X),
                "y.npy": npy(np.array([1, "a", 2, 3], dtype=object), allow_pickle=True),
            }
        ),
        422,
        "pickled",
    ),
    ("nan", "nan.npy", npy(np.array([[1.0, np.nan], [2.0, 3.0]])), 422, "NaN"),
    ("inf", "inf.npz", npz_bytes(X=np.array([[1.0, np.inf], [2.0, 3.0]])), 422, "infinite"),
    ("float64-overflows-float32", "big.npy", npy(np.array([[1e300], [1.0]])), 422, "infinite"),
    ("nan-in-a-later-chunk", "late.npy", npy(LATE_NAN), 422, "row 2099999"),
    ("wrong-magic", "magic.npy", b"PK\x03\x04 not an npy file at all" * 4, 422, "magic"),
    ("unknown-npy-version", "v9.npy", b"\x93NUMPY\x09\x00" + bytes(100), 422, "version 9.0"),
    (
        "huge-header-v1",
        "header.npy",
        npy_header("{}", length=60_000) + bytes(60_000),
        422,
        "header",
    ),
    (
        "huge-header-v2",
        "header2.npy",
        npy_header("{}", (2, 0), length=4_000_000_000),
        422,
        "header",
    ),
    (
        "garbage-header",
        "garbage.npy",
        npy_header("{'descr': <f8, shape: [}") + bytes(8),
        422,
        "header",
    ),
    ("header-missing-keys", "keys.npy", npy_header("{'descr': '<f8'}") + bytes(8), 422, "header"),
    ("negative-shape", "negative.npy", declared((-5, 2)), 422, "negative"),
    ("zero-d", "scalar.npy", npy(np.float64(3.0)), 422, "shape"),
    ("one-d", "vector.npy", npy(np.ones(10)), 422, "shape"),
    ("five-d", "5d.npy", npy(np.ones((2, 2, 2, 2, 2))), 422, "shape"),
    ("complex", "complex.npy", npy(np.ones((3, 2), dtype=complex)), 422, "numeric"),
    ("strings", "text.npy", npy(np.array([["a", "b"], ["c", "d"]])), 422, "numeric"),
    (
        "structured",
        "records.npy",
        npy(np.zeros((3, 2), dtype=[("a", "<f4"), ("b", "<i4")])),
        422,
        "numeric",
    ),
    ("datetimes", "dates.npy", npy(np.zeros((3, 2), dtype="datetime64[s]")), 422, "numeric"),
    ("no-features", "empty-rows.npy", npy(np.ones((5, 0))), 422, "at least one feature"),
    ("one-row", "one.npy", npy(np.ones((1, 3))), 422, "at least 2"),
    ("fortran-too-large", "fortran.npy", declared((10_000, 10_000), fortran=True), 422, "Fortran"),
    ("empty-npy", "empty.npy", b"", 422, "not an .npy"),
    ("empty-npz", "empty.npz", b"", 422, "not a readable"),
    ("empty-csv", "empty.csv", b"", 422, "not a readable"),
    (
        "too-many-members",
        "many.npz",
        zip_of({f"a{i}.npy": npy(GOOD_X) for i in range(9)}),
        422,
        "9 arrays",
    ),
    ("no-x-member", "no-x.npz", npz_bytes(data=np.ones((3, 3))), 422, "named X"),
    (
        "bzip2-member",
        "bz2.npz",
        zip_of({"X.npy": npy(GOOD_X)}, zipfile.ZIP_BZIP2),
        422,
        "compression",
    ),
    (
        "y-wrong-length",
        "y.npz",
        npz_bytes(X=GOOD_X, y=np.array([0, 1])),
        422,
        "one label per sample",
    ),
    (
        "y-nan",
        "y-nan.npz",
        npz_bytes(X=GOOD_X, y=np.array([0.0, np.nan, 1.0, 1.0])),
        422,
        "y has NaN",
    ),
    (
        "y-declared-huge",
        "y-huge.npz",
        zip_of({"X.npy": npy(GOOD_X), "y.npy": declared((1 << 26,), "<i8")}),
        413,
        "labels or ids",
    ),
    (
        "ids-duplicate",
        "ids.npz",
        npz_bytes(X=GOOD_X, ids=np.array(["a", "b", "a", "c"])),
        422,
        "unique",
    ),
    (
        "ids-complex",
        "ids-c.npz",
        npz_bytes(X=GOOD_X, ids=np.ones(4, dtype=complex)),
        422,
        "numbers or text",
    ),
    ("ragged-short-rows", "ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", 422, "missing values"),
    ("ragged-long-rows", "ragged-long.csv", b"a,b\n1,2\n3,4,5\n", 422, "not a readable"),
    ("non-numeric-csv", "strings.csv", b"a,b\n1,2\n3,hello\n", 422, "not numeric"),
    ("csv-one-row", "one.csv", b"a,b\n1,2\n", 422, "at least 2"),
    ("csv-header-only", "zero.csv", b"a,b\n", 422, "at least 2"),
    ("csv-endless-line", "line.csv", b"a,b\n" + b"1," * (2 << 20) + b"1\n", 422, "line of"),
    ("parquet-garbage", "junk.parquet", b"PAR1" + os.urandom(200), 422, "not a readable .parquet"),
    (
        "parquet-bool-feature",
        "bool.parquet",
        parquet(pd.DataFrame({"a": [1.0, 2.0], "b": [True, False]})),
        422,
        "not numeric",
    ),
    ("unknown-suffix", "data.txt", b"1,2\n3,4\n", 422, "unsupported"),
    ("no-suffix", "data", b"1,2\n3,4\n", 422, "unsupported"),
]

NESTED = parquet(pd.DataFrame({"f": [1.0, 2.0, 3.0], "tags": [[1, 2], [3], []]}))
STRUCT = parquet(pd.DataFrame({"f": [1.0, 2.0], "point": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}))
NPY = npy(GOOD_X)

# (case, keyword arguments of client.post("/datasets", ...), status, words the message must contain)
REQUESTS = [
    (
        "nested-parquet-with-label",
        dict(params={"label_column": "tags"}, files={"file": ("t.parquet", NESTED)}),
        422,
        "nested",
    ),
    ("nested-parquet-feature", dict(files={"file": ("t.parquet", NESTED)}), 422, "nested"),
    (
        "struct-parquet",
        dict(params={"label_column": "f"}, files={"file": ("s.parquet", STRUCT)}),
        422,
        "nested",
    ),
    (
        "csv-label-missing",
        dict(params={"label_column": "y"}, files={"file": ("y.csv", b"a,y\n1,x\n2,\n3,z\n")}),
        422,
        "missing value",
    ),
    (
        "unknown-label-column",
        dict(params={"label_column": "klass"}, files={"file": ("a.csv", b"a\n1\n2\n")}),
        422,
        "klass",
    ),
    ("empty-format-raw-body", dict(params={"format": ""}, content=NPY), 422, "should be 'npy'"),
    (
        "empty-format-multipart",
        dict(params={"format": ""}, files={"file": ("x.npy", NPY)}),
        422,
        "should be 'npy'",
    ),
    ("unknown-format", dict(params={"format": "exe"}, content=NPY), 422, "should be 'npy'"),
    ("no-name-no-format", dict(content=NPY), 422, "file type"),
    ("name-with-nul", dict(params={"name": "a\x00b.npy"}, content=NPY), 422, "name"),
    ("name-too-long", dict(params={"name": "n" * 300 + ".npy"}, content=NPY), 422, "name"),
    (
        "json-content-type",
        dict(params={"name": "x.npy"}, content=NPY, headers={"content-type": "application/json"}),
        415,
        "not an upload",
    ),
    (
        "form-urlencoded-no-name",
        dict(data={"file": "1,2"}),
        422,
        "file type",
    ),  # curl --data-binary's type
    (
        "multipart-mixed",
        dict(
            params={"name": "x.npy"},
            content=NPY,
            headers={"content-type": "multipart/mixed; boundary=xyz"},
        ),
        415,
        "not an upload",
    ),
    (
        "multipart-without-boundary",
        dict(content=b"--x\r\n\r\n", headers={"content-type": "multipart/form-data"}),
        400,
        "boundary",
    ),
    (
        "multipart-without-file-part",
        dict(data={"note": "hello"}, files={"other": (None, "text")}),
        422,
        "no file part",
    ),
    (
        "multipart-huge-part-header",
        dict(
            content=b"--xyz\r\nContent-Disposition: " + b"a" * 40_000 + b"\r\n\r\n",
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        ),
        400,
        "header",
    ),
    (
        "oversize-by-content-length",
        dict(
            params={"name": "x.npy"}, content=iter([NPY]), headers={"content-length": str(1 << 40)}
        ),
        413,
        "limit",
    ),
]


def dataset_count(client) -> int:
    return client.get("/datasets", params={"limit": 1}).json()["total"]


def blob_part_count() -> int:
    from sqlalchemy import text

    from persistence.db import get_engine

    with get_engine().connect() as connection:
        return connection.execute(text("SELECT count(*) FROM blob_parts")).scalar_one()


def uploads_left() -> list[str]:
    root = Path(DATA_DIR) / "uploads"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def assert_refused(client, response, status: int, words: str, before: tuple[int, int]) -> None:
    assert response.status_code == status, response.text
    assert words.lower() in str(response.json()["detail"]).lower(), response.text
    assert (dataset_count(client), blob_part_count()) == before
    assert uploads_left() == []


@pytest.mark.parametrize(
    "filename,content,status,words", [c[1:] for c in FILES], ids=[c[0] for c in FILES]
)
def test_hostile_file_is_refused_by_name_and_leaves_nothing(
    client, filename, content, status, words
):
    before = dataset_count(client), blob_part_count()
    response = client.post("/datasets", files={"file": (filename, content)})
    assert_refused(client, response, status, words, before)


@pytest.mark.parametrize(
    "kwargs,status,words", [c[1:] for c in REQUESTS], ids=[c[0] for c in REQUESTS]
)
def test_hostile_request_is_refused_by_name_and_leaves_nothing(client, kwargs, status, words):
    before = dataset_count(client), blob_part_count()
    response = client.post("/datasets", **kwargs)
    assert_refused(client, response, status, words, before)


def test_oversize_stream_without_length_is_cut_at_the_limit(client, monkeypatch):
    from persistence.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 100_000)
    body = iter([bytes(64 * 1024)] * 100)  # chunked: no Content-Length to refuse it by
    before = dataset_count(client), blob_part_count()
    response = client.post("/datasets", params={"name": "x.npy"}, content=body)
    assert_refused(client, response, 413, "limit", before)


def test_the_limit_is_on_the_stored_float32_array_not_the_file(client, monkeypatch):
    from persistence.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 4_000)
    for X in (
        np.ones((10, 100), dtype=np.float32),
        np.ones((10, 100), dtype=np.uint8),
    ):  # 4000 B stored
        response = client.post("/datasets", files={"file": ("at-limit.npy", npy(X))})
        assert response.status_code == 201, response.text
    before = dataset_count(client), blob_part_count()
    response = client.post(
        "/datasets", files={"file": ("over.npy", npy(np.ones((11, 100), dtype=np.uint8)))}
    )
    assert_refused(client, response, 413, "4400 bytes as float32", before)  # a 1.2 kB file


def test_table_whose_float32_size_is_over_the_limit_gets_413(client, monkeypatch):
    from persistence.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 6_000)
    csv = b"a,b\n" + b"1,2\n" * 1000  # 4 kB of text, 8 kB as float32
    frame = parquet(pd.DataFrame({"a": np.ones(1000), "b": np.ones(1000)}))
    for filename, content in (("t.csv", csv), ("t.parquet", frame)):
        before = dataset_count(client), blob_part_count()
        response = client.post("/datasets", files={"file": (filename, content)})
        assert_refused(client, response, 413, "float32", before)


def multipart_body(filename: bytes, content: bytes, boundary: bytes = b"b0undary") -> dict:
    """A multipart form written by hand: httpx would percent-encode a NUL in the file name."""
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    return dict(
        content=body, headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"}
    )


def test_file_names_with_nul_or_over_255_characters_are_sanitised(client):
    long_name = b"x" * 300 + b".npy"
    for sent, stored in (
        (b"a\x00b\x1f.npy", "ab.npy"),
        (b"../../etc/evil.npy", "evil.npy"),
        (long_name, "x" * 251 + ".npy"),
    ):
        response = client.post("/datasets", **multipart_body(sent, NPY))
        assert response.status_code == 201, response.text
        assert response.json()["name"] == stored
        assert client.get(f"/datasets/{response.json()['id']}").json()["name"] == stored
    assert uploads_left() == []


def test_local_blob_store_keeps_no_partial_file_of_a_refused_upload(client, monkeypatch):
    from persistence.settings import get_settings

    monkeypatch.setattr(get_settings(), "blob_store", "local")
    blobs = Path(DATA_DIR) / "blobs" / "datasets"
    kept = set(blobs.iterdir()) if blobs.exists() else set()
    response = client.post("/datasets", files={"file": ("late.npy", npy(LATE_NAN))})
    assert response.status_code == 422 and "row 2099999" in response.text
    assert (set(blobs.iterdir()) if blobs.exists() else set()) == kept
    response = client.post("/datasets", files={"file": ("good.npy", NPY)})
    assert response.status_code == 201, response.text
    stored = blobs / response.json()["id"] / "X.npy"
    assert np.array_equal(np.load(stored), GOOD_X) and uploads_left() == []


def test_raw_body_with_curls_form_content_type_is_still_an_upload(client):
    response = client.post(
        "/datasets",
        params={"name": "curl.npy"},
        content=NPY,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text


def test_fortran_ordered_and_big_endian_arrays_are_stored_in_c_order(client):
    import hashlib

    X = np.arange(24, dtype=">f8").reshape(4, 6)
    for content in (npy(np.asfortranarray(X)), npy(X)):
        response = client.post("/datasets", files={"file": ("f.npy", content)})
        assert response.status_code == 201, response.text
        assert (
            response.json()["checksum"]
            == hashlib.sha256(X.astype(np.float32).tobytes()).hexdigest()
        )
        stats = response.json()["stats"]
        assert stats["min"] == 0 and stats["max"] == 23 and abs(stats["std"] - X.std()) < 1e-9


def test_json_bodies_are_capped_and_validation_errors_do_not_echo_them(client):
    big = b'{"dataset_id": "' + b"a" * (2 << 20) + b'"}'
    headers = {"content-type": "application/json"}
    assert client.post("/jobs", content=big, headers=headers).status_code == 413
    streamed = client.post("/jobs", content=iter([big[: 1 << 19]] * 5), headers=headers)  # chunked
    assert streamed.status_code == 413 and "larger than" in streamed.json()["detail"]
    invalid = b'{"dataset_id": [' + b"1," * 300_000 + b"1"  # 600 kB, cut short
    response = client.post("/jobs", content=invalid, headers=headers)
    assert response.status_code == 422 and len(response.content) < 2_000, response.text[:300]
    wrong_type = {
        "dataset_id": "d",
        "method": "kmeans",
        "n_clusters": "x" * 500_000,
        "params": {},
        "seed": 0,
    }
    response = client.post("/jobs", json=wrong_type)
    assert response.status_code == 422 and len(response.content) < 2_000, response.text[:300]
    assert "n_clusters" in response.text


def test_upload_folders_of_a_killed_process_are_swept_and_live_ones_kept(tmp_path):
    from api.uploads import sweep_uploads, upload_folder, uploads_root

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from api.uploads import upload_folder\n"
                "with upload_folder() as f:\n"
                "    (f / 'file').write_bytes(bytes(1 << 20)); print(f, flush=True)\n"
                "    time.sleep(600)"
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    orphan = Path(holder.stdout.readline().strip())
    with upload_folder() as live:
        assert sweep_uploads() == [] and orphan.exists()  # both locks held
        os.kill(holder.pid, signal.SIGKILL)  # as the API killed mid-upload
        holder.wait()
        assert orphan.exists()
        assert sweep_uploads() == [orphan.name]
        assert not orphan.exists() and live.exists()
    assert not live.exists() and list(uploads_root().iterdir()) == []


# ---- the memory bound, measured on a real API process -------------------------------------------
def rss_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


class ApiProcess:
    """`uvicorn api.main:app` with this run's settings (its database schema, its blob store)."""

    def __init__(self, log: Path, cwd: Path = ROOT, **env):
        from tests.service.test_embedded import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)

    def peak_above_idle(self, send) -> tuple[httpx.Response, int]:
        """Run `send()`; return its response and the API's peak RSS above its RSS before."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
        idle = rss_bytes(self.process.pid, "VmRSS")
        response = send()
        return response, rss_bytes(self.process.pid, "VmHWM") - idle

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def deflated_npz(path: Path, shape: tuple, dtype) -> Path:
    """A real zip bomb: an .npz whose X is `shape` zeros, deflated, written without ever
    holding the array."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
            )
            block, left = bytes(8 << 20), int(np.prod(shape)) * np.dtype(dtype).itemsize
            while left:
                member.write(block[: min(left, len(block))])
                left -= min(left, len(block))
    return path


def legit_npy(path: Path, rows: int, cols: int) -> Path:
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)}
        )
        block = np.random.default_rng(0).random((4096, cols), dtype=np.float32).tobytes()
        for start in range(0, rows, 4096):
            out.write(block[: min(4096, rows - start) * cols * 4])
    return path


def stored_checksum(dataset_id: str) -> str:
    """sha256 of X as the worker will read it back from the blob store."""
    import hashlib

    from persistence.db import session_scope
    from persistence.models import Dataset
    from persistence.repository import load_dataset_arrays

    with session_scope() as session:
        X = load_dataset_arrays(session, session.get(Dataset, dataset_id)).X
    assert X.dtype == np.float32 and X.flags.c_contiguous
    return hashlib.sha256(X.tobytes()).hexdigest()


def test_api_peak_memory_stays_bounded_for_zip_bombs_and_large_uploads(database, tmp_path):
    """The 512 MiB-of-uint8 bomb (2 GiB as float32) is refused from its header; a 64 MiB one
    (256 MiB as float32) and a 300 MB float32 .npy are stored, each within the bound."""
    api = ApiProcess(tmp_path / "api.log", DEEPCLUST_MAX_UPLOAD_BYTES=str(1 << 30),
                     DEEPCLUST_AUTH="none")  # memory is measured here, not keys
    try:
        refused_bomb = deflated_npz(tmp_path / "bomb.npz", (1 << 29, 1), np.uint8)
        stored_bomb = deflated_npz(tmp_path / "small-bomb.npz", (1 << 20, 64), np.uint8)
        large = legit_npy(tmp_path / "large.npy", 75_000, 1000)  # 300 MB
        peaks = {}
        for name, path, status in (
            ("bomb", refused_bomb, 413),
            ("stored bomb", stored_bomb, 201),
            ("large", large, 201),
        ):
            with path.open("rb") as body:
                response, peaks[name] = api.peak_above_idle(
                    lambda path=path, body=body: httpx.post(
                        f"{api.base}/datasets",
                        params={"name": path.name},
                        content=body,
                        timeout=300,
                    )
                )
            assert response.status_code == status, response.text
            print(
                f"{name}: {path.stat().st_size} bytes sent, "
                f"API peak {peaks[name] >> 20} MiB above idle"
            )
        assert response.json()["shape"] == [75_000, 1000]
        assert stored_checksum(response.json()["id"]) == response.json()["checksum"]  # 9 blob parts
        assert max(peaks.values()) < UPLOAD_MEMORY_BOUND, peaks
        assert list((Path(DATA_DIR) / "uploads").iterdir()) == []
    finally:
        api.stop()
