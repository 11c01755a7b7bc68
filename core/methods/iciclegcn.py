"""IcicleGCN: image clustering with contrastive learning and multi-scale graph convolution.
Xu, Huang, Wang, Lai. Pattern Recognition 146 (2024) 110065; code xuyuankun631/IcicleGCN.
Spec: docs/methods/iciclegcn.md.

Stage 1 (images): a ResNet trained from scratch on two augmented views with
  L1 = L_CIS (instance NT-Xent, Eq. 2-3) + L_CCS (cluster contrast + entropy, Eq. 4-5)
       + L_re (JC-SLIM autoencoder reconstructing the backbone features, Eq. 6),
after an explicit contrastive warm-up (the authors' code starts L1 from a 1000-epoch
Contrastive Clustering checkpoint; the paper does not say so).
Stage 2 (M-GCN): on the frozen backbone features Z_b, two GCN streams over a 1-NN and a
k-NN graph, fused layer by layer with the JC-SLIM autoencoder (Eq. 15-17), trained full
batch on L2 = L_re + alpha KL(P||Q) + beta KL(P||G_a) + eta KL(P||G_b) (Eq. 26).
Features mode runs stage 2 alone on user-supplied vectors (the AE is then pretrained on
reconstruction, as SDCN does).
"""
from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Callable, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

from core.autoencoder import MLPAutoencoder
from core.clustering_head import (
    ClusteringHead,
    kl_clustering_loss,
    kmeans_centers,
    target_distribution,
)
from core.engine import Batch, Batches, Clock, run_epochs
from core.graph import GCNLayer, Normalization, knn_adjacency
from core.image_backbones import (
    BackboneName,
    Stem,
    as_image_tensor,
    augment_batch,
    backbone_footprint,
    make_backbone,
    two_view_augmentation,
)
from core.interface import (
    MAX_LOSS_WEIGHT,
    ClusteringResult,
    Context,
    LayerWidth,
    Method,
    MethodParams,
)
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
from core.training import InputScaling, as_vectors, map_in_chunks, seed_everything
from core.weights_cache import ShapesWeights, cached_pretraining

Variant = Literal["paper", "code"]
# Eq. 15-17 mixes; paper 0.4/0.2/0.4, code 0.5/0.2/0.5
FusionWeight = Annotated[float, Field(ge=0, le=10)]
# Stage-2 settings that differ between the paper and the authors' code (spec pitfall 3).
STAGE2_VARIANTS = {
    "paper": {"fusion": (0.4, 0.2, 0.4), "normalization": "sym", "share_gcn_weights": False,
              "k_b": 10},
    "code": {"fusion": (0.5, 0.2, 0.5), "normalization": "row", "share_gcn_weights": True,
             "k_b": 15},
}


