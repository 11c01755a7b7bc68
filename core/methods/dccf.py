"""DCCF: Unsupervised deep clustering via contractive feature representation and focal loss.
Cai, Wang, Xu, Guo. Pattern Recognition 123 (2022) 108386. Spec: docs/methods/dccf.md.

IDEC-style joint training of an autoencoder and DEC's clustering layer, with
  L = L_crl + beta * (l_cl + l_fl)                                         (Eq. 14)
  L_crl = reconstruction + lambda * ||J_f(x)||_F^2   (contractive, Eq. 6-7, whole deep encoder)
  l_cl  = KL(T || S)                                 (Eq. 8; S, T are DEC's Q and P)
  l_fl  = -(1 - p_t)^gamma log p_t, p_t from T       (focal loss, Eq. 11-12)
No author code is public: every choice the paper leaves open is a parameter whose
default is the spec's recommendation, and is recorded with the job.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from core.autoencoder import (
    AutoencoderParams,
    MLPAutoencoder,
    autoencoder_memory_bytes,
    vectors_and_pretrained_autoencoder,
)
from core.clustering_head import ClusteringHead, kl_clustering_loss
from core.engine import Batch, Batches, run_epochs
from core.interface import (
    MAX_LOSS_WEIGHT,
    ClusteringResult,
    Context,
    LayerWidth,
    Method,
)
from core.registry import register
from core.resources import FLOAT, with_slack
from core.self_training import (
    TargetDistribution,
    head_result,
    initial_centroids,
    self_training_bytes,
)
from core.training import make_optimizer
from core.weights_cache import ShapesWeights


class DCCFParams(AutoencoderParams):
    hidden_dims: ShapesWeights[tuple[LayerWidth, ...]] = Field(
        (500, 500, 1000), min_length=1, max_length=8,
        description="encoder widths d-500-500-1000-d' (Section 3.4: 1000, not 2000)")
    embedding_dim: ShapesWeights[int | None] = Field(
        None, ge=1, le=1024, description="d'; None: the number of clusters (Section 4.2)")
    pretrain_epochs: ShapesWeights[int] = Field(
        100, ge=0, le=5000, description="reconstruction pretraining epochs (Section 3.4)")
    epochs: int = Field(200, ge=1, le=5000, description="joint training epochs (Section 3.4)")
    lr: float = Field(1e-3, gt=0, le=10, description="joint learning rate rho (Section 3.4)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description=(
        "(rec.) adam; the paper writes plain SGD"))
    momentum: float = Field(0.0, ge=0, lt=1, description="momentum when optimizer is sgd")
    beta: float = Field(0.1, ge=0, le=MAX_LOSS_WEIGHT,
                        description="weight of the clustering objective L_c = l_cl + l_fl (Eq. 14)")
    contractive_lambda: float = Field(1e-7, ge=0, le=MAX_LOSS_WEIGHT,
                                      description="lambda on ||J_f(x)||_F^2 (Section 3.4: 1e-7)")
    focal_gamma: float = Field(2.0, ge=0, le=100,
                               description="focal loss focusing parameter (Eq. 12)")
    contractive: bool = Field(True, description=(
        "ablation switch: the contractive penalty (Table 5)"))
    focal: bool = Field(True, description="ablation switch: the focal loss (Table 5)")
    focal_target: Literal["hard", "soft"] = Field("hard", description=(
        "(rec.) 'hard': p_t = s_i,argmax t_i; 'soft': -sum_j t_ij (1-s_ij)^gamma log s_ij"))
    jacobian: Literal["exact", "hutchinson"] = Field("exact", description=(
        "exact: the full Jacobian as batched products; hutchinson: an unbiased random-projection "
        "estimate"))
    hutchinson_projections: int = Field(1, ge=1, le=64, description=(
        "projections for the Hutchinson estimate"))
    update_interval_epochs: int = Field(1, ge=1, le=1000, description=(
        "O: epochs between target updates (rec. 1)"))
    tol: float = Field(0.001, ge=0, le=1, description=(
        "delta: stop when at most this fraction of labels changes"))
    alpha: float = Field(1.0, gt=0, le=1000, description="Student-t degrees of freedom (Eq. 9)")
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts for the initial centroids")


def contractive_penalty(encoder: nn.Sequential, x: torch.Tensor, mode: str = "exact",
                        projections: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, ||J_f(x)||_F^2 per sample) for the whole deep encoder f (Eq. 7).

    exact: for a ReLU MLP, J = W_L D_{L-1} W_{L-1} ... D_1 W_1 with D_l the ReLU masks, built
      as batched matrix products (B, d', d): about d' backward passes of work in one
      vectorised step, differentiated by ordinary autograd (no double backprop).
    hutchinson: E_v ||v^T J||^2 = ||J||_F^2 with v ~ N(0, I), `projections` samples.
    """
    if mode == "exact":
        linears = [m for m in encoder if isinstance(m, nn.Linear)]
        masks, h = [], x
        for i, layer in enumerate(linears):
            h = layer(h)
            if i < len(linears) - 1:
                mask = (h > 0).to(h.dtype)
                masks.append(mask)
                h = h * mask  # ReLU
        rows = linears[-1].weight.expand(len(x), -1, -1)  # (B, d', h_{L-1})
        for layer, mask in zip(reversed(linears[:-1]), reversed(masks), strict=True):
            rows = (rows * mask.unsqueeze(1)) @ layer.weight
        return h, rows.pow(2).sum(dim=(1, 2))
    x = x.detach().requires_grad_(True)
    h = encoder(x)
    total = torch.zeros(len(x), device=x.device)
    for _ in range(projections):
        v = torch.randn_like(h)
        (vjp,) = torch.autograd.grad(h, x, grad_outputs=v, create_graph=True)
        total = total + vjp.pow(2).sum(dim=1)
    return h, total / projections


