"""DSCNSS: Deep subspace image clustering network with self-expression and self-supervision.
Chen, Lu, Wei, Geng. Applied Intelligence 2022. Spec: docs/methods/dscnss.md.

DSC-Net (conv AE + n x n self-expression Z ~ CZ + spectral clustering of C, core/subspace.py)
alternating with a self-supervised classifier head trained on the spectral pseudo-labels:
  J1 = l0 L0 + l1 L1 + l2 L2          (encoder, decoder, C; head frozen)       Eq. 8
  J2 = l3 L3 + l4 L4                   (head and, as in the paper, the encoder) Eq. 12
with L3 the triplet term mined from C and L4 the cross-entropy on the pseudo-labels.
`self_supervision=false` gives DSC-Net alone on the same schedule of J1 epochs (the ablation).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn import functional as F

from core.engine import Batch, Batches, run_epochs
from core.interface import (
    MAX_LOSS_WEIGHT,
    ClusteringResult,
    Context,
    InputSpec,
    Method,
    MethodParams,
)
from core.registry import register
from core.subspace import (
    PRESETS,
    ConvAE,
    Preset,
    SelfExpression,
    auto_preset,
    j1_terms,
    pretrain_denoising,
    reconstructs_nothing,
    spectral_labels,
)
from core.training import InputScaling, as_vectors, seed_everything
from core.weights_cache import ShapesWeights, cached_pretraining

PresetName = Literal["auto", "yaleb", "orl", "coil20", "coil100"]


class DSCNSSParams(MethodParams):
    preset: PresetName = Field("auto", description=(
        "conv AE and DSC-Net hyperparameters. 'auto' (default): derived from the image size only, "
        "kernel 3, channels 10/20/30, stride-2 layers down to >= 4 pixels (at most 3), lambda2 "
        "10, alpha 0.1, d 3, ro 1, 200 first-round J1 epochs (tuned on 8x8 digits). 'yaleb': "
        "5,3,3 / 10,20,30, lambda2 10^(K/10-3), alpha max(0.4-(K-1)/100, 0.1), d 10, ro 3.5, "
        "50+25K epochs; 'orl': 3,3,3 / 3,3,5, lambda2 0.2, alpha 0.2, d 3, ro 1, 700 epochs; "
        "'coil20': 3 / 15, lambda2 150, alpha 0.04, d 12, ro 8, 40 epochs; 'coil100': 5 / 50, "
        "lambda2 30, alpha 0.04, d 12, ro 8, 120 epochs (DSC-Net's values)"))
    input_scaling: ShapesWeights[InputScaling] = Field("minmax", description=(
        "'minmax': global scale to [0, 1]; 'none'"))
    # Pretraining (no pretrained weights exist here).
    pretrain_epochs: ShapesWeights[int] = Field(300, ge=0, le=20000, description=(
        "(rec.) denoising AE pretraining epochs with Adam; the paper gives none (pretrained "
        "weights), 300 mini-batch epochs reach a plateau on ORL, COIL20 and YaleB"))
    pretrain_lr: ShapesWeights[float] = Field(1e-3, gt=0, le=1, description=(
        "(rec.) pretraining Adam learning rate"))
    pretrain_noise: ShapesWeights[float] = Field(0.1, ge=0, le=10, description=(
        "(rec.) sigma of the Gaussian input corruption on [0, 1] data (the paper does not give "
        "it)"))
    pretrain_restarts: ShapesWeights[int] = Field(3, ge=0, le=20, description=(
        "re-initialise and pretrain again when the AE reconstructs no better than the mean image "
        "(a dead ReLU layer; seen on ORL's 3-channel net with PyTorch's default init); "
        "label-free, not in the paper"))
    pretrain_batch_size: ShapesWeights[int | None] = Field(100, ge=1, le=100000, description=(
        "(rec.) pretraining batch size; None: full batch (slow to converge on CPU)"))
    # Subspace module J1 (Eq. 8).
    regulariser: Literal["l2", "l1"] = Field("l2", description=(
        "L1 = ||C||_F^2 (DSCNSS-l2, default) or ||C||_1"))
    lambda0: float = Field(1.0, ge=0, le=MAX_LOSS_WEIGHT,
                           description="weight of L0 = 1/2 ||X - X_hat||^2 (paper: 1)")
    lambda1: float = Field(1.0, ge=0, le=MAX_LOSS_WEIGHT,
                           description="weight of the regulariser L1 (paper: 1)")
    lambda2: float | None = Field(None, ge=0, le=MAX_LOSS_WEIGHT,
                                  description="weight of L2 = 1/2 ||Z - CZ||^2; None: the preset's")
    c_init: float = Field(1e-4, ge=-1, le=1, description=(
        "initial value of every entry of C (DSCNSS code, DSC-Net yaleb.py)"))
    zero_diag: bool = Field(False, description=(
        "(rec. option) mask diag(C) = 0 as the paper states; neither code enforces it, so false "
        "for DSC-Net parity"))
    j1_lr: float = Field(1e-3, gt=0, le=1, description=(
        "J1 Adam learning rate (paper 1e-3; code 1e-4)"))
    j1_optimizer: Literal["kept", "per_round"] = Field("kept", description=(
        "'kept' (default): one J1 Adam for all rounds, its moments carried over (the paper resets "
        "nothing); 'per_round': a fresh Adam every round (the code, at its lr 1e-4). At lr 1e-3 a "
        "fresh Adam's first steps throw C off: the J1 loss jumps ten-fold each round and the "
        "spectral labels with it"))
    j1_epochs_first: int | None = Field(None, ge=1, le=20000, description=(
        "full-batch J1 epochs of round 0; None: the preset's DSC-Net fine-tuning epochs"))
    j1_epochs: int = Field(10, ge=0, le=20000, description=(
        "J1 epochs of every later round (code: 10)"))
    rounds: int = Field(5, ge=1, le=100, description="J1/J2 alternations (code: 5)")
    # Post-processing (DSC-Net's spectral clustering of C).
    alpha: float | None = Field(None, gt=0, le=1, description=(
        "thrC keep-mass per column; None: the preset's"))
    dim_subspace: int | None = Field(None, ge=1, le=1000, description=(
        "d: top-(dK+1) SVD of C; None: the preset's"))
    ro: float | None = Field(None, gt=0, le=100, description=(
        "power of the affinity; None: the preset's"))
    # Self-supervised module J2 (Eq. 12).
    self_supervision: bool = Field(True, description=(
        "false: DSC-Net alone (the ablation), same J1 schedule"))
    lambda3: float = Field(0.3, ge=0, le=MAX_LOSS_WEIGHT,
                           description="weight of the triplet term L3 (paper: 0.3)")
    lambda4: float = Field(0.7, ge=0, le=MAX_LOSS_WEIGHT,
                           description="weight of the cross-entropy L4 (paper: 0.7)")
    margin: float = Field(0.5, ge=0, le=1000, description="triplet margin m (paper: 0.5)")
    j2_lr: float = Field(1e-5, gt=0, le=1, description=(
        "J2 Adam learning rate (paper 1e-4; code 1e-3). 1e-5 (rec.): with our own pretrained AE "
        "the paper's 1e-4 moves the encoder away from what C expresses and the next rounds lose "
        "up to 25 points; 1e-5 keeps the rounds stable (bench/results/dscnss_j2_probe.jsonl)"))
    j2_epochs: int = Field(1500, ge=1, le=20000, description=(
        "most full-batch J2 epochs per round (code: 1500)"))
    j2_stop_acc: float = Field(0.996, gt=0, le=1, description=(
        "stop J2 when the head's Hungarian agreement with the pseudo-labels exceeds this (code: "
        "0.996)"))
    j2_train_encoder: bool = Field(True, description=(
        "paper: J2 trains the encoder too, so it reaches C; false: the code (head only, encoder "
        "frozen)"))
    head_hidden: int | None = Field(None, ge=1, le=65536, description=(
        "FC1 width; None: d_z/2 (paper; code 1024)"))
    head_relu: bool = Field(True, description=(
        "ReLU after FC1 (paper); false: the code (linear FC1)"))
    mining: Literal["paper", "code"] = Field("paper", description=(
        "triplet similarity: 'paper' A = (|C| + |C|^T)/2 without the diagonal, candidates j != i; "
        "'code' the raw row C_i. with i itself a candidate positive"))
    align_labels: bool = Field(True, description=(
        "Hungarian-align the pseudo-labels to the previous round's (paper); false: the code"))


def resolve(p: DSCNSSParams, image_shape: tuple[int, ...], n_clusters: int) -> dict:
    """The preset's architecture and every None hyperparameter filled in."""
    preset: Preset = auto_preset(*image_shape[:2]) if p.preset == "auto" else PRESETS[p.preset]
    return {"kernels": preset.kernels, "channels": preset.channels,
            "lambda2": p.lambda2 if p.lambda2 is not None else preset.lambda2(n_clusters),
            "alpha": p.alpha if p.alpha is not None else preset.alpha(n_clusters),
            "dim_subspace": p.dim_subspace or preset.dim_subspace,
            "ro": p.ro if p.ro is not None else preset.ro,
            "j1_epochs_first": p.j1_epochs_first or preset.j1_epochs(n_clusters)}