class IcicleGCNParams(MethodParams):
    # the fields marked ShapesWeights key stage 1's cached weights
    mode: Literal["auto", "images", "features"] = Field("auto", description=(
        "'images': stage 1 on the images, then stage 2 on the backbone features; 'features': "
        "stage 2 alone on the input vectors (images are flattened); 'auto': images for image "
        "data, features for vectors"))
    # --- stage 1: backbone, augmentation, contrastive warm-up and L1 ---
    backbone: ShapesWeights[BackboneName] = Field("resnet34", description=(
        "torchvision ResNet trunk, randomly initialised (paper: ResNet-34, rep_dim 512)"))
    backbone_width: ShapesWeights[int] = Field(64, ge=2, le=256, description=(
        "ResNet base width (64: the standard network; smaller for cheap runs)"))
    stem: ShapesWeights[Stem] = Field("auto", description=(
        "'imagenet': 7x7/2 conv + max-pool; 'small': 3x3/1 conv, no pool (CIFAR style); 'auto': "
        "small for images up to 64 px"))
    backbone_weights: ShapesWeights[str | None] = Field(None, description=(
        "server-side path to a torch state_dict for the backbone (e.g. a CC checkpoint); None: "
        "random init"))
    image_size: ShapesWeights[int | None] = Field(None, ge=8, le=512, description=(
        "square side the images are resized/cropped to (paper: 224); None: their own size"))
    jitter_strength: ShapesWeights[float] = Field(1.0, ge=0, le=2, description=(
        "colour-jitter strength s (CC: 0.5 CIFAR, 1 others)"))
    crop_scale_min: ShapesWeights[float] = Field(0.08, gt=0, le=1, description=(
        "smallest area fraction of the random resized crop (CC: torchvision's 0.08)"))
    blur: ShapesWeights[bool] = Field(False, description=(
        "Gaussian blur p=0.5 in the augmentation (CC: ImageNet-10/Dogs only)"))
    feature_dim: ShapesWeights[int] = Field(128, ge=2, le=2048, description=(
        "instance projector output size"))
    instance_temperature: ShapesWeights[float] = Field(0.5, gt=0, le=100,
                                        description="tau_I of the instance NT-Xent (Eq. 3)")
    cluster_temperature: ShapesWeights[float] = Field(1.0, gt=0, le=100,
                                       description="tau_C of the cluster contrast (Eq. 5)")
    batch_size: ShapesWeights[int] = Field(128, ge=4, le=8192, description=(
        "stage-1 batch (paper 128, code 100, CC 256); the last short batch is dropped"))
    warmup_epochs: ShapesWeights[int] = Field(1000, ge=0, le=5000, description=(
        "explicit contrastive warm-up before L1 (the code's hidden 1000-epoch CC checkpoint; spec "
        "pitfall 2)"))
    warmup_loss: ShapesWeights[Literal["cc", "instance"]] = Field("cc", description=(
        "warm-up objective: 'cc' = Contrastive Clustering (instance NT-Xent + CC's own softmax "
        "cluster projector, discarded afterwards, as the code's reload drops it); 'instance' = "
        "NT-Xent only"))
    warmup_lr: ShapesWeights[float] = Field(3e-4, gt=0, le=1, description=(
        "Adam learning rate of the warm-up (CC: 3e-4)"))
    stage1_epochs: ShapesWeights[int] = Field(15, ge=0, le=5000, description=(
        "epochs of L1 after the warm-up (code: 1000 -> 1015)"))
    lr: ShapesWeights[float] = Field(1e-4, gt=0, le=1, description=(
        "Adam learning rate of L1 (paper and code: 1e-4)"))
    stage1_variant: ShapesWeights[Variant] = Field("paper", description=(
        "'paper': both views in the cluster contrast and in L_re, L_re = ||Z - Z^||_F^2 / 2N; "
        "'code': network.py's bug (both cluster views from view a, so only the entropy acts) and "
        "L_re = MSE (mean) on view a only (spec pitfall 1)"))
    hidden_dims: ShapesWeights[tuple[LayerWidth, ...]] = Field(
        (500, 500, 2000), min_length=1, max_length=6, description=(
        "JC-SLIM AE widths d-500-500-2000-K(softmax), decoder mirrored"))
    # --- stage 2: M-GCN ---
    stage2_epochs: int = Field(1000, ge=0, le=20000, description=(
        "full-batch epochs of L2 (0: stage 1 only)"))
    stage2_lr: float = Field(1e-4, gt=0, le=1, description=(
        "Adam learning rate of stage 2 (paper and code: 1e-4)"))
    stage2_variant: Variant = Field("paper", description=(
        "'paper': fusion 0.4/0.2/0.4, D^-1/2 A D^-1/2, one GCN per stream (Eq. 14), k_b=10, L_re "
        "= ||.||_F^2/n; 'code': 0.5/0.2/0.5, row-normalised D^-1 A, weights shared by the two "
        "streams, k_b=15, L_re = MSE (mean)"))
    k_a: int = Field(1, ge=1, le=200, description=(
        "neighbours of the first graph (paper and code: 1)"))
    k_b: int | None = Field(None, ge=1, le=200, description=(
        "neighbours of the second graph; None: 10 (paper) or 15 (code)"))
    reconstruction: ShapesWeights[Literal["sum", "mean"] | None] = Field(None, description=(
        "L_re of both stages: 'sum' = ||Z - Z^||_F^2 / n (the paper, summed over feature "
        "dimensions), 'mean' = MSE (the code); None: from each stage's variant"))
    normalization: Normalization | None = Field(None, description=(
        "'sym' or 'row'; None: from stage2_variant"))
    share_gcn_weights: bool | None = Field(None, description=(
        "one GCN for both streams; None: from stage2_variant"))
    fusion: tuple[FusionWeight, FusionWeight, FusionWeight] | None = Field(None, description=(
        "(own stream, other stream, AE) weights of Eq. 15-17; None: from stage2_variant"))
    alpha: float = Field(0.1, ge=0, le=MAX_LOSS_WEIGHT, description="weight of KL(P||Q) (code 0.1)")
    beta: float = Field(0.05, ge=0, le=MAX_LOSS_WEIGHT,
                        description="weight of KL(P||G_a), the 1-NN stream (code 0.05)")
    eta: float = Field(0.01, ge=0, le=MAX_LOSS_WEIGHT,
                       description="weight of KL(P||G_b), the k-NN stream (code 0.01)")
    n_init: int = Field(20, ge=1, le=100, description=(
        "k-means restarts for the centroids on z (code 20)"))
    final_labels: Literal["gcn_a", "gcn_b", "q"] = Field("gcn_a", description=(
        "which prediction gives the labels: argmax G_a (the code's 'Z'), G_b or Q"))
    report_every: int = Field(10, ge=1, le=10000, description=(
        "stage-2 epochs between progress records"))
    # --- features mode ---
    input_scaling: InputScaling = Field("minmax", description=(
        "features mode: 'minmax' (one global scale) or 'none'"))
    features_pretrain: Literal["jc_slim", "reconstruction"] = Field("jc_slim", description=(
        "features mode, how the AE is trained before stage 2: 'jc_slim' = stage 1's AE losses "
        "(cluster contrast + entropy + reconstruction) with a random one of each sample's nearest "
        "neighbours as its second view (no images to augment: an extension, not in the paper); "
        "'reconstruction' = SDCN's MSE pretraining only"))
    features_neighbours: int = Field(10, ge=1, le=200, description=(
        "features mode, jc_slim: neighbours a second view is drawn from"))
    features_pretrain_epochs: int = Field(30, ge=0, le=5000, description=(
        "features mode: AE pretraining epochs (SDCN: 30)"))
    features_pretrain_lr: float = Field(1e-3, gt=0, le=1, description=(
        "features mode: Adam lr of the pretraining"))
    features_batch_size: int = Field(256, ge=8, le=65536, description=(
        "features mode: pretraining batch (SDCN: 256)"))
    embedding: Literal["features", "z"] = Field("features", description=(
        "returned embedding: the stage-2 input (backbone features in images mode) or the AE's "
        "softmax code z"))

    @field_validator("backbone_weights")
    @classmethod
    def _weights_exist(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"backbone weight file {path!r} does not exist on the server")
        return path


