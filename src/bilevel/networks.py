"""Small neural networks as pure functions of ONE flat parameter vector (the variables of a bilevel
problem are 1-D tensors, :mod:`bilevel.problems.base`).

:class:`Conv4` and :class:`ResNet12` are the few-shot backbones (feature extractors, the upper variable
of meta-learning, ``specs/pzobo.md`` §5.4, ``specs/fsba.md`` §9.5).

:class:`ConvNet` is the 4-layer CNN of the OAGD/SOGD loss-tuning experiment (``specs/sogd.md`` §7.2,
``get_cnn_small`` of ``BojianHou/OAGD``): ``layers`` × [Conv 3×3 (padding 1, ``channels`` maps) → ReLU →
MaxPool 2 → BatchNorm], Flatten, Linear(→ classes); convolutions He-normal initialised (seeded), the
linear layer initialised to zero. BatchNorm normalises with the statistics of a reference batch: the
batch itself (training mode) or, for evaluation, a given ``stats_from`` batch (the reference code keeps
running statistics with momentum 1, i.e. the statistics of the last training batch). Written with plain
torch ops, so gradients, Hessian-vector products and vmap all apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


class FlatParameters:
    """Parameters of a network as views of one flat vector: subclasses list ``shapes`` (name, shape)."""

    shapes: list[tuple[str, tuple[int, ...]]]

    @property
    def size(self) -> int:
        """Length of the flat parameter vector."""
        return sum(math.prod(s) for _, s in self.shapes)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of the flat vector, one per parameter."""
        if theta.shape != (self.size,):
            raise ValueError(f"{type(self).__name__}: expected a flat parameter vector of length {self.size}, "
                             f"got {tuple(theta.shape)}")
        out, start = {}, 0
        for name, shape in self.shapes:
            n = math.prod(shape)
            out[name] = theta[start:start + n].reshape(shape)
            start += n
        return out

    def init(self, generator: torch.Generator, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """He-normal convolutions (fan-out, as ``kaiming_normal_(mode="fan_out")``), zero biases, BN weights 1,
        zero linear layer."""
        parts = []
        for name, shape in self.shapes:
            if len(shape) == 4:
                std = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
                parts.append(torch.randn(shape, generator=generator, dtype=dtype).flatten() * std)
            elif name.startswith("bn") and name.endswith(".w"):
                parts.append(torch.ones(math.prod(shape), dtype=dtype))
            else:
                parts.append(torch.zeros(math.prod(shape), dtype=dtype))
        return torch.cat(parts).to(device)


def batch_norm(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, groups: int = 1, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalisation with the statistics of each of ``groups`` consecutive equal parts of the batch
    (one per few-shot task: every task's images are normalised by their own statistics, transductively,
    as learn2learn's ``track_running_stats=False``)."""
    n, c = h.shape[:2]
    grouped = h.reshape(groups, n // groups, c, *h.shape[2:])
    dims = (1, *range(3, grouped.ndim))
    mean = grouped.mean(dim=dims, keepdim=True)
    var = grouped.var(dim=dims, unbiased=False, keepdim=True)
    scale = (w.reshape(1, 1, c, 1, 1), b.reshape(1, 1, c, 1, 1))
    return ((grouped - mean) / torch.sqrt(var + eps) * scale[0] + scale[1]).reshape(h.shape)


@dataclass(frozen=True)
class ConvNet(FlatParameters):
    """The CNN above on ``side × side`` single-channel images; ``batch_norm=False`` drops the BN layers."""

    channels: int = 64
    layers: int = 4
    classes: int = 10
    side: int = 28
    in_channels: int = 1
    batch_norm: bool = True
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if min(self.channels, self.layers, self.classes, self.side, self.in_channels) < 1:
            raise ValueError(f"ConvNet: channels, layers, classes, side and in_channels must be >= 1, got {self}")
        if self.side // 2**self.layers < 1:
            raise ValueError(f"ConvNet: {self.layers} max-pool layers leave nothing of a {self.side}-pixel image")

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of the parameters, in the order of the flat vector."""
        out, c_in = [], self.in_channels
        for i in range(self.layers):
            out += [(f"conv{i}.w", (self.channels, c_in, 3, 3)), (f"conv{i}.b", (self.channels,))]
            if self.batch_norm:
                out += [(f"bn{i}.w", (self.channels,)), (f"bn{i}.b", (self.channels,))]
            c_in = self.channels
        final = self.side
        for _ in range(self.layers):
            final //= 2
        out += [("fc.w", (self.classes, self.channels * final * final)), ("fc.b", (self.classes,))]
        return out

    def _norm(self, h: torch.Tensor, ref: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        mean = ref.mean(dim=(0, 2, 3), keepdim=True)
        var = ref.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + self.eps) * w[None, :, None, None] + b[None, :, None, None]

    def __call__(self, theta: torch.Tensor, images: torch.Tensor, stats_from: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores (N, classes) of ``images`` (N, side²) or (N, C, side, side)."""
        p = self.unflatten(theta)
        shape = (-1, self.in_channels, self.side, self.side)
        h = images.reshape(shape)
        ref = None if stats_from is None else stats_from.reshape(shape)
        for i in range(self.layers):
            def block(a, i=i):
                return F.max_pool2d(torch.relu(F.conv2d(a, p[f"conv{i}.w"], p[f"conv{i}.b"], padding=1)), 2)

            h = block(h)
            ref = None if ref is None else block(ref)
            if self.batch_norm:
                stats = h if ref is None else ref
                if ref is not None:
                    ref = self._norm(ref, ref, p[f"bn{i}.w"], p[f"bn{i}.b"])
                h = self._norm(h, stats, p[f"bn{i}.w"], p[f"bn{i}.b"])
        return h.flatten(1) @ p["fc.w"].T + p["fc.b"]


@dataclass(frozen=True)
class Conv4(FlatParameters):
    """learn2learn's ``ConvBase``: ``layers`` × [Conv 3×3 (padding 1, ``hidden`` maps) → BatchNorm → ReLU →
    MaxPool 2], flattened. FC100 uses ``hidden = 64`` on 32×32 images (256 features), miniImageNet
    ``hidden = 32`` on 84×84 (800 features); BatchNorm uses each task's own statistics (:func:`batch_norm`)."""

    hidden: int = 64
    layers: int = 4
    in_channels: int = 3
    side: int = 32

    def __post_init__(self) -> None:
        if min(self.hidden, self.layers, self.in_channels, self.side) < 1 or self.side // 2**self.layers < 1:
            raise ValueError(f"Conv4: positive sizes needed and {self.layers} poolings must leave a pixel, got {self}")

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        out, c_in = [], self.in_channels
        for i in range(self.layers):
            out += [(f"conv{i}.w", (self.hidden, c_in, 3, 3)), (f"conv{i}.b", (self.hidden,)),
                    (f"bn{i}.w", (self.hidden,)), (f"bn{i}.b", (self.hidden,))]
            c_in = self.hidden
        return out

    @property
    def feature_dim(self) -> int:
        side = self.side
        for _ in range(self.layers):
            side //= 2
        return self.hidden * side * side

    def __call__(self, theta: torch.Tensor, images: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """Features (N, feature_dim) of ``images`` (N, in_channels, side, side), BN statistics per group."""
        p = self.unflatten(theta)
        h = images
        for i in range(self.layers):
            h = F.conv2d(h, p[f"conv{i}.w"], p[f"conv{i}.b"], padding=1)
            h = F.max_pool2d(torch.relu(batch_norm(h, p[f"bn{i}.w"], p[f"bn{i}.b"], groups)), 2)
        return h.flatten(1)


@dataclass(frozen=True)
class ResNet12(FlatParameters):
    """ResNet-12 (learn2learn / MetaOptNet style): 4 residual blocks of widths ``channels``, each
    [Conv 3×3 → BN → LeakyReLU(0.1)] × 3 (no activation after the third BN) plus a 1×1 Conv → BN shortcut,
    summed, LeakyReLU, MaxPool 2; then global average pooling (640 features with the paper's widths
    64-160-320-640). Drop rate 0 (as PZOBO's runs); BN statistics per task (:func:`batch_norm`)."""

    channels: tuple[int, ...] = (64, 160, 320, 640)
    in_channels: int = 3
    side: int = 84
    slope: float = 0.1

    def __post_init__(self) -> None:
        if min((*self.channels, self.in_channels, self.side)) < 1 or self.side // 2 ** len(self.channels) < 1:
            raise ValueError(f"ResNet12: positive sizes needed and the poolings must leave a pixel, got {self}")

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        out, c_in = [], self.in_channels
        for i, c in enumerate(self.channels):
            for j in range(3):
                out += [(f"b{i}.conv{j}.w", (c, c_in if j == 0 else c, 3, 3)),
                        (f"bn{i}.{j}.w", (c,)), (f"bn{i}.{j}.b", (c,))]
            out += [(f"b{i}.short.w", (c, c_in, 1, 1)), (f"bn{i}.s.w", (c,)), (f"bn{i}.s.b", (c,))]
            c_in = c
        return out

    @property
    def feature_dim(self) -> int:
        return self.channels[-1]

    def __call__(self, theta: torch.Tensor, images: torch.Tensor, groups: int = 1) -> torch.Tensor:
        p = self.unflatten(theta)
        h = images
        for i in range(len(self.channels)):
            out = h
            for j in range(3):
                out = batch_norm(F.conv2d(out, p[f"b{i}.conv{j}.w"], padding=1), p[f"bn{i}.{j}.w"], p[f"bn{i}.{j}.b"],
                                 groups)
                if j < 2:
                    out = F.leaky_relu(out, self.slope)
            short = batch_norm(F.conv2d(h, p[f"b{i}.short.w"]), p[f"bn{i}.s.w"], p[f"bn{i}.s.b"], groups)
            h = F.max_pool2d(F.leaky_relu(out + short, self.slope), 2)
        return h.mean(dim=(2, 3))
