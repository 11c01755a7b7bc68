"""The 2-D map of a finished job: UMAP (or PCA) of its embedding, for the web page.

At most MAX_POINTS points, a stratified sample by cluster beyond that. UMAP
(`umap.UMAP(n_components=2, random_state=seed)`, serial as seeded UMAP is) on the embedding;
PCA instead when the embedding has at most 2 dimensions (nothing to learn), fewer than
UMAP_MIN_POINTS rows (UMAP's 15 neighbours mean little there), or when asked
(DEEPCLUST_PROJECTION=pca). Both are seeded: the same job gives the same map.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

MAX_POINTS = 20_000
UMAP_MIN_POINTS = 100
# `auto`: UMAP from this many rows on. Every fresh worker process compiles UMAP with numba
# (about 20 s of CPU on an idle core, 100 s on a busy 2-core machine), which is small next to
# a fit on thousands of samples but not next to a k-means on a few hundred.
AUTO_UMAP_ROWS = 5_000


@dataclass
class Projection:
    index: np.ndarray  # (m,) int64: rows of the dataset, ascending
    xy: np.ndarray  # (m, 2) float32
    method: str  # "umap" or "pca"
    seconds: float
    peak_mb: float  # the largest rise of the process's resident memory while it ran

    def as_array(self) -> np.ndarray:
        """(m, 3) float64 rows of index, x, y: one blob next to the job's labels."""
        return np.column_stack([self.index.astype(np.float64), self.xy.astype(np.float64)])


def stratified_sample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted row indices, at most `limit`, each cluster keeping its share (at least one row)."""
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    clusters, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts * limit / n)).astype(int)
    # Hand the rows the floors left over to the largest clusters (never beyond their size).
    for i in np.argsort(-counts)[: max(0, limit - quota.sum())]:
        quota[i] = min(counts[i], quota[i] + 1)
    picked = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
              for c, q in zip(clusters, quota, strict=True)]
    return np.sort(np.concatenate(picked))[:limit]


def project(embedding: np.ndarray, labels: np.ndarray, seed: int = 0,
            max_points: int = MAX_POINTS, method: str = "umap") -> Projection:
    """2-D coordinates of (a stratified sample of) the embedding's rows. `method="pca"`
    skips UMAP, whose numba compilation costs each fresh process seconds to minutes;
    `auto` is UMAP from AUTO_UMAP_ROWS rows on, PCA below."""
    if method == "auto":
        method = "umap" if len(embedding) >= AUTO_UMAP_ROWS else "pca"
    started = time.perf_counter()
    with _RssPeak() as memory:
        index = stratified_sample(labels, max_points, seed)
        X = np.asarray(embedding, dtype=np.float32).reshape(len(embedding), -1)[index]
        X = np.nan_to_num(X)  # a diverged embedding still gets a (degenerate) map
        if method == "pca" or X.shape[1] <= 2 or len(X) < UMAP_MIN_POINTS:
            xy, method = _pca(X), "pca"
        else:
            import umap  # numba: seconds to import, so only here, in the worker

            reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1)  # seeded: serial
            xy, method = reducer.fit_transform(X), "umap"
    return Projection(index=index, xy=np.asarray(xy, dtype=np.float32), method=method,
                      seconds=round(time.perf_counter() - started, 3),
                      peak_mb=round(memory.peak / 2**20, 1))


def _pca(X: np.ndarray) -> np.ndarray:
    """The first two principal components (zero-padded when X has fewer columns or rows)."""
    centred = X - X.mean(axis=0)
    out = np.zeros((len(X), 2), dtype=np.float32)
    if len(X) > 1 and X.shape[1] > 0:
        _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
        k = min(2, vt.shape[0])
        out[:, :k] = centred @ vt[:k].T
    return out


class _RssPeak:
    """Samples this process's resident memory every 20 ms; `peak` is the largest rise."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self._start = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes() - self._start)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() - self._start)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: no figure rather than a failed job
        return 0
