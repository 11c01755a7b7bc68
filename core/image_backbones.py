"""Image tensors, two-view augmentation and ResNet backbones for the image methods.

Contrastive methods (CC, IcicleGCN) train a torchvision ResNet from scratch on two
augmented views of every image. Small images (8-32 px) keep their own size and get the
CIFAR-style stem (3x3 stride-1 conv, no max-pool), so the feature map is not collapsed
to 1x1 after the stem.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.transforms import v2

BackboneName = Literal["resnet18", "resnet34", "resnet50"]
Stem = Literal["auto", "imagenet", "small"]
_LAYERS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
           "resnet50": (Bottleneck, [3, 4, 6, 3])}
SMALL_IMAGE_PX = 64  # "auto" stem: images up to this size get the small stem


def as_image_tensor(X: np.ndarray) -> torch.Tensor:
    """(n, H, W) or (n, H, W, C) array -> float (n, C, H, W) in [0, 1] (one global min/max
    scale)."""
    if X.ndim not in (3, 4):
        raise ValueError(f"images must be (n, H, W) or (n, H, W, C), got shape {list(X.shape)}")
    images = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    images = images.unsqueeze(1) if X.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    low, high = float(images.min()), float(images.max())
    if high > low and (low < 0 or high > 1):
        images = (images - low) / (high - low)
    return images


def two_view_augmentation(size: tuple[int, int], channels: int, jitter_strength: float = 1.0,
                          blur: bool = False,
                          crop_scale: tuple[float, float] = (0.08, 1.0)) -> v2.Compose:
    """CC's training transform (resized crop, flip, colour jitter p=0.8, grayscale p=0.2,
    optional Gaussian blur p=0.5), on tensors in [0, 1], without mean/std normalisation.
    On one-channel images the hue/saturation jitter and the grayscale step are no-ops."""
    s = jitter_strength
    steps: list[nn.Module] = [
        v2.RandomResizedCrop(size, scale=crop_scale, antialias=True), v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8)]
    if channels == 3:
        steps.append(v2.RandomGrayscale(p=0.2))
    if blur:
        # CC: kernel 23 at 224 px (about a tenth), odd
        kernel = max(3, int(0.1 * min(size)) // 2 * 2 + 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5))
    return v2.Compose(steps)


def augment_batch(transform: v2.Compose, images: torch.Tensor) -> torch.Tensor:
    """Apply `transform` with independent random parameters to every image (v2 would draw
    one set of parameters for a whole batch tensor); this is the DataLoader's per-item call."""
    return torch.stack([transform(image) for image in images])


class _ScaledResNet(ResNet):
    """torchvision's ResNet with base width `width` (64 = the standard network) and
    `in_channels` input channels; no classifier (`fc` is the identity)."""

    def __init__(self, block, layers, width: int, in_channels: int, small_stem: bool):
        self._width = width
        super().__init__(block, layers)
        self.conv1 = (nn.Conv2d(in_channels, width, 3, 1, 1, bias=False) if small_stem
                      else nn.Conv2d(in_channels, width, 7, 2, 3, bias=False))
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1 = nn.BatchNorm2d(width)
        if small_stem:
            self.maxpool = nn.Identity()
        self.rep_dim = 8 * width * block.expansion
        self.fc = nn.Identity()

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage: the stem's output width
            self.inplanes = self._width
        return super()._make_layer(block, planes * self._width // 64, blocks, stride, dilate)


def make_backbone(name: BackboneName, in_channels: int, image_size: tuple[int, int],
                  stem: Stem = "auto", width: int = 64,
                  weights: str | None = None) -> _ScaledResNet:
    """A randomly initialised ResNet trunk (no download), or one loaded from a state_dict file."""
    block, layers = _LAYERS[name]
    small = stem == "small" or (stem == "auto" and max(image_size) <= SMALL_IMAGE_PX)
    net = _ScaledResNet(block, layers, width, in_channels, small)
    if weights:
        load_backbone_weights(net, weights)
    return net


def load_backbone_weights(net: nn.Module, path: str) -> None:
    """Load a torch state_dict (a bare one, or under 'state_dict'/'net'/'model'); a classifier
    head ('fc.*') is ignored. Raises ValueError with the reason when it does not fit."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"backbone weight file {path!r} does not exist on the server")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is the user's file
        raise ValueError(f"backbone weight file {path!r} is not a loadable torch state_dict: "
                         f"{exc}") from None
    for key in ("state_dict", "net", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"backbone weight file {path!r} holds a {type(state).__name__}, "
                         "not a state_dict")
    state = {k.removeprefix("module.").removeprefix("resnet."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"backbone weight file {path!r} does not fit the chosen backbone: "
                         f"{exc}") from None


@lru_cache(maxsize=32)
def backbone_footprint(name: BackboneName, in_channels: int, image_size: tuple[int, int],
                       stem: Stem = "auto", width: int = 64) -> tuple[int, int, int]:
    """(parameters, floats kept for backward per image, largest activation per image) of a
    backbone in training mode, counted on the meta device (no memory, no compute) with
    autograd's saved-tensor hooks; per image from the difference between batches of 2 and 4
    (BatchNorm needs 2)."""
    with torch.device("meta"):
        net = make_backbone(name, in_channels, image_size, stem, width)
    parameters = sum(w.numel() for w in net.parameters())
    saved, largest = {}, {}
    for batch in (2, 4):
        kept: list[int] = []
        outputs: list[int] = []

        def count_output(_module, _inputs, out, outputs=outputs) -> None:
            outputs.append(out.numel())

        def count_saved(t: torch.Tensor, kept=kept) -> torch.Tensor:
            kept.append(t.numel())
            return t

        hooks = [m.register_forward_hook(count_output) for m in net.modules()
                 if not list(m.children())]
        with torch.autograd.graph.saved_tensors_hooks(count_saved, lambda t: t):
            net(torch.empty(batch, in_channels, *image_size, device="meta", requires_grad=True))
        for hook in hooks:
            hook.remove()
        saved[batch], largest[batch] = sum(kept), max(outputs)
    return parameters, (saved[4] - saved[2]) // 2, largest[4] // 4
