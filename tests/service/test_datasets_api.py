"""Uploads: every format round-trips, bad input gets a 4xx naming the problem and stores nothing."""

import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from tests.conftest import npz_bytes


def dataset_count(client) -> int:
    return client.get("/datasets", params={"limit": 1}).json()["total"]


def test_npz_upload_round_trips_shape_labels_ids_and_checksum(client, digits):
    X, y = digits
    ids = np.array([f"img-{i}" for i in range(len(X))])
    response = client.post(
        "/datasets", files={"file": ("digits.npz", npz_bytes(X=X, y=y, ids=ids))}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/datasets/{body['id']}"
    assert body["n"] == 1797 and body["shape"] == [1797, 8, 8] and body["kind"] == "images"
    assert body["has_labels"] and body["n_classes"] == 10 and body["has_ids"]
    assert body["checksum"] == hashlib.sha256(X.astype(np.float32).tobytes()).hexdigest()
    assert client.get(f"/datasets/{body['id']}").json() == body
    listed = client.get("/datasets", params={"limit": 500}).json()
    assert body["id"] in [d["id"] for d in listed["items"]]


def test_raw_body_npy_upload_keeps_image_channels(client):
    X = np.random.default_rng(0).random((5, 4, 3, 2)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, X)
    response = client.post(
        "/datasets",
        params={"name": "tiny.npy"},
        content=buffer.getvalue(),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["shape"] == [5, 4, 3, 2] and not response.json()["has_labels"]


def test_csv_upload_with_label_and_id_columns(client):
    csv = "id,a,b,label\nx1,1.0,2.0,cat\nx2,1.5,2.5,dog\nx3,9.0,9.5,cat\n"
    response = client.post(
        "/datasets",
        params={"label_column": "label", "id_column": "id"},
        files={"file": ("pets.csv", csv.encode())},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["shape"] == [3, 2] and body["n_classes"] == 2 and body["has_ids"]


def test_parquet_upload(client):
    frame = pd.DataFrame(
        {"f0": [0.0, 1.0, 2.0, 3.0], "f1": [1.0, 1.0, 0.0, 0.0], "y": [0, 0, 1, 1]}
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    response = client.post(
        "/datasets",
        params={"label_column": "y"},
        files={"file": ("table.parquet", buffer.getvalue())},
    )
    assert response.status_code == 201, response.text
    assert response.json()["shape"] == [4, 2] and response.json()["has_labels"]


def pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


BAD_UPLOADS = [
    ("truncated.npz", npz_bytes(X=np.ones((50, 4)))[:200], "truncated"),
    ("truncated.npy", npy(np.ones((50, 4)))[:150], "truncated"),
    ("pickled.npy", pickled_npy(), "pickle"),
    ("nan.npy", npy(np.array([[1.0, np.nan], [2.0, 3.0]])), "NaN"),
    ("inf.npz", npz_bytes(X=np.array([[1.0, np.inf], [2.0, 3.0]])), "infinite"),
    ("strings.csv", b"a,b\n1,2\n3,hello\n", "not numeric"),
    ("ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "missing values"),
    ("ragged-long.csv", b"a,b\n1,2\n3,4,5\n", "not a readable"),
    ("one-row.npy", npy(np.ones((1, 3))), "at least 2"),
    ("zero-rows.csv", b"a,b\n", "at least 2"),
    ("vector.npy", npy(np.ones(10)), "shape"),
    ("no-x.npz", npz_bytes(data=np.ones((3, 3))), "named X"),
    ("wrong-y.npz", npz_bytes(X=np.ones((3, 3)), y=np.array([0, 1])), "one label per sample"),
    ("data.txt", b"1,2\n3,4\n", "unsupported"),
]


@pytest.mark.parametrize("filename,content,problem", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_upload_is_refused_with_422_and_stores_nothing(client, filename, content, problem):
    before = dataset_count(client)
    response = client.post("/datasets", files={"file": (filename, content)})
    assert response.status_code == 422, response.text
    assert problem.lower() in str(response.json()["detail"]).lower()
    assert dataset_count(client) == before


def test_unknown_label_column_is_named_in_the_error(client):
    response = client.post(
        "/datasets", params={"label_column": "klass"}, files={"file": ("a.csv", b"a,b\n1,2\n3,4\n")}
    )
    assert response.status_code == 422 and "klass" in response.json()["detail"][0]["msg"]


def test_upload_over_the_size_limit_gets_413(client, monkeypatch):
    from persistence.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 10_000)
    before = dataset_count(client)
    big = npy(np.zeros((100, 100), dtype=np.float32))  # 40 kB
    response = client.post("/datasets", params={"name": "big.npy"}, content=big)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert dataset_count(client) == before


def test_raw_body_without_a_name_or_format_is_refused(client):
    response = client.post("/datasets", content=npy(np.ones((3, 2))))
    assert response.status_code == 422 and "format" in str(response.json()["detail"])


def test_delete_removes_dataset_and_unknown_ids_are_404(client):
    created = client.post(
        "/datasets", params={"name": "gone.npy"}, content=npy(np.ones((3, 2)))
    ).json()
    assert client.delete(f"/datasets/{created['id']}").status_code == 204
    assert client.get(f"/datasets/{created['id']}").status_code == 404
    assert client.delete(f"/datasets/{created['id']}").status_code == 404


def test_pagination_limits_and_offsets(client):
    for i in range(3):
        client.post("/datasets", params={"name": f"p{i}.npy"}, content=npy(np.ones((2, 2)) * i))
    total = dataset_count(client)
    page = client.get("/datasets", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == total and len(page["items"]) == 2 and page["offset"] == 1
    assert client.get("/datasets", params={"limit": 0}).status_code == 422
