"""The chunked kNN against scikit-learn's exact neighbours on real data."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from core.knn import knn


@pytest.mark.parametrize("chunk_rows", [None, 7])
def test_knn_matches_sklearn_on_digits(chunk_rows):
    X = load_digits().data.astype(np.float64)
    expected_d, expected_i = (
        NearestNeighbors(n_neighbors=5).fit(X).kneighbors()
    )  # no X: each point left out
    d, i = knn(torch.from_numpy(X), 5, chunk_rows=chunk_rows)
    np.testing.assert_allclose(d.numpy(), expected_d, rtol=1e-6, atol=1e-6)
    assert (i.numpy() != np.arange(len(X))[:, None]).all()
    # digits are integer-valued, so ties abound and tied neighbours may come in any order:
    # check that each returned index really lies at its reported distance
    actual = np.linalg.norm(X[:, None, :] - X[i.numpy()], axis=2)
    np.testing.assert_allclose(actual, d.numpy(), rtol=1e-6, atol=1e-6)
    assert (i.numpy() == expected_i).mean() > 0.95


def test_knn_with_separate_queries_includes_exact_matches():
    X = torch.from_numpy(load_digits().data[:200].astype(np.float32))
    d, i = knn(X, 3, queries=X[:10])
    assert (i[:, 0] == torch.arange(10)).all() and torch.allclose(
        d[:, 0], torch.zeros(10), atol=1e-3
    )


def test_knn_refuses_k_out_of_range():
    with pytest.raises(ValueError, match="k must be between 1 and 4"):
        knn(torch.zeros(5, 2), 5)
