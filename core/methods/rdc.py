"""R-DC (Shaheen/Salem, Mrabah, Ksantini, Alqaddoumi, arXiv 2503.03733): deep clustering with
two rounds of self-supervision and no pseudo-labels (docs/methods/rdc.md).

Phase 1 pretrains the MLP autoencoder with ACAI (core/acai.py). Phase 2 refreshes the codes
every `refresh_interval` iterations, finds each point's M-1 nearest neighbours, calls a
point *core* when its nearest/farthest neighbour distance ratio exceeds alpha_core, keeps
the neighbours within beta_nn of the nearest one, and pulls each core point's code towards
the centroid of its kept neighbours (L_E) while its reconstruction is pulled towards the
decoded centroid (L_C). Border points only reconstruct. Training stops when the core ratio
stops growing; k-means (or DBSCAN) on the final codes gives the clusters. The latent
geometry R-DC argues with (TwoNN ID, PCA LID, their gap) is logged at every refresh.
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np
import torch
from pydantic import Field

from core.acai import ACAIParams, acai_pretrained_autoencoder
from core.autoencoder import MLPAutoencoder, autoencoder_memory_bytes
from core.clustering_head import confidence_bytes, kmeans_centers, student_t_confidence
from core.engine import Batch, Batches, run_iterations
from core.geometry import cluster_geometry
from core.images import image_shape, random_shift_rotate
from core.interface import MAX_LOSS_WEIGHT, ClusteringResult, Context, InputSpec, Method
from core.knn import knn
from core.registry import register
from core.resources import (
    FLOAT,
    kmeans_bytes,
    knn_bytes,
    mlp_activation_floats,
    mlp_parameters,
    with_slack,
)
from core.self_training import SelfTrainingParams, self_train, self_training_bytes
from core.training import OptimizerName, as_vectors, make_optimizer, seed_everything


class RDCParams(ACAIParams):
    phase2: Literal["proximity", "none", "dec"] = Field("proximity", description=(
        "'proximity': R-DC's phase 2; 'none': k-means on the ACAI codes (ablation, AE+k-means); "
        "'dec': DEC self-training on the ACAI weights (ablation)"))
    n_neighbors: int = Field(5, ge=3, le=100, description=(
        "M, the neighbourhood size counting the point itself (code: 5, i.e. 4 real neighbours)"))
    alpha_core: float = Field(0.6, gt=0, le=1, description=(
        "threshold on r = D_1 / D_(M-1) for core points (Eq. 4-6)"))
    core_rule: Literal["below", "above"] = Field("below", description=(
        "'below': core ('unconflicted') when r < alpha_core, as the authors' loop selects the "
        "points it pulls; the only reading under which the paper's reported dynamics hold here "
        "(core ratio grows, kept neighbours purer). 'above': r > alpha_core, the spec's reading "
        "of the text ('ratio greater than the threshold'; Eq. 4-5 are lost)"))
    beta_nn: float = Field(0.6, gt=0, le=1e6, description=(
        "keep neighbour j when D_j - D_1 < beta_nn (Eq. 7-9); an absolute latent distance unless "
        "beta_scale='median'"))
    beta_scale: Literal["absolute", "median"] = Field("absolute", description=(
        "'median': beta_nn is in units of the median nearest-neighbour distance (spec pitfall 7; "
        "the paper's beta is absolute)"))
    filter_mode: Literal["paper", "code"] = Field("paper", description=(
        "'paper': D' = D_j - D_1 per point; 'code': the authors' running minimum of D_1 over the "
        "sample order, started at the last sample's (spec pitfall 1)"))
    border_target: Literal["paper", "code"] = Field("paper", description=(
        "'paper': border points reconstruct their input and are left out of L_E; 'code': they are "
        "pulled to their refresh-time code and its decoding (spec pitfall 2)"))
    gamma: float = Field(100.0, ge=0, le=MAX_LOSS_WEIGHT, description=(
        "weight of the reconstruction term: L = L_E + gamma L_C (code 100)"))
    refresh_interval: int = Field(140, ge=1, le=100000, description=(
        "iterations between refreshes of codes, neighbours and targets (code 140; the paper says "
        "every iteration)"))
    maxiter: int = Field(20000, ge=0, le=1_000_000,
                         description="maximum phase-2 iterations (mini-batches)")
    patience: int = Field(3, ge=1, le=1000, description=(
        "stop after this many refreshes without a higher core ratio"))
    optimizer: OptimizerName = Field("adam", description="phase-2 optimizer (paper: Adam)")
    lr: float = Field(1e-4, gt=0, le=10, description=(
        "phase-2 learning rate (not in the paper; a guess)"))
    momentum: float = Field(0.9, ge=0, lt=1, description=(
        "momentum when optimizer is sgd (DynAE: SGD 1e-3, 0.9)"))
    n_init: int = Field(20, ge=1, le=100, description=(
        "k-means restarts (final clustering and geometry monitor)"))
    final_clustering: Literal["kmeans", "dbscan"] = Field("kmeans", description=(
        "'dbscan' when K is unknown (the paper's advice): min_samples = n_neighbors, eps the "
        "dbscan_quantile of the distance to the (M-1)-th neighbour; noise joins its nearest "
        "cluster; n_clusters is then ignored. Used whenever n_clusters is not given"))
    dbscan_quantile: float = Field(0.9, gt=0, lt=1, description=(
        "quantile of kNN distances used as DBSCAN's eps"))
    geometry: bool = Field(True, description=(
        "log TwoNN ID, PCA LID and FT per k-means cluster at every refresh"))
    lid_threshold: float = Field(0.9999, gt=0, lt=1, description=(
        "explained variance threshold of the PCA LID (R-DC code 0.9999; Ansuini 0.9)"))


@torch.no_grad()
def proximity_filter(dist: torch.Tensor, alpha_core: float, beta_nn: float,
                     filter_mode: str = "paper", beta_scale: str = "absolute",
                     core_rule: str = "below") -> tuple[torch.Tensor, torch.Tensor]:
    """(core (n,), kept (n, M-1)) from ascending distances to each point's real neighbours."""
    # r_i = D_1 / D_(M-1) < alpha without dividing; the code skips D_(M-1) = 0
    if core_rule == "below":
        core = (dist[:, 0] < alpha_core * dist[:, -1]) & (dist[:, -1] > 0)
    else:
        core = dist[:, 0] > alpha_core * dist[:, -1]
    if filter_mode == "paper":
        nearest = dist[:, :1]
    else:  # the authors' loop over core points: a minimum carried over from the last sample,
        # only decreasing
        running = torch.where(core, dist[:, 0], torch.full_like(dist[:, 0], float("inf")))
        nearest = torch.cummin(running.clamp_max(dist[-1, 0]), dim=0).values[:, None]
    beta = beta_nn * (dist[:, 0].median() if beta_scale == "median" else 1.0)
    kept = (dist - nearest) < beta
    if filter_mode == "paper":
        kept[:, 0] = True
    return core & kept.any(dim=1), kept