def image_dims(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, channels) of (n, H, W) or (n, H, W, C) data."""
    return (shape[1], shape[2], shape[3] if len(shape) == 4 else 1)


def mine_triplets(C: torch.Tensor, labels: torch.Tensor,
                  mode: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4: p(i) = argmin_{j: S_j = S_i} A_ij (least similar same-cluster sample),
    n(i) = argmax_{k: S_k != S_i} A_ik (most similar other-cluster sample)."""
    if mode == "paper":
        A = 0.5 * (C.abs() + C.abs().T)
        self_mask = torch.eye(len(C), dtype=torch.bool, device=C.device)
    else:
        A = C
        self_mask = torch.zeros(len(C), len(C), dtype=torch.bool, device=C.device)
    same = labels[:, None] == labels[None, :]
    positive = A.masked_fill(~same | self_mask, float("inf")).argmin(dim=1)
    negative = A.masked_fill(same, float("-inf")).argmax(dim=1)
    # A singleton cluster has no positive other than i itself.
    lonely = (same & ~self_mask).sum(dim=1) == 0
    positive = torch.where(lonely, torch.arange(len(C), device=C.device), positive)
    return positive, negative


def j2_terms(features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
             positive: torch.Tensor, negative: torch.Tensor,
             margin: float) -> dict[str, torch.Tensor]:
    """L3 = mean_i [||f_i - f_p(i)||^2 - ||f_i - f_n(i)||^2 + m]_+, L4 = mean cross-entropy on S."""
    d_pos = (features - features[positive]).pow(2).sum(dim=1)
    d_neg = (features - features[negative]).pow(2).sum(dim=1)
    return {"L3": F.relu(d_pos - d_neg + margin).mean(), "L4": F.cross_entropy(logits, labels)}