# ---------------------------------------------------------------- losses

def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over the 2m rows of a and b (row i of a and of b are positives), cosine
    similarity, the mean over all 2m anchors (CC's InstanceLoss / ClusterLoss)."""
    rows = F.normalize(torch.cat([a, b]), dim=1)
    logits = rows @ rows.T / temperature
    logits.fill_diagonal_(float("-inf"))
    m = len(a)
    positives = torch.cat([torch.arange(m, 2 * m), torch.arange(m)]).to(a.device)
    return F.cross_entropy(logits, positives)


def entropy_of_mean(w: torch.Tensor) -> torch.Tensor:
    """H(W) = -sum_k P_k log P_k with P_k the mean cluster probability (Eq. 5)."""
    p = w.mean(dim=0)
    return -(p * p.clamp_min(1e-12).log()).sum()


def cluster_contrast(w_a: torch.Tensor, w_b: torch.Tensor,
                     temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(contrast over the K columns, -H(W_a) - H(W_b)); L_CCS is their sum. The code adds
    2 log K to the entropy part, a constant."""
    return nt_xent(w_a.T, w_b.T, temperature), -entropy_of_mean(w_a) - entropy_of_mean(w_b)


def reconstruction_reduction(p: "IcicleGCNParams", variant: str) -> Literal["sum", "mean"]:
    """L_re's reduction: the `reconstruction` parameter, else the stage variant's."""
    return p.reconstruction or ("sum" if variant == "paper" else "mean")


def feature_reconstruction(z: torch.Tensor, z_hat: torch.Tensor,
                           reduction: Literal["sum", "mean"]) -> torch.Tensor:
    """'sum': ||Z - Z^||_F^2 / N (paper Eq. 6 and 26); 'mean': F.mse_loss (the code)."""
    if reduction == "mean":
        return F.mse_loss(z_hat, z)
    return (z_hat - z).pow(2).sum(dim=1).mean()


# ---------------------------------------------------------------- networks

class SoftmaxAutoencoder(MLPAutoencoder):
    """JC-SLIM: the DEC autoencoder whose K-wide bottleneck is a softmax (cluster probabilities)."""

    def layers(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden activations H1..H3, the softmax code z (H4), and the reconstruction."""
        hidden = []
        for module in self.encoder:
            x = module(x)
            if isinstance(module, nn.ReLU):
                hidden.append(x)
        z = x.softmax(dim=1)
        return hidden + [z], self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x).softmax(dim=1)
        return z, self.decoder(z)


class ContrastiveNetwork(nn.Module):
    """Backbone + instance projector (ISM) + JC-SLIM AE, plus CC's cluster projector for the
    warm-up."""

    def __init__(self, backbone: nn.Module, feature_dim: int, n_clusters: int,
                 hidden_dims: tuple[int, ...]):
        super().__init__()
        d = backbone.rep_dim
        self.backbone = backbone
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, feature_dim))
        self.autoencoder = SoftmaxAutoencoder(d, hidden_dims, n_clusters)
        self.cc_cluster_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, n_clusters),
                                             nn.Softmax(dim=1))