def neighbour_centroids(z: torch.Tensor, idx: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Mean code of each point's kept neighbours (the point itself excluded), Eq. 11."""
    w = kept.to(z.dtype)[..., None]
    return (z[idx] * w).sum(1) / w.sum(1).clamp_min(1)


def proximity_losses(z: torch.Tensor, x_hat: torch.Tensor, c: torch.Tensor, y: torch.Tensor,
                     pull: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_E = mean_i pull_i ||z_i - c_i||^2 / d_z (Eq. 13) and
    L_C = mean_i ||x_hat_i - y_i||^2 / d (Eq. 12)."""
    latent = ((z - c).pow(2).mean(1) * pull).mean()
    return latent, (x_hat - y).pow(2).mean(1).mean()


class _Monitor:
    """Neighbourhoods, core ratio and latent geometry of a set of codes (logged, label-free)."""

    def __init__(self, p: RDCParams, n_clusters: int | None, ctx: Context):
        self.p, self.k, self.ctx = p, n_clusters, ctx

    def survey(self, z: torch.Tensor):
        """(distances, neighbours, core, kept, record, k-means labels or None) of codes z."""
        p, check = self.p, self.ctx.check_cancelled
        dist, idx = knn(z, p.n_neighbors - 1, check=check)
        core, kept = proximity_filter(dist, p.alpha_core, p.beta_nn, p.filter_mode, p.beta_scale,
                                      p.core_rule)
        record = {"core_ratio": core.float().mean().item(),
                  "kept_neighbours": kept[core].float().sum(1).mean().item() if core.any() else 0.0}
        labels = None
        if p.geometry:
            z_np = z.cpu().numpy()
            labels = (kmeans_centers(z_np, self.k, self.ctx.seed, p.n_init, check=check)[1]
                      if self.k is not None
                      else density_labels(z, p.n_neighbors, p.dbscan_quantile, check)[0])
            record.update(cluster_geometry(z_np, labels, p.lid_threshold, check))
        return dist, idx, core, kept, record, labels

    def __call__(self, z: torch.Tensor, phase: str) -> dict:
        """Survey z and report it as `phase`; returns the record."""
        *_, record, labels = self.survey(z)
        self.ctx.report(phase, 1, 1, labels=labels, **record)
        return record


class _ProximityTargets:
    """What phase 2 pulls towards between two refreshes, and when it stops."""

    def __init__(self, p: RDCParams):
        self.p, self.best, self.stale, self.ratios, self.stop_reason = p, -1.0, 0, [], "maxiter"

    def update(self, z: torch.Tensor, survey) -> bool:
        """Take a refresh's survey of codes z; True when the core ratio stopped growing."""
        _, idx, core, kept, record, _ = survey
        ratio = record["core_ratio"]
        self.ratios.append(ratio)
        self.best, self.stale = (ratio, 0) if ratio > self.best else (self.best, self.stale + 1)
        if self.stale >= self.p.patience:
            self.stop_reason = "core ratio stopped growing"
            return True
        self.core = core
        self.centroids = torch.where(core[:, None], neighbour_centroids(z, idx, kept), z)
        self.pull = (core.float() if self.p.border_target == "paper"
                     else torch.ones_like(core, dtype=torch.float32))
        return False


def proximity_training(data: torch.Tensor, model: MLPAutoencoder, shape, p: RDCParams,
                       monitor: _Monitor, ctx: Context, generator: torch.Generator) -> dict:
    """R-DC's phase 2; returns what the result's diagnostics report."""
    optimizer = make_optimizer(p.optimizer, model.parameters(), p.lr, p.momentum)
    targets = _ProximityTargets(p)

    def refresh(iteration: int) -> tuple[bool, dict]:
        z = model.encode(data, ctx.check_cancelled)
        survey = monitor.survey(z)
        return targets.update(z, survey), {"labels": survey[-1], **survey[-2]}

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        x = data[batch]
        augment = p.augment and shape is not None
        x_in = random_shift_rotate(x, shape, generator=generator) if augment else x
        z_batch, x_hat = model(x_in)
        with torch.no_grad():  # targets: the current decoder's image of the fixed centroids
            y = model.decoder(targets.centroids[batch])
            if p.border_target == "paper":
                y = torch.where(targets.core[batch, None], y, x)
        latent, reconstruction = proximity_losses(z_batch, x_hat, targets.centroids[batch], y,
                                                  targets.pull[batch])
        return {"latent": latent, "reconstruction": reconstruction,
                "total": latent + p.gamma * reconstruction}

    batches = Batches(len(data), p.batch_size, "in_order")
    iterations = run_iterations(ctx, "refresh", p.maxiter, batches, step, {"total": optimizer},
                                refresh_every=p.refresh_interval, refresh=refresh)
    return {"iterations": iterations, "stop_reason": targets.stop_reason,
            "core_ratio": targets.ratios[-1], "core_ratios": targets.ratios}


def density_labels(z: torch.Tensor, min_samples: int, quantile: float,
                   check: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """DBSCAN on the codes with eps from the kNN distances (no labels, no K); noise points join
    the cluster of their nearest clustered point. Returns labels, confidence (1 clustered,
    0 joined), eps. `check` (a cancellation check) runs inside the kNN searches; sklearn's DBSCAN
    runs unchecked."""
    from sklearn.cluster import DBSCAN

    dist, _ = knn(z, min_samples - 1, check=check)
    eps = float(torch.quantile(dist[:, -1].double(), quantile))
    if check is not None:
        check()
    labels = DBSCAN(eps=max(eps, 1e-12), min_samples=min_samples).fit(z.cpu().numpy()).labels_
    noise = labels < 0
    if noise.all():
        return np.zeros(len(labels), dtype=np.int64), np.zeros(len(labels), dtype=np.float32), eps
    if noise.any():
        members = torch.as_tensor(np.flatnonzero(~noise), device=z.device)
        _, nearest = knn(z[members], 1, check=check,
                         queries=z[torch.as_tensor(np.flatnonzero(noise), device=z.device)])
        labels[noise] = labels[members[nearest[:, 0]].cpu().numpy()]
    return (np.unique(labels, return_inverse=True)[1].astype(np.int64),
            (~noise).astype(np.float32), eps)


@register
class RDCMethod(Method):
    name = "rdc"
    summary = ("R-DC: ACAI-pretrained autoencoder, then proximity-level self-supervision that "
               "pulls dense (core) points to their reliable neighbours' centroid; k-means on the "
               "final codes.")
    reference = ("Shaheen, Mrabah, Ksantini, Alqaddoumi. Rethinking Deep Clustering Paradigms. "
                 "arXiv 2503.03733")
    Params = RDCParams
    suits = "images or vectors when n_clusters is unknown: the one method that finds it"
    cost = ("BreastMNIST (n=780) ~5 min on one CPU thread (200 ACAI epochs, then phase 2); "
            "BreastMNIST ACC 68.0 / F1 macro 55.9, USPS 62.6 (reduced schedule)")
    accepts = InputSpec(finds_n_clusters=True)  # without n_clusters: DBSCAN on the final codes

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None, params: RDCParams) -> int:
        """ACAI: the autoencoder plus its critic (the encoder's shape) with Adam, the augmentation's
        sampling grids; phase 2: codes, neighbours, centroids and their (n, M-1, d') gather, the kNN
        chunks, k-means and the geometry; DBSCAN's neighbourhoods at a few times M per point; or
        DEC's self-training (phase2='dec')."""
        p = params
        n, d, e, k = shape[0], math.prod(shape[1:]), p.embedding_dim, n_clusters or 1
        m = p.n_neighbors
        critic = mlp_parameters([d, *p.hidden_dims, e])
        batch = min(p.batch_size, n)
        pretraining = autoencoder_memory_bytes(shape, p.hidden_dims, e, p.batch_size,
                                               extra_parameters=critic)
        pretraining += FLOAT * batch * (2 * mlp_activation_floats([d, *p.hidden_dims, e]) + 8 * d)
        phase2 = (FLOAT * n * (4 * e + m * e + 2 * m) + 16 * n * m + knn_bytes(n, m)
                  + kmeans_bytes(n, e, k) + FLOAT * 3 * n * e * 2 + 16 * n * m * 8)
        if p.phase2 == "dec":
            phase2 += self_training_bytes(n, e, k)
        return with_slack(pretraining + phase2 + confidence_bytes(n, e, k))

    def fit(self, X: np.ndarray, n_clusters: int | None, params: RDCParams,
            ctx: Context) -> ClusteringResult:
        p = params
        generator = seed_everything(ctx.seed)
        shape = image_shape(X.shape)
        data = torch.from_numpy(as_vectors(X, p.input_scaling)).to(ctx.device)
        if p.n_neighbors > len(data):
            raise ValueError(f"n_neighbors ({p.n_neighbors}) exceeds the number of samples "
                             f"({len(data)})")
        if p.phase2 == "dec" and n_clusters is None:
            raise ValueError("phase2='dec' needs n_clusters")
        # Phase 1: ACAI pretraining.
        model = acai_pretrained_autoencoder(data, p, ctx, generator, shape)
        monitor = _Monitor(p, n_clusters, ctx)
        diagnostics: dict = {"augmented": bool(p.augment and shape is not None)}
        if p.phase2 == "dec":
            return dec_ablation(data, model, n_clusters, p, monitor, ctx, diagnostics)
        # Phase 2: proximity-level self-supervision.
        if p.phase2 == "proximity":
            diagnostics.update(proximity_training(data, model, shape, p, monitor, ctx, generator))
        z = model.encode(data)
        final = monitor(z, "final" if p.phase2 == "proximity" else "phase1")
        diagnostics["geometry"] = {k: final.get(k) for k in ("id", "lid", "ft", "core_ratio")}
        # The clusters: k-means on the final codes, or DBSCAN when K is unknown.
        labels, confidence = final_clustering(z, n_clusters, p, ctx, diagnostics)
        diagnostics["n_clusters_found"] = int(len(np.unique(labels)))
        ctx.report("cluster", 1, 1, labels=labels, n_clusters_found=diagnostics["n_clusters_found"])
        return ClusteringResult(labels=labels, confidence=confidence, embedding=z.cpu().numpy(),
                                diagnostics=diagnostics)


def dec_ablation(data: torch.Tensor, model: MLPAutoencoder, n_clusters: int, p: RDCParams,
                 monitor: _Monitor, ctx: Context, diagnostics: dict) -> ClusteringResult:
    """phase2='dec': DEC's self-training on the ACAI weights instead of proximity training."""
    dec = SelfTrainingParams(**{k: getattr(p, k) for k in ("hidden_dims", "embedding_dim",
                                                           "batch_size", "n_init", "maxiter")})
    monitor(model.encode(data), "phase1")
    result = self_train(data, model, n_clusters, dec, ctx, reconstruction_weight=0.0,
                        clustering_weight=1.0)
    final = monitor(torch.from_numpy(result.embedding).to(ctx.device), "final")
    result.diagnostics.update(diagnostics,
                              geometry={k: final.get(k) for k in ("id", "lid", "ft", "core_ratio")})
    return result


def final_clustering(z: torch.Tensor, n_clusters: int | None, p: RDCParams, ctx: Context,
                     diagnostics: dict) -> tuple[np.ndarray, np.ndarray]:
    """(labels, confidence) of the final codes; DBSCAN adds its eps and noise share."""
    if p.final_clustering == "dbscan" or n_clusters is None:
        labels, confidence, eps = density_labels(z, p.n_neighbors, p.dbscan_quantile,
                                                 ctx.check_cancelled)
        diagnostics.update(dbscan_eps=eps, noise_share=float(1 - confidence.mean()))
        return labels, confidence
    centers, labels = kmeans_centers(z.cpu().numpy(), n_clusters, ctx.seed, p.n_init,
                                     check=ctx.check_cancelled)
    return labels, student_t_confidence(z.cpu().numpy(), centers)
