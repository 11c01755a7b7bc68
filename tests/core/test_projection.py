"""The 2-D map (core/projection.py): sampling, the PCA and UMAP paths, seeding."""
import numpy as np

from core.projection import UMAP_MIN_POINTS, project, stratified_sample


def test_stratified_sample_keeps_each_clusters_share_and_every_cluster():
    labels = np.repeat([0, 1, 2], [9000, 900, 3])
    index = stratified_sample(labels, 1000, seed=0)
    assert len(index) == 1000 and len(set(index)) == 1000 and np.all(np.diff(index) > 0)
    counts = np.bincount(labels[index], minlength=3)
    share = np.array([9000, 900, 3]) * 1000 / 9903  # 908.8, 90.9, 0.3
    assert np.all(np.abs(counts[:2] - share[:2]) <= 1) and counts[2] == 1
    assert np.array_equal(index, stratified_sample(labels, 1000, seed=0))  # seeded
    assert np.array_equal(stratified_sample(labels[:50], 1000, seed=0), np.arange(50))


def test_a_2d_embedding_or_tiny_data_get_pca_which_keeps_the_clusters_apart():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    labels = np.repeat([0, 1, 2], 20)
    X = centres[labels] + rng.normal(0, 0.5, (60, 3))
    p = project(X, labels, seed=0)
    assert p.method == "pca" and len(X) < UMAP_MIN_POINTS
    assert p.xy.shape == (60, 2) and np.array_equal(p.index, np.arange(60))
    means = np.array([p.xy[labels == k].mean(axis=0) for k in range(3)])
    spread = max(p.xy[labels == k].std(axis=0).max() for k in range(3))
    gaps = [np.linalg.norm(means[i] - means[j]) for i, j in [(0, 1), (0, 2), (1, 2)]]
    assert min(gaps) > 5 * spread
    assert project(rng.normal(size=(500, 2)), np.zeros(500, int)).method == "pca"
    one_dim = project(np.arange(10.0)[:, None], np.zeros(10, int))
    assert one_dim.xy.shape == (10, 2) and np.all(one_dim.xy[:, 1] == 0)
    stored = p.as_array()
    assert stored.shape == (60, 3) and np.array_equal(stored[:, 0], np.arange(60))


def test_umap_is_seeded_and_the_sample_is_capped():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 150)
    X = np.concatenate([rng.normal(0, 1, (150, 8)), rng.normal(6, 1, (150, 8))]).astype(np.float32)
    first = project(X, labels, seed=3, max_points=200)
    again = project(X, labels, seed=3, max_points=200)
    assert first.method == "umap" and first.xy.shape == (200, 2)
    assert np.bincount(labels[first.index]).tolist() == [100, 100]
    assert np.allclose(first.xy, again.xy)
    assert first.seconds > 0 and first.peak_mb >= 0