class MGCN(nn.Module):
    """Two GCN streams (k_a- and k_b-NN graphs) fused with the AE's layers (Eq. 14-17)."""

    def __init__(self, autoencoder: SoftmaxAutoencoder, input_dim: int,
                 hidden_dims: tuple[int, ...],
                 n_clusters: int, share: bool, fusion: tuple[float, float, float]):
        super().__init__()
        self.autoencoder = autoencoder
        widths = [input_dim, *hidden_dims, n_clusters, n_clusters]  # 512-500-500-2000-K-K
        make = lambda: nn.ModuleList(  # noqa: E731
            GCNLayer(i, o) for i, o in pairwise(widths))
        self.gcn_a = make()
        self.gcn_b = self.gcn_a if share else make()
        self.fusion = fusion

    def forward(self, x: torch.Tensor, adj_a: torch.Tensor, adj_b: torch.Tensor):
        ae_layers, x_hat = self.autoencoder.layers(x)
        own, other, ae = self.fusion
        g_a, g_b = self.gcn_a[0](x, adj_a), self.gcn_b[0](x, adj_b)
        last = len(self.gcn_a) - 1
        for layer, h in enumerate(ae_layers, start=1):
            fused_a, fused_b = own * g_a + other * g_b + ae * h, own * g_b + other * g_a + ae * h
            g_a = self.gcn_a[layer](fused_a, adj_a, active=layer < last)
            g_b = self.gcn_b[layer](fused_b, adj_b, active=layer < last)
        return ae_layers[-1], x_hat, g_a.softmax(dim=1), g_b.softmax(dim=1)


# ---------------------------------------------------------------- the method