def agreement(reference: np.ndarray, labels: np.ndarray,
              n_clusters: int) -> tuple[float, np.ndarray]:
    """Hungarian agreement of two labelings, and `labels` renamed onto `reference`'s ids."""
    counts = np.zeros((n_clusters, n_clusters), dtype=np.int64)
    np.add.at(counts, (labels, reference), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    rename = np.arange(n_clusters)
    rename[rows] = cols
    return counts[rows, cols].sum() / len(labels), rename[labels]


def _every(total: int) -> int:
    return max(1, total // 50)  # about 50 progress records per phase


@register
class DSCNSSMethod(Method):
    name = "dscnss"
    summary = ("DSCNSS: DSC-Net (conv autoencoder, n x n self-expression, spectral clustering of "
               "C) alternating with a self-supervised head trained on the spectral pseudo-labels "
               "(cross-entropy + triplets mined from C). Images only, transductive; memory grows "
               "with n^2.")
    reference = ("Chen, Lu, Wei, Geng. Deep subspace image clustering network with self-expression "
                 "and self-supervision. Applied Intelligence (2022); Ji et al. Deep subspace "
                 "clustering networks, NeurIPS 2017")
    accepts = InputSpec(kinds=("images",), min_n=4)
    Params = DSCNSSParams
    suits = "small image sets on subspaces (faces, objects); n up to a few thousand (n x n matrix)"
    cost = "ORL (n=400) ~1.5 min, COIL20 ~11 min, Extended Yale B ~35 min on a CPU; ORL ACC 82.9"

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int,
                     params: DSCNSSParams) -> int | None:
        """Peak of fit(): C with its gradient and two Adam moments (4 n^2 float32), the float64
        post-processing (thrC's magnitudes, sort order, sorted and cumulative sums, then the
        symmetrisation, UU^T and the affinity: 8 n^2 float64/int64; measured 77 bytes per n^2 in
        all), the conv AE activations and CZ through forward and backward, the head (FC1 weights
        with gradient and Adam moments), plus 25% and 8 MiB. The float32 and float64 n^2 terms
        are summed, so the kept J1 Adam's moments (alive through the spectral step and J2) are
        counted."""
        if len(shape) not in (3, 4):
            return None  # not images: accepts.problem refuses them
        n = shape[0]
        h, w, channels = image_dims(shape)
        r = resolve(params, (h, w), max(n_clusters, 1))
        model = ConvAE(channels, h, w, r["kernels"], r["channels"])
        per_sample = h * w * channels + sum(c * a * b for c, (a, b)
                                            in zip(r["channels"], model.sizes[1:], strict=True))
        # enc+dec, Z and CZ; values+grads
        activations = 4 * n * (2 * per_sample + 2 * model.latent_dim) * 3
        hidden = params.head_hidden or max(model.latent_dim // 2, 1)
        # activations; FC1 with grad and Adam
        head = 4 * n * hidden * 3 + 4 * 4 * model.latent_dim * hidden
        return int(1.25 * (4 * 4 * n * n + 8 * 8 * n * n + activations + head)) + (8 << 20)

    def fit(self, X: np.ndarray, n_clusters: int, params: DSCNSSParams,
            ctx: Context) -> ClusteringResult:
        from core.resources import ensure_fits

        p, K = params, n_clusters
        ensure_fits(self.memory_bytes(X.shape, K, p), ctx.device)
        generator = seed_everything(ctx.seed)
        r = resolve(p, image_dims(X.shape)[:2], K)
        data = image_tensor(X, p.input_scaling).to(ctx.device)
        # Step 0: denoising pretraining of the conv AE.
        model = pretrained_conv_autoencoder(data, r, p, ctx, generator)
        expression = SelfExpression(len(X), p.c_init, p.zero_diag).to(ctx.device)
        head = ClassifierHead(model.latent_dim, p.head_hidden, K, p.head_relu).to(ctx.device)
        previous, head_labels, agreements, j1_optimizer = None, None, [], None
        for rnd in range(p.rounds):
            # Step 1, J1: encoder, decoder and C, full batch.
            if j1_optimizer is None or p.j1_optimizer == "per_round":
                j1_optimizer = torch.optim.Adam([*model.parameters(), *expression.parameters()],
                                                lr=p.j1_lr)
            epochs = r["j1_epochs_first"] if rnd == 0 else p.j1_epochs
            self_expression_training(model, expression, data, j1_optimizer, epochs, r, p, ctx, rnd)
            if p.j1_optimizer == "per_round":
                j1_optimizer = None
            # Step 2: the spectral clustering of C gives the pseudo-labels S.
            C, labels, agree = pseudo_labels(expression, previous, r, K, p, ctx)
            if agree is not None:
                agreements.append(agree)
            previous = labels
            record = {"round": rnd, "agreement_with_previous": agree}
            if p.self_supervision:
                # Step 3, J2: head (and encoder, paper) on S; decoder and C frozen.
                head_labels, record["head_agreement"] = self_supervised_training(
                    model, head, data, C, labels, p, ctx, rnd)
                if ctx.monitor is not None:
                    record["head_metrics"] = ctx.monitor(head_labels)
            ctx.report("round", rnd + 1, p.rounds, labels=labels, **record)
        # Step 4: the final labels are the spectral clustering of the final C (paper; the code
        # uses the head).
        return ClusteringResult(
            labels=previous.astype(np.int64), confidence=affinity_confidence(C, previous, K),
            embedding=encode(model, data),
            diagnostics={"preset": p.preset, **{k: (list(v) if isinstance(v, tuple) else v)
                                                for k, v in r.items()},
                         "latent_dim": model.latent_dim, "round_agreements": agreements},
            artifacts={} if head_labels is None else {"head_labels": head_labels.astype(np.int64)})


def image_tensor(X: np.ndarray, scaling: InputScaling) -> torch.Tensor:
    """(n, C, H, W) float32 images, scaled."""
    n, (h, w, channels) = len(X), image_dims(X.shape)
    images = as_vectors(X, scaling).reshape(n, h, w, channels).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(images))


def pretrained_conv_autoencoder(data: torch.Tensor, r: dict, p: DSCNSSParams, ctx: Context,
                                generator: torch.Generator) -> ConvAE:
    """Denoising pretraining, again from a fresh init when the AE reconstructs no better than
    the mean image; cached so that DSC-Net alone and DSCNSS start from the same weights."""
    channels, h, w = data.shape[1:]

    def build() -> ConvAE:
        return ConvAE(channels, h, w, r["kernels"], r["channels"]).to(ctx.device)

    def train(model: ConvAE) -> ConvAE:
        for attempt in range(p.pretrain_restarts + 1):
            pretrain_denoising(model, data, p.pretrain_epochs, p.pretrain_lr, p.pretrain_noise,
                               p.pretrain_batch_size, generator, ctx, _every(p.pretrain_epochs))
            if not reconstructs_nothing(model, data) or attempt == p.pretrain_restarts:
                break
            # Z carries nothing about the input, so C learns nothing. Start again.
            ctx.report("pretrain_restart", attempt + 1, p.pretrain_restarts,
                       reason="reconstruction no better than the mean image")
            model = build()
        return model

    # weights cached before the TF init differ: the init is part of the key
    architecture = {"kernels": r["kernels"], "channels": r["channels"], "init": "tf-xavier"}
    return cached_pretraining(build(), train, ctx, "cae", data, p, architecture, phase="pretrain",
                              total=p.pretrain_epochs)


class ClassifierHead(nn.Module):
    """FC1 (ReLU in the paper) then FC2 to K logits; FC1's output are the triplet features."""

    def __init__(self, latent_dim: int, hidden: int | None, n_clusters: int, relu: bool):
        super().__init__()
        hidden = hidden or max(latent_dim // 2, 1)
        fc1 = nn.Linear(latent_dim, hidden)
        self.body = nn.Sequential(fc1, nn.ReLU()) if relu else nn.Sequential(fc1)
        self.out = nn.Linear(hidden, n_clusters)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(z)
        return features, self.out(features)


def self_expression_training(model: ConvAE, expression: SelfExpression, data: torch.Tensor,
                             optimizer: torch.optim.Optimizer, epochs: int, r: dict,
                             p: DSCNSSParams, ctx: Context, rnd: int) -> None:
    """J1 = l0 L0 + l1 L1 + l2 L2 (Eq. 8), full batch."""

    def step(_: Batch) -> dict[str, torch.Tensor]:
        z = model.encode(data)
        cz = expression(z)
        terms = j1_terms(data, model.decode(cz), z, cz, expression.coefficients(), p.regulariser)
        terms["J1"] = (p.lambda0 * terms["L0"] + p.lambda1 * terms["L1"]
                       + r["lambda2"] * terms["L2"])
        return terms

    run_epochs(ctx, "j1", epochs, Batches(len(data), None), step, {"J1": optimizer},
               report_every=_every(epochs), round=rnd)
    expression.weight.grad = None  # free C's gradient before the n^2 float64 work


def pseudo_labels(expression: SelfExpression, previous: np.ndarray | None, r: dict, K: int,
                  p: DSCNSSParams, ctx: Context) -> tuple[torch.Tensor, np.ndarray, float | None]:
    """(C, S, S's Hungarian agreement with the previous round's or None); S is renamed onto the
    previous round's ids when p.align_labels."""
    with torch.no_grad():
        C = expression.coefficients().detach()
    labels = spectral_labels(C.cpu().numpy(), K, r["alpha"], r["dim_subspace"], r["ro"], ctx.seed,
                             ctx.check_cancelled)
    if previous is None:
        return C, labels, None
    agree, aligned = agreement(previous, labels, K)
    return C, aligned if p.align_labels else labels, float(agree)


def self_supervised_training(model: ConvAE, head: ClassifierHead, data: torch.Tensor,
                             C: torch.Tensor, labels: np.ndarray, p: DSCNSSParams, ctx: Context,
                             rnd: int) -> tuple[np.ndarray, float]:
    """J2 = l3 L3 + l4 L4 (Eq. 12), full batch, until the head agrees with S; returns the head's
    labels afterwards and its last agreement."""
    K = head.out.out_features
    S = torch.as_tensor(labels, device=ctx.device)
    positive, negative = mine_triplets(C, S, p.mining)
    trainable = [*head.parameters(), *(model.enc.parameters() if p.j2_train_encoder else [])]
    optimizer = torch.optim.Adam(trainable, lr=p.j2_lr)
    fit = {"agreement": 0.0}

    def step(_: Batch) -> dict[str, torch.Tensor]:
        with torch.set_grad_enabled(p.j2_train_encoder):
            z = model.encode(data)
        features, fit["logits"] = head(z)
        terms = j2_terms(features, fit["logits"], S, positive, negative, p.margin)
        terms["J2"] = p.lambda3 * terms["L3"] + p.lambda4 * terms["L4"]
        return terms

    def agrees(_: dict) -> bool:
        head_labels = fit["logits"].argmax(dim=1).cpu().numpy()
        fit["agreement"] = float(agreement(labels, head_labels, K)[0])
        return fit["agreement"] > p.j2_stop_acc

    run_epochs(ctx, "j2", p.j2_epochs, Batches(len(data), None), step, {"J2": optimizer},
               report_every=_every(p.j2_epochs), after_step=agrees,
               describe=lambda _: {"head_agreement": fit["agreement"]}, round=rnd)
    with torch.no_grad():
        head_labels = head(model.encode(data))[1].argmax(dim=1).cpu().numpy()
    return head_labels, fit["agreement"]


def affinity_confidence(C: torch.Tensor, labels: np.ndarray, K: int) -> np.ndarray:
    """Each sample's share of its affinity mass (|C| + |C|^T, no diagonal) inside its cluster."""
    with torch.no_grad():
        A = C.abs()
        A = A + A.T
        A.fill_diagonal_(0)
        assigned = torch.as_tensor(labels, device=C.device)
        onehot = F.one_hot(assigned, K).to(A.dtype)
        share = (A @ onehot) / (A.sum(dim=1, keepdim=True) + 1e-12)
        return share.gather(1, assigned[:, None]).squeeze(1).cpu().numpy().astype(np.float32)


def encode(model: ConvAE, data: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.encode(data).cpu().numpy().astype(np.float32)
