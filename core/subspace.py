"""DSC-Net building blocks: the convolutional autoencoder with TF "SAME" geometry, its
per-dataset presets, the n x n self-expression layer, the J1 losses, denoising pretraining
and the post-processing spectral clustering of the coefficient matrix.

Ji, Zhang, Li, Salzmann, Reid. Deep subspace clustering networks. NeurIPS 2017
(Pan Ji's TF code; XifengGuo/DSC-Net is its PyTorch port). Used by `dscnss`, whose
ablation "DSC-Net alone" is exactly these pieces. Spec: docs/methods/dscnss.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core.engine import Batch, Batches, run_epochs
from core.interface import Context


@dataclass(frozen=True)
class Preset:
    """Encoder kernels/channels and the DSC-Net hyperparameters that go with them."""

    kernels: tuple[int, ...]
    channels: tuple[int, ...]
    lambda2: Callable[[int], float]  # of K
    alpha: Callable[[int], float]  # thrC keep-mass, of K
    dim_subspace: int
    ro: float
    j1_epochs: Callable[[int], int]  # DSC-Net's fine-tuning epochs, of K


PRESETS: dict[str, Preset] = {
    # Extended Yale B 48x42 (DSC-Net yaleb.py; Pan Ji's lambda2 = 10^(K/10 - 3)).
    "yaleb": Preset((5, 3, 3), (10, 20, 30), lambda k: 10.0 ** (k / 10.0 - 3.0),
                    lambda k: max(0.4 - (k - 1) / 10.0 * 0.1, 0.1), 10, 3.5, lambda k: 50 + 25 * k),
    # ORL 32x32: DSC-Net's 3,3,3 / 3,3,5 (the paper's table is garbled, spec pitfall 7).
    "orl": Preset((3, 3, 3), (3, 3, 5), lambda k: 0.2, lambda k: 0.2, 3, 1.0, lambda k: 700),
    "coil20": Preset((3,), (15,), lambda k: 150.0, lambda k: 0.04, 12, 8.0, lambda k: 40),
    "coil100": Preset((5,), (50,), lambda k: 30.0, lambda k: 0.04, 12, 8.0, lambda k: 120),
}


def auto_preset(height: int, width: int) -> Preset:
    """An architecture derived from the image size (never from the data set's identity):
    stride-2 layers until the feature map would fall below 4 pixels (at most 3), kernel 3,
    channels 10/20/30 as in the YaleB net. The subspace hyperparameters are tuned on
    scikit-learn's 8x8 digits (the CI data): lambda2 = 10, alpha = 0.1, d = 3, ro = 1."""
    layers = max(1, min(3, int(math.log2(max(min(height, width), 8) / 4))))
    return Preset((3,) * layers, (10, 20, 30)[:layers], lambda k: 10.0, lambda k: 0.1, 3, 1.0,
                  lambda k: 200)


def _same_pad(size: int, kernel: int, stride: int = 2) -> tuple[int, int, int]:
    """TF 'SAME': output ceil(size/stride); (output, pad_before, pad_after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


class ConvAE(nn.Module):
    """Stride-2 convs with TF 'SAME' padding and ReLU; the decoder mirrors them with
    ConvTranspose2d and crops to the encoder's exact sizes (e.g. 6x6 -> 12x11 -> 24x21 -> 48x42).
    Every conv and deconv, the output included, is followed by a ReLU (DSC-Net)."""

    def __init__(self, in_channels: int, height: int, width: int, kernels: tuple[int, ...],
                 channels: tuple[int, ...]):
        super().__init__()
        self.kernels = kernels
        widths = [in_channels, *channels]
        self.enc = nn.ModuleList(nn.Conv2d(a, b, k, stride=2)
                                 for a, b, k in zip(widths[:-1], widths[1:], kernels, strict=True))
        self.dec = nn.ModuleList(
            nn.ConvTranspose2d(b, a, k, stride=2)
            for a, b, k in reversed(list(zip(widths[:-1], widths[1:], kernels, strict=True))))
        # Pan Ji's TF init: Xavier-uniform kernels, zero biases. PyTorch's default (uniform biases,
        # kaiming a=sqrt(5)) left ORL's 3-channel net dead or input-independent in 5 of 6 seeds.
        for layer in [*self.enc, *self.dec]:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.sizes = [(height, width)]  # input size of each encoder layer, then the latent size
        for k in kernels:
            h, w = self.sizes[-1]
            self.sizes.append((_same_pad(h, k)[0], _same_pad(w, k)[0]))
        self.latent_shape = (channels[-1], *self.sizes[-1])
        self.latent_dim = math.prod(self.latent_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) -> flattened latent (n, d_z)."""
        # sizes holds each layer's input size, then the latent's: zip leaves the last out
        for conv, k, (h, w) in zip(self.enc, self.kernels, self.sizes, strict=False):
            _, top, bottom = _same_pad(h, k)
            _, left, right = _same_pad(w, k)
            x = F.relu(conv(F.pad(x, (left, right, top, bottom))))
        return x.flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(len(z), *self.latent_shape)
        layers = zip(self.dec, reversed(self.kernels), reversed(self.sizes[:-1]), strict=True)
        for deconv, k, (h, w) in layers:
            x = deconv(x)  # (in-1)*2 + k; crop what TF's transposed 'SAME' conv pads
            top, left = _same_pad(h, k)[1], _same_pad(w, k)[1]
            x = F.relu(x[:, :, top:top + h, left:left + w])
        return x


class SelfExpression(nn.Module):
    """Z_hat = C Z with a trainable n x n C, no bias (DSC-Net). `zero_diag` masks diag(C) in the
    forward pass, so no sample can express itself (the paper's constraint, not in either code)."""

    def __init__(self, n: int, init: float = 1e-4, zero_diag: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.full((n, n), init))
        self.zero_diag = zero_diag

    def coefficients(self) -> torch.Tensor:
        if self.zero_diag:
            return self.weight - torch.diag_embed(torch.diagonal(self.weight))
        return self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.coefficients() @ z


def j1_terms(x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor, cz: torch.Tensor,
             c: torch.Tensor, regulariser: str = "l2") -> dict[str, torch.Tensor]:
    """L0 = 1/2 ||X - X_hat||^2, L1 = ||C||_F^2 (l2) or ||C||_1 (l1), L2 = 1/2 ||Z - CZ||^2
    (Pan Ji's convention)."""
    return {"L0": 0.5 * (x - x_hat).pow(2).sum(),
            "L1": c.pow(2).sum() if regulariser == "l2" else c.abs().sum(),
            "L2": 0.5 * (z - cz).pow(2).sum()}


def pretrain_denoising(model: ConvAE, X: torch.Tensor, epochs: int, lr: float, noise: float,
                       batch_size: int | None, generator: torch.Generator, ctx: Context,
                       report_every: int = 1) -> None:
    """Reconstruct clean X from X + N(0, noise^2) (the paper's corrupted-input pretraining), Adam
    on 1/2 ||X - X_hat||^2 summed over the batch; L0 is reported per sample."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        x = X[batch]
        noisy = x + noise * torch.randn(x.shape, generator=generator).to(x.device)
        loss = 0.5 * (model.decode(model.encode(noisy)) - x).pow(2).sum()
        return {"L0": loss.detach() / len(x), "_L0_sum": loss}

    size = batch_size if batch_size and batch_size < len(X) else None  # None: full batch
    batches = Batches(len(X), size, generator=generator, device=X.device)
    run_epochs(ctx, "pretrain", epochs, batches, step, {"_L0_sum": optimizer},
               report_every=report_every)


def reconstructs_nothing(model: ConvAE, X: torch.Tensor) -> bool:
    """A label-free check of a pretrained AE: its reconstruction is no better than the mean image
    (dead output ReLU, or a dead layer that makes the output the same for every input)."""
    with torch.no_grad():
        error = (model.decode(model.encode(X)) - X).pow(2).sum()
        return bool(error >= (X - X.mean(dim=0)).pow(2).sum())


def threshold_columns(C: np.ndarray, alpha: float) -> np.ndarray:
    """thrC: in each column keep the largest-|c| entries until their |.| sum exceeds
    alpha * ||c||_1."""
    if alpha >= 1:
        return C
    magnitude = np.abs(C)
    order = np.argsort(-magnitude, axis=0)
    sorted_mag = np.take_along_axis(magnitude, order, axis=0)
    cumulative = np.cumsum(sorted_mag, axis=0)
    # Entry t (in sorted order) is kept while the sum before it has not exceeded the mass.
    before = cumulative - sorted_mag
    # >= 1 entry per column; the crossing entry included
    keep_sorted = before <= alpha * cumulative[-1:]
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=0)
    return np.where(keep, C, 0.0)


def subspace_affinity(C: np.ndarray, n_clusters: int, dim_subspace: int, ro: float) -> np.ndarray:
    """DSC-Net's post_proC: symmetrise, top-(dK+1) SVD, U sqrt(S) rows L2-normalised,
    (max(UU^T, 0))^ro scaled to max 1, symmetrised."""
    from scipy.sparse.linalg import svds

    C = 0.5 * (C + C.T)
    r = min(dim_subspace * n_clusters + 1, len(C) - 1)
    U, S, _ = svds(C, r, v0=np.ones(len(C)))
    order = np.argsort(S)[::-1]
    U = U[:, order] * np.sqrt(S[order])
    U = U / np.maximum(np.linalg.norm(U, axis=1, keepdims=True), 1e-12)
    Z = np.maximum(U @ U.T, 0.0)
    L = Z ** ro
    L = L / max(L.max(), 1e-12)
    return 0.5 * (L + L.T)


def spectral_labels(C: np.ndarray, n_clusters: int, alpha: float, dim_subspace: int, ro: float,
                    seed: int, check: Callable[[], None] | None = None) -> np.ndarray:
    """The DSC-Net post-processing: thrC -> affinity -> SpectralClustering (arpack, discretize).
    `check` (a cancellation check) runs between the steps; each is one library call."""
    from sklearn.cluster import SpectralClustering

    check = check or (lambda: None)
    thresholded = threshold_columns(C.astype(np.float64), alpha)
    check()
    affinity = subspace_affinity(thresholded, n_clusters, dim_subspace, ro)
    del thresholded
    check()
    spectral = SpectralClustering(n_clusters, affinity="precomputed", eigen_solver="arpack",
                                  assign_labels="discretize", random_state=seed)
    return spectral.fit_predict(affinity).astype(np.int64)