@register
class IcicleGCNMethod(Method):
    name = "iciclegcn"
    summary = ("IcicleGCN: contrastive ResNet training with a softmax-bottleneck autoencoder "
               "(stage 1), then two multi-scale kNN-graph GCN streams fused with the autoencoder "
               "and self-trained on DEC's target (stage 2). Vectors: stage 2 alone.")
    reference = ("Xu, Huang, Wang, Lai. Deep image clustering with contrastive learning and "
                 "multi-scale graph convolutional networks. Pattern Recognition 146 (2024) 110065")
    Params = IcicleGCNParams
    suits = "colour or grey images with a GPU (contrastive ResNet); vectors: its graph stage only"
    cost = "the paper's schedule needs a GPU for hours; CPU smoke runs only (USPS ~20 min, reduced)"

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: IcicleGCNParams) -> int:
        """Stage 1: the images (array, float copy, scaled tensor), backbone + projectors + JC-SLIM
        AE with Adam, two augmented views' activations kept for backward (counted on the meta
        device), the no-grad feature pass in 512-image chunks. Features mode: the vectors and the
        AE's pretraining on pairs with its kNN lists. Stage 2, full batch on all n: GCN streams
        and AE activations with gradients, the sparse graphs and their kNN search, k-means on z."""
        p, n, k = params, shape[0], n_clusters or 1
        hidden = p.hidden_dims
        floats = 0
        if p.mode == "images" or (p.mode == "auto" and len(shape) in (3, 4)):
            h, w, channels = shape[1], shape[2], (shape[3] if len(shape) == 4 else 1)
            size = (p.image_size, p.image_size) if p.image_size else (h, w)
            trunk, saved, largest = backbone_footprint(p.backbone, channels, size, p.stem,
                                                       p.backbone_width)
            d = 8 * p.backbone_width * (4 if p.backbone == "resnet50" else 1)  # rep_dim
            heads = (mlp_parameters([d, d, p.feature_dim]) + 2 * mlp_parameters([d, *hidden, k])
                     + mlp_parameters([d, d, k]))
            batch = min(p.batch_size, n)
            floats += 3 * n * h * w * channels + 4 * (trunk + heads)
            views = (saved + 4 * channels * size[0] * size[1]
                     + 2 * mlp_activation_floats([d, *hidden, k]))
            floats += 2 * batch * views
            floats += min(512, n) * 4 * largest + n * d
        else:
            d = math.prod(shape[1:])
            batch = min(p.features_batch_size, n)
            floats += 3 * n * d + 4 * 2 * mlp_parameters([d, *hidden, k])
            floats += 2 * batch * (2 * mlp_activation_floats([d, *hidden, k]) + d)
            floats += knn_bytes(n, p.features_neighbours) // FLOAT
        k_b = p.k_b or max(v["k_b"] for v in STAGE2_VARIANTS.values())
        widths = [d, *hidden, k, k]
        # two streams, the AE
        gcn = 2 * mlp_parameters(widths) + 2 * mlp_parameters([d, *hidden, k])
        # per layer and stream: x W, A x W, its ReLU and the four products and sums of the fusion
        # (Eq. 15-17), kept for backward; measured 19-23 (n, width) tensors per layer on digits
        floats += 4 * gcn + n * (24 * sum(widths) + 8 * k)
        edges = n * (2 * max(k_b, p.k_a) + 1)
        graphs = 2 * 3 * edges * (2 * 8 + FLOAT) + knn_bytes(n, max(k_b, p.k_a))  # coalesce copies
        return with_slack(FLOAT * floats + graphs + kmeans_bytes(n, k, k))

    def fit(self, X: np.ndarray, n_clusters: int, params: IcicleGCNParams,
            ctx: Context) -> ClusteringResult:
        p = params
        generator = seed_everything(ctx.seed)
        images_mode = p.mode == "images" or (p.mode == "auto" and X.ndim in (3, 4))
        diagnostics: dict = {"mode": "images" if images_mode else "features"}
        if images_mode:
            if X.ndim not in (3, 4):
                raise ValueError("mode 'images' needs image data (n, H, W) or (n, H, W, C)")
            # Stage 1: contrastive learning gives the backbone features Z_b and the JC-SLIM AE.
            features, autoencoder = contrastive_stage(X, n_clusters, p, ctx)
            with torch.no_grad():
                stage1 = map_in_chunks(lambda f: autoencoder(f)[0], features).argmax(dim=1)
            ctx.report("stage1_result", 1, 1, labels=stage1.cpu().numpy(), stage=1)
            diagnostics["stage1_cluster_sizes"] = np.bincount(
                stage1.cpu().numpy(), minlength=n_clusters).tolist()
        else:
            # Features mode: the AE pretrained on the input vectors themselves.
            features = torch.from_numpy(as_vectors(X, p.input_scaling)).to(ctx.device)
            autoencoder = pretrained_features_autoencoder(features, n_clusters, p, ctx, generator)
            if p.stage2_epochs == 0:
                raise ValueError("stage2_epochs=0 in features mode leaves nothing to train")
        if p.stage2_epochs == 0:  # stage 1 alone: the AE's softmax code gives the clusters
            with torch.no_grad():
                z = map_in_chunks(lambda x: autoencoder(x)[0], features)
            confidence, labels = z.max(dim=1)
            return _result(labels, confidence, features, z, p, diagnostics)
        # Stage 2: the M-GCN, self-trained on DEC's target over the fixed features.
        return mgcn_stage(features, autoencoder, n_clusters, p, ctx, diagnostics)


