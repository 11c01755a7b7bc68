"""Image views of flat vectors and the shift/rotation augmentation of DynAE and R-DC."""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(C, H, W) of the images behind the data, or None when they are not images.

    Images (n, H, W) or (n, H, W, C) keep their shape; flat vectors count as square
    grey images when their length is a perfect square (e.g. 784 = 28 x 28).
    """
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    if len(shape) == 4:
        return shape[3], shape[1], shape[2]
    side = math.isqrt(shape[1]) if len(shape) == 2 else 0
    return (1, side, side) if side > 1 and side * side == shape[1] else None


def random_shift_rotate(x: torch.Tensor, shape: tuple[int, int, int], max_shift: float = 0.1,
                        max_degrees: float = 10.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Each row of x (n, H*W*C, channels-last order) shifted and rotated by its own random amount.

    Keras ImageDataGenerator(width_shift_range, height_shift_range, rotation_range): shifts
    uniform in +-max_shift of the size, rotation uniform in +-max_degrees, fill 'nearest'
    (grid_sample's 'border' padding is the same rule). torchvision's RandomAffine draws one
    transform per call, so it would move a whole batch alike; hence a batched affine grid.
    """
    c, h, w = shape
    n = len(x)
    images = x.reshape(n, h, w, c).permute(0, 3, 1, 2)
    u = torch.rand(n, 3, generator=generator).to(x.device) * 2 - 1
    angle = u[:, 0] * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in [-1, 1] coordinates: a shift of s * size is 2 * s there
    theta = torch.stack([torch.stack([cos, -sin, 2 * max_shift * u[:, 1]], 1),
                         torch.stack([sin, cos, 2 * max_shift * u[:, 2]], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return moved.permute(0, 2, 3, 1).reshape(n, -1)
