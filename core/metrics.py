"""External clustering metrics (docs/metrics.md). Labels are used here only."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    f1_score,
    normalized_mutual_info_score,
    silhouette_score,
)

NMI_AVERAGE = "arithmetic"  # sklearn >= 0.22 default; 2017-era code used geometric


def hungarian_map(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[dict[int, int], int]:
    """One-to-one map cluster -> class maximising matches, and the number matched."""
    classes, y = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    size = max(len(classes), len(clusters))
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (p, y), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols, strict=True)
               if r < len(clusters) and c < len(classes)}
    return mapping, int(counts[rows, cols].sum())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """ACC under the best one-to-one cluster->class map; unmatched clusters count as errors."""
    return hungarian_map(y_true, y_pred)[1] / len(y_true)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI (arithmetic), ARI and F1 macro/micro after Hungarian mapping."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    mapping, matched = hungarian_map(y_true, y_pred)
    unmapped = np.min(y_true) - 1  # a label no class has: clusters left over by the map
    mapped = np.array([mapping.get(int(c), unmapped) for c in y_pred]) if len(mapping) else y_pred
    labels = np.unique(y_true)
    return {
        "acc": matched / len(y_true),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred, average_method=NMI_AVERAGE)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, mapped, average="macro", labels=labels,
                                   zero_division=0)),
        "f1_micro": float(f1_score(y_true, mapped, average="micro", labels=labels,
                                   zero_division=0)),
    }


def cluster_sizes(y_pred: np.ndarray, n_clusters: int | None) -> list[int]:
    return np.bincount(np.asarray(y_pred, dtype=np.int64), minlength=n_clusters or 0).tolist()


def sampled_silhouette(embedding: np.ndarray, y_pred: np.ndarray, seed: int = 0,
                       max_samples: int = 5000) -> float | None:
    """Silhouette on the embedding; sampled above max_samples (it is O(m^2))."""
    if len(np.unique(y_pred)) < 2:
        return None
    flat = embedding.reshape(len(embedding), -1)
    size = min(max_samples, len(flat))
    return float(silhouette_score(flat, y_pred, sample_size=size if size < len(flat) else None,
                                  random_state=seed))


def result_metrics(y_pred: np.ndarray, embedding: np.ndarray, n_clusters: int | None,
                   y_true: np.ndarray | None = None, seed: int = 0) -> dict:
    """Every metric a finished job reports: external ones only when labels exist."""
    out: dict = {
        "cluster_sizes": cluster_sizes(y_pred, n_clusters),
        "silhouette": sampled_silhouette(embedding, y_pred, seed=seed),
        "nmi_average": NMI_AVERAGE,
    }
    if y_true is not None:
        out.update(evaluate(y_true, y_pred))
    return out