# ---------------------------------------------------------------- stage 1

def contrastive_stage(X: np.ndarray, n_clusters: int, p: IcicleGCNParams,
                      ctx: Context) -> tuple[torch.Tensor, SoftmaxAutoencoder]:
    """The contrastive warm-up, then L1 (Eq. 7), or the cached weights of both; returns the
    backbone features Z_b under the test transform (resize only, BatchNorm in eval mode)
    and the JC-SLIM autoencoder."""
    images = as_image_tensor(X).to(ctx.device)
    channels, native = images.shape[1], tuple(images.shape[2:])
    size = (p.image_size, p.image_size) if p.image_size else native
    backbone = make_backbone(p.backbone, channels, size, p.stem, p.backbone_width,
                             p.backbone_weights)
    net = ContrastiveNetwork(backbone, p.feature_dim, n_clusters, p.hidden_dims).to(ctx.device)
    epochs = p.warmup_epochs + p.stage1_epochs

    def train(net: ContrastiveNetwork) -> ContrastiveNetwork:
        augment = two_view_augmentation(size, channels, p.jitter_strength, p.blur,
                                        (p.crop_scale_min, 1.0))
        clock = Clock(epochs)
        # drop_last, as in CC and the code; the permutation comes from torch's global generator
        batches = Batches(len(images), p.batch_size, device=ctx.device, drop_last=True)

        def step(warmup: bool) -> Callable[[Batch], dict[str, torch.Tensor]]:
            return lambda batch: contrastive_terms(net, augment, images[batch], p, warmup)

        net.train()
        warmup = torch.optim.Adam([*net.backbone.parameters(), *net.projector.parameters(),
                                   *net.cc_cluster_head.parameters()], lr=p.warmup_lr)
        run_epochs(ctx, "warmup", p.warmup_epochs, batches, step(True), {"total": warmup},
                   clock=clock, stage=1)
        optimizer = torch.optim.Adam([*net.backbone.parameters(), *net.projector.parameters(),
                                      *net.autoencoder.parameters()], lr=p.lr)
        run_epochs(ctx, "stage1", p.stage1_epochs, batches, step(False), {"total": optimizer},
                   clock=clock, clock_offset=p.warmup_epochs, stage=1)
        return net

    net = cached_pretraining(net, train, ctx, "iciclegcn-stage1", X, p, {"n_clusters": n_clusters},
                             phase="stage1", total=epochs, stage=1, eta_s=0.0)
    net.eval()
    resize = v2.Resize(size, antialias=True) if size != native else nn.Identity()
    features = map_in_chunks(lambda x: net.backbone(resize(x)), images, chunk=512,
                             check=ctx.check_cancelled)
    return features, net.autoencoder


