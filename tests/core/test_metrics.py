import numpy as np
import pytest

from core.metrics import accuracy, evaluate, hungarian_map, result_metrics


def test_accuracy_is_invariant_to_cluster_names():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert accuracy(y, np.array([5, 5, 9, 9, 7, 7])) == 1.0


def test_accuracy_counts_best_one_to_one_map():
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([1, 1, 0, 0, 0, 0])  # best map 1->0, 0->1: 2 + 3 correct
    assert accuracy(y, pred) == pytest.approx(5 / 6)


def test_more_clusters_than_classes_counts_leftover_clusters_as_errors():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 2, 2])  # K=3 > C=2: one of clusters 0/1 stays unmatched
    mapping, matched = hungarian_map(y, pred)
    assert matched == 3 and len(mapping) == 2
    scores = evaluate(y, pred)
    assert scores["acc"] == pytest.approx(0.75)
    assert scores["f1_micro"] >= scores["acc"]  # the unmapped cluster adds no false positive


def test_evaluate_matches_known_values_and_uses_arithmetic_nmi():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1])
    scores = evaluate(y, pred)
    # H(y)=ln2, H(pred)=0.5623, I=0.2158 -> NMI = I / mean(H) = 0.3445 (arithmetic)
    assert scores["nmi"] == pytest.approx(0.3445, abs=1e-3)
    assert scores["acc"] == pytest.approx(0.75)
    assert scores["ari"] < scores["acc"]


def test_result_metrics_reports_sizes_and_silhouette_without_labels():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))]).astype(
        np.float32
    )
    labels = np.repeat([0, 1], 20)
    out = result_metrics(labels, z, 3)
    assert out["cluster_sizes"] == [20, 20, 0]
    assert out["silhouette"] > 0.9
    assert "acc" not in out
