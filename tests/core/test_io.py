import numpy as np
import pytest

from core.io import DataError, assignment_csv_chunks, read_dataset, validate


def test_csv_ids_that_look_like_formulas_are_neutralised():
    text = "".join(assignment_csv_chunks(np.array([0, 1, 1]), np.array([0.9, 0.5, 1.0]),
                                         np.array(["=HYPERLINK(1)", "-5", "@x"])))
    lines = text.splitlines()
    assert lines[0] == "index,sample_id,cluster,confidence"
    assert lines[1] == "0,'=HYPERLINK(1),0,0.900000"
    assert lines[2] == "1,-5,1,0.500000"  # a negative number stays a number
    assert lines[3].startswith("2,'@x,1")


def test_string_labels_are_encoded_and_ids_must_be_unique():
    data = validate(np.ones((3, 2)), y=np.array(["b", "a", "b"]))
    assert data.y.tolist() == [1, 0, 1] and data.y.dtype == np.int64
    with pytest.raises(DataError, match="unique"):
        validate(np.ones((3, 2)), ids=np.array(["x", "y", "x"]))


def test_uint8_images_are_stored_as_float32_and_keep_their_shape(tmp_path):
    path = tmp_path / "imgs.npz"
    np.savez(path, X=np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3))
    data = read_dataset(path)
    assert data.X.shape == (2, 4, 4, 3) and data.X.dtype == np.float32
    assert data.source_dtype == "uint8" and data.kind == "images"