def contrastive_terms(net: ContrastiveNetwork, augment, x: torch.Tensor, p: IcicleGCNParams,
                      warmup: bool) -> dict[str, torch.Tensor]:
    """One batch of two augmented views: the warm-up's (instance NT-Xent, and CC's cluster
    contrast) or L1's terms (instance, cluster contrast + entropy, reconstruction)."""
    h_a, h_b = net.backbone(augment_batch(augment, x)), net.backbone(augment_batch(augment, x))
    instance = nt_xent(net.projector(h_a), net.projector(h_b), p.instance_temperature)
    if warmup and p.warmup_loss == "instance":
        terms = {"instance": instance}
    elif warmup:  # Contrastive Clustering: its own cluster projector, both views
        contrast, entropy = cluster_contrast(net.cc_cluster_head(h_a), net.cc_cluster_head(h_b),
                                             p.cluster_temperature)
        terms = {"instance": instance, "cluster": contrast, "entropy": entropy}
    else:
        code = p.stage1_variant == "code"
        w_a, h_a_hat = net.autoencoder(h_a)
        w_b, h_b_hat = net.autoencoder(h_a if code else h_b)  # the code's view bug, spec pitfall 1
        contrast, entropy = cluster_contrast(w_a, w_b, p.cluster_temperature)
        reduction = reconstruction_reduction(p, p.stage1_variant)
        if code:
            reconstruction = feature_reconstruction(h_a, h_a_hat, reduction)
        else:
            reconstruction = (feature_reconstruction(h_a, h_a_hat, reduction)
                              + feature_reconstruction(h_b, h_b_hat, reduction)) / 2
        terms = {"instance": instance, "cluster": contrast, "entropy": entropy,
                 "reconstruction": reconstruction}
    terms["total"] = sum(terms.values())
    return terms


# ---------------------------------------------------------------- features mode

def pretrained_features_autoencoder(features: torch.Tensor, n_clusters: int, p: IcicleGCNParams,
                                    ctx: Context, generator: torch.Generator) -> SoftmaxAutoencoder:
    """JC-SLIM's losses on (sample, random kNN neighbour) pairs, or SDCN's reconstruction."""
    autoencoder = SoftmaxAutoencoder(features.shape[1], p.hidden_dims, n_clusters).to(ctx.device)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=p.features_pretrain_lr)
    neighbours = (knn(features, p.features_neighbours, check=ctx.check_cancelled)[1]
                  if p.features_pretrain == "jc_slim" else None)
    reduction = reconstruction_reduction(p, p.stage1_variant)

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        x_a = features[batch]
        w_a, x_a_hat = autoencoder(x_a)
        if neighbours is None:
            terms = {"reconstruction": F.mse_loss(x_a_hat, x_a)}
        else:  # the second "view" of a sample is one of its nearest neighbours
            pick = torch.randint(p.features_neighbours, (len(x_a),), generator=generator)
            x_b = features[neighbours[batch, pick.to(ctx.device)]]
            w_b, x_b_hat = autoencoder(x_b)
            contrast, entropy = cluster_contrast(w_a, w_b, p.cluster_temperature)
            reconstruction = (feature_reconstruction(x_a, x_a_hat, reduction)
                              + feature_reconstruction(x_b, x_b_hat, reduction)) / 2
            terms = {"cluster": contrast, "entropy": entropy, "reconstruction": reconstruction}
        terms["total"] = sum(terms.values())
        return terms

    batches = Batches(len(features), p.features_batch_size, generator=generator, device=ctx.device)
    run_epochs(ctx, "ae_pretrain", p.features_pretrain_epochs, batches, step, {"total": optimizer},
               stage=1)
    with torch.no_grad():
        labels = map_in_chunks(lambda x: autoencoder(x)[0], features).argmax(dim=1)
    ctx.report("ae_pretrain_result", 1, 1, labels=labels.cpu().numpy(), stage=1)
    return autoencoder


# ---------------------------------------------------------------- stage 2: M-GCN