def focal_loss(s: torch.Tensor, t: torch.Tensor, gamma: float,
               target: str = "hard") -> torch.Tensor:
    """Focal loss with the target distribution T as pseudo-labels (Eq. 11-12), batch mean."""
    log_s = s.clamp_min(1e-12).log()
    if target == "hard":
        c = t.argmax(dim=1, keepdim=True)
        p_t = s.gather(1, c).squeeze(1)
        return (-(1 - p_t).pow(gamma) * log_s.gather(1, c).squeeze(1)).mean()
    return (-(t * (1 - s).pow(gamma) * log_s).sum(dim=1)).mean()


@register
class DCCFMethod(Method):
    name = "dccf"
    summary = ("DCCF: IDEC-style joint training with a contractive penalty on the encoder's "
               "Jacobian and a focal loss on the target distribution.")
    reference = ("Cai, Wang, Xu, Guo. Unsupervised deep clustering via contractive feature "
                 "representation and focal loss. Pattern Recognition 123 (2022) 108386")
    Params = DCCFParams
    suits = "vectors or small grey images (flattened), n up to ~100k"
    cost = "USPS ~6 min on a CPU (~70 s after the shared pretraining); USPS ACC 78.2"

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: DCCFParams) -> int:
        """The autoencoder and DEC's clustering phase, plus the exact Jacobian's (B, d', width)
        products for every layer (three kept per layer for backward); Hutchinson's double backward
        is below that."""
        n, d = shape[0], math.prod(shape[1:])
        k = n_clusters or 1
        e = params.embedding_dim or k
        batch = min(params.batch_size, n)
        widths = 2 * sum(params.hidden_dims) + d
        jacobian = (3 * batch * e * widths if params.jacobian == "exact"
                    else 3 * params.hutchinson_projections * batch * (widths + e))
        return with_slack(autoencoder_memory_bytes(shape, params.hidden_dims, e, params.batch_size)
                          + self_training_bytes(n, e, k) + FLOAT * jacobian)

    def fit(self, X: np.ndarray, n_clusters: int, params: DCCFParams,
            ctx: Context) -> ClusteringResult:
        p = params
        embedding_dim = p.embedding_dim or n_clusters
        # Algorithm 1, step 1: pretrain the autoencoder on reconstruction.
        data, model = vectors_and_pretrained_autoencoder(X, p, ctx, embedding_dim=embedding_dim)
        # Step 2: k-means on the embedding initialises the centroids.
        head, labels = initial_centroids(model, data, n_clusters, p.alpha, p.n_init, ctx)
        # Steps 3-4: joint training, T refreshed on all data every O epochs.
        epochs_run, targets = joint_training(data, model, head, labels, p, ctx)
        # Eq. 18: each sample's cluster is the argmax of S.
        return head_result(model, head, data, {"epochs_run": epochs_run,
                                               "final_delta_label": targets.changed,
                                               "embedding_dim": int(embedding_dim)})


def joint_training(data: torch.Tensor, model: MLPAutoencoder, head: ClusteringHead,
                   labels: np.ndarray, p: DCCFParams,
                   ctx: Context) -> tuple[int, TargetDistribution]:
    """L = L_crl + beta (l_cl + l_fl) (Eq. 14) on shuffled mini-batches; the target T (Eq. 10)
    is held fixed between updates; stops when at most `tol` of the labels change (Eq. 18)."""
    optimizer = make_optimizer(p.optimizer, [*model.parameters(), *head.parameters()], p.lr,
                               p.momentum)
    generator = torch.Generator().manual_seed(ctx.seed + 1)
    targets = TargetDistribution(lambda x: head(model.encoder(x)), data, labels, p.tol, ctx,
                                 inclusive=True)

    def before_epoch(done: int) -> bool:
        if done % p.update_interval_epochs:
            return False
        targets.refresh()
        if done > 0 and targets.stable():
            ctx.report("train", done, p.epochs, labels=targets.labels.cpu().numpy(),
                       delta_label=targets.changed, stopped="labels stable")
            return True
        return False

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        x = data[batch]
        if p.contractive and p.contractive_lambda > 0:
            z, jac = contractive_penalty(model.encoder, x, p.jacobian, p.hutchinson_projections)
            contractive = p.contractive_lambda * jac.mean()
        else:
            z, contractive = model.encoder(x), torch.zeros((), device=ctx.device)
        reconstruction = nn.functional.mse_loss(model.decoder(z), x)
        s, t = head(z), targets.target[batch]
        kl = kl_clustering_loss(t, s)
        focal = (focal_loss(s, t, p.focal_gamma, p.focal_target) if p.focal
                 else torch.zeros((), device=ctx.device))
        return {"reconstruction": reconstruction, "contractive": contractive, "kl": kl,
                "focal": focal, "total": reconstruction + contractive + p.beta * (kl + focal)}

    def describe(losses: dict[str, float]) -> dict:
        # How much of L_crl the penalty is: near 0 means lambda leaves it inert (spec pitfall 2).
        losses["penalty_share"] = losses["contractive"] / max(
            losses["contractive"] + losses["reconstruction"], 1e-30)
        return {"labels": targets.labels.cpu().numpy(), "delta_label": targets.changed}

    batches = Batches(len(data), p.batch_size, generator=generator, device=ctx.device)
    epochs_run = run_epochs(ctx, "train", p.epochs, batches, step, {"total": optimizer},
                            before_epoch=before_epoch, describe=describe)
    return epochs_run, targets