def mgcn_stage(features: torch.Tensor, autoencoder: SoftmaxAutoencoder, n_clusters: int,
               p: IcicleGCNParams, ctx: Context, diagnostics: dict) -> ClusteringResult:
    """Two kNN graphs, the M-GCN fused with the AE, full-batch training on L2 (Eq. 26) with
    the target P from each epoch's Q; the last epoch's parameters give the labels."""
    variant = STAGE2_VARIANTS[p.stage2_variant]
    share = variant["share_gcn_weights"] if p.share_gcn_weights is None else p.share_gcn_weights
    fusion = p.fusion or variant["fusion"]
    adj_a, adj_b = multiscale_graphs(features, p, ctx, diagnostics)
    diagnostics.update(share_gcn_weights=share, fusion=list(fusion))
    model = MGCN(autoencoder, features.shape[1], p.hidden_dims, n_clusters, share,
                 fusion).to(ctx.device)
    with torch.no_grad():
        z0 = map_in_chunks(lambda x: autoencoder(x)[0], features, check=ctx.check_cancelled)
    centers, labels = kmeans_centers(z0.cpu().numpy(), n_clusters, ctx.seed, p.n_init,
                                     check=ctx.check_cancelled)  # k-means on the simplex
    ctx.report("stage2_init", 0, p.stage2_epochs, labels=labels, stage=2)
    head = ClusteringHead(centers).to(ctx.device)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=p.stage2_lr)
    reduction = reconstruction_reduction(p, p.stage2_variant)
    last: dict[str, torch.Tensor] = {}

    def step(_: Batch) -> dict[str, torch.Tensor]:
        z, x_hat, g_a, g_b = model(features, adj_a, adj_b)
        q = head(z)
        last.update(q=q, gcn_a=g_a, gcn_b=g_b)
        target = target_distribution(q)  # P from this epoch's Q before the step, as the code does
        terms = {"reconstruction": feature_reconstruction(features, x_hat, reduction),
                 "kl_q": kl_clustering_loss(target, q), "kl_gcn_a": kl_clustering_loss(target, g_a),
                 "kl_gcn_b": kl_clustering_loss(target, g_b)}
        terms["total"] = (terms["reconstruction"] + p.alpha * terms["kl_q"]
                          + p.beta * terms["kl_gcn_a"] + p.eta * terms["kl_gcn_b"])
        return terms

    def describe(_: dict[str, float]) -> dict:
        chosen = last[p.final_labels].argmax(1)
        others = {k: v.argmax(1) for k, v in last.items() if k != p.final_labels}
        record = {f"agree_{k}": (v == chosen).float().mean().item() for k, v in others.items()}
        if ctx.monitor is not None:  # the other two predictions too, as the code's log (Q, Z, Z2)
            record.update({f"metrics_{k}": ctx.monitor(v.cpu().numpy()) for k, v in others.items()})
        return {"labels": chosen.cpu().numpy(), **record}

    model.train()
    run_epochs(ctx, "stage2", p.stage2_epochs, Batches(len(features), None), step,
               {"total": optimizer}, report_every=p.report_every, describe=describe, stage=2)
    with torch.no_grad():  # the last epoch's parameters (no selection; spec pitfall 8)
        z, _, g_a, g_b = model(features, adj_a, adj_b)
        final = {"q": head(z), "gcn_a": g_a, "gcn_b": g_b}[p.final_labels]
    confidence, labels = final.max(dim=1)
    return _result(labels, confidence, features, z, p, diagnostics)


def multiscale_graphs(features: torch.Tensor, p: IcicleGCNParams, ctx: Context,
                      diagnostics: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The k_a- and k_b-NN graphs of the features, normalised as the variant says."""
    variant = STAGE2_VARIANTS[p.stage2_variant]
    k_b = p.k_b or variant["k_b"]
    normalization = p.normalization or variant["normalization"]
    adj_a = knn_adjacency(features, p.k_a, normalization, ctx.check_cancelled)
    adj_b = knn_adjacency(features, k_b, normalization, ctx.check_cancelled)
    diagnostics.update(k_a=p.k_a, k_b=k_b, normalization=normalization,
                       graph_edges=[int(adj_a._nnz()), int(adj_b._nnz())])
    return adj_a, adj_b


def _result(labels, confidence, features, z, p: IcicleGCNParams,
            diagnostics: dict) -> ClusteringResult:
    embedding = features if p.embedding == "features" else z
    return ClusteringResult(labels=labels.cpu().numpy().astype(np.int64),
                            confidence=confidence.cpu().numpy().astype(np.float32),
                            embedding=embedding.detach().cpu().numpy().astype(np.float32),
                            diagnostics=diagnostics)
